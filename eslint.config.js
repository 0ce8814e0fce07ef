'use strict';
// ESLint (flat config) for the Node half: the recommended rules, Node's
// globals, CommonJS; formatting is Prettier's (eslint-config-prettier turns
// off the rules it owns). `make lint` runs both.
const js = require('@eslint/js');
const globals = require('globals');
const prettier = require('eslint-config-prettier');

module.exports = [
  { ignores: ['node_modules/', '.venv/', 'shared_models/', 'reports/'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {
      ecmaVersion: 2023,
      sourceType: 'commonjs',
      globals: { ...globals.node },
    },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
      strict: ['error', 'global'],
      'prefer-const': 'error',
      'no-var': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  {
    // Bundled for, and run in, a browser: a browser worker's page and the demo page.
    files: ['node/lib/browser/page.js', 'node/lib/demo/app.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
  prettier,
];
