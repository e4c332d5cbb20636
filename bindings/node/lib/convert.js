'use strict';
// convert, compare and check: requests to the image.convert, image.compare and image.check
// operations, with the argument names and result shapes this package has always had.
const args = require('./args');
const { run } = require('./ops');
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
    source,
    destination,
    output_format: outputFormat,
    options: formatOptions(o.options),
    compress: args.optionalBoolean(o.compress, 'compress'),
    threads: o.threads === undefined ? undefined : args.uint(o.threads, 'threads'),
    source_format: args.optionalString(o.sourceFormat, 'sourceFormat'),
    allow_external_files: args.optionalBoolean(o.allowExternalFiles, 'allowExternalFiles'),
    overwrite: args.optionalBoolean(o.overwrite, 'overwrite'),
    cache: args.optionalString(o.cache, 'cache'),
  };
  const onProgress = args.optionalFunction(o.onProgress, 'onProgress');
  const r = await run('image.convert', request, { signal: o.signal, onProgress });
  return { virtualSize: r.virtual_size, bytesRead: r.bytes_read, bytesWritten: r.bytes_written, outputSize: r.output_size, seconds: r.seconds };
}

const COMPARE_OPTIONS = ['aFormat', 'bFormat', 'strict', 'signal'];

/** Whether two images read the same; firstDifference is the first differing byte offset. */
async function compare(a, b, options) {
  a = args.path(a, 'a');
  b = args.path(b, 'b');
  const o = args.options(options, COMPARE_OPTIONS, 'compare');
  const aFormat = args.optionalString(o.aFormat, 'aFormat');
  const bFormat = args.optionalString(o.bFormat, 'bFormat');
  const strict = args.optionalBoolean(o.strict, 'strict') ?? false;
  const r = await run('image.compare', { a, b, a_format: aFormat, b_format: bFormat, strict }, { signal: o.signal });
  return { identical: r.identical, firstDifference: r.first_difference ?? null };
}

const CHECK_OPTIONS = ['format', 'signal'];

/** Metadata consistency check; keys as `qemu-img check --output=json` ("check-errors", "leaks", ...) plus "clean". */
async function check(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, CHECK_OPTIONS, 'check');
  return run('image.check', { path, format: args.optionalString(o.format, 'format') }, { signal: o.signal });
}

module.exports = { convert, compare, check, formatOptions };
