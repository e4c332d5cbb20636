'use strict';
// verifyOva and loadVm over OVA packages built here with a small tar writer.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { OVF_DIR, scratch, pseudoRandom } = require('./helpers');
const { tar } = require('./tar');

const OVF_NAME = 'web01.ovf';
const DISK_NAME = 'web01-disk1.vmdk';  // the file linux-bios-vcenter.ovf references

const sha256 = (data) => crypto.createHash('sha256').update(data).digest('hex');

function packageFiles() {
  const ovf = fs.readFileSync(path.join(OVF_DIR, 'linux-bios-vcenter.ovf'));
  const disk = pseudoRandom(256 * 1024, 42);
  const mf = `SHA256(${OVF_NAME})= ${sha256(ovf)}\nSHA256(${DISK_NAME})= ${sha256(disk)}\n`;
  return { ovf, disk, mf };
}

function writeOva(dir, name, members) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, tar(members));
  return file;
}

test('a well-formed OVA verifies, and GNU tar reads the same members', async (t) => {
  const dir = scratch(t);
  const { ovf, disk, mf } = packageFiles();
  const ova = writeOva(dir, 'web01.ova', [
    { name: OVF_NAME, data: ovf }, { name: DISK_NAME, data: disk }, { name: 'web01.mf', data: mf }]);
  assert.deepEqual(execFileSync('tar', ['-tf', ova], { encoding: 'utf8' }).trim().split('\n'), [OVF_NAME, DISK_NAME, 'web01.mf']);

  const report = await hypersdk.verifyOva(ova);
  assert.deepEqual(report, {
    descriptor: OVF_NAME, manifest: 'web01.mf', verified: [OVF_NAME, DISK_NAME], problems: [], ok: true,
  });
  const vm = await hypersdk.loadVm(ova);
  assert.equal(vm.name, 'web01');
  assert.equal(vm.disks[0].file, DISK_NAME);
});

test('a digest that does not match is a problem, not an exception', async (t) => {
  const dir = scratch(t);
  const { ovf, disk, mf } = packageFiles();
  const tampered = Buffer.from(disk);
  tampered[1000] ^= 0xff;
  const ova = writeOva(dir, 'bad.ova', [
    { name: OVF_NAME, data: ovf }, { name: DISK_NAME, data: tampered }, { name: 'web01.mf', data: mf }]);
  const report = await hypersdk.verifyOva(ova);
  assert.equal(report.ok, false);
  assert.deepEqual(report.verified, [OVF_NAME]);
  assert.equal(report.problems.length, 1);
  assert.ok(report.problems[0].includes(DISK_NAME) && report.problems[0].includes(sha256(tampered)), report.problems[0]);
});

test('descriptor order, a missing manifest and uncovered members are reported', async (t) => {
  const dir = scratch(t);
  const { ovf, disk, mf } = packageFiles();
  const late = await hypersdk.verifyOva(writeOva(dir, 'late.ova', [
    { name: DISK_NAME, data: disk }, { name: OVF_NAME, data: ovf }, { name: 'web01.mf', data: mf }]));
  assert.equal(late.ok, false);
  assert.match(late.problems.join('\n'), /not the first member/);

  const bare = await hypersdk.verifyOva(writeOva(dir, 'bare.ova', [{ name: OVF_NAME, data: ovf }, { name: DISK_NAME, data: disk }]));
  assert.equal(bare.ok, false);
  assert.equal(bare.manifest, '');
  assert.match(bare.problems.join('\n'), /no manifest/);

  const extra = await hypersdk.verifyOva(writeOva(dir, 'extra.ova', [
    { name: OVF_NAME, data: ovf }, { name: DISK_NAME, data: disk }, { name: 'web01.mf', data: mf }, { name: 'notes.txt', data: 'x' }]));
  assert.equal(extra.ok, false);
  assert.match(extra.problems.join('\n'), /notes\.txt/);
});

test('an unpacked .ovf with its manifest verifies too', async (t) => {
  const dir = scratch(t);
  const { ovf, disk, mf } = packageFiles();
  fs.writeFileSync(path.join(dir, OVF_NAME), ovf);
  fs.writeFileSync(path.join(dir, DISK_NAME), disk);
  fs.writeFileSync(path.join(dir, 'web01.mf'), mf);
  const report = await hypersdk.verifyOva(path.join(dir, OVF_NAME));
  assert.equal(report.ok, true, report.problems.join('\n'));
  assert.deepEqual(report.verified.sort(), [OVF_NAME, DISK_NAME].sort());
});

test('a file that is no tar archive is an error with a code', async (t) => {
  const dir = scratch(t);
  const junk = path.join(dir, 'junk.ova');
  fs.writeFileSync(junk, pseudoRandom(4096, 3));
  const err = await hypersdk.verifyOva(junk).catch((e) => e);
  assert.ok(err instanceof hypersdk.HypersdkError);
  assert.equal(err.code, 'corrupt_image');
  await assert.rejects(hypersdk.verifyOva(path.join(dir, 'missing.ova')), { code: 'not_found' });
});
