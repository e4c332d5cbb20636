'use strict';
// VM descriptions (hsdk's VM model, docs/vm-model.md), libvirt domain XML, the hyper2kvm
// manifest and OVA verification.
const native = require('./native');
const args = require('./args');
const { withSignal } = require('./cancel');
const { invalidArgument } = require('./errors');

const LOAD_OPTIONS = ['virtualSystem'];

/** Reads a VM description (.ovf, .ova or VM-model .json) into a VM-model object. */
async function loadVm(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, LOAD_OPTIONS, 'loadVm');
  return JSON.parse(await native.loadVm(path, args.optionalString(o.virtualSystem, 'virtualSystem')));
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

/** hyper2kvm artifact manifest; measures (hashes) the converted disks found in diskDir. */
async function kvmManifest(vm, options) {
  const json = vmJson(vm);
  const { options: o, signal } = kvmOptions(options, ['signal'], 'kvmManifest');
  return withSignal(signal, 'kvmManifest', async (cancel) => JSON.parse(await native.kvmManifest(json, o, cancel)));
}

const VERIFY_OPTIONS = ['signal'];

/** Checks an OVA (or an .ovf with its files) against its manifest: {descriptor, manifest, verified, problems, ok}. */
async function verifyOva(path, options) {
  path = args.path(path, 'path');
  const o = args.options(options, VERIFY_OPTIONS, 'verifyOva');
  return withSignal(o.signal, 'verifyOva', async (cancel) => {
    const { report, ok } = await native.verifyOva(path, cancel);
    return { ...JSON.parse(report), ok };
  });
}

module.exports = { loadVm, kvmDomainXml, kvmManifest, verifyOva };
