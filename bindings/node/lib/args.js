'use strict';
// Argument checks shared by the public functions. Every mistake becomes a HypersdkError with code
// "invalid_argument" (errors.md: "the caller passed something unusable"), so callers have one
// kind of error to handle whatever went wrong.
const { fileURLToPath } = require('node:url');
const { invalidArgument } = require('./errors');

function describe(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`;
}

// A file path as a string or a file: URL.
function path(value, what) {
  if (value instanceof URL) {
    try {
      return fileURLToPath(value);
    } catch (err) {
      throw invalidArgument(`${what}: ${err.message}`);
    }
  }
  if (typeof value !== 'string' || value === '') throw invalidArgument(`${what} must be a non-empty path string or file: URL, not ${describe(value)}`);
  if (value.includes('\0')) throw invalidArgument(`${what} must not contain NUL characters`);
  return value;
}

// The options object of a function: undefined means {}, and a key it does not know is an error
// (a misspelt option must not be silently ignored).
function options(value, known, fn) {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(`${fn}: options must be an object, not ${describe(value)}`);
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw invalidArgument(`${fn}: unknown option '${key}' (known: ${known.join(', ')})`);
  }
  return value;
}

function optionalString(value, what) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalidArgument(`${what} must be a string, not ${describe(value)}`);
  if (value.includes('\0')) throw invalidArgument(`${what} must not contain NUL characters`);
  return value;
}

function optionalBoolean(value, what) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'boolean') throw invalidArgument(`${what} must be a boolean, not ${describe(value)}`);
  return value;
}

// A byte offset or count: a non-negative safe integer, or a bigint that fits one.
function uint(value, what) {
  if (typeof value === 'bigint') {
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) throw invalidArgument(`${what} must be between 0 and 2^53-1`);
    return Number(value);
  }
  if (!Number.isSafeInteger(value) || value < 0) throw invalidArgument(`${what} must be a non-negative integer, not ${describe(value)}`);
  return value;
}

function optionalFunction(value, what) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'function') throw invalidArgument(`${what} must be a function, not ${describe(value)}`);
  return value;
}

module.exports = { path, options, optionalString, optionalBoolean, uint, optionalFunction, describe };
