'use strict';
// The util.is* helpers tfjs-node 4.22 (its last release) still calls, put
// back where current Node lacks them. tfjs-node's compiled code calls
// util.isNullOrUndefined and util.isArray on every kernel that takes
// attributes (nodejs_kernel_backend.js, kernels/TopK.js):
//   - Node 23 removed util.isNullOrUndefined: on Node 24 the first prediction
//     dies with "(0 , util_1.isNullOrUndefined) is not a function";
//   - Node 22 wraps both in util.deprecate: DEP0051 and DEP0044 warnings on
//     stderr at every run.
// tfnode.js installs these before it requires tfjs-node; tfjs-node reads
// util_1.isX at each call, so the module object's property is what counts.
// On Node 20 the originals are plain functions and are left as they are.
// tests/test_node_lts.py runs the project on Node 22 and 24 with this file in
// place, and shows Node 24 failing without it.

const util = require('util');

const HELPERS = {
  isNullOrUndefined: (value) => value === null || value === undefined,
  isArray: (value) => Array.isArray(value),
};

/** True for a function util.deprecate made (Node names its wrapper so). */
function isDeprecationWrapper(fn) {
  return typeof fn === 'function' && fn.name === 'deprecated';
}

/**
 * Puts HELPERS on `target` (Node's util module) where a helper is absent or
 * deprecated. Returns the names it put there, for `tfjs-bridge doctor`.
 */
function installLegacyUtil(target = util) {
  const installed = [];
  for (const [name, helper] of Object.entries(HELPERS)) {
    if (typeof target[name] === 'function' && !isDeprecationWrapper(target[name])) continue;
    target[name] = helper;
    installed.push(name);
  }
  return installed;
}

module.exports = { installLegacyUtil, HELPERS };
