'use strict';
// Loads the compiled addon that scripts/build.js places in build/Release (with libhypersdk.so
// beside it, found through the addon's $ORIGIN run path).
const path = require('node:path');

const file = path.join(__dirname, '..', 'build', 'Release', 'hypersdk.node');

function load() {
  try {
    return require(file);
  } catch (err) {
    err.message = `hypersdk: cannot load the native addon ${file}; build it with \`npm run build\` ` +
      `in bindings/node (see README.md): ${err.message}`;
    throw err;
  }
}

module.exports = load();
