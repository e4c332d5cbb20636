#!/usr/bin/env bash
# The Node package, twice:
#  1. `npm ci` in bindings/node as a developer runs it after scripts/setup, then every Node test
#     against that addon. With HSDK_BUILD_DIR set (scripts/test points it at build/default), the
#     install script links that build's libhypersdk instead of compiling the library again.
#  2. As a user gets it: `npm pack` (prepack vendors the library's sources into the tarball), then
#     `npm install <tarball>` into an empty project in a folder away from the repository, which
#     compiles the library from the tarball's sources, and test/packaged/packaged.test.js there.
# usage: node_package_check.sh RESULTS_XML
set -euo pipefail
cd "$(dirname "$0")/../../bindings/node"
here=$(pwd)
xml=$1
rm -rf build deps
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" npm ci --no-audit --no-fund --loglevel=error
node -e "const h = require('hypersdk'); console.log('installed hypersdk', h.version(), 'from', require.resolve('hypersdk'))"
status=0
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$xml" test/*.test.js || status=1

echo "== npm pack, then npm install of the tarball into an empty project away from the repository"
away=$(mktemp -d /tmp/hsdk-npm-XXXXXX)
trap 'rm -rf "$away"; rm -rf "$here/deps"' EXIT
tarball=$(npm pack --silent --pack-destination "$away" | tail -n 1)
echo "packed $tarball ($(tar tzf "$away/$tarball" | wc -l) files)"
mkdir "$away/project"
cd "$away/project"
npm init -y >/dev/null
# No HSDK_BUILD_DIR: the install script compiles libhypersdk from the tarball's deps/libhypersdk.
env -u HSDK_BUILD_DIR CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" npm install --no-audit --no-fund --loglevel=error "$away/$tarball" >install.log 2>&1 \
  || { tail -n 40 install.log; echo "npm install of the tarball failed"; exit 1; }
cp "$here/test/packaged/packaged.test.js" .
HSDK_HEADER="$here/../../capi/include/hypersdk.h" node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="${xml%.xml}-packaged.xml" packaged.test.js || status=1
exit $status
