'use strict';
// Prints, as one JSON line, what the Node runtime is: versions, the tfjs
// backend in use and the libtensorflow file the addon is linked to.
const { main } = require('../lib/runtime/cli');

main(() => {
  const { runtimeInfo } = require('../lib/runtime/tfnode');
  process.stdout.write(`${JSON.stringify(runtimeInfo())}\n`);
}, 'usage: doctor.js  (prints the Node runtime as one JSON line)');
