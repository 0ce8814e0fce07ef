'use strict';
// A consistent-hash ring (Karger et al.): each node is placed at `points`
// pseudo-random positions on a 32-bit circle, a key goes to the node at the
// first position at or after its own hash. Adding or removing one of N nodes
// moves only the keys of that node (about 1/N of them), so a replica joining
// or leaving strands only its own sequences. What ingress-nginx's
// upstream-hash-by does with its ketama ring; used by node/scripts/stream-proxy.js.
// About 30 lines, so written here rather than taken as a dependency.
const crypto = require('crypto');

// 160 points per node, as ketama: within a few percent of an even share.
const POINTS = 160;

const hash32 = (text) => crypto.createHash('md5').update(text).digest().readUInt32BE(0);

class HashRing {
  constructor(nodes, points = POINTS) {
    if (!nodes.length) throw new Error('a hash ring needs at least one node');
    this.ring = nodes
      .flatMap((node) => Array.from({ length: points }, (_, i) => [hash32(`${node}-${i}`), node]))
      .sort((a, b) => a[0] - b[0]);
  }

  /** The node that owns `key`. */
  nodeOf(key) {
    const h = hash32(String(key));
    const { ring } = this;
    let lo = 0;
    let hi = ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ring[mid][0] < h) lo = mid + 1;
      else hi = mid;
    }
    return ring[lo % ring.length][1];
  }
}

module.exports = { HashRing };
