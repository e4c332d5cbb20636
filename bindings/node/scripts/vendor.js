#!/usr/bin/env node
// Copies the library's sources into deps/libhypersdk (run by `npm pack` / `npm publish` through
// "prepack"), so the tarball carries everything its install script compiles and `npm install
// hypersdk-<version>.tgz` works away from the repository. Outside the repository (an unpacked
// tarball) it leaves deps/ as it is.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const here = path.resolve(__dirname, '..');
const repo = path.resolve(here, '..', '..');
const target = path.join(here, 'deps', 'libhypersdk');
// What the library's CMake project needs to build the shared library (tests, tools, examples and
// bindings are switched off by CMakeLists.txt).
const PARTS = ['CMakeLists.txt', 'cmake', 'src', 'include', 'capi', 'api', 'pricing'];

function inRepository() {
  return path.basename(path.dirname(here)) === 'bindings' &&
    fs.existsSync(path.join(repo, 'capi', 'include', 'hypersdk.h')) && fs.existsSync(path.join(repo, 'src', 'ops'));
}

function main() {
  if (!inRepository()) {
    if (!fs.existsSync(path.join(target, 'CMakeLists.txt'))) {
      console.error(`hypersdk: ${target} is missing: pack this package inside the libhypersdk repository`);
      process.exit(1);
    }
    return;
  }
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target, { recursive: true });
  for (const part of PARTS) {
    fs.cpSync(path.join(repo, part), path.join(target, part), {
      recursive: true,
      filter: (src) => !/(^|\/)(__pycache__|.*\.pyc)$/.test(src),
    });
  }
  console.log(`hypersdk: vendored ${PARTS.join(', ')} into ${path.relative(here, target)}`);
}

main();
