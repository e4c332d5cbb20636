'use strict';
// The addon stands on the C ABI alone: it needs libhypersdk.so, takes only hsdk_* symbols that
// hypersdk.h declares, includes no C++ header of the library, and loads the copy beside it.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
require('..');
const { ROOT } = require('./helpers');

const PKG = path.resolve(__dirname, '..');
const ADDON = path.join(PKG, 'build', 'Release', 'hypersdk.node');

test('the addon links libhypersdk.so and runs from $ORIGIN', () => {
  const dynamic = execFileSync('readelf', ['-d', ADDON], { encoding: 'utf8' });
  assert.match(dynamic, /NEEDED.*\[libhypersdk\.so\.\d+\]/);
  assert.match(dynamic, /(RUNPATH|RPATH).*\[\$ORIGIN\]/);
  const maps = fs.readFileSync('/proc/self/maps', 'utf8');
  const loaded = [...new Set(maps.split('\n').filter((l) => /libhypersdk\.so/.test(l)).map((l) => l.split(/\s+/).pop()))];
  assert.deepEqual(loaded.map((p) => path.dirname(p)), [path.dirname(ADDON)]);
});

test('every library symbol the addon uses is a function hypersdk.h declares', () => {
  const header = fs.readFileSync(path.join(ROOT, 'capi', 'include', 'hypersdk.h'), 'utf8');
  const declared = new Set([...header.matchAll(/HSDK_API[^;(]*?\b(hsdk_\w+)\(/g)].map((m) => m[1]));
  const undef = execFileSync('nm', ['-D', '--undefined-only', ADDON], { encoding: 'utf8' })
    .split('\n').map((l) => l.trim().split(/\s+/).pop()).filter(Boolean).map((s) => s.replace(/@.*/, ''));
  const used = undef.filter((s) => s.startsWith('hsdk_'));
  assert.ok(used.length >= 20, `${used.length} hsdk_* symbols used`);
  for (const s of used) assert.ok(declared.has(s), `${s} is declared in hypersdk.h`);
  // Nothing of the C++ API (namespace hypersdk, mangled _ZN8hypersdk...) is imported.
  assert.deepEqual(undef.filter((s) => s.includes('8hypersdk')), []);
});

test('the native sources include <hypersdk.h> and no C++ header of the library', () => {
  const dir = path.join(PKG, 'src');
  for (const f of fs.readdirSync(dir)) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    const includes = [...text.matchAll(/#include [<"]([^>"]+)[>"]/g)].map((m) => m[1]);
    for (const inc of includes) assert.ok(!inc.startsWith('hypersdk/'), `${f} includes ${inc}`);
  }
});
