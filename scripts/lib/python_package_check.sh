#!/usr/bin/env bash
# The Python package as a user gets it: `python -m build --sdist bindings/python`, then `pip install`
# of that sdist into a fresh virtual environment in a folder away from the repository, then the
# binding tests against the installed package. usage: python_package_check.sh RESULTS_XML
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
xml=$1
dist=$root/build/dist
rm -rf "$dist" bindings/python/build bindings/python/vendor
python3 -m build --sdist --outdir "$dist" bindings/python >/dev/null
sdist=$(ls "$dist"/hypersdk-*.tar.gz)
echo "sdist: $sdist ($(tar tzf "$sdist" | wc -l) files)"
away=$(mktemp -d /tmp/hsdk-sdist-XXXXXX)
trap 'rm -rf "$away"' EXIT
cd "$away"
python3 -m venv venv
venv/bin/python -m pip install -q --upgrade pip >/dev/null
venv/bin/python -m pip install -q pytest mypy pyyaml  # pyyaml: YAML batch plans (the batch extra without Ray)
# A normal, isolated pip build of the sdist: scikit-build-core and pybind11 come from PyPI, the C++
# library is compiled from the sources the sdist carries.
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) venv/bin/python -m pip install -q "$sdist"
HSDK_PYTHON_INSTALLED=1 venv/bin/python -c "import hypersdk, sys; print('installed hypersdk', hypersdk.__version__, 'from', hypersdk.__file__)"
HSDK_PYTHON_INSTALLED=1 venv/bin/python -m pytest -q -p no:cacheprovider "$root/bindings/python/tests" --junitxml="$xml"
