'use strict';
// Garbage collection: images that are dropped without close() are freed (their file descriptors
// come back), and work still running keeps what it needs alive.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const v8 = require('node:v8');
const vm = require('node:vm');
const { setImmediate: nextTurn } = require('node:timers/promises');
const hypersdk = require('..');
const { scratch, makeRaw, qemuImg, MiB } = require('./helpers');

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

const openFds = () => fs.readdirSync('/proc/self/fd').length;

// Collects until `done()` holds; Node runs native finalizers on later turns of the loop, so each
// round gives them one. Bounded by rounds, not by time.
async function collectUntil(done, rounds = 100) {
  for (let i = 0; i < rounds && !done(); i++) {
    gc();
    await nextTurn();
  }
  return done();
}

test('images dropped without close() give their files back', async (t) => {
  const dir = scratch(t);
  const qcow2 = path.join(dir, 'g.qcow2');
  qemuImg('convert', '-f', 'raw', '-O', 'qcow2', makeRaw(path.join(dir, 'g.raw'), { size: MiB }), qcow2);
  await collectUntil(() => false, 3);
  const before = openFds();
  const count = 200;
  await (async () => {
    const images = [];
    for (let i = 0; i < count; i++) images.push(await hypersdk.openImage(qcow2));
    assert.ok(openFds() >= before + count, `${openFds() - before} descriptors for ${count} open images`);
    assert.equal((await images[count - 1].read(0, 16)).length, 16);
  })();
  assert.ok(await collectUntil(() => openFds() <= before + 2), `${openFds() - before} descriptors still open after collection`);
});

test('reads outlive the image object they were started on', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'r.raw'));
  const bytes = fs.readFileSync(raw);
  const reads = [];
  for (let i = 0; i < 20; i++) {
    // The image is unreachable as soon as read() has been called.
    reads.push((await hypersdk.openImage(raw, { format: 'raw' })).read((i % 4) * MiB, MiB).then((b) => [i, b]));
    gc();
  }
  for (const [i, b] of await Promise.all(reads)) assert.ok(b.equals(bytes.subarray((i % 4) * MiB, (i % 4 + 1) * MiB)));
});

test('conversions with callbacks and signals survive collections in between', async (t) => {
  const dir = scratch(t);
  const raw = makeRaw(path.join(dir, 'c.raw'), { size: MiB });
  for (let i = 0; i < 20; i++) {
    const out = path.join(dir, `c${i % 2}.qcow2`);
    const controller = new AbortController();
    const cancel = i % 3 === 0;
    const job = hypersdk.convert(raw, out, {
      outputFormat: 'qcow2', sourceFormat: 'raw', signal: controller.signal,
      onProgress: () => { gc(); if (cancel) controller.abort(); },
    });
    gc();
    if (cancel) await assert.rejects(job, { code: 'cancelled' });
    else assert.equal((await job).virtualSize, MiB);
  }
});
