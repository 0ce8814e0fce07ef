'use strict';
// fd 2 hidden (on /dev/null) around native calls that print on it, and put
// back. Node has no dup2(), so fd 2 is closed and reopened, and open() hands
// out the lowest free descriptor to whichever thread asks first. A thread of
// TensorFlow's or libuv's opening a file between the close and the open took
// fd 2 (TensorFlow reads /sys/devices/system/cpu/online as its load ends), the
// real stderr landed on another descriptor, and a failing script exited 1
// with an empty stderr. So every reopen is checked to have landed on 2 and
// retried (the other thread's file is short-lived) until it has.
const fs = require('fs');

const STDERR = 2;
const RETRY_MS = 1;
const GIVE_UP_MS = 5000; // then the real stderr is written through its own descriptor
// The negative control of node/test/stderr.test.js: reopen where open() lands, unchecked.
const UNCHECKED = process.env.TFJS_BRIDGE_STDERR_REOPEN === 'unchecked';

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Opens `path` until the descriptor it gets is 2; false if 2 stayed taken. */
function openOnStderr(path, flags) {
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    const fd = fs.openSync(path, flags);
    if (fd === STDERR || UNCHECKED) return true;
    fs.closeSync(fd);
    if (Date.now() > deadline) return false;
    sleep(RETRY_MS);
  }
}

/** process.stderr written synchronously to `fd`, when fd 2 could not be had back. */
function writeStderrTo(fd) {
  const { Writable } = require('stream');
  const stream = new Writable({
    write(chunk, encoding, done) {
      fs.writeSync(fd, chunk);
      done();
    },
  });
  stream.fd = fd;
  Object.defineProperty(process, 'stderr', { value: stream, configurable: true, writable: true });
}

/**
 * Runs load() with fd 2 on /dev/null, the real stderr reopened on fd 2 after
 * (through /proc/self/fd: a pipe, a file or a terminal; a socket cannot be
 * reopened, and then nothing is hidden). TFJS_BRIDGE_DEBUG=1 hides nothing.
 */
function withStderrHidden(load) {
  if (process.env.TFJS_BRIDGE_DEBUG) return load();
  let saved;
  try {
    [0, 1].forEach((fd) => fs.fstatSync(fd)); // both open, so 2 is the lowest free one
    saved = fs.openSync(`/proc/self/fd/${STDERR}`, 'a');
  } catch {
    return load();
  }
  fs.closeSync(STDERR);
  const hidden = openOnStderr('/dev/null', 'w');
  try {
    return load();
  } finally {
    if (hidden) fs.closeSync(STDERR);
    if (openOnStderr(`/proc/self/fd/${saved}`, 'a')) fs.closeSync(saved);
    else writeStderrTo(saved);
  }
}

module.exports = { withStderrHidden, openOnStderr };
