'use strict';
// Drives the demo page (node/demo.js) in headless Chromium, as a user would,
// and prints what the page answered as JSON: what tests/test_demo.py checks.
//
//   node node/scripts/demo-check.js --url http://127.0.0.1:8080/ [--backend webgl]
//       [--runtime tfjs|litert]
//       [--digits digits.json] [--text mail.txt] [--screenshot reports/demo/demo.png]
//
// --digits: a JSON list of MNIST images (784 bytes each), painted onto the
// canvas through the page one after the other; the page's probabilities for
// each and the 28 x 28 input it gave gru (after its preprocessing) are
// printed. A pen stroke drawn with the mouse is printed too, and each
// panel's "try an example" answers (--examples: how many of each), and
// the text the page shows when the screenshot is taken.
const fs = require('fs');
const path = require('path');
const { main, UsageError, parseCommandLine } = require('../lib/runtime/cli');

const USAGE =
  'usage: demo-check.js --url URL [--backend webgl|wasm|cpu] [--runtime tfjs|litert] ' +
  '[--digits FILE.json] [--text FILE] ' +
  '[--examples N] [--screenshot FILE.png]';
const VIEWPORT = { width: 1280, height: 800 };
const EXAMPLE_BUTTONS = {
  gru: 'tryDigitExample',
  lstm_sine: 'tryForecastExample',
  spam: 'trySpamExample',
};
// What the page shows, read when the screenshot is taken (for the report).
const SHOWN = [
  'digit-answer',
  'gru-test',
  'gru-meta',
  'gru-example',
  'sine-domain',
  'sine-status',
  'lstm_sine-test',
  'lstm_sine-example',
  'lstm_sine-meta',
  'spam-meta',
  'spam-status',
  'spam-test',
  'spam-example',
];

function parse() {
  const args = parseCommandLine(
    {
      options: {
        url: { type: 'string' },
        backend: { type: 'string', default: 'webgl' },
        runtime: { type: 'string', default: 'tfjs' },
        digits: { type: 'string' },
        text: { type: 'string' },
        screenshot: { type: 'string' },
        examples: { type: 'string', default: '0' },
      },
    },
    USAGE,
  ).values;
  if (!args.url) throw new UsageError(`--url is required (${USAGE})`);
  const examples = Number(args.examples);
  if (!Number.isInteger(examples) || examples < 0)
    throw new UsageError(`--examples wants a count >= 0, got '${args.examples}'`);
  return { ...args, examples };
}

async function run() {
  const args = parse();
  const digits = args.digits ? JSON.parse(fs.readFileSync(args.digits, 'utf8')) : [];
  const text = args.text ? fs.readFileSync(args.text, 'utf8') : null;
  const { launchBrowser } = require('../lib/browser/launch');
  const launched = await launchBrowser('chromium', args.backend);
  try {
    const page = await launched.browser.newPage();
    await page.setViewport(VIEWPORT);
    const errors = [];
    page.on('pageerror', (err) => errors.push(String(err.message || err)));
    await page.goto(args.url, { waitUntil: 'load' });
    // What the page started on (its default path) and what it offers, before we switch.
    const started = await page.evaluate(() => globalThis.demo.ready);
    const litertOption = await page.evaluate(() => {
      const option = globalThis.document.getElementById('runtime-litert');
      return { disabled: option.disabled, title: option.title };
    });
    const backend = await page.evaluate((name) => globalThis.demo.setBackend(name), args.backend);
    const runtime = await page.evaluate((name) => globalThis.demo.setRuntime(name), args.runtime);
    const version = await launched.browser.version();
    const out = { backend, runtime, started, litert_option: litertOption, version, digits: [] };
    out.seen = [];
    for (const pixels of digits) {
      await page.evaluate(() => globalThis.demo.clearDigit());
      out.digits.push(await page.evaluate((p) => globalThis.demo.drawPixels(p), pixels));
      out.seen.push(await page.evaluate(() => globalThis.demo.digitSeen()));
    }
    // Each panel's "try an example" button, as a user clicks it.
    out.examples = { gru: [], lstm_sine: [], spam: [] };
    for (let i = 0; i < args.examples; i++) {
      for (const [name, button] of Object.entries(EXAMPLE_BUTTONS)) {
        out.examples[name].push(await page.evaluate((f) => globalThis.demo[f](), button));
      }
    }
    // A stroke with the mouse, as a user draws: the page classifies what was drawn.
    await page.evaluate(() => globalThis.demo.clearDigit());
    const box = await (await page.$('#digit')).boundingBox();
    await page.mouse.move(box.x + 140, box.y + 40);
    await page.mouse.down();
    for (let i = 1; i <= 20; i++) await page.mouse.move(box.x + 140, box.y + 40 + i * 10);
    await page.mouse.up();
    out.stroke = await page.evaluate(() => globalThis.demo.classify());
    out.stroke_seen = await page.evaluate(() => globalThis.demo.digitSeen());
    out.sliders = await page.evaluate(() =>
      Object.fromEntries(
        ['period', 'amplitude', 'phase'].map((id) => {
          const el = globalThis.document.getElementById(id);
          return [id, [Number(el.min), Number(el.max)]];
        }),
      ),
    );
    if (text !== null)
      out.spam = await page.evaluate((t) => globalThis.demo.spamProbability(t), text);
    out.forecast = await page.evaluate(() => globalThis.demo.forecast());
    out.shown = await page.evaluate(
      (ids) =>
        Object.fromEntries(
          ids.map((id) => [id, globalThis.document.getElementById(id).textContent]),
        ),
      SHOWN,
    );
    out.shown['sine-errors'] = await page.evaluate(() =>
      Array.from(globalThis.document.querySelectorAll('#sine-errors tr')).map((tr) => tr.innerText),
    );
    if (args.screenshot) {
      fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
      await page.screenshot({ path: args.screenshot });
      out.screenshot = { path: args.screenshot, ...VIEWPORT };
    }
    out.page_errors = errors;
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await launched.close();
  }
}

main(run, USAGE);
