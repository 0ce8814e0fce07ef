'use strict';
// The demo page's script (bundled for the browser by lib/demo/server.js). It
// runs the converted tfjs layers models with the page's tfjs (tf.min.js)
// and the layers, tokenizer and digit preprocessing Node runs (lib/layers,
// lib/io/tokenizer.js, lib/io/digit_image.js). Each panel says what the model
// scored on its test split, the backend, when it last predicted, and can load
// a real test example beside Keras's answer for it.
// window.demo is what a test (tests/test_demo.py) drives.
const { installKerasLayers } = require('../layers');
const { makeTokenizer } = require('../io/tokenizer');
const { inkFromRgba, mnistDigit } = require('../io/digit_image');
const { seeded } = require('../runtime/streaming');
const litert = require('../browser/litert_page');

const tf = globalThis.tf;
const SIDE = 28; // MNIST: 28 x 28 pixels
const SCALE = 10; // canvas pixels per image pixel
const WINDOW = 24; // lstm_sine's input: the 24 values before
const HORIZON = 48; // values forecast, each fed back as input

const $ = (id) => document.getElementById(id);
const models = {};
// The runtime the page runs on: tfjs (models, on its backend) or LiteRT.js on
// WASM (the verified .tflite of each model that has one: handles by name).
let runtime = 'tfjs';
const litertHandles = {};
let litertStarted = null; // LiteRT.js's WebAssembly, loaded once, when first chosen
let described = {}; // /models.json: {name: {url, test, source, examples, domain}}
let tokenizer = null;
let digitSeen = null; // the 28 x 28 input gru was last given
const nextExample = { gru: 0, lstm_sine: 0, spam: 0 };
const percent = (p) => `${(100 * p).toFixed(1)} %`;
const argmax = (values) => values.indexOf(Math.max(...values));

/**
 * A panel's footer: the runtime and backend that ran its last prediction
 * (`ran`, as run() reports it), when, and how long it took.
 */
function stamp(panel, started, ran) {
  const ms = performance.now() - started;
  $(`${panel}-meta`).textContent =
    `${ran} · last prediction ${new Date().toLocaleTimeString('en-GB')} (${ms.toFixed(0)} ms)`;
}

/**
 * One prediction of model `name` on one input (flat `data`, `shape`,
 * `dtype`): its first output's values and what ran it, truthfully: LiteRT.js
 * says which accelerator it compiled for, tfjs which backend it is on. On
 * LiteRT.js, a model without a verified .tflite runs on tfjs, and says why.
 */
async function run(name, data, shape, dtype = 'float32') {
  if (runtime === 'litert' && litertHandles[name]) {
    const { tensors, accelerator } = await litert.run(litertHandles[name], [
      { dtype, shape, data },
    ]);
    return { values: Array.from(tensors[0].data), ran: `LiteRT.js · backend ${accelerator}` };
  }
  const y = tf.tidy(() => models[name].predict(tf.tensor(data, shape, dtype)));
  const values = Array.from(await y.data());
  y.dispose();
  const why = runtime === 'litert' ? ` (not LiteRT.js: ${described[name].litert.why})` : '';
  return { values, ran: `tfjs · backend ${tf.getBackend()}${why}` };
}

/** Loads LiteRT.js (once) and each model's verified .tflite on its WASM accelerator. */
async function startLitert() {
  if (!litertStarted) {
    litertStarted = (async () => {
      const hello = await litert.start('wasm', { wasmPaths: '/litert/' });
      for (const [name, entry] of Object.entries(described)) {
        if (!entry.litert.url) continue;
        await litert.load(name, entry.litert.url);
        litertHandles[name] = name;
      }
      return hello;
    })();
  }
  return litertStarted;
}

/** Switches the page's runtime ('tfjs' | 'litert'); returns what is in use. */
async function setRuntime(name) {
  if (name === 'litert') {
    if (!Object.values(described).some((entry) => entry.litert.url)) {
      throw new Error(`LiteRT.js is not available here: ${$('runtime-litert').title}`);
    }
    const hello = await startLitert();
    runtime = name;
    // LiteRT.js runs on WASM here; tfjs's backend select does not apply to it.
    $('backend').disabled = true;
    $('runtime').value = name;
    $('backend-used').textContent = `LiteRT.js ${hello.backend}`;
    return { runtime, backend: hello.backend };
  }
  runtime = name;
  $('runtime').value = name;
  $('backend').disabled = false;
  $('backend-used').textContent = `tfjs ${tf.getBackend()}`;
  return { runtime, backend: tf.getBackend() };
}

/** What the model's manifest says it scored on its test split, or that it says nothing. */
function testFigures(name) {
  const test = described[name] && described[name].test;
  const el = $(`${name}-test`);
  if (!test) {
    el.textContent = 'test figures: none recorded in its manifest.json';
    return;
  }
  const parts = [];
  if (test.accuracy !== undefined) parts.push(`test accuracy ${percent(test.accuracy)}`);
  if (test.baseline_accuracy !== undefined)
    parts.push(`bag-of-words baseline ${percent(test.baseline_accuracy)}`);
  if (test.accuracy === undefined && test.loss !== undefined)
    parts.push(`test MSE ${test.loss.toFixed(4)} (one step ahead)`);
  if (test.baseline_last_value_mse !== undefined)
    parts.push(`last-value baseline ${test.baseline_last_value_mse.toFixed(4)}`);
  el.textContent = `${parts.join(', ')} (manifest.json)`;
}

/** The next of a model's test examples, or null (with the reason shown) if the page has none. */
function takeExample(name) {
  const entry = described[name];
  if (!entry || !entry.examples) {
    $(`${name}-example`).textContent =
      "no test examples: start the page with `tfjs-bridge demo`, which computes Keras's answers";
    return null;
  }
  const i = nextExample[name]++ % entry.examples.length;
  return { ...entry.examples[i], number: i + 1, of: entry.examples.length, source: entry.source };
}

async function setBackend(name) {
  await tf.setBackend(name).catch(() => false);
  await tf.ready();
  // tfjs falls back silently when a backend fails: show the one in use.
  const used = tf.getBackend();
  $('backend-used').textContent = `tfjs ${used === name ? used : `${used} (${name} failed here)`}`;
  $('backend').value = used;
  return used;
}

// --- digit ---------------------------------------------------------------

const canvas = () => $('digit');
const context = () => canvas().getContext('2d', { willReadFrequently: true });

function clearDigit() {
  const ctx = context();
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, SIDE * SCALE, SIDE * SCALE);
}

/**
 * The canvas as the model's input, made MNIST-like (lib/io/digit_image.js:
 * the ink's box into 20 x 20, MNIST-wide strokes, centred by mass), and
 * shown small beside the canvas: what gru sees.
 */
function digitInput() {
  const side = SIDE * SCALE;
  const { data } = context().getImageData(0, 0, side, side);
  return showSeen(mnistDigit(inkFromRgba(data, side, side), side, side));
}

function showSeen(input) {
  const seen = $('digit-seen').getContext('2d');
  const zoom = $('digit-seen').width / SIDE;
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = Math.round(255 * input[i]);
    seen.fillStyle = `rgb(${v},${v},${v})`;
    seen.fillRect((i % SIDE) * zoom, Math.floor(i / SIDE) * zoom, zoom, zoom);
  }
  digitSeen = Array.from(input);
  return input;
}

/** gru's probabilities for the canvas, or for `given` (784 values: an MNIST image as it is). */
async function classify(given = null) {
  if (!models.gru) return null;
  const started = performance.now();
  const input = given ? showSeen(Float32Array.from(given)) : digitInput();
  const { values: probs, ran } = await run('gru', Float32Array.from(input), [1, SIDE, SIDE]);
  stamp('gru', started, ran);
  const top = argmax(probs);
  $('digit-answer').textContent = `${top} (${percent(probs[top])})`;
  $('bars').innerHTML = probs
    .map(
      (p, i) =>
        `<div class="bar${i === top ? ' top' : ''}"><div style="height:${(100 * p).toFixed(1)}%"></div><span>${i}</span></div>`,
    )
    .join('');
  return probs;
}

/** Paints 784 bytes (an MNIST image) onto the canvas, each as a 10 x 10 block, then classifies. */
function drawPixels(bytes) {
  paintPixels(bytes);
  return classify();
}

function paintPixels(bytes) {
  const ctx = context();
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = bytes[i];
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % SIDE) * SCALE, Math.floor(i / SIDE) * SCALE, SCALE, SCALE);
  }
}

/**
 * An MNIST test digit onto the canvas, given to gru as it is (it is MNIST
 * already): the page's answer beside Keras's for the same 28 x 28 image.
 */
async function tryDigitExample() {
  const example = takeExample('gru');
  if (!example) return null;
  clearDigit();
  paintPixels(example.pixels);
  const page = await classify(example.pixels.map((v) => v / 255));
  const keras = argmax(example.keras);
  const mine = argmax(page);
  $('gru-example').textContent =
    `${example.source}, #${example.number} (as is): label ${example.label} · Keras: ` +
    `${keras} (${percent(example.keras[keras])}) · this page: ${mine} (${percent(page[mine])})`;
  return { label: example.label, keras: example.keras, page };
}

function enableDrawing() {
  const el = canvas();
  let last = null;
  let pending = false;
  const at = (event) => {
    const box = el.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * el.width) / box.width,
      ((event.clientY - box.top) * el.height) / box.height,
    ];
  };
  el.addEventListener('pointerdown', (event) => {
    last = at(event);
    el.setPointerCapture(event.pointerId);
  });
  el.addEventListener('pointermove', (event) => {
    if (!last) return;
    const ctx = context();
    const point = at(event);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 22;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...point);
    ctx.stroke();
    last = point;
    if (!pending) {
      // at most one prediction per frame while drawing
      pending = true;
      requestAnimationFrame(() => classify().finally(() => (pending = false)));
    }
  });
  const end = () => {
    last = null;
    classify();
  };
  el.addEventListener('pointerup', end);
  el.addEventListener('pointercancel', end);
}

// --- sine ----------------------------------------------------------------

// Where lstm_sine was trained (training/data.py, via --examples); the
// sliders span it. Without it, the HTML's ranges stand (the same numbers).
let sineDomain = null;
const HORIZONS = [
  [1, 12],
  [13, 24],
  [25, HORIZON],
  [1, HORIZON],
];

function sineSettings() {
  return {
    period: Number($('period').value),
    amplitude: Number($('amplitude').value) / 100,
    phase: Number($('phase').value) / 100,
  };
}

function showSineDomain() {
  const note = $('sine-domain');
  if (!sineDomain) {
    note.textContent =
      'training range unknown (no examples file): start the page with `tfjs-bridge demo`';
    return;
  }
  const { period, amplitude, phase, noise } = sineDomain;
  $('period').min = period[0];
  $('period').max = period[1];
  $('amplitude').min = Math.round(100 * amplitude[0]);
  $('amplitude').max = Math.round(100 * amplitude[1]);
  $('phase').min = Math.round(100 * phase[0]);
  $('phase').max = Math.floor(100 * phase[1]);
  note.textContent =
    `trained on windows of sines with period ${period[0]}–${period[1]} steps, amplitude ` +
    `${amplitude[0]}–${amplitude[1]}, any phase, noise σ ${noise}: the sliders span exactly that`;
}

/** Mean squared error of `forecast` against `truth` over steps [from, to] (1-based). */
const mseOver = (forecast, truth, [from, to]) =>
  forecast.slice(from - 1, to).reduce((s, p, i) => s + (p - truth[from - 1 + i]) ** 2, 0) /
  (to - from + 1);

/** lstm_sine fed its own forecasts: `steps` values after `window`. */
async function feedBack(window, steps) {
  const values = window.slice();
  const predicted = [];
  let ran = null;
  for (let step = 0; step < steps; step++) {
    const answer = await run('lstm_sine', Float32Array.from(values), [1, WINDOW, 1]);
    const [next] = answer.values;
    ran = answer.ran;
    predicted.push(next);
    values.shift();
    values.push(next);
  }
  return { predicted, ran };
}

/**
 * The sliders' sine, observed over WINDOW steps with the training noise (a
 * fixed seed: the same settings, the same noise), forecast over HORIZON
 * steps by lstm_sine and by two naive baselines, each scored against the
 * noise-free sine: last value (the last observation, repeated) and seasonal
 * naive (the observation one period earlier; it is told the period, which
 * the model must read off the window).
 */
async function forecast({ period, amplitude, phase } = sineSettings()) {
  if (!models.lstm_sine) return null;
  const started = performance.now();
  const noise = sineDomain ? sineDomain.noise : 0;
  const lag = Math.round(period);
  const random = seeded(2023);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const clean = (t) => amplitude * Math.sin((2 * Math.PI * t) / period + phase);
  // observations from t = -lag (seasonal naive looks back one period) to WINDOW - 1
  const observed = new Map();
  for (let t = -lag; t < WINDOW; t++) observed.set(t, clean(t) + noise * gaussian());
  const truth = Array.from({ length: WINDOW + HORIZON }, (_, t) => clean(t));
  const window = Array.from({ length: WINDOW }, (_, t) => observed.get(t));
  const { predicted, ran } = await feedBack(window, HORIZON);
  stamp('lstm_sine', started, ran);
  const future = truth.slice(WINDOW);
  const baselines = {
    'last value': future.map(() => window[WINDOW - 1]),
    'seasonal naive': future.map((_, h) =>
      observed.get(WINDOW + h - lag * Math.ceil((h + 1) / lag)),
    ),
  };
  const errors = { lstm_sine: HORIZONS.map((span) => mseOver(predicted, future, span)) };
  for (const [name, values] of Object.entries(baselines))
    errors[name] = HORIZONS.map((span) => mseOver(values, future, span));
  plotSine(truth, window, predicted);
  const head = HORIZONS.map(
    ([a, b]) => `<th>${a === 1 && b === HORIZON ? 'all' : `${a}–${b}`}</th>`,
  );
  $('sine-errors').innerHTML =
    `<tr><th>MSE, steps ahead</th>${head.join('')}</tr>` +
    Object.entries(errors)
      .map(
        ([name, row]) =>
          `<tr><td>${name}</td>${row.map((e) => `<td>${e.toFixed(4)}</td>`).join('')}</tr>`,
      )
      .join('');
  const mse = errors.lstm_sine[HORIZONS.length - 1];
  $('sine-status').textContent =
    `truth: grey; the ${WINDOW} noisy values the model sees: black; its forecast: blue (MSE over ${HORIZON} steps: ${mse.toFixed(4)})`;
  const history = Array.from({ length: lag + WINDOW }, (_, i) => observed.get(i - lag));
  return { truth, window, history, lag, predicted, mse, errors, horizons: HORIZONS };
}

/** A test window of lstm_sine's: the page's next value beside Keras's and the truth, then fed back. */
async function tryForecastExample() {
  const example = takeExample('lstm_sine');
  if (!example || !models.lstm_sine) return null;
  const started = performance.now();
  const { predicted, ran } = await feedBack(example.window, HORIZON);
  stamp('lstm_sine', started, ran);
  plotSine([...example.window, example.next], example.window, predicted);
  $('sine-errors').innerHTML = '';
  $('sine-status').textContent =
    `a test window: its next value (grey) is all the truth there is; the forecast fed back: blue`;
  $('lstm_sine-example').textContent =
    `${example.source}, #${example.number}: next value ${example.next.toFixed(4)} · Keras: ` +
    `${example.keras.toFixed(4)} · this page: ${predicted[0].toFixed(4)}`;
  return { next: example.next, keras: example.keras, page: predicted[0] };
}

function plotSine(truth, window, predicted) {
  const el = $('sine');
  const ctx = el.getContext('2d');
  const { width, height } = el;
  ctx.clearRect(0, 0, width, height);
  const x = (t) => 10 + (t * (width - 20)) / (WINDOW + HORIZON - 1);
  const y = (v) => height / 2 - (v * (height - 20)) / 3.2;
  const line = (points, color, offset, lineWidth) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = lineWidth;
    ctx.beginPath();
    points.forEach((v, i) => (i ? ctx.lineTo(x(i + offset), y(v)) : ctx.moveTo(x(offset), y(v))));
    ctx.stroke();
  };
  ctx.fillStyle = '#eef1f6';
  ctx.fillRect(x(WINDOW - 0.5), 0, width, height);
  line(truth, '#b5bac4', 0, 6);
  line(window, '#1d2330', 0, 2);
  line([window[WINDOW - 1], ...predicted], '#3b6fd8', WINDOW - 1, 2.5);
}

// --- spam ----------------------------------------------------------------

async function spamProbability(text = $('mail').value) {
  if (!models.spam || !tokenizer) return null;
  const started = performance.now();
  $('mail').value = text;
  const ids = tokenizer.encode(text);
  const answer = await run('spam', Int32Array.from(ids), [1, ids.length], 'int32');
  const [p] = answer.values;
  stamp('spam', started, answer.ran);
  $('meter').firstElementChild.style.width = `${(100 * p).toFixed(1)}%`;
  $('spam-status').textContent = `spam probability ${percent(p)} (${p > 0.5 ? 'spam' : 'ham'})`;
  return p;
}

/** A test mail into the box: the page's probability beside Keras's. */
async function trySpamExample() {
  const example = takeExample('spam');
  if (!example || !models.spam) return null;
  const page = await spamProbability(example.text);
  $('spam-example').textContent =
    `${example.source}, #${example.number}: a ${example.label ? 'spam' : 'ham'} mail · ` +
    `Keras: ${percent(example.keras)} spam · this page: ${percent(page)}`;
  return { label: example.label, keras: example.keras, page };
}

// --- start ---------------------------------------------------------------

/**
 * The LiteRT.js option: enabled when a model has a verified .tflite; its
 * title says, per model, which run there and why the others do not.
 */
function offerLitert() {
  const option = $('runtime-litert');
  const entries = Object.entries(described);
  option.disabled = !entries.some(([, entry]) => entry.litert.url);
  option.title = entries
    .map(([name, entry]) => `${name}: ${entry.litert.url ? 'verified .tflite' : entry.litert.why}`)
    .join('\n');
}

/**
 * The page's start path: the fastest verified browser path parity.json
 * records (for the first demo model that has one), else tfjs on the
 * backend select's first choice. The select's title says which it was.
 */
async function defaultPath() {
  const entry = Object.entries(described).find(([, e]) => e.page_path);
  const note = entry
    ? `default: ${entry[0]}'s ${entry[1].page_path.path}, ${entry[1].page_path.why} (parity.json)`
    : 'default: no verified browser path recorded (run `tfjs-bridge verify` and `bench`)';
  $('runtime').title = note;
  if (entry && entry[1].page_path.runtime === 'litert') await setRuntime('litert');
  return { default_path: entry ? entry[1].page_path.path : null, default_note: note };
}

async function start() {
  tf.wasm.setWasmPaths('/tfjs/'); // before the wasm backend first starts
  installKerasLayers(tf); // the converted models may use our layers (reset-after GRU, ...)
  // {name: {url of its tfjs layers model.json, test figures, examples, litert,
  // page_path}}, from lib/demo/server.js.
  described = await (await fetch('/models.json')).json();
  offerLitert();
  const first = Object.values(described).find((entry) => entry.page_path);
  if (first && first.page_path.runtime === 'tfjs') $('backend').value = first.page_path.backend;
  const backend = await setBackend($('backend').value);
  const names = Object.keys(described);
  for (const name of names) models[name] = await tf.loadLayersModel(described[name].url);
  if (models.spam)
    tokenizer = makeTokenizer(await (await fetch('/models/spam/tokenizer.json')).json());
  sineDomain = (described.lstm_sine && described.lstm_sine.domain) || null;
  for (const name of ['gru', 'lstm_sine', 'spam']) {
    if (models[name]) testFigures(name);
    else $(`${name}-test`).textContent = `${name} is not converted`;
  }
  showSineDomain();
  clearDigit();
  enableDrawing();
  $('clear').onclick = () => {
    clearDigit();
    classify();
  };
  $('gru-try').onclick = () => tryDigitExample();
  $('lstm_sine-try').onclick = () => tryForecastExample();
  $('spam-try').onclick = () => trySpamExample();
  $('digit-status').textContent = models.gru
    ? 'draw with the mouse or a finger'
    : 'gru is not converted';
  if (!models.spam) $('spam-status').textContent = 'spam is not converted';
  for (const id of ['period', 'amplitude', 'phase']) $(id).oninput = () => forecast();
  let typing = null;
  $('mail').oninput = () => {
    clearTimeout(typing);
    typing = setTimeout(() => spamProbability(), 150);
  };
  $('backend').onchange = async () => {
    await setBackend($('backend').value);
    await Promise.all([classify(), forecast(), spamProbability()]);
  };
  $('runtime').onchange = async () => {
    await setRuntime($('runtime').value);
    await Promise.all([classify(), forecast(), spamProbability()]);
  };
  const chosen = await defaultPath();
  await Promise.all([classify(), forecast(), spamProbability()]);
  return { backend, models: names, ...chosen };
}

const ready = start().catch((err) => {
  $('digit-status').textContent = `error: ${err.message}`;
  throw err;
});
globalThis.demo = {
  ready,
  setBackend,
  setRuntime,
  drawPixels,
  classify,
  digitSeen: () => digitSeen,
  forecast,
  spamProbability,
  clearDigit,
  tryDigitExample,
  tryForecastExample,
  trySpamExample,
};
