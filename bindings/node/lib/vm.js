'use strict';
// VM descriptions (hsdk's VM model, docs/vm-model.md), libvirt domain XML, the hyper2kvm
// manifest and OVA verification.
const native = require('./native');
const args = require('./args');
const { run } = require('./ops');
const { invalidArgument } = require('./errors');

const LOAD_OPTIONS = ['virtualSystem'];

/** Reads a VM description (.ovf, .ova or VM-model .json) into a VM-model object. */
async function loadVm(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, LOAD_OPTIONS, 'loadVm');
  return run('vm.load', { path, virtual_system: args.optionalString(o.virtualSystem, 'virtualSystem') });
}

function vmJson(vm) {
  if (typeof vm !== 'object' || vm === null || Array.isArray(vm)) {
    throw invalidArgument(`vm must be a VM-model object (what loadVm resolves to), not ${args.describe(vm)}`);
  }
  return JSON.stringify(vm);
}

// {source: target} (or a Map, or "SOURCE=TARGET,..." text) as the text hsdk_kvm_options takes.
function pairMap(value, what) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return args.optionalString(value, what);
  const entries = value instanceof Map ? [...value.entries()] : (typeof value === 'object' && !Array.isArray(value) ? Object.entries(value) : null);
  if (entries === null) throw invalidArgument(`${what} must be an object, a Map or a "SOURCE=TARGET,..." string`);
  return entries.map(([source, target]) => {
    if (typeof source !== 'string' || typeof target !== 'string' || !source || !target ||
        /[,=\0]/.test(source) || /[,\0]/.test(target)) {
      throw invalidArgument(`${what}: '${String(source)}' -> '${String(target)}' cannot be passed (names must be non-empty, without ',' or '=' in the source)`);
    }
    return `${source}=${target}`;
  }).join(',');
}

const KVM_OPTIONS = ['name', 'diskDir', 'diskFormat', 'network', 'bridge', 'networkMap', 'bridgeMap', 'windowsVirtio', 'machine',
  'ovmfCode', 'ovmfVars', 'ovmfCodeSecure', 'ovmfVarsSecure', 'nvramDir'];

function kvmOptions(options, extra, fn) {
  const o = args.options(options, [...KVM_OPTIONS, ...extra], fn);
  return {
    options: {
      name: args.optionalString(o.name, 'name'),
      diskDir: o.diskDir === undefined || o.diskDir === null ? undefined : args.path(o.diskDir, 'diskDir'),
      diskFormat: args.optionalString(o.diskFormat, 'diskFormat'),
      network: args.optionalString(o.network, 'network'),
      bridge: args.optionalString(o.bridge, 'bridge'),
      networkMap: pairMap(o.networkMap, 'networkMap'),
      bridgeMap: pairMap(o.bridgeMap, 'bridgeMap'),
      windowsVirtio: args.optionalBoolean(o.windowsVirtio, 'windowsVirtio'),
      machine: args.optionalString(o.machine, 'machine'),
      ovmfCode: args.optionalString(o.ovmfCode, 'ovmfCode'),
      ovmfVars: args.optionalString(o.ovmfVars, 'ovmfVars'),
      ovmfCodeSecure: args.optionalString(o.ovmfCodeSecure, 'ovmfCodeSecure'),
      ovmfVarsSecure: args.optionalString(o.ovmfVarsSecure, 'ovmfVarsSecure'),
      nvramDir: args.optionalString(o.nvramDir, 'nvramDir'),
    },
    signal: o.signal,
  };
}

/** libvirt domain XML for a VM-model object. Synchronous: it reads no file. */
function kvmDomainXml(vm, options) {
  const json = vmJson(vm);
  return native.kvmDomainXml(json, kvmOptions(options, [], 'kvmDomainXml').options);
}

// "SOURCE=TARGET,..." text as the {source: target} object of an operation request.
function pairObject(text) {
  if (text === undefined) return undefined;
  return Object.fromEntries(text === '' ? [] : text.split(',').map((pair) => {
    const at = pair.indexOf('=');
    if (at <= 0 || at === pair.length - 1) throw invalidArgument(`'${pair}' is not SOURCE=TARGET`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  }));
}

/** hyper2kvm artifact manifest (the kvm.manifest operation); measures (hashes) the converted disks found in diskDir. */
async function kvmManifest(vm, options) {
  if (typeof vm !== 'object' || vm === null || Array.isArray(vm)) vmJson(vm);  // the same error as kvmDomainXml
  const { options: o, signal } = kvmOptions(options, ['signal'], 'kvmManifest');
  return run('kvm.manifest', {
    vm,
    name: o.name,
    disk_dir: o.diskDir,
    disk_format: o.diskFormat,
    network: o.network,
    bridge: o.bridge,
    network_map: pairObject(o.networkMap),
    bridge_map: pairObject(o.bridgeMap),
    windows_virtio: o.windowsVirtio,
    machine: o.machine,
    ovmf_code: o.ovmfCode,
    ovmf_vars: o.ovmfVars,
    ovmf_code_secure: o.ovmfCodeSecure,
    ovmf_vars_secure: o.ovmfVarsSecure,
    nvram_dir: o.nvramDir,
  }, { signal });
}

const VERIFY_OPTIONS = ['signal'];

/** Checks an OVA (or an .ovf with its files) against its manifest (the ova.verify operation): {descriptor, manifest, verified, problems, ok}. */
async function verifyOva(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, VERIFY_OPTIONS, 'verifyOva');
  return run('ova.verify', { path }, { signal: o.signal });
}

module.exports = { loadVm, kvmDomainXml, kvmManifest, verifyOva };
