'use strict';
// Prints, as one JSON line, what the Node runtime is: versions, the tfjs
// backend in use and the libtensorflow file the addon is linked to.
const { main } = require('../lib/cli');

main(() => {
  const { runtimeInfo } = require('../lib/tfnode');
  process.stdout.write(`${JSON.stringify(runtimeInfo())}\n`);
});
