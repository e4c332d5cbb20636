'use strict';
// hypersdk for Node.js: the public API over libhypersdk's C ABI. Long calls return Promises and
// run on the libuv thread pool; every failure is a HypersdkError with .code and .status.
const native = require('./native');
const { HypersdkError, statusCodes } = require('./errors');
const { Image, openImage, probeFormat } = require('./image');
const { convert, compare, check } = require('./convert');
const { loadVm, kvmDomainXml, kvmManifest, verifyOva } = require('./vm');

/** Version of the libhypersdk actually loaded, e.g. "0.1.0". */
function version() {
  return native.version();
}

module.exports = {
  version,
  HypersdkError,
  statusCodes,
  Image,
  openImage,
  probeFormat,
  convert,
  compare,
  check,
  loadVm,
  kvmDomainXml,
  kvmManifest,
  verifyOva,
};
