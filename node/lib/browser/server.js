'use strict';
// The browser worker's web server, on 127.0.0.1 only (a port the system
// picks). It serves nothing but what the page needs, each file named here:
//   /                     the page: tf.min.js, the backend's script, the bundle
//   /tfjs/<file>          tfjs's dist files from node_modules (.wasm as application/wasm,
//                         which WebAssembly.instantiateStreaming insists on)
//   /litert/<file>        LiteRT.js's WebAssembly and its loaders, from node_modules/@litertjs/core/wasm/
//                         (a LiteRT.js page: no tfjs file, and nothing from a CDN)
//   /bridge.js            the page bundle (bundle.js)
//   /models/<handle>/...  a mounted model folder: its model.json and the shards it lists
const fs = require('fs');
const path = require('path');

const dist = (pkg) => path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'dist');
const TFJS_FILES = {
  'tf.min.js': path.join(dist('@tensorflow/tfjs'), 'tf.min.js'),
  'tf-backend-wasm.min.js': path.join(
    dist('@tensorflow/tfjs-backend-wasm'),
    'tf-backend-wasm.min.js',
  ),
  'tf-backend-webgpu.min.js': path.join(
    dist('@tensorflow/tfjs-backend-webgpu'),
    'tf-backend-webgpu.min.js',
  ),
  ...Object.fromEntries(
    [
      'tfjs-backend-wasm.wasm',
      'tfjs-backend-wasm-simd.wasm',
      'tfjs-backend-wasm-threaded-simd.wasm',
    ].map((name) => [name, path.join(dist('@tensorflow/tfjs-backend-wasm'), name)]),
  ),
};
// LiteRT.js picks one of its builds by what the browser has (relaxed SIMD,
// threads, JSPI); all are named, and the driver reports which was fetched.
const LITERT_WASM = path.join(path.dirname(require.resolve('@litertjs/core/package.json')), 'wasm');
const LITERT_FILES = Object.fromEntries(
  [
    'litert_wasm_internal',
    'litert_wasm_compat_internal',
    'litert_wasm_threaded_internal',
    'litert_wasm_jspi_internal',
  ].flatMap((build) =>
    ['.js', '.wasm'].map((ext) => [`${build}${ext}`, path.join(LITERT_WASM, `${build}${ext}`)]),
  ),
);
// The backend scripts a page needs besides tf.min.js (which holds cpu and webgl).
const BACKEND_SCRIPTS = { wasm: ['tf-backend-wasm.min.js'], webgpu: ['tf-backend-webgpu.min.js'] };
const TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
};

function pageHtml(tfjsBackend, engine) {
  const tfjs = engine === 'litert' ? [] : ['tf.min.js', ...(BACKEND_SCRIPTS[tfjsBackend] || [])];
  return [
    '<!doctype html>',
    '<meta charset="utf-8">',
    `<title>tfjs-bridge ${engine === 'litert' ? 'LiteRT.js ' : ''}${tfjsBackend}</title>`,
    ...tfjs.map((name) => `<script src="/tfjs/${name}"></script>`),
    '<script src="/bridge.js"></script>',
    '<body></body>', // (LiteRT.js adds its loader script to the body)
    '',
  ].join('\n');
}

/**
 * Starts the server for a page on `tfjsBackend` (LiteRT.js's accelerator for
 * the litert engine) with the bundle's text. Returns {url, mount(handle,
 * folder, files), unmount(handle), served(), close()}; served() lists the
 * /litert/ files the page fetched.
 */
async function startServer(tfjsBackend, bundleText, engine = 'tfjs') {
  const app = require('fastify')({ logger: false });
  const mounts = new Map(); // handle -> {folder, files: Set of names}
  const litertServed = [];

  const sendFile = (reply, file) =>
    reply
      .type(TYPES[path.extname(file)] || 'application/octet-stream')
      .header('cache-control', 'no-store')
      .send(fs.readFileSync(file));

  app.get('/', (_, reply) =>
    reply.type('text/html; charset=utf-8').send(pageHtml(tfjsBackend, engine)),
  );
  app.get('/favicon.ico', (_, reply) => reply.code(204).send()); // (asked for by every page)
  app.get('/bridge.js', (_, reply) => reply.type(TYPES['.js']).send(bundleText));
  app.get('/tfjs/:file', (request, reply) => {
    const file = TFJS_FILES[request.params.file];
    if (!file) return reply.code(404).send('not found');
    return sendFile(reply, file);
  });
  app.get('/litert/:file', (request, reply) => {
    const file = LITERT_FILES[request.params.file];
    if (!file) return reply.code(404).send('not found');
    litertServed.push(request.params.file);
    return sendFile(reply, file);
  });
  app.get('/models/:handle/*', (request, reply) => {
    const mount = mounts.get(Number(request.params.handle));
    const name = request.params['*'];
    if (!mount || !mount.files.has(name)) return reply.code(404).send('not found');
    return sendFile(reply, path.join(mount.folder, name));
  });

  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address();
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    /** Serves `files` (names inside `folder`) under /models/<handle>/; returns that URL. */
    mount: (handle, folder, files) => {
      mounts.set(handle, { folder, files: new Set(files) });
      return `${url}/models/${handle}/`;
    },
    unmount: (handle) => mounts.delete(handle),
    served: () => [...litertServed],
    close: () => app.close(),
  };
}

module.exports = { startServer, TFJS_FILES, LITERT_FILES };
