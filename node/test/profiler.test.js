'use strict';
// Prediction and training on tfjs-node under Node's CPU profiler (--cpu-prof),
// in real child processes. The profiler's signals corrupt the heap when they
// land inside oneDNN's AVX-512 JIT sgemm, which TensorFlow's MatMul on
// transposed operands, LSTMBlockCell and BlockLSTMV2 run on this machine
// (oneDNN issue #4845; see tf_direct.js): the fast loop and its gradient use
// none of them, and these tests keep it so.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn, spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..', '..');

// Predicts a registry model at batch 1, 32 and 256, then fits it for 2 epochs
// on random data; prints the live tensor count after each epoch.
const FIT = `
const { tf } = require('./node/lib/tfnode');
const { getSpec, buildModel } = require('./node/lib/registry');
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
      const run = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${dir}`, '-e', FIT, model], {
        cwd: ROOT, encoding: 'utf8', timeout: 120_000,
      });
      assert.equal(run.status, 0, `exit ${run.status} ${run.signal || ''}: ${run.stderr.split('\n').slice(-3).join(' | ')}`);
      const out = JSON.parse(run.stdout);
      assert.equal(out.counts[0], out.counts[1], `tensors leaked: ${out.counts}`);
      assert.ok(out.loss.every(Number.isFinite), `loss ${out.loss}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

// TensorFlow's MatMul at 32x96x64 goes to oneDNN's AVX-512 sgemm on AVX-512
// machines; without tfnode.js's ONEDNN_MAX_CPU_ISA cap, a storm of handled
// signals aborted this loop (heap corruption, oneDNN issue #4845) or hung it.
const MATMUL_UNDER_SIGNALS = `
process.on('SIGUSR2', () => {});
const { tf } = require('./node/lib/tfnode');
const { directOps } = require('./node/lib/tf_direct');
const [a, b] = [tf.randomNormal([32, 96]), tf.randomNormal([96, 64])];
process.stdout.write('ready\\n');
const end = Date.now() + 5000;
while (Date.now() < end) tf.tidy(() => { const ops = directOps(tf); for (let i = 0; i < 50; i++) ops.matMul(a, b).dataSync(); });
process.stdout.write('done\\n');
setTimeout(() => {}, 1000); // (signals still in flight must find the handler)`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('TensorFlow matMuls survive a storm of handled signals (oneDNN capped at AVX2)', async () => {
  const child = spawn(process.execPath, ['-e', MATMUL_UNDER_SIGNALS], { cwd: ROOT, env: process.env });
  let [out, err, sent] = ['', '', 0];
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  let status = null;
  child.on('exit', (code, signal) => { status = { code, signal }; });
  const until = async (condition, ms) => {
    const end = Date.now() + ms;
    while (!condition() && Date.now() < end) await sleep(10);
    return condition();
  };
  assert.ok(await until(() => out.includes('ready') || status, 60_000), 'the child never started');
  const storm = setInterval(() => {
    for (let i = 0; i < 100 && !status; i++) {
      try { process.kill(child.pid, 'SIGUSR2'); sent += 1; } catch { break; }
    }
  }, 1);
  const finished = await until(() => out.includes('done') || status, 30_000);
  clearInterval(storm);
  if (!finished) child.kill('SIGKILL');
  await until(() => status, 10_000);
  assert.ok(finished, 'the matMul loop hung under signals');
  assert.equal(status.code, 0, `exit ${status.code} ${status.signal || ''}: ${err.split('\n').slice(-3).join(' | ')}`);
  assert.ok(sent > 1000, `only ${sent} signals sent`);
});
