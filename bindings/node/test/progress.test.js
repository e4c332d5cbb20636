'use strict';
// Progress events cross from the converting thread to JavaScript; each is seen before the
// conversion goes on, and all of them before the Promise resolves.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const hypersdk = require('..');
const { MiB, scratch, makeRaw, qemuCompare } = require('./helpers');

test('progress: phases, growing byte counts, the last report at the full size', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'p.raw'), { size: 8 * MiB });
  const events = [];
  const stats = await hypersdk.convert(raw, path.join(dir, 'p.qcow2'), {
    outputFormat: 'qcow2', sourceFormat: 'raw', onProgress: (p) => { events.push(p); },
  });
  assert.ok(events.length >= 2, `${events.length} progress events`);
  for (const p of events) {
    assert.equal(p.phase, 'converting');
    assert.deepEqual(Object.keys(p).sort(), ['bytesDone', 'bytesTotal', 'currentItem', 'etaSeconds', 'finished', 'itemBytesDone',
      'itemBytesTotal', 'itemIndex', 'itemsDone', 'itemsTotal', 'jobId', 'phase', 'rateBytesPerSec']);
    assert.match(p.jobId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.ok(p.bytesTotal === 0 || p.bytesDone <= p.bytesTotal);
  }
  for (let i = 1; i < events.length; i++) assert.ok(events[i].bytesDone >= events[i - 1].bytesDone);
  // The total is what the job must read: the data runs (1 MiB of the 8), not the zeros between them.
  const last = events.at(-1);
  assert.equal(last.bytesTotal, stats.bytesRead);
  assert.equal(last.bytesDone, stats.bytesRead);
  assert.equal(stats.bytesRead, MiB);
});

test('progress: an async callback (returning a Promise) does not cancel', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'r.raw'));
  const out = path.join(dir, 'r.qcow2');
  let calls = 0;
  await hypersdk.convert(raw, out, { outputFormat: 'qcow2', sourceFormat: 'raw', onProgress: async () => { calls++; } });
  assert.ok(calls >= 1);
  assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
});

test('progress: other Promises settle while conversions run concurrently', async (t) => {
  const dir = scratch(t);
  const jobs = [1, 2, 3].map((i) => {
    const raw = makeRaw(path.join(dir, `c${i}.raw`), { seed: i });
    const seen = [];
    return hypersdk.convert(raw, path.join(dir, `c${i}.qcow2`), {
      outputFormat: 'qcow2', sourceFormat: 'raw', threads: 1, onProgress: (p) => { seen.push(p.bytesDone); },
    }).then((stats) => ({ raw, seen, stats, out: path.join(dir, `c${i}.qcow2`) }));
  });
  for (const { raw, seen, stats, out } of await Promise.all(jobs)) {
    assert.equal(seen.at(-1), stats.bytesRead);
    assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
  }
});
