#!/usr/bin/env bash
# `npm ci` in bindings/node as a user runs it after scripts/setup, then the Node tests against the
# installed addon. With HSDK_BUILD_DIR set (scripts/test points it at build/default), the install
# script links that build's libhypersdk; without it, it compiles the library from this checkout
# first (the same CMake project `pip install ./bindings/python` builds in scripts/test).
# usage: node_package_check.sh RESULTS_XML
set -euo pipefail
cd "$(dirname "$0")/../../bindings/node"
xml=$1
rm -rf build
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" npm ci --no-audit --no-fund --loglevel=error
node -e "const h = require('hypersdk'); console.log('installed hypersdk', h.version(), 'from', require.resolve('hypersdk'))"
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$xml" test/*.test.js
