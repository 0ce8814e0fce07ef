'use strict';
// The Node half of the text tokenizer: loads the tokenizer.json that
// py/tfjs_bridge/folder/tokenizer.py fitted and saved, and encodes text exactly as
// Tokenizer.encode does there. Node never fits a vocabulary.
//
// The rule, step by step (folder/tokenizer.py's docstring says why):
//   1. code points in `unassigned_ranges` (unassigned in the file's Unicode
//      version) become U+0020,
//   2. String.prototype.normalize(normalization) (NFKC by default),
//   3. toLowerCase() (full, locale-independent) when `lowercase` is true,
//   4. tokens = maximal runs of code points in `token_ranges` (General_Category
//      L*, M* or N* in the file's Unicode version: the ranges come from Python,
//      not from this Node's \p{...} tables, which know a newer Unicode),
//   5. ids: vocab[i] -> i + 2, anything else -> 1 (oov_id); the first max_len
//      tokens, then 0 (pad_id) to the end of the row; a text without a token
//      is one 1 first when `empty_text` is "unknown" (all 0 when "padding" or
//      absent).
const fs = require('fs');

const FORMAT = 'tfjs-bridge/tokenizer';
const VERSION = 1;
const NORMALIZATIONS = ['NFC', 'NFD', 'NFKC', 'NFKD'];
const EMPTY_TEXT = ['padding', 'unknown'];
const TOKEN_CATEGORIES = ['L', 'M', 'N'];
const PAD_ID = 0;
const OOV_ID = 1;
const FIRST_WORD_ID = 2;
const MAX_CODE_POINT = 0x10ffff;

function validRanges(ranges) {
  if (!Array.isArray(ranges)) return false;
  let previous = -2;
  for (const r of ranges) {
    if (!(Array.isArray(r) && r.length === 2 && r.every(Number.isInteger))) return false;
    if (!(previous + 1 < r[0] && r[0] <= r[1] && r[1] <= MAX_CODE_POINT)) return false;
    previous = r[1];
  }
  return true;
}

/** What is wrong with a parsed tokenizer file, or null (folder/tokenizer.py's _check_spec checks the same). */
function checkSpec(spec) {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) return 'not a JSON object';
  if (spec.format !== FORMAT)
    return `format is ${JSON.stringify(spec.format)}, expected "${FORMAT}"`;
  if (spec.version !== VERSION)
    return `version ${JSON.stringify(spec.version)}, this reader knows ${VERSION}`;
  if (spec.normalization != null && !NORMALIZATIONS.includes(spec.normalization))
    return `normalization ${JSON.stringify(spec.normalization)} is none of ${NORMALIZATIONS.join(', ')}`;
  if (typeof spec.lowercase !== 'boolean') return 'lowercase is not true or false';
  if (!EMPTY_TEXT.includes(spec.empty_text ?? 'padding'))
    return `empty_text ${JSON.stringify(spec.empty_text)} is none of ${EMPTY_TEXT.join(', ')}`;
  if (!(Number.isInteger(spec.max_len) && spec.max_len >= 1))
    return `max_len ${JSON.stringify(spec.max_len)} is not a positive integer`;
  if (spec.pad_id !== PAD_ID || spec.oov_id !== OOV_ID)
    return `pad_id and oov_id must be ${PAD_ID} and ${OOV_ID}`;
  if (spec.truncation !== 'post' || spec.padding !== 'post')
    return "truncation and padding must be 'post'";
  if (JSON.stringify(spec.token_categories) !== JSON.stringify(TOKEN_CATEGORIES))
    return `token_categories must be ${JSON.stringify(TOKEN_CATEGORIES)}`;
  if (typeof spec.unicode_version !== 'string') return 'no unicode_version';
  for (const key of ['token_ranges', 'unassigned_ranges']) {
    if (!validRanges(spec[key]))
      return `${key} is not a sorted list of disjoint [first, last] code-point pairs`;
  }
  const { vocab } = spec;
  if (!Array.isArray(vocab) || !vocab.every((w) => typeof w === 'string' && w.length > 0))
    return 'vocab is not a list of non-empty strings';
  if (new Set(vocab).size !== vocab.length) return 'vocab repeats a token';
  if (spec.vocab_size !== vocab.length + FIRST_WORD_ID)
    return `vocab_size ${JSON.stringify(spec.vocab_size)} is not len(vocab) + ${FIRST_WORD_ID}`;
  return null;
}

/** A regex for runs of the code points in `ranges` ([[first, last], ...]). */
function runsOf(ranges) {
  const cp = (n) => `\\u{${n.toString(16)}}`;
  const cls = ranges.map(([a, b]) => (a === b ? cp(a) : `${cp(a)}-${cp(b)}`)).join('');
  return new RegExp(`[${cls}]+`, 'gu');
}

/** A tokenizer from a checked spec (the parsed tokenizer.json). */
function makeTokenizer(spec) {
  const problem = checkSpec(spec);
  if (problem) throw new Error(`not a tokenizer (${problem})`);
  const maxLen = spec.max_len;
  const emptyAsUnknown = spec.empty_text === 'unknown';
  const ids = new Map(spec.vocab.map((word, i) => [word, i + FIRST_WORD_ID]));
  const tokenRuns = runsOf(spec.token_ranges);
  const unassignedRuns = runsOf(spec.unassigned_ranges);

  /** Steps 1-3. */
  function normalize(text) {
    let out = text.replace(unassignedRuns, ' ');
    if (spec.normalization) out = out.normalize(spec.normalization);
    return spec.lowercase ? out.toLowerCase() : out;
  }

  /** Step 4: the tokens of `text` (its first `limit`). */
  function tokens(text, limit = Infinity) {
    if (typeof text !== 'string') throw new TypeError(`expected a string, got ${typeof text}`);
    const normalized = normalize(text);
    const out = [];
    // exec, not matchAll: matchAll copies the regex, and copying one with
    // ~800 ranges costs more than tokenizing a short text.
    tokenRuns.lastIndex = 0;
    let match;
    while (out.length < limit && (match = tokenRuns.exec(normalized)) !== null) {
      out.push(match[0]);
    }
    return out;
  }

  /** Step 5: the ids of one text, an Int32Array(max_len). */
  function encode(text) {
    const row = new Int32Array(maxLen); // all PAD_ID (0)
    const found = tokens(text, maxLen);
    found.forEach((token, i) => {
      row[i] = ids.get(token) ?? OOV_ID;
    });
    if (found.length === 0 && emptyAsUnknown) row[0] = OOV_ID;
    return row;
  }

  return {
    maxLen,
    vocabSize: spec.vocab_size,
    normalization: spec.normalization,
    lowercase: spec.lowercase,
    emptyText: spec.empty_text ?? 'padding',
    unicodeVersion: spec.unicode_version,
    normalize,
    tokens,
    encode,
  };
}

/** Reads and checks a tokenizer.json written by folder/tokenizer.py's Tokenizer.save. */
function loadTokenizer(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const reason =
      err.code === 'ENOENT'
        ? 'no tokenizer file: fit and save one first (Tokenizer.save in tfjs_bridge.folder.tokenizer)'
        : err.code === 'EISDIR'
          ? 'a folder, not a tokenizer file'
          : err.message;
    throw new Error(`${file}: ${reason}`, { cause: err });
  }
  let spec;
  try {
    spec = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not a tokenizer file (not valid JSON: ${err.message})`, {
      cause: err,
    });
  }
  const problem = checkSpec(spec);
  if (problem) throw new Error(`${file}: not a tokenizer file (${problem})`);
  return makeTokenizer(spec);
}

module.exports = { loadTokenizer, makeTokenizer, checkSpec, PAD_ID, OOV_ID };
