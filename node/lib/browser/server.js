'use strict';
// The browser worker's web server, on 127.0.0.1 only (a port the system
// picks). It serves nothing but what the page needs, each file named here:
//   /                     the page: tf.min.js, the backend's script, the bundle
//   /tfjs/<file>          tfjs's dist files from node_modules (.wasm as application/wasm,
//                         which WebAssembly.instantiateStreaming insists on)
//   /litert/<file>        LiteRT.js's WebAssembly and its loaders, from node_modules/@litertjs/core/wasm/
//                         (a LiteRT.js page: no tfjs file, and nothing from a CDN)
//   /ort/<file>           onnxruntime-web's WASM build (ort.wasm.min.js, its .mjs and .wasm)
//                         and WebGPU build (ort.webgpu.min.js, its asyncify .mjs and .wasm),
//                         from node_modules/onnxruntime-web/dist/ (optional: `make onnx`)
//   /bridge.js            the page bundle (bundle.js)
//   /models/<handle>/...  a mounted model folder: its model.json and the shards it lists
const fs = require('fs');
const path = require('path');

/** An installed package's folder (onnxruntime-web's exports do not list its package.json). */
function packageDir(pkg) {
  let dir = path.dirname(require.resolve(pkg));
  const named = (d) => {
    const file = path.join(d, 'package.json');
    return fs.existsSync(file) && JSON.parse(fs.readFileSync(file, 'utf8')).name === pkg;
  };
  while (!named(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

const packageVersion = (pkg) =>
  JSON.parse(fs.readFileSync(path.join(packageDir(pkg), 'package.json'), 'utf8')).version;

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
const LITERT_WASM = path.join(packageDir('@litertjs/core'), 'wasm');
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
// onnxruntime-web is optional (`make onnx`): its files are named only when it is installed.
function ortFiles() {
  let dir;
  try {
    dir = path.join(packageDir('onnxruntime-web'), 'dist');
  } catch {
    return {};
  }
  const names = [
    'ort.wasm.min.js',
    'ort-wasm-simd-threaded.mjs',
    'ort-wasm-simd-threaded.wasm',
    'ort.webgpu.min.js',
    'ort-wasm-simd-threaded.asyncify.mjs',
    'ort-wasm-simd-threaded.asyncify.wasm',
  ];
  return Object.fromEntries(names.map((name) => [name, path.join(dir, name)]));
}
const ORT_FILES = ortFiles();
// onnxruntime-web's build per execution provider (`onnxruntime-web/webgpu` is the second).
const ORT_SCRIPTS = { wasm: 'ort.wasm.min.js', webgpu: 'ort.webgpu.min.js' };
// The backend scripts a page needs besides tf.min.js (which holds cpu and webgl).
const BACKEND_SCRIPTS = { wasm: ['tf-backend-wasm.min.js'], webgpu: ['tf-backend-webgpu.min.js'] };
const TYPES = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json; charset=utf-8',
};

function pageHtml(tfjsBackend, engine) {
  const scripts = {
    tfjs: ['tf.min.js', ...(BACKEND_SCRIPTS[tfjsBackend] || [])].map((name) => `/tfjs/${name}`),
    litert: [], // (in the bundle)
    ort: [`/ort/${ORT_SCRIPTS[tfjsBackend]}`],
  }[engine];
  return [
    '<!doctype html>',
    '<meta charset="utf-8">',
    `<title>tfjs-bridge ${engine} ${tfjsBackend}</title>`,
    ...scripts.map((src) => `<script src="${src}"></script>`),
    '<script src="/bridge.js"></script>',
    '<body></body>', // (LiteRT.js adds its loader script to the body)
    '',
  ].join('\n');
}

/**
 * Starts the server for a page on `tfjsBackend` (LiteRT.js's accelerator for
 * the litert engine) with the bundle's text. Returns {url, mount(handle,
 * folder, files), unmount(handle), served(), close()}; served() lists the
 * /litert/ and /ort/ files the page fetched.
 */
async function startServer(tfjsBackend, bundleText, engine = 'tfjs') {
  const app = require('fastify')({ logger: false });
  const mounts = new Map(); // handle -> {folder, files: Set of names}
  const served = [];

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
    const file =
      Object.hasOwn(LITERT_FILES, request.params.file) && LITERT_FILES[request.params.file];
    if (!file) return reply.code(404).send('not found');
    served.push(request.params.file);
    return sendFile(reply, file);
  });
  app.get('/ort/:file', (request, reply) => {
    const file = Object.hasOwn(ORT_FILES, request.params.file) && ORT_FILES[request.params.file];
    if (!file) return reply.code(404).send('not found');
    served.push(request.params.file);
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
    served: () => [...served],
    close: () => app.close(),
  };
}

module.exports = { startServer, packageVersion, TFJS_FILES, LITERT_FILES, ORT_FILES };
