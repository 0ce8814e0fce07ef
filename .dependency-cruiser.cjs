'use strict';
// The layering of node/lib, checked by dependency-cruiser (`npm run
// lint:layers`, part of `make lint`; node/test/layering.test.js shows it
// catches a seeded violation). Every require points down: a wing may require
// its own files and the wings of a lower level, never one of its own level
// or above. The levels, as the requires stand:
//
//   3  demo                the demo page (node/demo.js): server.js, app.js
//   2  serve, browser      the HTTP service; the browser paths (neither knows the other)
//   1  runtime             tfjs-node and the backends, model loading, choosing, vocabulary, cli
//   0  layers, io          Keras semantics for tfjs; checked reading and writing
//                          (neither knows the other)
//
// The entry points (node/*.js, node/scripts/, node/test/) may require any of
// node/lib; node/lib requires none of them (node/worker.js is spawned by
// path, not required). And no circular requires anywhere in node/.
const LEVELS = { layers: 0, io: 0, runtime: 1, serve: 2, browser: 2, demo: 3 };

const downOnly = Object.entries(LEVELS)
  .map(([wing, level]) => {
    const notBelow = Object.keys(LEVELS).filter((w) => w !== wing && LEVELS[w] >= level);
    return {
      name: `${wing}-points-down`,
      severity: 'error',
      comment:
        `node/lib/${wing} (level ${level}) may require only ` +
        `${
          Object.keys(LEVELS)
            .filter((w) => LEVELS[w] < level)
            .join(', ') || 'itself'
        }` +
        ' (.dependency-cruiser.cjs)',
      from: { path: `^node/lib/${wing}/` },
      to: { path: `^node/lib/(${notBelow.join('|')})/` },
    };
  })
  .filter((rule) => !rule.to.path.endsWith('()/'));

module.exports = {
  forbidden: [
    ...downOnly,
    {
      name: 'lib-not-entry-points',
      severity: 'error',
      comment: 'node/lib is required by the scripts, never the other way round',
      from: { path: '^node/lib/' },
      to: { path: '^node/([^/]+\\.js$|scripts/|test/)' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'a require cycle: the layering has no order for it',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    moduleSystems: ['cjs'],
  },
};
