'use strict';
// The addon in worker_threads: each Worker has its own instance, and terminating a Worker in
// the middle of a conversion (its progress callback waiting on the JavaScript thread that goes
// away) neither hangs nor crashes the process, nor leaves a temporary file.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const { MiB, scratch, makeRaw, qemuCompare } = require('./helpers');

const PKG = path.resolve(__dirname, '..');

// Converts in a Worker; the Worker reports each progress event and the outcome.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const hypersdk = require(workerData.pkg);
hypersdk.convert(workerData.source, workerData.out, {
  outputFormat: 'qcow2', sourceFormat: 'raw', threads: 1,
  onProgress: (p) => { parentPort.postMessage({ progress: p.bytesDone }); },
}).then((s) => parentPort.postMessage({ done: s.virtualSize }), (e) => parentPort.postMessage({ error: e.code }));
`;

function runWorker(workerData, onMessage) {
  return new Promise((resolve, reject) => {
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData });
    const messages = [];
    w.on('message', (m) => { messages.push(m); onMessage(w, m); });
    w.on('error', reject);
    w.on('exit', (code) => resolve({ code, messages }));
  });
}

test('a conversion completes inside a Worker', async (t) => {
  const dir = scratch(t);
  const source = makeRaw(path.join(dir, 'w.raw'), { size: 2 * MiB });
  const out = path.join(dir, 'w.qcow2');
  const { code, messages } = await runWorker({ pkg: PKG, source, out }, () => {});
  assert.equal(code, 0);
  assert.deepEqual(messages.at(-1), { done: 2 * MiB });
  assert.equal(qemuCompare(source, 'raw', out, 'qcow2').identical, true);
});

test('terminating a Worker at its first progress report is clean', async (t) => {
  const dir = scratch(t);
  const source = makeRaw(path.join(dir, 't.raw'), { size: 32 * MiB });
  const out = path.join(dir, 't.qcow2');
  for (let i = 0; i < 5; i++) {
    const { code, messages } = await runWorker({ pkg: PKG, source, out }, (w, m) => { if ('progress' in m) w.terminate(); });
    assert.ok(messages.length >= 1 && 'progress' in messages[0]);
    // Terminated (exit code 1), unless the job happened to finish first.
    assert.ok(code === 1 || messages.some((m) => 'done' in m), `exit code ${code}`);
    const left = fs.readdirSync(dir).sort();
    assert.ok(left.every((f) => f === 't.raw' || f === 't.qcow2'), `left behind: ${left}`);
    if (left.includes('t.qcow2')) assert.equal(qemuCompare(source, 'raw', out, 'qcow2').identical, true);
  }
});
