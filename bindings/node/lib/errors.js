'use strict';
// HypersdkError: the one error class of the package. .code is the status name the C ABI gives
// (hsdk_status_name: "not_found", "corrupt_image", ...), .status its pinned negative number.
const native = require('./native');

class HypersdkError extends Error {
  constructor(message, code, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}
// On the prototype, like Error's own name, so it stays out of enumerations and JSON.
Object.defineProperty(HypersdkError.prototype, 'name', {
  value: 'HypersdkError', writable: true, configurable: true, enumerable: false,
});

// Every status the library defines, by name, read from the library itself: {ok: 0, invalid_argument: -1, ...}.
const statusCodes = (() => {
  const codes = {};
  for (let status = 0; ; status--) {
    const name = native.statusName(status);
    if (name === 'unknown') break;
    codes[name] = status;
  }
  return Object.freeze(codes);
})();

function errorWithCode(code, message) {
  return new HypersdkError(message, code, statusCodes[code]);
}

const invalidArgument = (message) => errorWithCode('invalid_argument', message);
const unsupported = (message) => errorWithCode('unsupported', message);
const cancelled = (message) => errorWithCode('cancelled', message);

// The native half builds its errors with this class, so library failures and argument errors
// found here are the same kind of object.
native.setErrorClass(HypersdkError);

module.exports = { HypersdkError, statusCodes, invalidArgument, unsupported, cancelled };
