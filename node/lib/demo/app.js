'use strict';
// The demo page's script (bundled for the browser by lib/demo/server.js). It
// runs the converted tfjs layers models with the page's tfjs (tf.min.js)
// and the layers and tokenizer Node runs (lib/layers, lib/io/tokenizer.js).
// window.demo is what a test (tests/test_demo.py) drives.
const { installKerasLayers } = require('../layers');
const { makeTokenizer } = require('../io/tokenizer');

const tf = globalThis.tf;
const SIDE = 28; // MNIST: 28 x 28 pixels
const SCALE = 10; // canvas pixels per image pixel
const WINDOW = 24; // lstm_sine's input: the 24 values before
const HORIZON = 48; // values forecast, each fed back as input

const $ = (id) => document.getElementById(id);
const models = {};
let tokenizer = null;

async function setBackend(name) {
  await tf.setBackend(name).catch(() => false);
  await tf.ready();
  // tfjs falls back silently when a backend fails: show the one in use.
  const used = tf.getBackend();
  $('backend-used').textContent = used === name ? used : `${used} (${name} failed here)`;
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

/** The canvas as the model's input: 28 x 28 block means of 10 x 10, in [0, 1] (MNIST's bytes / 255). */
function digitInput() {
  const { data } = context().getImageData(0, 0, SIDE * SCALE, SIDE * SCALE);
  const out = new Float32Array(SIDE * SIDE);
  for (let r = 0; r < SIDE; r++) {
    for (let c = 0; c < SIDE; c++) {
      let sum = 0;
      for (let y = 0; y < SCALE; y++) {
        for (let x = 0; x < SCALE; x++)
          sum += data[((r * SCALE + y) * SIDE * SCALE + c * SCALE + x) * 4];
      }
      out[r * SIDE + c] = Math.round(sum / (SCALE * SCALE)) / 255;
    }
  }
  return out;
}

async function classify() {
  if (!models.gru) return null;
  const y = tf.tidy(() => models.gru.predict(tf.tensor(digitInput(), [1, SIDE, SIDE])));
  const probs = Array.from(await y.data());
  y.dispose();
  const top = probs.indexOf(Math.max(...probs));
  $('digit-answer').textContent = `${top} (${(100 * probs[top]).toFixed(1)} %)`;
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
  const ctx = context();
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = bytes[i];
    ctx.fillStyle = `rgb(${v},${v},${v})`;
    ctx.fillRect((i % SIDE) * SCALE, Math.floor(i / SIDE) * SCALE, SCALE, SCALE);
  }
  return classify();
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

function sineSettings() {
  return {
    period: Number($('period').value),
    amplitude: Number($('amplitude').value) / 100,
    phase: Number($('phase').value) / 100,
  };
}

/** The truth over WINDOW + HORIZON steps and the model's forecast of the last HORIZON. */
async function forecast({ period, amplitude, phase } = sineSettings()) {
  if (!models.lstm_sine) return null;
  const truth = Array.from(
    { length: WINDOW + HORIZON },
    (_, t) => amplitude * Math.sin((2 * Math.PI * t) / period + phase),
  );
  const window = truth.slice(0, WINDOW);
  const predicted = [];
  for (let step = 0; step < HORIZON; step++) {
    const y = tf.tidy(() => models.lstm_sine.predict(tf.tensor(window, [1, WINDOW, 1])));
    const [next] = await y.data();
    y.dispose();
    predicted.push(next);
    window.shift();
    window.push(next);
  }
  plotSine(truth, predicted);
  const mse = predicted.reduce((s, p, i) => s + (p - truth[WINDOW + i]) ** 2, 0) / HORIZON;
  $('sine-status').textContent =
    `truth: grey; the 24 values the model sees: black; its forecast: blue (MSE over ${HORIZON} steps: ${mse.toFixed(4)})`;
  return { truth, predicted, mse };
}

function plotSine(truth, predicted) {
  const el = $('sine');
  const ctx = el.getContext('2d');
  const { width, height } = el;
  ctx.clearRect(0, 0, width, height);
  const x = (t) => 10 + (t * (width - 20)) / (truth.length - 1);
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
  line(truth.slice(0, WINDOW), '#1d2330', 0, 2);
  line([truth[WINDOW - 1], ...predicted], '#3b6fd8', WINDOW - 1, 2.5);
}

// --- spam ----------------------------------------------------------------

async function spamProbability(text = $('mail').value) {
  if (!models.spam || !tokenizer) return null;
  $('mail').value = text;
  const ids = tokenizer.encode(text);
  const y = tf.tidy(() => models.spam.predict(tf.tensor(ids, [1, ids.length], 'int32')));
  const [p] = await y.data();
  y.dispose();
  $('meter').firstElementChild.style.width = `${(100 * p).toFixed(1)}%`;
  $('spam-status').textContent =
    `spam probability ${(100 * p).toFixed(1)} % (${p > 0.5 ? 'spam' : 'ham'})`;
  return p;
}

// --- start ---------------------------------------------------------------

async function start() {
  tf.wasm.setWasmPaths('/tfjs/'); // before the wasm backend first starts
  installKerasLayers(tf); // the converted models may use our layers (reset-after GRU, ...)
  const backend = await setBackend($('backend').value);
  // {name: the URL of its tfjs layers model.json}, from the server (lib/demo/server.js).
  const urls = await (await fetch('/models.json')).json();
  const names = Object.keys(urls);
  for (const name of names) models[name] = await tf.loadLayersModel(urls[name]);
  if (models.spam)
    tokenizer = makeTokenizer(await (await fetch('/models/spam/tokenizer.json')).json());
  clearDigit();
  enableDrawing();
  $('clear').onclick = () => {
    clearDigit();
    classify();
  };
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
  await Promise.all([classify(), forecast(), spamProbability()]);
  return { backend, models: names };
}

const ready = start().catch((err) => {
  $('digit-status').textContent = `error: ${err.message}`;
  throw err;
});
globalThis.demo = {
  ready,
  setBackend,
  drawPixels,
  classify,
  forecast,
  spamProbability,
  clearDigit,
};
