'use strict';
// Images: reads, allocation maps (checked against qemu-img map), descriptions and backing chains.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { MiB, scratch, makeRaw, qemuImg } = require('./helpers');

// Merges a map into [start, end) ranges that hold data, so two tools' maps can be compared.
function dataRanges(runs) {
  const out = [];
  for (const { start, length, data } of runs) {
    if (!data || length === 0) continue;
    const last = out.at(-1);
    if (last && last[1] === start) last[1] += length;
    else out.push([start, start + length]);
  }
  return out;
}

test('read returns the bytes of the image, raw and qcow2 alike', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'd.raw'));
  const qcow2 = path.join(dir, 'd.qcow2');
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2);
  const bytes = fs.readFileSync(raw);
  for (const [file, format] of [[raw, 'raw'], [qcow2, undefined]]) {
    const img = await hypersdk.openImage(file, { format });
    assert.equal(img.virtualSize, 4 * MiB);
    const chunk = await img.read(512 * 1024 - 100, 300);  // spans the end of a zero gap and a data run
    assert.ok(Buffer.isBuffer(chunk));
    assert.ok(chunk.equals(bytes.subarray(512 * 1024 - 100, 512 * 1024 + 200)));
    assert.ok((await img.read(0, 4 * MiB)).equals(bytes));
    assert.equal((await img.read(4 * MiB, 0)).length, 0);
    assert.equal((await img.read(0n, 8n)).length, 8);
    await assert.rejects(img.read(4 * MiB - 8, 16), { code: 'invalid_argument' });
    img.close();
  }
});

test('blockStatus agrees with qemu-img map on where the data is', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'm.raw'));
  const qcow2 = path.join(dir, 'm.qcow2');
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2);
  const img = await hypersdk.openImage(qcow2);
  const extents = await img.blockStatus();
  assert.equal(extents.reduce((n, e) => n + e.length, 0), img.virtualSize);
  let next = 0;
  for (const e of extents) {
    assert.equal(e.offset, next);
    next += e.length;
    assert.ok(['data', 'zero', 'hole'].includes(e.kind));
    assert.equal(e.depth, 0);
    assert.ok(e.hostOffset === null || (e.kind === 'data' && Number.isInteger(e.hostOffset)));
  }
  const qemuMap = JSON.parse(qemuImg('map', '--output=json', qcow2));
  assert.deepEqual(
    dataRanges(extents.map((e) => ({ start: e.offset, length: e.length, data: e.kind === 'data' }))),
    dataRanges(qemuMap.map((m) => ({ start: m.start, length: m.length, data: m.data }))));
  // A window of the map starts and ends where asked.
  const window = await img.blockStatus(100, 1000);
  assert.equal(window[0].offset, 100);
  assert.equal(window.reduce((n, e) => n + e.length, 0), 1000);
  await assert.rejects(img.blockStatus(img.virtualSize + 1), { code: 'invalid_argument' });
  img.close();
});

test('info and chainInfo describe a qcow2 and its backing file', async (t) => {
  const dir = scratch(t);
  const base = path.join(dir, 'base.qcow2');
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', makeRaw(path.join(dir, 'b.raw')), base);
  const top = path.join(dir, 'top.qcow2');
  qemuImg('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', top);
  // Write one cluster in the top layer so the map shows both depths.
  execFileSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 64k 64k', top], { stdio: 'ignore' });

  const img = await hypersdk.openImage(top);
  assert.equal(img.info.format, 'qcow2');
  assert.equal(img.info['virtual-size'], 4 * MiB);
  assert.equal(img.info['backing-filename'], 'base.qcow2');
  assert.equal(img.info['backing-image'], undefined);
  const chain = img.chainInfo();
  assert.equal(chain['backing-image'].format, 'qcow2');
  assert.equal(path.basename(chain['backing-image'].filename), 'base.qcow2');
  const depths = new Set((await img.blockStatus()).filter((e) => e.kind === 'data').map((e) => e.depth));
  assert.deepEqual([...depths].sort(), [0, 1]);
  assert.ok((await img.read(64 * 1024, 64 * 1024)).equals(Buffer.alloc(64 * 1024, 0x5a)));
  // Each call gives a fresh object: a caller may change it freely.
  img.info.format = 'changed';
  assert.equal(img.info.format, 'qcow2');
  img.close();

  const alone = await hypersdk.openImage(top, { openBacking: false });
  assert.equal(alone.chainInfo()['backing-image'], undefined);
  alone.close();
});

test('a closed image refuses work; close is idempotent', async (t) => {
  const img = await hypersdk.openImage(makeRaw(path.join(scratch(t), 'c.raw')), { format: 'raw' });
  assert.equal(img.closed, false);
  img.close();
  img.close();
  assert.equal(img.closed, true);
  const closed = { code: 'invalid_argument', message: 'the image is closed' };
  await assert.rejects(img.read(0, 1), closed);
  await assert.rejects(img.blockStatus(), closed);
  assert.throws(() => img.virtualSize, closed);
  assert.throws(() => img.info, closed);
  assert.throws(() => img.chainInfo(), closed);
});

test('closing an image while reads run lets them finish with the right bytes', async (t) => {
  const raw = makeRaw(path.join(scratch(t), 'r.raw'));
  const bytes = fs.readFileSync(raw);
  const img = await hypersdk.openImage(raw, { format: 'raw' });
  const reads = [0, 1, 2, 3].map((i) => img.read(i * MiB, MiB));
  img.close();
  const got = await Promise.all(reads);
  got.forEach((b, i) => assert.ok(b.equals(bytes.subarray(i * MiB, (i + 1) * MiB))));
});
