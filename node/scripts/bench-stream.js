'use strict';
// One stream against re-running the prefix, on tfjs-node: for each model,
// the latency of one more step fed to an open stream (lib/layers/stream.js),
// its output read back, against what users do without streams, predicting
// the whole prefix again (here 100 steps long, by the fast loop), and the
// steps/s of 16 and 256 streams stepped together. Models are built here
// with Keras's defaults and random weights (timing does not need trained ones).
//
//   node node/scripts/bench-stream.js [--steps 100] [--reps 5]
const { performance } = require('perf_hooks');
const { main, parseCommandLine, UsageError } = require('../lib/runtime/cli');

const USAGE =
  'usage: bench-stream.js [--steps N] [--reps R]  (per-step latency of a stream vs ' +
  're-running an N-step prefix, tfjs-node; prints JSON)';

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
    'LSTM(32), 1 feature -> Dense(10)': () =>
      free(1, (f) => [
        new LSTM({ units: 32, recurrentActivation: 'sigmoid', inputShape: [null, f] }),
      ]),
  };
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
      },
    },
    USAGE,
  );
  const [steps, reps] = [Number(values.steps), Number(values.reps)];
  if (!(Number.isInteger(steps) && steps > 0 && Number.isInteger(reps) && reps > 0)) {
    throw new UsageError(`--steps and --reps take positive integers (${USAGE})`);
  }
  const { tf, runtimeInfo } = require('../lib/runtime/tfnode');
  const { installKerasLayers } = require('../lib/layers');
  const { openStreams } = require('../lib/layers/stream');
  const layers = installKerasLayers(tf);
  const results = {};
  for (const [name, make] of Object.entries(models(tf, layers))) {
    const model = make();
    const features = model.inputs[0].shape[2];
    const xs = tf.randomUniform([1, steps, features], 0, 1, 'float32', 3);
    const rows = tf.unstack(xs, 1);
    // one stream: each step's latency, its output read back (a user needs the value)
    const streams = openStreams(tf, model, { batch: 1 });
    const stepMs = [];
    for (let rep = 0; rep <= reps; rep++) {
      streams.reset();
      for (const row of rows) {
        const ms = timeOne(() => {
          const y = streams.step(row);
          y.dataSync();
          y.dispose();
        });
        if (rep > 0) stepMs.push(ms); // the first pass warms up
      }
    }
    streams.dispose();
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
    // many streams stepped together: steps/s over all of them
    const batched = {};
    for (const batch of [16, 256]) {
      const many = openStreams(tf, model, { batch });
      const x = tf.randomUniform([batch, features], 0, 1, 'float32', 4);
      const ms = [];
      for (let i = 0; i < 10 + steps; i++) {
        const t = timeOne(() => {
          const y = many.step(x);
          y.dataSync();
          y.dispose();
        });
        if (i >= 10) ms.push(t);
      }
      const { p50_ms: p50 } = summary(ms);
      batched[batch] = { step_p50_ms: p50, steps_per_s: Math.round((1000 * batch) / p50) };
      many.dispose();
      x.dispose();
    }
    const step = summary(stepMs);
    const prefix = summary(prefixMs);
    results[name] = {
      stream_step: step,
      [`prefix_${steps}_steps`]: prefix,
      prefix_over_step: Number((prefix.p50_ms / step.p50_ms).toFixed(1)),
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
