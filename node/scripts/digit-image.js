'use strict';
// What gru is given for a picture of a digit: each PNG made MNIST-like as the
// demo page and predict.js --image make it (lib/io/digit_image.js), written
// as one float32 .npy of shape [n, 28, 28] in the order given.
//
//   node node/scripts/digit-image.js --image a.png [--image b.png ...] --output x.npy
const { main, UsageError, parseCommandLine } = require('../lib/runtime/cli');

const USAGE = 'usage: digit-image.js --image FILE.png [--image FILE.png ...] --output X.npy';

async function run() {
  const args = parseCommandLine(
    { options: { image: { type: 'string', multiple: true }, output: { type: 'string' } } },
    USAGE,
  ).values;
  if (!args.image || !args.output) throw new UsageError(USAGE);
  const { readDigitPngs } = require('../lib/io/png');
  const { writeNpy } = require('../lib/io/npy');
  const { data, shape } = readDigitPngs(args.image);
  writeNpy(args.output, data, shape);
  process.stdout.write(`${JSON.stringify({ written: args.output, shape })}\n`);
}

main(run, USAGE);
