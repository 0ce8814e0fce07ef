'use strict';
// Reads a .npy file, turns it into a tfjs-node tensor, reads the tensor back
// from the native backend, and writes it to another .npy file. Used to prove
// that tensors cross between Python and Node bit-exactly.
const { parseArgs } = require('util');
const { main, UsageError } = require('../lib/runtime/cli');
const { readNpy, writeNpy } = require('../lib/io/npy');

const USAGE = 'usage: echo-npy.js IN.npy OUT.npy';

main(() => {
  const { positionals } = parseArgs({ allowPositionals: true });
  if (positionals.length !== 2) throw new UsageError(USAGE);
  const [input, output] = positionals;
  const { tf } = require('../lib/runtime/tfnode');
  const { data, shape } = readNpy(input);
  const dtype = data instanceof Int32Array ? 'int32' : 'float32';
  if (!(data instanceof Float32Array || data instanceof Int32Array)) {
    throw new Error(`${input}: only float32 and int32 arrays can become tensors`);
  }
  // tf.clone runs the native Identity op, so the bytes go through TensorFlow.
  const back = tf.tidy(() => tf.clone(tf.tensor(data, shape, dtype)).dataSync());
  writeNpy(output, back, shape);
  process.stdout.write(`${JSON.stringify({ shape, dtype })}\n`);
}, USAGE);
