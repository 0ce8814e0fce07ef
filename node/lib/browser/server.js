'use strict';
// The browser worker's web server, on 127.0.0.1 only (a port the system
// picks). It serves nothing but what the page needs, each file named here:
//   /                     the page: tf.min.js, the backend's script, the bundle
//   /tfjs/<file>          tfjs's dist files from node_modules (.wasm as application/wasm,
//                         which WebAssembly.instantiateStreaming insists on)
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
// The backend scripts a page needs besides tf.min.js (which holds cpu and webgl).
const BACKEND_SCRIPTS = { wasm: ['tf-backend-wasm.min.js'], webgpu: ['tf-backend-webgpu.min.js'] };
const TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
};

function pageHtml(tfjsBackend) {
  const scripts = ['tf.min.js', ...(BACKEND_SCRIPTS[tfjsBackend] || [])].map(
    (name) => `<script src="/tfjs/${name}"></script>`,
  );
  return [
    '<!doctype html>',
    '<meta charset="utf-8">',
    `<title>tfjs-bridge ${tfjsBackend}</title>`,
    ...scripts,
    '<script src="/bridge.js"></script>',
    '',
  ].join('\n');
}

/**
 * Starts the server for a page on `tfjsBackend` with the bundle's text.
 * Returns {url, mount(handle, folder, files), unmount(handle), close()}.
 */
async function startServer(tfjsBackend, bundleText) {
  const app = require('fastify')({ logger: false });
  const mounts = new Map(); // handle -> {folder, files: Set of names}

  const sendFile = (reply, file) =>
    reply
      .type(TYPES[path.extname(file)] || 'application/octet-stream')
      .header('cache-control', 'no-store')
      .send(fs.readFileSync(file));

  app.get('/', (_, reply) => reply.type('text/html; charset=utf-8').send(pageHtml(tfjsBackend)));
  app.get('/favicon.ico', (_, reply) => reply.code(204).send()); // (asked for by every page)
  app.get('/bridge.js', (_, reply) => reply.type(TYPES['.js']).send(bundleText));
  app.get('/tfjs/:file', (request, reply) => {
    const file = TFJS_FILES[request.params.file];
    if (!file) return reply.code(404).send('not found');
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
    close: () => app.close(),
  };
}

module.exports = { startServer, TFJS_FILES };
