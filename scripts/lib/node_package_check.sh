#!/usr/bin/env bash
# `npm ci` in bindings/node as a user runs it on a fresh machine after scripts/setup: with no
# HSDK_BUILD_DIR, the package's install script compiles libhypersdk from this checkout and then
# the addon. Then the Node tests against that build. usage: node_package_check.sh RESULTS_XML
set -euo pipefail
cd "$(dirname "$0")/../../bindings/node"
xml=$1
rm -rf build
env -u HSDK_BUILD_DIR CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" npm ci --no-audit --no-fund --loglevel=error
node -e "const h = require('hypersdk'); console.log('installed hypersdk', h.version(), 'from', require.resolve('hypersdk'))"
node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$xml" test/*.test.js
