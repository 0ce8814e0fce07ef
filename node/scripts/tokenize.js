'use strict';
// Encodes texts with a tokenizer that Python fitted (py/tfjs_bridge/folder/tokenizer.py), the
// way Tokenizer.encode does there: one JSON string per line in, int32 ids
// [N, max_len] out as .npy. Used to prove both halves tokenize identically.
const fs = require('fs');
const { parseArgs } = require('util');
const { main, UsageError } = require('../lib/runtime/cli');
const { writeNpy } = require('../lib/io/npy');
const { loadTokenizer, OOV_ID, PAD_ID } = require('../lib/io/tokenizer');

const USAGE = [
  'usage: tokenize.js TOKENIZER.json TEXTS.jsonl OUT.npy',
  '  TOKENIZER.json  written by Tokenizer.save (py/tfjs_bridge/folder/tokenizer.py)',
  '  TEXTS.jsonl     one JSON string per line (UTF-8)',
  '  OUT.npy         int32 ids [N, max_len]: 0 padding, 1 out of vocabulary',
  'Prints {"shape": [N, max_len], "oov": ..., "tokens": ...} on stdout.',
].join('\n');

/** The texts of a JSON-lines file: every line one JSON string (a final newline ends the last). */
function readJsonl(file) {
  let raw;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`, {
      cause: err,
    });
  }
  const lines = raw.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((line, i) => {
    let text;
    try {
      text = JSON.parse(line);
    } catch (err) {
      throw new Error(`${file} line ${i + 1}: not JSON (${err.message})`, { cause: err });
    }
    if (typeof text !== 'string') throw new Error(`${file} line ${i + 1}: not a JSON string`);
    return text;
  });
}

main(() => {
  const { positionals } = parseArgs({ allowPositionals: true });
  if (positionals.length !== 3) throw new UsageError(USAGE);
  const [tokenizerFile, textsFile, output] = positionals;
  const tokenizer = loadTokenizer(tokenizerFile);
  const texts = readJsonl(textsFile);
  const { maxLen } = tokenizer;
  const ids = new Int32Array(texts.length * maxLen);
  texts.forEach((text, i) => ids.set(tokenizer.encode(text), i * maxLen));
  writeNpy(output, ids, [texts.length, maxLen]);
  let oov = 0;
  let tokens = 0;
  for (const id of ids) {
    if (id !== PAD_ID) tokens += 1;
    if (id === OOV_ID) oov += 1;
  }
  process.stdout.write(`${JSON.stringify({ shape: [texts.length, maxLen], oov, tokens })}\n`);
}, USAGE);
