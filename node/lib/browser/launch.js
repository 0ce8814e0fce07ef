'use strict';
// Starting a system browser for a browser worker backend ('chromium-webgl'),
// with puppeteer-core (which downloads no browser). Which browsers, how each
// is driven and which backends need a display are Python's (runtime/runtimes.py,
// through vocabulary.json):
//   chromium  headless over CDP (a pipe: the browser exits when Node does)
//   firefox   over WebDriver BiDi; headless, except for the backends that
//             need a display (WebGL 2 on Mesa exists only with one): there
//             Xvfb gives it a display of its own when DISPLAY is unset.
// The executable is $TFJS_BRIDGE_<BROWSER> when set (a user's own browser),
// else the first of the browser's executables on PATH.
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const { BROWSERS, XVFB } = require('../runtime/vocabulary');

/** The first executable file called `name` on PATH, or null. */
function onPath(name) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    const file = path.join(dir || '.', name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** The browser's executable, or an error saying how to get one (as runtime/runtimes.py says it). */
function browserExecutable(name) {
  const browser = BROWSERS[name];
  const own = process.env[browser.env];
  if (own) {
    try {
      fs.accessSync(own, fs.constants.X_OK);
      if (fs.statSync(own).isFile()) return own;
    } catch {
      // reported below
    }
    throw new Error(`${browser.env}=${own} is not an executable file`);
  }
  const found = browser.executables.map(onPath).find(Boolean);
  if (found) return found;
  throw new Error(
    `${name} is not installed (${browser.executables.join(' or ')} not on PATH): ` +
      `run \`${browser.install}\`, or set ${browser.env}=/path/to/${name}`,
  );
}

/**
 * An X display of our own: Xvfb picks a free display number and writes it
 * to the pipe given by -displayfd. Local connections only (-nolisten tcp).
 * Returns {display, stop}.
 */
function startXvfb() {
  if (!onPath(XVFB)) throw new Error(`${XVFB} is not installed: run \`make browser\``);
  const xvfb = spawn(
    XVFB,
    ['-displayfd', '3', '-nolisten', 'tcp', '-screen', '0', '1280x1024x24'],
    {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    },
  );
  const stop = () => xvfb.exitCode === null && xvfb.kill();
  process.on('exit', stop); // a worker that dies leaves no X server behind
  let stderr = '';
  xvfb.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-2000)));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${XVFB} gave no display within 20 s`)), 20000);
    const fail = (err) => {
      clearTimeout(timer);
      stop();
      reject(err);
    };
    xvfb.on('error', fail);
    xvfb.on('exit', (code) =>
      fail(new Error(`${XVFB} exited (code ${code}): ${stderr.trim().split('\n').pop() || ''}`)),
    );
    xvfb.stdio[3].on('data', (chunk) => {
      out += chunk;
      if (!out.includes('\n')) return;
      clearTimeout(timer);
      xvfb.removeAllListeners('exit');
      resolve({ display: `:${out.trim()}`, stop });
    });
  });
}

/** Chromium's flags for a tfjs backend. */
function chromiumArgs(tfjsBackend) {
  const args = [];
  // Chromium refuses to start as root inside its sandbox.
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  // WebGPU on Linux is behind this flag (then SwiftShader's Vulkan, on a CPU).
  if (tfjsBackend === 'webgpu') args.push('--enable-unsafe-webgpu');
  // No GPU here: WebGL runs on SwiftShader, whose silent fallback Chromium
  // deprecates ("use --enable-unsafe-swiftshader"); opt in outright.
  if (tfjsBackend === 'webgl') args.push('--enable-unsafe-swiftshader');
  return args;
}

/**
 * Launches `browserName` for `tfjsBackend`. Returns {browser, executable,
 * headless, display, close}; close() also stops the Xvfb it started.
 */
async function launchBrowser(browserName, tfjsBackend) {
  const puppeteer = require('puppeteer-core');
  const executable = browserExecutable(browserName);
  const spec = BROWSERS[browserName];
  const needsDisplay = spec.display_backends.includes(tfjsBackend);
  let xvfb = null;
  let display = null;
  if (needsDisplay) {
    display = process.env.DISPLAY || null;
    if (!display) {
      xvfb = await startXvfb();
      display = xvfb.display;
    }
  }
  const common = {
    executablePath: executable,
    headless: !needsDisplay,
    // The first start of a freshly installed Chromium took 26 s here.
    timeout: 120000,
    // A WebGPU call on SwiftShader takes seconds; Python's deadline governs.
    protocolTimeout: 3600000,
    env: display ? { ...process.env, DISPLAY: display } : process.env,
    handleSIGINT: false,
  };
  let browser;
  try {
    browser =
      browserName === 'firefox'
        ? await puppeteer.launch({ ...common, browser: 'firefox', protocol: spec.protocol })
        : await puppeteer.launch({
            ...common,
            browser: 'chrome',
            protocol: spec.protocol,
            pipe: true,
            args: chromiumArgs(tfjsBackend),
          });
  } catch (err) {
    if (xvfb) xvfb.stop();
    const first = String(err.message || err).split('\n')[0];
    throw new Error(`${browserName} (${executable}) did not start: ${first}`, { cause: err });
  }
  return {
    browser,
    executable,
    headless: !needsDisplay,
    display,
    close: async () => {
      try {
        await browser.close();
      } finally {
        if (xvfb) xvfb.stop();
      }
    },
  };
}

module.exports = { launchBrowser, browserExecutable };
