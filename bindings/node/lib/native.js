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

const addon = load();

// The in-process service (HyperSDK() without a URL): hypervisord's routes served by the library,
// no daemon. Resolves with {status, contentType, headers, body: Buffer}.
addon.serviceRequest = async function serviceRequest(method, target, body, headers) {
  const text = Buffer.isBuffer(body) ? body.toString('utf8') : (body == null ? '' : String(body));
  const reply = JSON.parse(await addon.serviceRequestJson(JSON.stringify({
    method, target, headers: headers || {}, body: text,
  })));
  return {
    status: reply.status,
    contentType: reply.content_type,
    headers: reply.headers,
    body: Buffer.from(reply.body, 'utf8'),
  };
};

module.exports = addon;
