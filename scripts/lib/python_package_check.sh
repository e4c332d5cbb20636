#!/usr/bin/env bash
# `pip install ./bindings/python` into a fresh virtual environment, then the binding tests against
# the installed package. usage: python_package_check.sh RESULTS_XML
set -euo pipefail
cd "$(dirname "$0")/../.."
xml=$1
venv=build/pyvenv
rm -rf "$venv" bindings/python/build
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q pytest
# A normal, isolated pip build: scikit-build-core and pybind11 come from PyPI, the C++ library is
# compiled from this checkout.
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$venv/bin/python" -m pip install -q ./bindings/python
cd /tmp
HSDK_PYTHON_INSTALLED=1 "$OLDPWD/$venv/bin/python" -c "import hypersdk, sys; print('installed hypersdk', hypersdk.__version__, 'from', hypersdk.__file__)"
HSDK_PYTHON_INSTALLED=1 "$OLDPWD/$venv/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/bindings/python/tests" --junitxml="$xml"
