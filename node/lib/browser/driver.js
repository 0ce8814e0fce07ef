'use strict';
// A browser as a worker backend: node/worker.js answers Python's requests
// (hello, load, predict, bench, memory, dispose; py/tfjs_bridge/runtime/worker_process.py)
// with these handlers, which pass each to a page of a real browser
// (launch.js) served from 127.0.0.1 (server.js) running the bundle of
// page.js, runners.js and lib/layers (bundle.js). So verify and bench see a
// browser path as one more backend, 'chromium-webgl' say. A LiteRT.js backend
// ('chromium-litert-wasm', engine 'litert') and an ONNX Runtime Web one
// ('chromium-ort-wasm', engine 'ort') are driven the same way, their pages
// being litert_page.js and ort_page.js, with no tfjs; LiteRT.js on WebGPU
// ('chromium-litert-webgpu') gets the static-batch files (litert_webgpu.js).
const fs = require('fs');
const path = require('path');
const { BROWSER_BACKENDS } = require('../runtime/vocabulary');
const { checkedFormatPath } = require('../runtime/models');
const { readModelArtifacts } = require('../io/modelfiles');
const { benchOptions } = require('../runtime/runners');
const { residentMemory } = require('../runtime/memory');
const { buildPageBundle } = require('./bundle');
const { startServer, packageVersion } = require('./server');
const { launchBrowser } = require('./launch');
const { staticTfliteFiles, explainDelegateFailure } = require('./litert_webgpu');
const { TYPES } = require('./wire');

const toWire = ({ dtype, shape, data }) => ({
  dtype,
  shape,
  b64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64'),
});

function fromWire({ dtype, shape, b64 }) {
  const bytes = Buffer.from(b64, 'base64');
  // Copy: a typed array needs an aligned offset of its own buffer.
  const data = new TYPES[dtype](Uint8Array.prototype.slice.call(bytes).buffer);
  return { dtype, shape, data };
}

/** VmHWM and VmRSS summed over a process and its descendants (a browser is many processes). */
function treeMemory(rootPid) {
  const parents = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      // the fourth field, after the command name in parentheses
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const tree = new Set([rootPid]);
  for (let grew = true; grew;) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!tree.has(pid) && tree.has(ppid)) tree.add(pid) && (grew = true);
    }
  }
  let peak = 0;
  let rss = 0;
  for (const pid of tree) {
    try {
      const memory = residentMemory(pid);
      peak += memory.peak_rss ?? 0;
      rss += memory.rss ?? 0;
    } catch {
      // gone meanwhile
    }
  }
  return { peak_rss: peak, rss, processes: tree.size };
}

/** The first line of a page error, without the name puppeteer puts before it. */
function pageError(err) {
  const message = String(err && err.message ? err.message : err).split('\n')[0];
  return new Error(message.replace(/^(Evaluation failed: )?(Error: )?/, ''));
}

// What differs per engine: the page's global (bundle.js), the formats it
// runs, where its WebAssembly is served (server.js), and its package.
const ENGINES = {
  tfjs: { bridge: 'tfjsBridge', formats: ['layers', 'graph'], wasm: 'tfjs' },
  litert: { bridge: 'litertBridge', formats: ['tflite'], wasm: 'litert', pkg: '@litertjs/core' },
  ort: { bridge: 'ortBridge', formats: ['onnx'], wasm: 'ort', pkg: 'onnxruntime-web' },
};

/**
 * Launches the browser of `backend` ('chromium-webgl'), opens the page and
 * starts its tfjs backend. Returns {handlers, close}.
 */
async function startBrowserWorker(backend) {
  const { browser: browserName, tfjs_backend: tfjsBackend, engine } = BROWSER_BACKENDS[backend];
  const { bridge, formats, wasm, pkg } = ENGINES[engine];
  const tfjs = engine === 'tfjs';
  // TFJS_BRIDGE_PAGE_LAYERS=stock: a page with tfjs's stock classes only, the
  // control that shows what tfjs-bridge's layers change.
  const stock = process.env.TFJS_BRIDGE_PAGE_LAYERS === 'stock';
  const bundle = await buildPageBundle(engine);
  const server = await startServer(tfjsBackend, bundle.text, engine);
  let launched;
  try {
    launched = await launchBrowser(browserName, tfjsBackend);
  } catch (err) {
    await server.close();
    throw err;
  }
  const close = async () => {
    try {
      await launched.close();
    } finally {
      await server.close();
    }
  };
  let page;
  let info;
  try {
    page = await launched.browser.newPage();
    // The page's own messages (tfjs's warnings) go where a worker's go: stderr.
    // LiteRT.js logs its native INFO lines (environment, delegates) as errors: dropped.
    // WebGPU's follow-on errors ("[Invalid Texture] is invalid due to a previous
    // error", hundreds after a first one, which is kept): dropped too.
    const chatter = /^(INFO: |I\d{4} |\[Invalid \w+\] is invalid due to a previous error)/;
    page.on('console', (m) => {
      if (engine === 'litert' && chatter.test(m.text())) return;
      process.stderr.write(`page ${m.type()}: ${m.text()}\n`);
    });
    page.on('pageerror', (err) => process.stderr.write(`page error: ${err.message}\n`));
    await page.goto(`${server.url}/`, { waitUntil: 'load' });
    // TFJS_BRIDGE_LITERT_GUARD=off: LiteRT.js's answers taken even after a
    // delegate error (litert_page.js), the control that shows what they are.
    const guard = process.env.TFJS_BRIDGE_LITERT_GUARD !== 'off';
    const options = {
      wasmPaths: `${server.url}/${wasm}/`,
      ...(tfjs ? { layers: !stock } : {}),
      ...(engine === 'litert' ? { guard } : {}),
    };
    info = await page
      .evaluate((g, b, o) => globalThis[g].start(b, o), bridge, tfjsBackend, options)
      .catch((err) => {
        throw pageError(err);
      });
    if (!tfjs) {
      Object.assign(info, {
        [pkg]: packageVersion(pkg),
        // which WebAssembly files the page really fetched from us (server.js)
        wasm_files: server.served(),
      });
    }
    const version = await launched.browser.version();
    const proc = launched.browser.process();
    Object.assign(info, {
      requested_backend: tfjsBackend,
      browser: browserName,
      browser_version: version,
      executable: launched.executable,
      headless: launched.headless,
      display: launched.display,
      browser_pid: proc ? proc.pid : null,
      node: process.versions.node,
      pid: process.pid,
      page_layers: !tfjs ? null : stock ? 'stock' : 'tfjs-bridge',
      bundle: bundle.inputs,
    });
  } catch (err) {
    await close();
    throw err;
  }

  const inPage = (fn, ...args) =>
    page.evaluate(fn, ...args).catch((err) => {
      throw pageError(err);
    });
  // LiteRT.js on WebGPU: the static-batch files of each loaded model, to
  // name the op when the delegate fails to invoke.
  const litertWebgpu = engine === 'litert' && tfjsBackend === 'webgpu';
  const staticFilesOf = new Map(); // handle -> {batch: file path}
  const explained = (handle) => (err) => {
    const files = staticFilesOf.get(handle);
    const said = files && explainDelegateFailure(err.message, files);
    throw said ? new Error(said) : err;
  };
  const browserMemory = () => {
    const proc = launched.browser.process();
    return proc ? treeMemory(proc.pid) : { peak_rss: null, rss: null };
  };
  let nextHandle = 1;

  const handlers = {
    hello: () => ({ result: info }),

    load: async ({ model_dir: modelDir, format }) => {
      if (!format) throw new Error(`load needs a format on the ${backend} backend`);
      const started = performance.now();
      if (!formats.includes(format)) {
        throw new Error(`the ${format} format does not run in a ${engine} page (${formats})`);
      }
      // The checks Node makes before it parses anything: sha256 against the
      // manifest, weight paths inside the folder, declared bytes = shard bytes.
      const where = checkedFormatPath(modelDir, format);
      let files = [path.basename(where)];
      if (tfjs) {
        readModelArtifacts(where);
        const json = JSON.parse(fs.readFileSync(where, 'utf8'));
        files = [...files, ...json.weightsManifest.flatMap((g) => g.paths)];
      }
      const statics = litertWebgpu ? staticTfliteFiles(modelDir) : null;
      if (statics) files = Object.values(statics).map((f) => path.basename(f));
      const handle = nextHandle++;
      const base = server.mount(handle, path.dirname(where), files);
      if (statics) staticFilesOf.set(handle, statics);
      const urls = statics
        ? Object.fromEntries(
            Object.entries(statics).map(([b, f]) => [b, `${base}${path.basename(f)}`]),
          )
        : null;
      const loaded = await inPage(
        (b, h, u, f, s) => globalThis[b].load(h, u, f, s),
        bridge,
        handle,
        `${base}${path.basename(where)}`,
        format,
        urls,
      ).catch(explained(handle));
      return {
        result: {
          handle,
          format,
          why: 'asked for',
          ...loaded,
          load_ms: performance.now() - started,
          // (onnxruntime-web fetches its .wasm when its first session is made)
          ...(tfjs ? {} : { wasm_files: server.served() }),
        },
      };
    },

    predict: async ({ handle, tensors, inputs = null }) => {
      if (!tensors.length) throw new Error('predict takes at least 1 input tensor, got 0');
      const out = await inPage(
        (b, h, xs, names) => globalThis[b].predict(h, xs, names),
        bridge,
        handle,
        tensors.map(toWire),
        inputs,
      ).catch(explained(handle));
      return { result: { ms: out.ms, outputs: out.outputs }, tensors: out.tensors.map(fromWire) };
    },

    bench: async ({ handle, tensors, inputs = null, ...timing }) => {
      const result = await inPage(
        (b, h, xs, names, o) => globalThis[b].bench(h, xs, names, o),
        bridge,
        handle,
        tensors.map(toWire),
        inputs,
        benchOptions(timing), // timeCalls's defaults apply in the page
      ).catch(explained(handle));
      return { result: { ...result, ...browserMemory() } };
    },

    memory: async () => ({
      result: { ...(await inPage((b) => globalThis[b].memory(), bridge)), ...browserMemory() },
    }),

    dispose: async ({ handle }) => {
      await inPage((b, h) => globalThis[b].dispose(h), bridge, handle);
      server.unmount(handle);
      staticFilesOf.delete(handle);
      return { result: { handle } };
    },
  };
  return { handlers, close };
}

module.exports = { startBrowserWorker, treeMemory };
