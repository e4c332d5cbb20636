'use strict';
// VM descriptions from the OVF corpus, libvirt domain XML (validated by libvirt's schema) and the
// hyper2kvm manifest over real disks.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { OVF_DIR, scratch, qemuImg } = require('./helpers');

const ovfFiles = fs.readdirSync(OVF_DIR).filter((f) => f.endsWith('.ovf')).sort();

function validateDomain(xml, dir) {
  const file = path.join(dir, 'domain.xml');
  fs.writeFileSync(file, xml);
  const r = spawnSync('virt-xml-validate', [file, 'domain'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `virt-xml-validate: ${r.stdout}${r.stderr}`);
}

test('loadVm reads every OVF of the corpus into the VM model', async () => {
  assert.ok(ovfFiles.length >= 6);
  for (const f of ovfFiles) {
    const vm = await hypersdk.loadVm(path.join(OVF_DIR, f));
    assert.equal(vm.provider, 'ovf', f);
    assert.ok(vm.name && vm.cpus >= 1 && vm.memory_mib > 0, f);
    assert.ok(['bios', 'efi'].includes(vm.firmware), f);
    assert.ok(Array.isArray(vm.disks) && vm.disks.length >= 1, f);
    assert.ok(Array.isArray(vm.nics), f);
  }
  const db = await hypersdk.loadVm(path.join(OVF_DIR, 'linux-uefi-secureboot.ovf'));
  assert.equal(db.name, 'db01');
  assert.equal(db.cpus, 8);
  assert.equal(db.cores_per_socket, 4);
  assert.equal(db.firmware, 'efi');
  assert.equal(db.secure_boot, true);
  assert.deepEqual(db.nics.map((n) => n.network), ['Front', 'Back']);
});

test('kvmDomainXml: schema-valid for every OVF, with maps and options applied', async (t) => {
  const dir = scratch(t);
  for (const f of ovfFiles) {
    const xml = hypersdk.kvmDomainXml(await hypersdk.loadVm(path.join(OVF_DIR, f)), { diskDir: dir });
    validateDomain(xml, dir);
  }
  const vm = await hypersdk.loadVm(path.join(OVF_DIR, 'linux-uefi-secureboot.ovf'));
  const xml = hypersdk.kvmDomainXml(vm, { name: 'db01-kvm', diskDir: dir, diskFormat: 'raw', bridgeMap: { Front: 'br0' }, networkMap: new Map([['Back', 'isolated']]) });
  assert.match(xml, /<name>db01-kvm<\/name>/);
  assert.ok(xml.includes("<source bridge='br0'/>"));
  assert.ok(xml.includes("<source network='isolated'/>"));
  assert.ok(xml.includes(`<source file='${dir}/db01-disk1.raw'/>`));
  assert.ok(xml.includes("type='raw'"));
  assert.ok(xml.includes("secure='yes'"));
  validateDomain(xml, dir);
  // The same maps as text.
  assert.equal(hypersdk.kvmDomainXml(vm, { name: 'db01-kvm', diskDir: dir, diskFormat: 'raw', bridgeMap: 'Front=br0', networkMap: 'Back=isolated' }), xml);

  const win = await hypersdk.loadVm(path.join(OVF_DIR, 'windows2019-efi.ovf'));
  assert.ok(!hypersdk.kvmDomainXml(win).includes("bus='virtio'"));
  assert.ok(hypersdk.kvmDomainXml(win, { windowsVirtio: true }).includes("bus='virtio'"));
  const xp = await hypersdk.loadVm(path.join(OVF_DIR, 'windows-xp-legacy.ovf'));
  assert.ok(hypersdk.kvmDomainXml(xp).includes("machine='pc"));
  assert.ok(hypersdk.kvmDomainXml(xp, { machine: 'q35' }).includes("machine='q35'"));
});

test('kvmDomainXml: bad input is reported, unsupported options are named', async () => {
  const vm = await hypersdk.loadVm(path.join(OVF_DIR, 'linux-bios-vcenter.ovf'));
  assert.throws(() => hypersdk.kvmDomainXml({ ...vm, cpus: 0 }), { code: 'invalid_argument', message: /cpus/ });
  assert.throws(() => hypersdk.kvmDomainXml('vm.ovf'), { code: 'invalid_argument' });
  assert.throws(() => hypersdk.kvmDomainXml(vm, { networkMap: 'no-equals-sign' }), { code: 'invalid_argument', message: /network_map/ });
  assert.throws(() => hypersdk.kvmDomainXml(vm, { bridgeMap: { 'a,b': 'br0' } }), { code: 'invalid_argument' });
  assert.throws(() => hypersdk.kvmDomainXml(vm, { disk_dir: '/x' }), { code: 'invalid_argument', message: /unknown option 'disk_dir'/ });
});

test('kvmDomainXml takes the firmware paths of the KVM host', async () => {
  const vm = await hypersdk.loadVm(path.join(OVF_DIR, 'linux-uefi-secureboot.ovf'));
  const xml = hypersdk.kvmDomainXml(vm, {
    ovmfCodeSecure: '/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd',
    ovmfVarsSecure: '/usr/share/edk2/ovmf/OVMF_VARS.secboot.fd',
    nvramDir: '/srv/nvram',
  });
  assert.match(xml, /<loader readonly='yes' secure='yes' type='pflash'>\/usr\/share\/edk2\/ovmf\/OVMF_CODE\.secboot\.fd<\/loader>/);
  assert.match(xml, /<nvram template='\/usr\/share\/edk2\/ovmf\/OVMF_VARS\.secboot\.fd'>\/srv\/nvram\/db01_VARS\.fd<\/nvram>/);
  assert.throws(() => hypersdk.kvmDomainXml(vm, { ovmfCode: 42 }), { code: 'invalid_argument' });
});

test('kvmManifest measures the converted disks', async (t) => {
  const dir = scratch(t);
  const vm = await hypersdk.loadVm(path.join(OVF_DIR, 'linux-uefi-secureboot.ovf'));
  await assert.rejects(hypersdk.kvmManifest(vm, { diskDir: dir }), { code: 'not_found' });
  for (const name of ['db01-disk1.qcow2', 'db01-disk2.qcow2']) qemuImg('create', '-q', '-f', 'qcow2', path.join(dir, name), '1M');
  const m = await hypersdk.kvmManifest(vm, { diskDir: dir });
  assert.equal(m.manifest_version, 1);
  assert.equal(m.vm.cpu.count, 8);
  assert.equal(m.disks.length, 2);
  for (const d of m.disks) {
    const bytes = fs.readFileSync(d.local_path);
    assert.equal(d.sha256, crypto.createHash('sha256').update(bytes).digest('hex'));
    assert.equal(d.bytes, bytes.length);
  }
  assert.equal(m.output.directory, dir);
});
