#!/usr/bin/env node
// Builds build/Release/hypersdk.node with CMake (run by `npm install` and `npm run build`).
//
// Nothing is downloaded: Node's headers come from the running Node's own installation (or
// npm_config_nodedir), node-addon-api from node_modules. The library is taken from
// $HSDK_BUILD_DIR (a build folder of the main CMake build) when set, and otherwise compiled here
// from the repository this package lives in.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const here = path.resolve(__dirname, '..');

function fail(message) {
  console.error(`hypersdk: ${message}`);
  process.exit(1);
}

function nodeIncludeDir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(path.join(process.env.npm_config_nodedir, 'include', 'node'));
  // <prefix>/bin/node ships its headers in <prefix>/include/node (Debian, NodeSource, official tarballs, nvm).
  candidates.push(path.resolve(path.dirname(process.execPath), '..', 'include', 'node'));
  // Headers node-gyp fetched earlier, if any.
  const version = process.versions.node;
  candidates.push(path.join(os.homedir(), '.cache', 'node-gyp', version, 'include', 'node'));
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, 'node_api.h')));
  if (!found) fail(`node_api.h not found; looked in:\n  ${candidates.join('\n  ')}\nset npm_config_nodedir to a Node ${version} prefix`);
  return found;
}

function addonApiDir() {
  try {
    return path.dirname(require.resolve('node-addon-api/napi.h', { paths: [here] }));
  } catch {
    return fail('node-addon-api is missing: run `npm ci` (or `npm install`) in bindings/node first');
  }
}

function hasProgram(name) {
  return spawnSync(name, ['--version'], { stdio: 'ignore' }).status === 0;
}

function run(cmd, args) {
  console.log(`hypersdk: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.error) fail(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) fail(`${cmd} exited with status ${r.status}`);
}

function main() {
  if (!hasProgram('cmake')) fail('cmake is required (the repository\'s scripts/setup installs it)');
  const buildDir = path.join(here, 'build', 'cmake');
  const configure = [
    '-S', here, '-B', buildDir,
    '-DCMAKE_BUILD_TYPE=Release',
    `-DNODE_INCLUDE_DIR=${nodeIncludeDir()}`,
    `-DNODE_ADDON_API_DIR=${addonApiDir()}`,
  ];
  const prebuilt = process.env.HSDK_BUILD_DIR ? path.resolve(process.env.HSDK_BUILD_DIR) : '';
  configure.push(`-DHSDK_PREBUILT_DIR=${prebuilt}`);
  if (hasProgram('ninja')) configure.push('-G', 'Ninja');
  if (hasProgram('ccache')) configure.push('-DCMAKE_C_COMPILER_LAUNCHER=ccache', '-DCMAKE_CXX_COMPILER_LAUNCHER=ccache');
  // A cache made with another generator cannot be reused; start that folder afresh.
  const cache = path.join(buildDir, 'CMakeCache.txt');
  if (fs.existsSync(cache)) {
    const text = fs.readFileSync(cache, 'utf8');
    const generator = /^CMAKE_GENERATOR:INTERNAL=(.*)$/m.exec(text)?.[1];
    if (generator && generator !== (configure.includes('Ninja') ? 'Ninja' : 'Unix Makefiles')) {
      fs.rmSync(buildDir, { recursive: true, force: true });
    }
  }
  run('cmake', configure);
  const jobs = process.env.CMAKE_BUILD_PARALLEL_LEVEL || String(os.availableParallelism());
  run('cmake', ['--build', buildDir, '--parallel', jobs]);
  console.log(`hypersdk: built ${path.join(here, 'build', 'Release', 'hypersdk.node')}`);
}

main();
