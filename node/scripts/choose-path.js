'use strict';
// The fastest verified path per deployment target, for each model folder,
// as one JSON line: {folder: {node: {format, runtime, why}, browser_page:
// {runtime, format, backend, samples_per_s, batch, why}}}. The choice is
// lib/runtime/choose.js's (its one owner); `tfjs-bridge bench` prints it.
//
//   node node/scripts/choose-path.js MODEL_DIR... [--browser-batch 1] [--node-batch 32]
const fs = require('fs');
const { main, UsageError, parseCommandLine } = require('../lib/runtime/cli');
const { chooseFormat, chooseBrowserPath } = require('../lib/runtime/choose');

const USAGE =
  'usage: choose-path.js MODEL_DIR... [--browser-batch 1] [--node-batch 32] (prints JSON)';

function batchOption(value, flag) {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer`);
  return n;
}

main(() => {
  const { values, positionals } = parseCommandLine(
    {
      allowPositionals: true,
      options: {
        'browser-batch': { type: 'string', default: '1' },
        'node-batch': { type: 'string', default: '32' },
      },
    },
    USAGE,
  );
  if (!positionals.length) throw new UsageError(USAGE);
  const browserBatch = batchOption(values['browser-batch'], '--browser-batch');
  const nodeBatch = batchOption(values['node-batch'], '--node-batch');
  const missing = positionals.find((dir) => !fs.existsSync(dir) || !fs.statSync(dir).isDirectory());
  if (missing) throw new Error(`${missing}: no such model folder`);
  const chosen = Object.fromEntries(
    positionals.map((dir) => [
      dir,
      {
        node: chooseFormat(dir, { batch: nodeBatch }),
        browser_page: chooseBrowserPath(dir, { batch: browserBatch }),
      },
    ]),
  );
  process.stdout.write(`${JSON.stringify(chosen)}\n`);
}, USAGE);
