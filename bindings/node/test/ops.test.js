'use strict';
// The operation model from Node: run(), start() and Job (await, wait, cancel, info), requests that
// name the bad field by JSON pointer, queued jobs cancelled without running, callbacks that throw,
// and secrets kept out of what a job shows.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { MiB, scratch, makeRaw, qemuCompare, listing } = require('./helpers');

const CANCELLED = { name: 'HypersdkError', code: 'cancelled' };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

test('run() gives the operation result, with the schema\'s keys', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'a.raw'));
  const info = await hypersdk.run('image.info', { path: raw, format: 'raw' });
  assert.equal(info['virtual-size'], 4 * MiB);
  assert.equal(info.format, 'raw');
  const out = path.join(dir, 'a.qcow2');
  const stats = await hypersdk.run('image.convert', { source: raw, source_format: 'raw', destination: out, output_format: 'qcow2',
    options: { cluster_size: 65536 } });
  assert.equal(stats.virtual_size, 4 * MiB);
  assert.equal(typeof stats.bytes_written, 'number');
  assert.equal(qemuCompare(raw, 'raw', out, 'qcow2').identical, true);
  assert.deepEqual(await hypersdk.run('image.compare', { a: raw, a_format: 'raw', b: out }),
    { identical: true, first_difference: null, reason: '', a_virtual_size: 4 * MiB, b_virtual_size: 4 * MiB });
  const formats = await hypersdk.run('image.formats', {});
  assert.ok(formats.writable.includes('vhdx'));
  const ops = hypersdk.operations();
  assert.equal(ops['image.convert'].long_running, true);
  assert.equal(ops['image.convert'].request.required.includes('output_format'), true);
  assert.ok(Object.keys(ops).includes('export.run'));
});

test('compressed and encrypted outputs through the operations, read back directly', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'a.raw'));
  process.env.HSDK_NODE_PASS = 'a node passphrase';
  const out = path.join(dir, 'a.raw.lz4');
  const res = await hypersdk.run('image.convert', { source: raw, source_format: 'raw', destination: out, output_format: 'raw',
    compress: 'lz4', encrypt: true, passphrase_env: 'HSDK_NODE_PASS' });
  assert.equal(res.compression, 'lz4');
  assert.deepEqual(res.encryption, { method: 'aes-256-gcm', key: 'passphrase', recipients: [] });
  assert.equal(fs.readFileSync(out).subarray(0, 8).toString('latin1'), 'HSDKENC\0');
  const cmp = await hypersdk.run('image.compare', { a: raw, a_format: 'raw', b: out, b_format: 'raw',
    decrypt: { passphrase_env: 'HSDK_NODE_PASS' } });
  assert.equal(cmp.identical, true);
  await assert.rejects(hypersdk.run('image.compare', { a: raw, a_format: 'raw', b: out, b_format: 'raw' }),
    { code: 'invalid_argument' });
});

test('bad requests reject with invalid_argument naming the field by JSON pointer', async () => {
  await assert.rejects(hypersdk.run('image.convert', { source: 'a', destination: 'b', output_format: 'raw', threads: '4' }),
    { code: 'invalid_argument', message: /\/threads: expected integer, got string/ });
  await assert.rejects(hypersdk.run('image.convert', { source: 'a', destination: 'b', output_format: 'qcow2', options: { cluster_size: '64k' } }),
    { code: 'invalid_argument', message: /\/options\/cluster_size: expected integer, got string/ });
  assert.throws(() => hypersdk.start('image.convert', { source: 'a', destnation: 'b', output_format: 'raw' }),
    { code: 'invalid_argument', message: /\/destnation: unknown field/ });
  await assert.rejects(hypersdk.run('image.nope', {}), { code: 'invalid_argument', message: /unknown operation 'image.nope'/ });
  await assert.rejects(hypersdk.run('image.info', []), { code: 'invalid_argument', message: /request must be an object/ });
  await assert.rejects(hypersdk.run('image.info', { path: '/nonexistent/disk.qcow2' }), { code: 'not_found', status: -2 });
});

test('start(): a job with an id and a state, awaitable, its progress tagged with its id', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'b.raw'), { size: 16 * MiB });
  const events = [];
  const job = hypersdk.start('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'b.vhdx'), output_format: 'vhdx' },
    { onProgress: (p) => { events.push(p); } });
  assert.match(job.id, UUID);
  assert.equal(job.operation, 'image.convert');
  assert.ok(['queued', 'running', 'succeeded'].includes(job.state));
  const result = await job;
  assert.equal(result.virtual_size, 16 * MiB);
  assert.deepEqual(await job.wait(), result);
  assert.equal(job.state, 'succeeded');
  assert.ok(events.length >= 1 && events.every((e) => e.jobId === job.id));
  assert.equal(events.at(-1).bytesDone, events.at(-1).bytesTotal);
  const info = job.info();
  assert.equal(info.id, job.id);
  assert.equal(info.state, 'succeeded');
  assert.equal(info.request.cache, 'none', 'the request as run, defaults filled');
});

test('a failed job rejects with its error; one nobody awaits does not end the process', async (t) => {
  const dir = scratch(t);
  await assert.rejects(hypersdk.start('image.check', { path: path.join(dir, 'missing.qcow2') }).wait(), { code: 'not_found' });
  await assert.rejects(async () => { await hypersdk.start('image.check', { path: path.join(dir, 'missing.qcow2') }); }, { code: 'not_found' });
  const ignored = hypersdk.start('image.check', { path: path.join(dir, 'also-missing.qcow2') });
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(ignored.state, 'failed');
});

test('cancel() and an AbortSignal stop a running job; nothing is left behind', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'c.raw'), { size: 32 * MiB });
  let job;
  job = hypersdk.start('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'c.qcow2'), output_format: 'qcow2' },
    { onProgress: () => { job.cancel(); } });
  await assert.rejects(job.wait(), CANCELLED);
  assert.equal(job.state, 'cancelled');
  const controller = new AbortController();
  await assert.rejects(hypersdk.run('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'd.qcow2'), output_format: 'qcow2' },
    { signal: controller.signal, onProgress: () => { controller.abort(); } }), CANCELLED);
  assert.throws(() => hypersdk.start('image.info', { path: raw }, { signal: AbortSignal.abort() }), CANCELLED);
  assert.deepEqual(listing(dir), ['c.raw']);
});

test('a queued job is cancelled at once, without running', async (t) => {
  const dir = scratch(t);
  const before = hypersdk.executorStats().jobs.limit;
  hypersdk.configureExecutor({ maxJobs: 1 });
  t.after(() => hypersdk.configureExecutor({ maxJobs: before }));
  assert.equal(hypersdk.executorStats().jobs.limit, 1);
  const raw = makeRaw(path.join(dir, 'e.raw'), { size: 32 * MiB });
  const ran = [];
  let second = null;
  let seen = null;
  // The first job holds the only slot, and waits while its progress callback runs: inside it, the
  // second job can only be queued.
  const first = hypersdk.start('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'e1.raw'), output_format: 'raw' },
    { onProgress: () => {
      if (second) return;
      second = hypersdk.start('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'e2.raw'), output_format: 'raw' },
        { onProgress: (p) => { ran.push(p); } });
      seen = [first.state, second.state];
      second.cancel();
      seen.push(second.state);
    } });
  await first;
  assert.deepEqual(seen, ['running', 'queued', 'cancelled']);
  await assert.rejects(second.wait(), CANCELLED);
  assert.deepEqual(ran, []);
  assert.equal(fs.existsSync(path.join(dir, 'e2.raw')), false);
});

test('an exception thrown by onProgress cancels the job and is what it rejects with', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'f.raw'), { size: 16 * MiB });
  const boom = new RangeError('from the callback');
  const job = hypersdk.start('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'f.qcow2'), output_format: 'qcow2' },
    { onProgress: () => { throw boom; } });
  await assert.rejects(job.wait(), (err) => err === boom);
  assert.equal(job.state, 'cancelled');
  await assert.rejects(hypersdk.run('image.convert', { source: raw, source_format: 'raw', destination: path.join(dir, 'g.qcow2'), output_format: 'qcow2' },
    { onProgress: () => { throw boom; } }), (err) => err === boom);
  assert.deepEqual(listing(dir), ['f.raw']);
});

test('a password in a request never shows in the job\'s info or its error', async () => {
  const secret = `pa55-${crypto.randomBytes(6).toString('hex')}`;
  // A closed port on loopback: the export fails to connect at once, with one attempt.
  const job = hypersdk.start('export.run', { vm: '/DC0/vm/x', output_dir: '/nonexistent/out',
    connection: { url: 'https://127.0.0.1:9/sdk', username: 'u', password: secret, max_attempts: 1 } });
  const err = await job.wait().catch((e) => e);
  assert.ok(err instanceof hypersdk.HypersdkError);
  const info = job.info();
  assert.equal(info.request.connection.password, '********');
  assert.ok(!JSON.stringify(info).includes(secret));
  assert.ok(!String(err.message).includes(secret));
});

test('deltas and chains: a local diff as a qcow2 overlay, verified and flattened', async (t) => {
  const dir = scratch(t);
  const base = makeRaw(path.join(dir, 'base.raw'), { seed: 7 });
  const changed = fs.readFileSync(base);
  changed.fill(0x5a, 2 * MiB, 2 * MiB + 4096);
  const next = path.join(dir, 'new.raw');
  fs.writeFileSync(next, changed);
  await hypersdk.run('image.convert', { source: base, source_format: 'raw', destination: path.join(dir, 'base.qcow2'),
    output_format: 'qcow2' });
  const delta = await hypersdk.run('delta.create', { base, new: next, format: 'raw', backing: 'base.qcow2',
    output: path.join(dir, 'd.qcow2') });
  assert.equal(delta.backing_format, 'qcow2');
  assert.equal(delta.changed_bytes, 65536);
  const report = await hypersdk.run('chain.verify', { path: path.join(dir, 'd.qcow2') });
  assert.equal(report.ok, true);
  assert.deepEqual(report.links.map((l) => path.basename(l.file)), ['d.qcow2', 'base.qcow2']);
  assert.equal(qemuCompare(next, 'raw', path.join(dir, 'd.qcow2'), 'qcow2').identical, true);
  await assert.rejects(hypersdk.run('backup.list', { repo: path.join(dir, 'none') }), { name: 'HypersdkError', code: 'not_found' });
});
