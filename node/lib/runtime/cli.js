'use strict';
// What every Node script does with its command line: `--help` prints its
// usage on stdout (exit 0); a failure is one `error:` line on stderr, no
// stack trace (TFJS_BRIDGE_DEBUG=1 adds it). Exit 2 for usage errors, 1 for
// everything else.
const util = require('util');

class UsageError extends Error {}

/**
 * util.parseArgs(config) ({values, positionals}), with what it refuses (an
 * unknown option, a missing value, an unexpected argument) a UsageError whose
 * message ends with `usage` in parentheses.
 */
function parseCommandLine(config, usage) {
  try {
    return util.parseArgs(config);
  } catch (err) {
    throw new UsageError(`${err.message} (${usage})`);
  }
}

/** Runs the script's `run` unless --help/-h was asked for, which prints `usage`. */
function main(run, usage) {
  if (usage && process.argv.slice(2).some((arg) => arg === '--help' || arg === '-h')) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  Promise.resolve()
    .then(run)
    .catch((err) => {
      const message = err && err.message ? err.message : String(err);
      // One line: a multi-line message (tfjs's run to paragraphs) keeps its first.
      process.stderr.write(`error: ${message.split('\n')[0]}\n`);
      if (process.env.TFJS_BRIDGE_DEBUG) process.stderr.write(`${err && err.stack}\n`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    });
}

module.exports = { main, UsageError, parseCommandLine };
