'use strict';
// What every Node script does on failure: one `error:` line, no stack trace.
// Exit 2 for usage errors, 1 for everything else.

class UsageError extends Error {}

function main(run) {
  Promise.resolve()
    .then(run)
    .catch((err) => {
      process.stderr.write(`error: ${err && err.message ? err.message : err}\n`);
      if (process.env.TFJS_BRIDGE_DEBUG) process.stderr.write(`${err && err.stack}\n`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    });
}

module.exports = { main, UsageError };
