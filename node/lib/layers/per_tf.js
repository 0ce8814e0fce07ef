'use strict';
// Classes registered with tfjs are per tfjs instance: keyed by its
// serialization registry, `build(tf)` runs once for each and its result is
// kept (a WeakMap: nothing is held once that tfjs is gone).

/** A function of tf that runs build(tf) the first time for each tfjs, and returns its result. */
function oncePerTf(build) {
  const results = new WeakMap();
  return (tf) => {
    if (!results.has(tf.serialization)) results.set(tf.serialization, build(tf));
    return results.get(tf.serialization);
  };
}

module.exports = { oncePerTf };
