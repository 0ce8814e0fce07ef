'use strict';
// lib/serve/ring.js: the consistent-hash ring stream-proxy.js routes
// sequences by. A key always goes to one node, the nodes share the keys
// about evenly, and removing one of three nodes moves only its own keys
// (the property that makes it consistent); a modulo hash, the control,
// moves most of them.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { HashRing } = require('../lib/serve/ring');

const KEYS = Array.from({ length: 6000 }, (_, i) => `seq-${i}`);
const NODES = ['10.0.0.1:8501', '10.0.0.2:8501', '10.0.0.3:8501'];

test('the same key goes to the same node, and the nodes share the keys', () => {
  const ring = new HashRing(NODES);
  const counts = new Map();
  for (const key of KEYS) {
    assert.equal(ring.nodeOf(key), new HashRing(NODES).nodeOf(key));
    counts.set(ring.nodeOf(key), (counts.get(ring.nodeOf(key)) || 0) + 1);
  }
  assert.deepEqual([...counts.keys()].sort(), [...NODES].sort());
  for (const n of counts.values()) assert.ok(Math.abs(n / KEYS.length - 1 / 3) < 0.08, counts);
});

test('removing a node moves only its keys; a modulo hash moves most', () => {
  const three = new HashRing(NODES);
  const two = new HashRing(NODES.slice(0, 2));
  let moved = 0;
  for (const key of KEYS) {
    const before = three.nodeOf(key);
    if (before !== NODES[2]) assert.equal(two.nodeOf(key), before, key);
    else moved += 1;
  }
  assert.ok(moved < KEYS.length / 2, moved);
  const modulo = (key, n) => crypto.createHash('md5').update(key).digest().readUInt32BE(0) % n;
  const shuffled = KEYS.filter((key) => modulo(key, 3) !== 2 && modulo(key, 3) !== modulo(key, 2));
  assert.ok(shuffled.length > KEYS.length / 4, shuffled.length);
});

test('an empty ring is refused', () => {
  assert.throws(() => new HashRing([]), /at least one node/);
});
