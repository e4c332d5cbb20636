'use strict';
// hypersdk for Node.js: the public API over libhypersdk's C ABI. Every operation of the library's
// registry runs through run()/start() (docs/api.md); the other functions are requests to those
// operations with this package's long-standing names. Long calls return Promises; every failure is
// a HypersdkError with .code and .status.
const native = require('./native');
const { HypersdkError, statusCodes } = require('./errors');
const { Image, openImage, probeFormat } = require('./image');
const { convert, compare, check } = require('./convert');
const { loadVm, kvmDomainXml, kvmManifest, verifyOva } = require('./vm');
const { run, start, Job, operations, configureExecutor, executorStats } = require('./ops');
// The REST client with the original HyperSDK TypeScript SDK's API (hypervisord, or in-process).
const client = require('./client');

/** Version of the libhypersdk actually loaded, e.g. "0.2.0". */
function version() {
  return native.version();
}

module.exports = {
  version,
  run,
  start,
  Job,
  operations,
  configureExecutor,
  executorStats,
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
  HyperSDK: client.HyperSDK,
  HyperSDKError: client.HyperSDKError,
  AuthenticationError: client.AuthenticationError,
  JobNotFoundError: client.JobNotFoundError,
  APIError: client.APIError,
  ValidationError: client.ValidationError,
  WebSocketError: client.WebSocketError,
  JobStatus: client.JobStatus,
  ExportFormat: client.ExportFormat,
  ExportMethod: client.ExportMethod,
};
