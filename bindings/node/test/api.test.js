'use strict';
// The package surface: version, exports versus index.d.ts, and the declarations type-checked
// against real use (test/types/usage.ts).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const hypersdk = require('..');
const { ROOT } = require('./helpers');

const PKG = path.resolve(__dirname, '..');

test('version() is the version hypersdk.h declares, and package.json carries it too', () => {
  const header = fs.readFileSync(path.join(ROOT, 'capi', 'include', 'hypersdk.h'), 'utf8');
  const part = (n) => header.match(new RegExp(`#define HSDK_VERSION_${n} (\\d+)`))[1];
  const expected = `${part('MAJOR')}.${part('MINOR')}.${part('PATCH')}`;
  assert.equal(hypersdk.version(), expected);
  assert.equal(JSON.parse(fs.readFileSync(path.join(PKG, 'package.json'), 'utf8')).version, expected);
});

test('index.d.ts declares exactly what lib/index.js exports', () => {
  const dts = fs.readFileSync(path.join(PKG, 'index.d.ts'), 'utf8');
  const declared = new Set([...dts.matchAll(/^export (?:declare )?(?:function|class|const) (\w+)/gm)].map((m) => m[1]));
  assert.deepEqual([...declared].sort(), Object.keys(hypersdk).sort());
});

test('the declarations accept real use and refuse misuse (tsc --strict)', () => {
  const tsc = path.join(PKG, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(__dirname, 'types')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('ES modules can import the package by name', () => {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e',
    "import { version, openImage, HypersdkError } from 'hypersdk'; console.log(version(), typeof openImage, typeof HypersdkError);"],
  { encoding: 'utf8', cwd: PKG });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), `${hypersdk.version()} function function`);
});
