'use strict';
// The service (node/serve.js) started as a child process for the benches in
// node/scripts/: spawned by path, stdout read until its start-up line says
// where it listens and which worker processes it runs.
const { spawn } = require('child_process');
const path = require('path');

const SERVE = path.join(__dirname, '..', '..', 'serve.js');

/**
 * Starts `node serve.js --port 0 ...args` and resolves
 * {port, child, workerPids, httpPids, said} once it listens (httpPids: the
 * HTTP processes of --http-processes N >= 2, else none); rejects, with its
 * last line, if it exits first.
 */
function launchService(args) {
  const child = spawn(process.execPath, [SERVE, '--port', '0', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let said = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text) => {
      said += text;
      const found = said.match(/listening on http:\/\/[\d.]+:(\d+) .*pids ([\d ]+);/);
      if (!found) return;
      const pids = (text) => text.trim().split(/\s+/).map(Number);
      const fronts = said.match(/HTTP processes: ([\d ]+)\)/);
      resolve({
        port: Number(found[1]),
        child,
        workerPids: pids(found[2]),
        httpPids: fronts ? pids(fronts[1]) : [],
        said,
      });
    });
    child.on('exit', (code) =>
      reject(
        new Error(`serve.js exited (${code}) before listening: ${said.trim().split('\n').pop()}`),
      ),
    );
  });
}

module.exports = { launchService };
