'use strict';
// The demo page's web server (node/demo.js): fastify, serving only
//   /              index.html
//   /demo.js       app.js bundled by esbuild with our layers and tokenizer
//   /tfjs/<file>   tfjs's browser builds (lib/browser/server.js's list)
//   /models.json   the demo models the folder holds: {name: {url (its model.json),
//                  test (the manifest's test figures), examples (--examples's)}}
//   /models/<name>/<file>  a demo model's tfjs layers files and spam's tokenizer.json
// Every model file is checked against its folder's manifest (sha256) at start.
const fs = require('fs');
const path = require('path');
const { readManifest } = require('../io/manifest');
const { checkIntegrity, checkFileIntegrity, readModelArtifacts } = require('../io/modelfiles');
const { TFJS_FILES } = require('../browser/server');
const { FORMATS } = require('../runtime/vocabulary');

// What each demo model does in the page; a model the folder lacks is left out.
const DEMO_MODELS = ['gru', 'lstm_sine', 'spam'];
const LAYERS = FORMATS.layers.folder; // where a model's tfjs layers files are
const TOKENIZER = 'tokenizer.json';
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
};

/** {name: {folder, files: Map(url name -> path)}} for the demo models present. */
function demoModels(root) {
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) {
    throw new Error(`${root}: no models folder: run \`make train convert\` first`);
  }
  const found = {};
  for (const name of DEMO_MODELS) {
    const folder = path.join(root, name);
    const modelJson = path.join(folder, LAYERS, 'model.json');
    if (!fs.existsSync(modelJson)) continue;
    const manifest = readManifest(folder);
    checkIntegrity(folder, LAYERS, manifest);
    readModelArtifacts(modelJson); // sizes, paths inside the folder, well formed
    const files = new Map([[`${LAYERS}/model.json`, modelJson]]);
    for (const group of JSON.parse(fs.readFileSync(modelJson, 'utf8')).weightsManifest) {
      for (const shard of group.paths)
        files.set(`${LAYERS}/${shard}`, path.join(folder, LAYERS, shard));
    }
    if (fs.existsSync(path.join(folder, TOKENIZER))) {
      checkFileIntegrity(folder, TOKENIZER, manifest);
      files.set(TOKENIZER, path.join(folder, TOKENIZER));
    }
    found[name] = { folder, files, test: manifest.test || null };
  }
  if (!Object.keys(found).length) {
    throw new Error(
      `${root}: none of ${DEMO_MODELS.join(', ')} is converted: run \`make train convert\` first`,
    );
  }
  return found;
}

/** app.js and what it requires, for the browser; Node's `fs` (the tokenizer's file reader) is left out. */
async function buildBundle() {
  const esbuild = require('esbuild-wasm');
  const noFs = {
    name: 'no-fs',
    setup(build) {
      build.onResolve({ filter: /^fs$/ }, () => ({ path: 'fs', namespace: 'no-fs' }));
      build.onLoad({ filter: /.*/, namespace: 'no-fs' }, () => ({
        contents: 'module.exports = {};',
      }));
    },
  };
  const result = await esbuild.build({
    entryPoints: [path.join(__dirname, 'app.js')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: ['es2020'],
    logLevel: 'silent',
    plugins: [noFs],
    define: {
      'process.env.TFJS_BRIDGE_RNN_LOOP': '""',
      'process.env.TFJS_BRIDGE_MASKED_POOLING': '""',
      'process.env.TFJS_BRIDGE_ATTENTION': '""',
    },
  });
  return result.outputFiles[0].text;
}

/**
 * --examples's file ({name: {source, examples, ...}}, training/demo_examples.py),
 * checked enough that the page can trust its shape; {} without one.
 */
function readExamples(file) {
  if (!file) return {};
  let parsed;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`${file}: not a readable examples file (${err.message})`, { cause: err });
  }
  const wellFormed =
    parsed &&
    typeof parsed === 'object' &&
    Object.entries(parsed).every(
      ([name, entry]) =>
        DEMO_MODELS.includes(name) &&
        entry &&
        Array.isArray(entry.examples) &&
        entry.examples.length,
    );
  if (!wellFormed) {
    throw new Error(
      `${file}: not an examples file ({${DEMO_MODELS.join('|')}: {examples: [...]}})`,
    );
  }
  return parsed;
}

async function startDemo(root, host, port, examplesFile = null) {
  const models = demoModels(path.resolve(root));
  const examples = readExamples(examplesFile);
  const bundle = await buildBundle();
  const page = fs.readFileSync(path.join(__dirname, 'index.html'));
  const app = require('fastify')({ logger: false });
  const send = (reply, file) =>
    reply.type(TYPES[path.extname(file)] || 'application/octet-stream').send(fs.readFileSync(file));

  app.get('/', (_, reply) => reply.type(TYPES['.html']).send(page));
  app.get('/favicon.ico', (_, reply) => reply.code(204).send());
  app.get('/demo.js', (_, reply) => reply.type(TYPES['.js']).send(bundle));
  // Where each model.json is (the page cannot read vocabulary.json's folder
  // name itself), what its manifest says it scored on its test split, and
  // the examples with Keras's answers, if given.
  const described = Object.fromEntries(
    Object.entries(models).map(([name, { test }]) => [
      name,
      { url: `/models/${name}/${LAYERS}/model.json`, test, ...(examples[name] || {}) },
    ]),
  );
  app.get('/models.json', (_, reply) => reply.send(described));
  app.get('/tfjs/:file', (request, reply) => {
    const file = TFJS_FILES[request.params.file];
    return file ? send(reply, file) : reply.code(404).send('not found');
  });
  app.get('/models/:name/*', (request, reply) => {
    const model = models[request.params.name];
    const file = model && model.files.get(request.params['*']);
    return file ? send(reply, file) : reply.code(404).send('not found');
  });
  try {
    await app.listen({ host, port });
  } catch (err) {
    throw new Error(`cannot listen on ${host}:${port} (${err.code || err.message})`, {
      cause: err,
    });
  }
  const address = app.server.address();
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}/`,
    models: Object.keys(models),
    close: () => app.close(),
  };
}

module.exports = { startDemo, DEMO_MODELS };
