'use strict';
// One stream against re-running the prefix, on tfjs-node: for each model,
// the latency of one more step fed to an open stream (lib/layers/stream.js),
// its output read back, against what users do without streams, predicting
// the whole prefix again (here 100 steps long, by the fast loop), and the
// steps/s of 16 and 256 streams stepped together (--batches), each on the
// array ops and on TensorFlow's ops (lib/layers/stream.js's crossover). Models are built here
// with Keras's defaults and random weights (timing does not need trained ones),
// or, with --model, a model folder's layers model, its time axis freed so
// that the prefix can be --steps long (what `tfjs-bridge bench --stream`
// runs, beside Python's stateful step on the same model).
//
//   node node/scripts/bench-stream.js [--steps 100] [--reps 5] [--model DIR]
const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');

const USAGE =
  'usage: bench-stream.js [--steps N] [--reps R] [--model DIR] [--batches 16,256]  (per-step ' +
  'latency of a stream, on array ops and on TensorFlow ops, vs re-running an N-step prefix, and ' +
  'B streams stepped together on each (the crossover); tfjs-node; prints JSON)';

function models(tf, { GRU, LSTM }) {
  const free = (features, layers) =>
    tf.sequential({ layers: [...layers(features), tf.layers.dense({ units: 10 })] });
  return {
    'GRU(64) reset after, 28 features -> Dense(10)': () =>
      free(28, (f) => [
        new GRU({
          units: 64,
          resetAfter: true,
          recurrentActivation: 'sigmoid',
          inputShape: [null, f],
        }),
      ]),
    // wider: where the crossover moves with the width (--batches)
    'GRU(256) reset after, 64 features -> Dense(10)': () =>
      free(64, (f) => [
        new GRU({
          units: 256,
          resetAfter: true,
          recurrentActivation: 'sigmoid',
          inputShape: [null, f],
        }),
      ]),
    'LSTM(32), 1 feature -> Dense(10)': () =>
      free(1, (f) => [
        new LSTM({ units: 32, recurrentActivation: 'sigmoid', inputShape: [null, f] }),
      ]),
  };
}

/** --model DIR: its one input's spec, from its manifest (checked before tfjs-node loads). */
function folderInput(dir) {
  const manifestPath = path.join(dir, 'manifest.json');
  if (!fs.existsSync(manifestPath)) throw new UsageError(`--model ${dir}: no manifest.json there`);
  const [spec] = JSON.parse(fs.readFileSync(manifestPath, 'utf8')).signature.inputs;
  if (spec.kind === 'tokens')
    throw new UsageError(`--model ${dir}: token-id models are not benched here yet`);
  return spec;
}

/** --model DIR: its layers model (time axis freed) and its input's range. */
async function folderModel(tf, dir, spec) {
  const { loadModel } = require('../lib/runtime/models');
  const { model } = await loadModel(tf, dir, 'layers', { freeTime: true });
  return { model, low: spec.low ?? 0, high: spec.high ?? 1 };
}

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const summary = (ms) => {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50_ms: quantile(sorted, 0.5), p99_ms: quantile(sorted, 0.99), n: ms.length };
};

function timeOne(fn) {
  const started = performance.now();
  fn();
  return performance.now() - started;
}

main(async () => {
  const { values } = parseCommandLine(
    {
      options: {
        steps: { type: 'string', default: '100' },
        reps: { type: 'string', default: '5' },
        model: { type: 'string' },
        batches: { type: 'string', default: '16,256' },
      },
    },
    USAGE,
  );
  const [steps, reps] = [Number(values.steps), Number(values.reps)];
  if (!(Number.isInteger(steps) && steps > 0 && Number.isInteger(reps) && reps > 0)) {
    throw new UsageError(`--steps and --reps take positive integers (${USAGE})`);
  }
  const batches = values.batches.split(',').map(Number);
  if (!batches.every((b) => Number.isInteger(b) && b > 0)) {
    throw new UsageError(`--batches takes positive integers, comma-separated (${USAGE})`);
  }
  const spec = values.model ? folderInput(values.model) : null;
  const { tf, runtimeInfo } = require('../lib/runtime/tfnode');
  const { installKerasLayers } = require('../lib/layers');
  const { openStreams, streamOpsFor } = require('../lib/layers/stream');
  const layers = installKerasLayers(tf);
  const results = {};
  const chosen = values.model
    ? { [path.basename(path.resolve(values.model))]: () => folderModel(tf, values.model, spec) }
    : Object.fromEntries(
        Object.entries(models(tf, layers)).map(([name, make]) => [
          name,
          async () => ({ model: make(), low: 0, high: 1 }),
        ]),
      );
  for (const [name, make] of Object.entries(chosen)) {
    const { model, low, high } = await make();
    const features = model.inputs[0].shape[2];
    const xs = tf.randomUniform([1, steps, features], low, high, 'float32', 3);
    const rows = tf.unstack(xs, 1);
    // one stream on each kind of ops, passes alternated (a busy machine's
    // drift falls on both): each step's latency, its output read back
    const kinds = { array: [], tensor: [] };
    const one = Object.fromEntries(
      Object.keys(kinds).map((ops) => [ops, openStreams(tf, model, { batch: 1, ops })]),
    );
    for (let rep = 0; rep <= reps; rep++) {
      for (const [ops, streams] of Object.entries(one)) {
        streams.reset();
        for (const row of rows) {
          const ms = timeOne(() => {
            const y = streams.step(row);
            y.dataSync();
            y.dispose();
          });
          if (rep > 0) kinds[ops].push(ms); // the first pass warms up
        }
      }
    }
    const chosenOps = openStreams(tf, model, { batch: 1 });
    const opsOfOne = { ops: chosenOps.ops, why: chosenOps.opsWhy };
    chosenOps.dispose();
    Object.values(one).forEach((streams) => streams.dispose());
    // without streams: the whole prefix again for the newest step
    const prefixMs = [];
    for (let rep = 0; rep <= 4 * reps; rep++) {
      const ms = timeOne(() => {
        const y = model.predict(xs);
        y.dataSync();
        y.dispose();
      });
      if (rep > 0) prefixMs.push(ms);
    }
    // many streams stepped together, on each kind of ops: steps/s over all of them
    const batched = {};
    for (const batch of batches) {
      const x = tf.randomUniform([batch, features], low, high, 'float32', 4);
      const many = Object.fromEntries(
        ['array', 'tensor'].map((ops) => [ops, openStreams(tf, model, { batch, ops })]),
      );
      const ms = { array: [], tensor: [] };
      for (let i = 0; i < 10 + steps; i++) {
        for (const [ops, streams] of Object.entries(many)) {
          const t = timeOne(() => {
            const y = streams.step(x);
            y.dataSync();
            y.dispose();
          });
          if (i >= 10) ms[ops].push(t);
        }
      }
      const auto = openStreams(tf, model, { batch });
      batched[batch] = {
        chosen: auto.ops,
        ...Object.fromEntries(
          Object.entries(ms).map(([ops, times]) => {
            const { p50_ms: p50 } = summary(times);
            return [ops, { step_p50_ms: p50, steps_per_s: Math.round((1000 * batch) / p50) }];
          }),
        ),
      };
      auto.dispose();
      Object.values(many).forEach((streams) => streams.dispose());
      x.dispose();
    }
    const array = summary(kinds.array);
    const direct = summary(kinds.tensor);
    const step = opsOfOne.ops === 'array' ? array : direct;
    const prefix = summary(prefixMs);
    results[name] = {
      stream_step: step,
      stream_step_ops: opsOfOne,
      stream_step_array: array,
      stream_step_direct: direct,
      [`prefix_${steps}_steps`]: prefix,
      prefix_over_step: Number((prefix.p50_ms / step.p50_ms).toFixed(1)),
      macs_per_step: streamOpsFor(tf, model, 1).macs,
      streams_stepped_together: batched,
    };
    tf.dispose([xs, ...rows]);
    model.dispose();
  }
  const { backend, tfjsNode } = runtimeInfo();
  process.stdout.write(
    `${JSON.stringify({ backend, tfjs_node: tfjsNode, steps, results }, null, 2)}\n`,
  );
}, USAGE);
