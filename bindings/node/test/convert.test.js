'use strict';
// Conversions between raw and qcow2, judged by qemu-img.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { MiB, scratch, makeRaw, qemuImg, qemuCompare, qemuCheck, qemuInfo, listing } = require('./helpers');

test('raw -> qcow2: qemu-img finds it clean and identical to the source', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'disk.raw'));
  const out = path.join(dir, 'disk.qcow2');
  const stats = await hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw' });
  assert.equal(stats.virtualSize, 4 * MiB);
  assert.equal(stats.outputSize, fs.statSync(out).size);
  assert.ok(stats.bytesRead > 0 && stats.seconds >= 0);
  assert.equal(qemuCheck(out, 'qcow2').format, 'qcow2');
  assert.equal(qemuInfo(out)['virtual-size'], 4 * MiB);
  assert.deepEqual(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
  assert.equal(await hypersdk.probeFormat(out), 'qcow2');
});

test('qcow2 made by qemu-img -> raw, probed by signature', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'src.raw'), { seed: 7 });
  const qcow2 = path.join(dir, 'src.qcow2');
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2);
  const back = path.join(dir, 'back.raw');
  const stats = await hypersdk.convert(qcow2, back, { outputFormat: 'raw' });
  assert.equal(stats.virtualSize, 4 * MiB);
  assert.equal(fs.statSync(back).size, 4 * MiB);
  assert.ok(fs.readFileSync(back).equals(fs.readFileSync(raw)));
  assert.equal(qemuCompare(qcow2, 'qcow2', back, 'raw').identical, true);
});

test('format options as an object and as a string reach the writer', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'disk.raw'));
  const a = path.join(dir, 'a.qcow2');
  const b = path.join(dir, 'b.qcow2');
  await hypersdk.convert(raw, a, { outputFormat: 'qcow2', sourceFormat: 'raw', options: { cluster_size: 131072 } });
  await hypersdk.convert(raw, b, { outputFormat: 'qcow2', sourceFormat: 'raw', options: 'cluster_size=4096' });
  assert.equal(qemuInfo(a)['cluster-size'], 131072);
  assert.equal(qemuInfo(b)['cluster-size'], 4096);
  for (const f of [a, b]) assert.equal(qemuCompare(raw, 'raw', f, 'qcow2').identical, true);
});

test('compressed qcow2 is clean, identical and smaller for compressible data', async (t) => {
  const dir = scratch(t);
  const raw = path.join(dir, 'text.raw');
  fs.writeFileSync(raw, Buffer.alloc(2 * MiB, 'hypersdk compresses this line well\n'));
  const out = path.join(dir, 'text.qcow2');
  await hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', compress: true, threads: 2 });
  qemuCheck(out, 'qcow2');
  assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
  assert.ok(fs.statSync(out).size < MiB, `compressed output is ${fs.statSync(out).size} bytes`);
});

test('cache modes write the same image; an unknown one is refused', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'disk.raw'));
  for (const cache of ['none', 'writeback', 'unsafe']) {
    const out = path.join(dir, `${cache}.qcow2`);
    await hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', cache });
    qemuCheck(out, 'qcow2');
    assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
  }
  const never = path.join(dir, 'never.qcow2');
  await assert.rejects(hypersdk.convert(raw, never, { outputFormat: 'qcow2', sourceFormat: 'raw', cache: 'often' }),
    { name: 'HypersdkError', code: 'invalid_argument', message: /\/cache: expected one of none, writeback or unsafe, got 'often'/ });
  assert.equal(fs.existsSync(never), false);
});

test('overwrite: false refuses an existing destination and leaves it untouched', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'disk.raw'));
  const out = path.join(dir, 'out.qcow2');
  fs.writeFileSync(out, 'keep me');
  await assert.rejects(hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', overwrite: false }),
    { name: 'HypersdkError', code: 'conflict', status: -15 });
  assert.equal(fs.readFileSync(out, 'utf8'), 'keep me');
  await hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw' });  // overwrite defaults to true
  assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
  assert.deepEqual(listing(dir), ['disk.raw', 'out.qcow2']);
});

test('compare: identical images, then the first differing byte', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'a.raw'));
  const qcow2 = path.join(dir, 'a.qcow2');
  await hypersdk.convert(raw, qcow2, { outputFormat: 'qcow2', sourceFormat: 'raw' });
  assert.deepEqual(await hypersdk.compare(raw, qcow2, { aFormat: 'raw' }), { identical: true, firstDifference: null });
  const changed = path.join(dir, 'b.raw');
  fs.copyFileSync(raw, changed);
  const fd = fs.openSync(changed, 'r+');
  fs.writeSync(fd, Buffer.from([0x5a]), 0, 1, 1234567);  // inside the zero gap after the first data run
  fs.closeSync(fd);
  assert.deepEqual(await hypersdk.compare(qcow2, changed, { bFormat: 'raw' }), { identical: false, firstDifference: 1234567 });
});

test('compare: a zero tail counts as equal unless strict', async (t) => {
  const dir = scratch(t);
  const small = makeRaw(path.join(dir, 'small.raw'), { size: MiB });
  const big = path.join(dir, 'big.raw');
  fs.copyFileSync(small, big);
  fs.truncateSync(big, 2 * MiB);
  assert.equal((await hypersdk.compare(small, big, { aFormat: 'raw', bFormat: 'raw' })).identical, true);
  assert.equal((await hypersdk.compare(small, big, { aFormat: 'raw', bFormat: 'raw', strict: true })).identical, false);
});

test('check: our qcow2 output is clean; keys follow qemu-img check', async (t) => {
  const dir = scratch(t);
  const out = path.join(dir, 'c.qcow2');
  await hypersdk.convert(makeRaw(path.join(dir, 'c.raw')), out, { outputFormat: 'qcow2', sourceFormat: 'raw' });
  const report = await hypersdk.check(out);
  assert.equal(report.format, 'qcow2');
  assert.equal(report.clean, true);
  assert.equal(report.corruptions, 0);
  assert.equal(report['check-errors'], 0);
  assert.equal(report.leaks, 0);
  assert.equal(report['image-end-offset'], qemuCheck(out, 'qcow2')['image-end-offset']);
});

test('paths may be file: URLs', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'u.raw'));
  const out = new URL(`file://${path.join(dir, 'u.qcow2')}`);
  await hypersdk.convert(new URL(`file://${raw}`), out, { outputFormat: 'qcow2', sourceFormat: 'raw' });
  assert.equal(qemuCompare(raw, 'raw', path.join(dir, 'u.qcow2'), 'qcow2').identical, true);
});
