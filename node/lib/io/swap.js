'use strict';
// Putting a finished folder in place of another in one atomic step, as the
// Python side does (py/tfjs_bridge/folder/artifacts.py): a folder is written beside
// its target under a staging name, then takes its place. A first write is one
// rename(2). Replacing a folder is Linux's renameat2(RENAME_EXCHANGE), which
// Node cannot call: the project's Python does it (artifacts.exchange), so at
// every instant the target name holds the old folder or the new one, whole.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..', '..', '..');

/** A new empty staging folder beside target, named as Python names its own (.NAME.XXXXXX.tmp). */
function stagingDir(target) {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const staging = fs.mkdtempSync(path.join(path.dirname(target), `.${path.basename(target)}.`));
  const named = `${staging}.tmp`;
  fs.renameSync(staging, named);
  return named;
}

function python() {
  if (process.env.TFJS_BRIDGE_PYTHON) return process.env.TFJS_BRIDGE_PYTHON;
  const venv = path.join(ROOT, '.venv', 'bin', 'python');
  if (fs.existsSync(venv)) return venv;
  throw new Error(`no Python to swap folders with (${venv}): run \`make setup\``);
}

/** Puts `staging` in `target`'s place atomically and removes what was there. */
function swapIn(staging, target) {
  if (!fs.existsSync(target)) {
    fs.renameSync(staging, target);
    return;
  }
  const code =
    'import sys; from tfjs_bridge.folder.artifacts import exchange; exchange(sys.argv[1], sys.argv[2])';
  const run = spawnSync(python(), ['-c', code, staging, target], { encoding: 'utf8' });
  if (run.status !== 0) {
    const said = (run.stderr || '').trim().split('\n').pop();
    const why = run.error ? run.error.message : said || `${python()} exited ${run.status}`;
    throw new Error(`${target}: could not swap in the new folder (${why})`);
  }
  fs.rmSync(staging, { recursive: true, force: true }); // now the old folder
}

module.exports = { stagingDir, swapIn };
