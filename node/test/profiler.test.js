'use strict';
// Prediction and training on tfjs-node under Node's CPU profiler (--cpu-prof),
// in real child processes. The profiler's signals corrupt the heap when they
// land inside oneDNN's JIT sgemm (oneDNN issue #4845; see tf_direct.js),
// which TensorFlow's MatMul reaches at some shapes (the backward pass's
// products among them), and LSTMBlockCell and BlockLSTMV2 too: these tests
// keep the fast loop and its gradient off the ones that crashed here.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..', '..');

// Predicts a registry model at batch 1, 32 and 256, then fits it for 2 epochs
// on random data; prints the live tensor count after each epoch.
const FIT = `
const { tf } = require('./node/lib/runtime/tfnode');
const { getSpec, buildModel } = require('./node/lib/layers/registry');
(async () => {
  const spec = getSpec(process.argv[1]);
  const model = buildModel(tf, spec);
  const x = tf.randomUniform([640, ...spec.input_shape]);
  const y = tf.oneHot(tf.randomUniform([640], 0, 10, 'int32'), 10).toFloat();
  for (const b of [1, 32, 256]) {
    for (let i = 0; i < 50; i++) tf.dispose(model.predict(x.slice(0, b), { batchSize: b }));
  }
  const counts = [];
  const history = await model.fit(x, y, { epochs: 2, batchSize: 32, verbose: 0,
    callbacks: { onEpochEnd: async () => { counts.push(tf.memory().numTensors); } } });
  process.stdout.write(JSON.stringify({ counts, loss: history.history.loss }));
})();`;

for (const model of ['gru', 'rnn_stack']) {
  test(`${model} predicts and trains under Node's CPU profiler without crashing or leaking tensors`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-bridge-prof-'));
    try {
      const run = spawnSync(
        process.execPath,
        ['--cpu-prof', `--cpu-prof-dir=${dir}`, '-e', FIT, model],
        {
          cwd: ROOT,
          encoding: 'utf8',
          timeout: 120_000,
        },
      );
      assert.equal(
        run.status,
        0,
        `exit ${run.status} ${run.signal || ''}: ${run.stderr.split('\n').slice(-3).join(' | ')}`,
      );
      const out = JSON.parse(run.stdout);
      assert.equal(out.counts[0], out.counts[1], `tensors leaked: ${out.counts}`);
      assert.ok(out.loss.every(Number.isFinite), `loss ${out.loss}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
