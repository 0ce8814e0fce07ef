'use strict';
// The demo page's web server (node/demo.js): fastify, serving only
//   /              index.html
//   /demo.js       app.js bundled by esbuild with our layers and tokenizer
//   /tfjs/<file>   tfjs's browser builds (lib/browser/server.js's list)
//   /litert/<file> LiteRT.js's WebAssembly and loaders (lib/browser/server.js's list)
//   /models.json   the demo models the folder holds: {name: {url (its model.json),
//                  test (the manifest's test figures), examples (--examples's),
//                  litert ({url} of a verified .tflite, or {why} not), page_path
//                  (the fastest verified browser path parity.json records)}}
//   /models/<name>/<file>  a demo model's tfjs layers files, its verified
//                  tflite/model.tflite, and spam's tokenizer.json
// Every model file is checked against its folder's manifest (sha256) at start.
const fs = require('fs');
const path = require('path');
const { readManifest } = require('../io/manifest');
const { checkIntegrity, checkFileIntegrity, readModelArtifacts } = require('../io/modelfiles');
const { TFJS_FILES, LITERT_FILES } = require('../browser/server');
const { chooseBrowserPath, readParity } = require('../runtime/choose');
const { FORMATS, BROWSER_BACKENDS } = require('../runtime/vocabulary');
const { switchDefines } = require('../layers/switches');

// What each demo model does in the page; a model the folder lacks is left out.
const DEMO_MODELS = ['gru', 'lstm_sine', 'spam'];
const LAYERS = FORMATS.layers.folder; // where a model's tfjs layers files are
const TFLITE = FORMATS.tflite.folder;
const LITERT_PATH = 'chromium-litert-wasm/tflite'; // the LiteRT.js path verify records
// The runtimes and backends the page offers: tfjs's (webgl, wasm, cpu) on the
// layers model, and LiteRT.js on WASM on the .tflite.
const PAGE_TFJS_BACKENDS = ['webgl', 'wasm', 'cpu'];
const PAGE_BACKENDS = Object.entries(BROWSER_BACKENDS)
  .filter(
    ([, bb]) =>
      (bb.engine === 'tfjs' && PAGE_TFJS_BACKENDS.includes(bb.tfjs_backend)) ||
      (bb.engine === 'litert' && bb.tfjs_backend === 'wasm'),
  )
  .map(([name]) => name);
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
    const litert = verifiedTflite(name, folder, manifest);
    if (litert.file) files.set(`${TFLITE}/${path.basename(litert.file)}`, litert.file);
    found[name] = {
      folder,
      files,
      test: manifest.test || null,
      litert,
      pagePath: pagePath(folder),
    };
  }
  if (!Object.keys(found).length) {
    throw new Error(
      `${root}: none of ${DEMO_MODELS.join(', ')} is converted: run \`make train convert\` first`,
    );
  }
  return found;
}

/**
 * {file} of the folder's .tflite when LiteRT.js may run it in the page: its
 * sha256 is the manifest's and verify passed it on LiteRT.js's WASM path;
 * else {why}, a reason a user can act on.
 */
function verifiedTflite(name, folder, manifest) {
  const file = path.join(folder, TFLITE, FORMATS.tflite.entry);
  if (!fs.existsSync(file)) {
    return { why: `no tflite: run \`tfjs-bridge convert ${name} --format tflite\`` };
  }
  checkIntegrity(folder, TFLITE, manifest);
  const result = ((readParity(folder) || {}).results || {})[LITERT_PATH];
  if (!result || result.status !== 'pass') {
    const status = result ? `${result.status} on ${LITERT_PATH}` : 'unverified';
    return {
      why: `${status}: run \`tfjs-bridge verify ${name} --runtime chromium-litert-wasm\``,
    };
  }
  return { file };
}

/** The fastest verified browser path the page can run ({runtime, backend, why}), or null. */
function pagePath(folder) {
  const chosen = chooseBrowserPath(folder, {
    formats: ['layers', 'tflite'],
    backends: PAGE_BACKENDS,
  });
  if (!chosen.runtime) return null;
  const bb = BROWSER_BACKENDS[chosen.backend];
  return {
    path: chosen.runtime,
    runtime: bb.engine, // tfjs | litert
    backend: bb.tfjs_backend,
    why: chosen.why,
  };
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
    define: switchDefines(),
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
    Object.entries(models).map(([name, { test, litert, pagePath: chosen }]) => [
      name,
      {
        url: `/models/${name}/${LAYERS}/model.json`,
        test,
        litert: litert.file
          ? { url: `/models/${name}/${TFLITE}/${path.basename(litert.file)}` }
          : { why: litert.why },
        page_path: chosen,
        ...(examples[name] || {}),
      },
    ]),
  );
  app.get('/models.json', (_, reply) => reply.send(described));
  app.get('/tfjs/:file', (request, reply) => {
    const file = TFJS_FILES[request.params.file];
    return file ? send(reply, file) : reply.code(404).send('not found');
  });
  app.get('/litert/:file', (request, reply) => {
    const file =
      Object.hasOwn(LITERT_FILES, request.params.file) && LITERT_FILES[request.params.file];
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

module.exports = { startDemo, DEMO_MODELS, buildBundle };
