'use strict';
// node/lib/runtime/legacy_util.js: which util.is* helpers it puts back, on a
// stand-in for Node's util module (Node 20, 22 and 24 each have another one;
// tests/test_node_lts.py runs the real thing on each).
const test = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { installLegacyUtil, HELPERS } = require('../lib/runtime/legacy_util');

test('absent helpers are put back (Node 24 removed util.isNullOrUndefined)', () => {
  const target = { isArray: (v) => Array.isArray(v) };
  assert.deepEqual(installLegacyUtil(target), ['isNullOrUndefined']);
  assert.equal(target.isNullOrUndefined, HELPERS.isNullOrUndefined);
});

test('deprecated helpers are replaced (Node 22 warns at their first call)', () => {
  const warned = util.deprecate((v) => Array.isArray(v), 'isArray is deprecated', 'DEP_TEST');
  const target = { isArray: warned, isNullOrUndefined: warned };
  assert.deepEqual(installLegacyUtil(target), ['isNullOrUndefined', 'isArray']);
  assert.notEqual(target.isArray, warned);
});

test('plain helpers are left alone (Node 20)', () => {
  const own = { isArray: (v) => Array.isArray(v), isNullOrUndefined: (v) => v == null };
  const target = { ...own };
  assert.deepEqual(installLegacyUtil(target), []);
  assert.deepEqual(target, own);
});

test('the helpers answer as Node 20 did', () => {
  const values = [null, undefined, 0, '', [], [1], {}, NaN, false];
  for (const v of values) {
    assert.equal(HELPERS.isNullOrUndefined(v), v === null || v === undefined, String(v));
    assert.equal(HELPERS.isArray(v), Array.isArray(v), String(v));
  }
});
