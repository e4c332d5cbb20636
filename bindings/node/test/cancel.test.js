'use strict';
// Cancellation: from the progress callback and from an AbortSignal. A cancelled conversion
// rejects with code "cancelled" and leaves no output (nor temporary) behind.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { MiB, scratch, makeRaw, qemuCompare, listing } = require('./helpers');

const CANCELLED = { name: 'HypersdkError', code: 'cancelled', status: -12 };

function job(t) {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'src.raw'), { size: 8 * MiB });
  return { dir, raw, out: path.join(dir, 'out.qcow2') };
}

test('onProgress returning true cancels; nothing is left behind', async (t) => {
  const { dir, raw, out } = job(t);
  let calls = 0;
  await assert.rejects(hypersdk.convert(raw, out, {
    outputFormat: 'qcow2', sourceFormat: 'raw', onProgress: () => { calls++; return true; },
  }), CANCELLED);
  assert.equal(calls, 1, 'the first report already stops the job');
  assert.deepEqual(listing(dir), ['src.raw']);
});

test('AbortController.abort() during the conversion cancels it', async (t) => {
  const { dir, raw, out } = job(t);
  const controller = new AbortController();
  await assert.rejects(hypersdk.convert(raw, out, {
    outputFormat: 'qcow2', sourceFormat: 'raw', signal: controller.signal, onProgress: () => { controller.abort(); },
  }), CANCELLED);
  assert.deepEqual(listing(dir), ['src.raw']);
});

test('an AbortSignal already aborted rejects at once', async (t) => {
  const { dir, raw, out } = job(t);
  let calls = 0;
  await assert.rejects(hypersdk.convert(raw, out, {
    outputFormat: 'qcow2', sourceFormat: 'raw', signal: AbortSignal.abort(), onProgress: () => { calls++; },
  }), CANCELLED);
  assert.equal(calls, 0);
  assert.deepEqual(listing(dir), ['src.raw']);
});

test('a cancelled overwrite keeps the old destination intact', async (t) => {
  const { dir, raw, out } = job(t);
  fs.writeFileSync(out, 'previous');
  await assert.rejects(hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', onProgress: () => true }), CANCELLED);
  assert.equal(fs.readFileSync(out, 'utf8'), 'previous');
  assert.deepEqual(listing(dir), ['out.qcow2', 'src.raw']);
});

test('an exception thrown by onProgress cancels and rejects with that exception', async (t) => {
  const { dir, raw, out } = job(t);
  const boom = new RangeError('callback failed');
  await assert.rejects(hypersdk.convert(raw, out, {
    outputFormat: 'qcow2', sourceFormat: 'raw', onProgress: () => { throw boom; },
  }), (err) => err === boom);
  assert.deepEqual(listing(dir), ['src.raw']);
});

test('aborting after completion changes nothing, and the listener is removed', async (t) => {
  const { raw, out } = job(t);
  const controller = new AbortController();
  await hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', signal: controller.signal });
  controller.abort();
  assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
});

test('a signal that is not an AbortSignal is an invalid argument', async (t) => {
  const { raw, out } = job(t);
  await assert.rejects(hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', signal: { aborted: true } }),
    { code: 'invalid_argument' });
});

test('abort cancels kvmManifest and verifyOva before they start', async () => {
  const vm = await hypersdk.loadVm(path.join(__dirname, '..', '..', '..', 'tests', 'data', 'ovf', 'windows2019-efi.ovf'));
  await assert.rejects(hypersdk.kvmManifest(vm, { signal: AbortSignal.abort() }), CANCELLED);
  await assert.rejects(hypersdk.verifyOva('/nonexistent.ova', { signal: AbortSignal.abort() }), CANCELLED);
});
