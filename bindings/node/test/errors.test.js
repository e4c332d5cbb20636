'use strict';
// Every failure is a HypersdkError whose .code and .status are the C ABI's.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { ROOT, scratch, makeRaw } = require('./helpers');

const { HypersdkError } = hypersdk;

test('HypersdkError is an Error with name, code and status', () => {
  const e = new HypersdkError('it failed', 'io_error', -5);
  assert.ok(e instanceof Error);
  assert.equal(e.name, 'HypersdkError');
  assert.equal(e.message, 'it failed');
  assert.equal(e.code, 'io_error');
  assert.equal(e.status, -5);
  assert.match(String(e), /^HypersdkError: it failed$/);
  assert.ok(e.stack.includes('errors.test.js'));
});

test('statusCodes lists every HSDK_E_* of hypersdk.h under its hsdk_status_name', () => {
  const header = fs.readFileSync(path.join(ROOT, 'capi', 'include', 'hypersdk.h'), 'utf8');
  const defined = [...header.matchAll(/^#define HSDK_E_(\w+) \((-\d+)\)$/gm)].map((m) => Number(m[2]));
  assert.ok(defined.length >= 17);
  const byStatus = new Map(Object.entries(hypersdk.statusCodes).map(([name, status]) => [status, name]));
  assert.equal(byStatus.get(0), 'ok');
  for (const status of defined) assert.ok(byStatus.has(status), `status ${status} has a name`);
  assert.equal(byStatus.size, defined.length + 1);
  // Names as docs/errors.md lists them.
  const doc = fs.readFileSync(path.join(ROOT, 'docs', 'errors.md'), 'utf8');
  for (const name of byStatus.values()) assert.ok(doc.includes(`| ${name} |`), `${name} in docs/errors.md`);
});

test('a missing file is not_found, from every function that opens one', async (t) => {
  const missing = path.join(scratch(t), 'missing.qcow2');
  const notFound = { name: 'HypersdkError', code: 'not_found', status: -2 };
  await assert.rejects(hypersdk.openImage(missing), notFound);
  await assert.rejects(hypersdk.probeFormat(missing), notFound);
  await assert.rejects(hypersdk.check(missing), notFound);
  await assert.rejects(hypersdk.convert(missing, `${missing}.out`, { outputFormat: 'raw' }), notFound);
  await assert.rejects(hypersdk.compare(missing, missing), notFound);
  await assert.rejects(hypersdk.loadVm(`${missing}.ovf`), notFound);
  const err = await hypersdk.openImage(missing).catch((e) => e);
  assert.ok(err instanceof HypersdkError);
  assert.ok(err.message.includes(missing), err.message);
});

test('raw is never guessed: probing a raw file is unsupported', async (t) => {
  const raw = makeRaw(path.join(scratch(t), 'disk.raw'));
  await assert.rejects(hypersdk.probeFormat(raw), { code: 'unsupported', status: -3 });
  await assert.rejects(hypersdk.openImage(raw), { code: 'unsupported', status: -3 });
  const img = await hypersdk.openImage(raw, { format: 'raw' });
  assert.equal(img.info.format, 'raw');
  img.close();
});

test('a bad format option is invalid_argument, and no output appears', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'disk.raw'));
  const out = path.join(dir, 'out.qcow2');
  await assert.rejects(hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', options: { nonsense: 1 } }),
    (err) => err instanceof HypersdkError && err.code === 'invalid_argument' && err.status === -1 && /nonsense/.test(err.message));
  await assert.rejects(hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', options: 'cluster_size' }),
    { code: 'invalid_argument' });
  await assert.rejects(hypersdk.convert(raw, out, { outputFormat: 'no-such-format', sourceFormat: 'raw' }), { code: 'invalid_argument' });
  assert.equal(fs.existsSync(out), false);
});

test('a damaged qcow2 header is reported, not crashed on', async (t) => {
  const file = path.join(scratch(t), 'bad.qcow2');
  fs.writeFileSync(file, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(200, 0xff)]));
  const err = await hypersdk.openImage(file).catch((e) => e);
  assert.ok(err instanceof HypersdkError);
  assert.ok(['unsupported', 'corrupt_image'].includes(err.code), err.code);
  assert.equal(err.status, hypersdk.statusCodes[err.code]);
});

test('argument mistakes are invalid_argument HypersdkErrors (rejected, never thrown synchronously)', async () => {
  const bad = { code: 'invalid_argument', status: -1 };
  const p = hypersdk.openImage(42);
  assert.ok(p instanceof Promise);
  await assert.rejects(p, bad);
  await assert.rejects(hypersdk.openImage('x', { fromat: 'raw' }), (e) => e.code === 'invalid_argument' && /unknown option 'fromat'/.test(e.message));
  await assert.rejects(hypersdk.openImage('x', { format: 7 }), bad);
  await assert.rejects(hypersdk.openImage('a\0b'), bad);
  await assert.rejects(hypersdk.convert('a', 'b', {}), (e) => e.code === 'invalid_argument' && /outputFormat/.test(e.message));
  await assert.rejects(hypersdk.convert('a', 'b', { outputFormat: 'raw', threads: -1 }), bad);
  await assert.rejects(hypersdk.convert('a', 'b', { outputFormat: 'raw', onProgress: 'yes' }), bad);
  await assert.rejects(hypersdk.convert('a', 'b', { outputFormat: 'raw', options: { 'a=b': 1 } }), bad);
  await assert.rejects(hypersdk.convert('a', 'b', { outputFormat: 'raw', options: { nested: {} } }), bad);
  await assert.rejects(hypersdk.compare('a', 'b', { strict: 'yes' }), bad);
  assert.throws(() => new hypersdk.Image(), bad);
});
