'use strict';
// Drives the demo page (node/demo.js) in headless Chromium, as a user would,
// and prints what the page answered as JSON: what tests/test_demo.py checks.
//
//   node node/scripts/demo-check.js --url http://127.0.0.1:8080/ [--backend webgl]
//       [--digits digits.json] [--text mail.txt] [--screenshot reports/demo/demo.png]
//
// --digits: a JSON list of MNIST images (784 bytes each), painted onto the
// canvas through the page one after the other; the page's probabilities for
// each are printed. A pen stroke drawn with the mouse is printed too.
const fs = require('fs');
const path = require('path');
const { main, UsageError, parseCommandLine } = require('../lib/runtime/cli');

const USAGE =
  'usage: demo-check.js --url URL [--backend webgl|wasm|cpu] [--digits FILE.json] [--text FILE] [--screenshot FILE.png]';
const VIEWPORT = { width: 1280, height: 800 };

function parse() {
  const args = parseCommandLine(
    {
      options: {
        url: { type: 'string' },
        backend: { type: 'string', default: 'webgl' },
        digits: { type: 'string' },
        text: { type: 'string' },
        screenshot: { type: 'string' },
      },
    },
    USAGE,
  ).values;
  if (!args.url) throw new UsageError(`--url is required (${USAGE})`);
  return args;
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
    await page.evaluate(() => globalThis.demo.ready);
    const backend = await page.evaluate((name) => globalThis.demo.setBackend(name), args.backend);
    const out = { backend, version: await launched.browser.version(), digits: [] };
    for (const pixels of digits) {
      await page.evaluate(() => globalThis.demo.clearDigit());
      out.digits.push(await page.evaluate((p) => globalThis.demo.drawPixels(p), pixels));
    }
    // A stroke with the mouse, as a user draws: the page classifies what was drawn.
    await page.evaluate(() => globalThis.demo.clearDigit());
    const box = await (await page.$('#digit')).boundingBox();
    await page.mouse.move(box.x + 140, box.y + 40);
    await page.mouse.down();
    for (let i = 1; i <= 20; i++) await page.mouse.move(box.x + 140, box.y + 40 + i * 10);
    await page.mouse.up();
    out.stroke = await page.evaluate(() => globalThis.demo.classify());
    if (text !== null)
      out.spam = await page.evaluate((t) => globalThis.demo.spamProbability(t), text);
    out.forecast = await page.evaluate(() => globalThis.demo.forecast());
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
