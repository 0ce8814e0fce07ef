'use strict';
// A page people can use: the converted models in the browser, with tfjs.
//
//   node node/demo.js [--models shared_models] [--examples FILE.json] [--host 127.0.0.1] [--port 8080]
//
// Draw a digit (gru classifies it as you draw), watch lstm_sine forecast a
// sine against the truth, paste a mail (spam's probability). The page runs
// the tfjs layers models of the folders in --models, on the backend chosen
// in the page (cpu, wasm, webgl; the one really in use is shown), or, where
// a folder's .tflite passed verify on LiteRT.js, LiteRT.js on WASM; it starts
// on the fastest verified browser path parity.json records. Only the files
// the page needs are served (each model's model.json, the shards it lists,
// its verified .tflite, spam's tokenizer.json, LiteRT.js's WebAssembly),
// checked against the folder's manifest, from 127.0.0.1 unless --host says
// otherwise. SIGINT/SIGTERM stop it.
//
// --examples: real test examples with Keras's answers and lstm_sine's
// training domain, as `tfjs-bridge demo` writes them at start-up
// (py/tfjs_bridge/training/demo_examples.py); without it the page says
// they are missing.
const { main, UsageError, parseCommandLine } = require('./lib/runtime/cli');

const USAGE =
  'usage: demo.js [--models shared_models] [--examples FILE.json] [--host 127.0.0.1] [--port 8080]';

function parse() {
  const args = parseCommandLine(
    {
      options: {
        models: { type: 'string', default: 'shared_models' },
        examples: { type: 'string' },
        host: { type: 'string', default: '127.0.0.1' },
        port: { type: 'string', default: '8080' },
      },
    },
    USAGE,
  ).values;
  const port = Number(args.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port must be an integer in [0, 65535], got '${args.port}'`);
  }
  return { ...args, port };
}

async function run() {
  const { models, examples, host, port } = parse();
  const { startDemo } = require('./lib/demo/server');
  const demo = await startDemo(models, host, port, examples);
  process.stdout.write(`demo: ${demo.url} (${demo.models.join(', ')})\n`);
  const stop = () => demo.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main(run, USAGE);
