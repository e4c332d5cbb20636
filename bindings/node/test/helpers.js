'use strict';
// Shared by the tests: a scratch folder per test, deterministic images, and qemu-img as the judge.
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const OVF_DIR = path.join(ROOT, 'tests', 'data', 'ovf');
const MiB = 1024 * 1024;

// A folder removed when the test ends.
function scratch(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hypersdk-node-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Deterministic bytes (xorshift32), so every run converts the same images.
function pseudoRandom(length, seed) {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out.writeUInt32LE(x, i);
  }
  return out;
}

// A raw image of `size` bytes: 64 KiB of data every 512 KiB, zeros (a hole) in between.
function makeRaw(file, { size = 4 * MiB, seed = 1 } = {}) {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, size);
    for (let off = 0; off < size; off += 512 * 1024) {
      fs.writeSync(fd, pseudoRandom(Math.min(64 * 1024, size - off), seed + off), 0, undefined, off);
    }
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

function qemuImg(...args) {
  return execFileSync('qemu-img', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

// qemu-img compare: exit 0 identical, 1 different, anything else an error.
function qemuCompare(a, aFormat, b, bFormat) {
  const r = spawnSync('qemu-img', ['compare', '-f', aFormat, '-F', bFormat, a, b], { encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 1) throw new Error(`qemu-img compare failed: ${r.stderr}`);
  return { identical: r.status === 0, output: r.stdout.trim() };
}

// qemu-img check run from the image's folder (qemu resolves relative data files against its cwd).
function qemuCheck(file, format) {
  const r = spawnSync('qemu-img', ['check', '--output=json', '-f', format, path.basename(file)],
    { encoding: 'utf8', cwd: path.dirname(file) });
  if (r.status !== 0) throw new Error(`qemu-img check of ${file} exited ${r.status}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

function qemuInfo(file) {
  return JSON.parse(qemuImg('info', '--output=json', file));
}

// The files of a folder, to prove that a failed job left nothing behind (not even a temporary).
function listing(dir) {
  return fs.readdirSync(dir).sort();
}

module.exports = { ROOT, OVF_DIR, MiB, scratch, pseudoRandom, makeRaw, qemuImg, qemuCompare, qemuCheck, qemuInfo, listing };
