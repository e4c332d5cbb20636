'use strict';
// convert, compare and check: whole-image operations that run on the thread pool.
const native = require('./native');
const args = require('./args');
const { withSignal } = require('./cancel');
const { invalidArgument } = require('./errors');

// Format options ({cluster_size: 65536, lazy_refcounts: true} or "cluster_size=65536,...") as
// the "key=value,..." text qemu-img -o takes, where a literal comma is written ",,".
function formatOptions(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return args.optionalString(value, 'options');
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidArgument(`options must be an object or a "key=value,..." string, not ${args.describe(value)}`);
  const escape = (s) => s.replaceAll(',', ',,');
  return Object.entries(value).map(([key, v]) => {
    if (key === '' || key.includes('=') || key.includes('\0')) throw invalidArgument(`options: '${key}' is not a usable option name`);
    let text;
    if (typeof v === 'boolean') text = v ? 'on' : 'off';
    else if (typeof v === 'number' || typeof v === 'bigint') text = String(v);
    else if (typeof v === 'string') text = v;
    else throw invalidArgument(`options.${key} must be a string, number or boolean, not ${args.describe(v)}`);
    if (text.includes('\0')) throw invalidArgument(`options.${key} must not contain NUL characters`);
    return `${escape(key)}=${escape(text)}`;
  }).join(',');
}

const CONVERT_OPTIONS = ['outputFormat', 'options', 'compress', 'threads', 'sourceFormat', 'allowExternalFiles',
  'overwrite', 'cache', 'onProgress', 'signal'];

/**
 * Converts source into destination. The destination appears only when complete; a failed or
 * cancelled conversion leaves nothing behind. onProgress(p) may return true to cancel.
 */
async function convert(source, destination, options) {
  source = args.path(source, 'source');
  destination = args.path(destination, 'destination');
  const o = args.options(options, CONVERT_OPTIONS, 'convert');
  const outputFormat = args.optionalString(o.outputFormat, 'outputFormat');
  if (!outputFormat) throw invalidArgument('convert: outputFormat is required (raw, qcow2, vmdk, vhd, vhdx, vdi)');
  const request = {
    outputFormat,
    options: formatOptions(o.options),
    compress: args.optionalBoolean(o.compress, 'compress'),
    threads: o.threads === undefined ? undefined : args.uint(o.threads, 'threads'),
    sourceFormat: args.optionalString(o.sourceFormat, 'sourceFormat'),
    allowExternalFiles: args.optionalBoolean(o.allowExternalFiles, 'allowExternalFiles'),
    overwrite: args.optionalBoolean(o.overwrite, 'overwrite'),
    cache: args.optionalString(o.cache, 'cache'),
    onProgress: args.optionalFunction(o.onProgress, 'onProgress'),
  };
  return withSignal(o.signal, 'convert', (cancel) => native.convert(source, destination, { ...request, cancel }));
}

const COMPARE_OPTIONS = ['aFormat', 'bFormat', 'strict'];

/** Whether two images read the same; firstDifference is the first differing byte offset. */
async function compare(a, b, options) {
  a = args.path(a, 'a');
  b = args.path(b, 'b');
  const o = args.options(options, COMPARE_OPTIONS, 'compare');
  const aFormat = args.optionalString(o.aFormat, 'aFormat');
  const bFormat = args.optionalString(o.bFormat, 'bFormat');
  const strict = args.optionalBoolean(o.strict, 'strict') ?? false;
  return native.compare(a, b, { format: aFormat }, { format: bFormat }, strict);
}

const CHECK_OPTIONS = ['format'];

/** Metadata consistency check; keys as `qemu-img check --output=json` ("check-errors", "leaks", ...) plus "clean". */
async function check(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, CHECK_OPTIONS, 'check');
  return JSON.parse(await native.check(path, { format: args.optionalString(o.format, 'format') }));
}

module.exports = { convert, compare, check, formatOptions };
