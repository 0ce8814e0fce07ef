'use strict';
// The environment switches node/lib/layers reads (each the negative control of
// a test, or the benchmark's choice of loop). A page has no `process`, so the
// bundlers of the test page (browser/bundle.js) and of the demo
// (demo/server.js) fix each at build time to the building process's value:
// a page runs what Node would, and no `process.env` is left in a bundle.
const LAYER_SWITCHES = [
  'TFJS_BRIDGE_RNN_LOOP',
  'TFJS_BRIDGE_MASKED_POOLING',
  'TFJS_BRIDGE_ATTENTION',
  'TFJS_BRIDGE_MASKED_BIDIRECTIONAL',
  'TFJS_BRIDGE_MERGE_MASK',
  'TFJS_BRIDGE_SHARED_KWARGS',
  'TFJS_BRIDGE_MASKED_START',
  'TFJS_BRIDGE_FED_TWICE',
  'TFJS_BRIDGE_ARRAY_OPS',
];

/** esbuild's `define` for the switches: each `process.env.NAME` as its value here. */
function switchDefines(env = process.env) {
  return Object.fromEntries(
    LAYER_SWITCHES.map((name) => [`process.env.${name}`, JSON.stringify(env[name] || '')]),
  );
}

module.exports = { LAYER_SWITCHES, switchDefines };
