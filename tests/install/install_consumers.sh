#!/bin/sh
# usage: install_consumers.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR C_COMPILER
set -eu
build=$1 src=$2 scratch=$3 cc=$4
rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix
cmake --install "$build" --prefix "$prefix" >"$scratch/install.log"

# 1. CMake consumer
cmake -S "$src/examples/c" -B "$scratch/cmake-consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release >"$scratch/configure.log"
cmake --build "$scratch/cmake-consumer" >"$scratch/build.log"
LD_LIBRARY_PATH="$prefix/lib" "$scratch/cmake-consumer/hsdk_c_version" | tee "$scratch/cmake-consumer.out"
# It must have linked the installed library, not the build tree's.
LD_LIBRARY_PATH="$prefix/lib" ldd "$scratch/cmake-consumer/hsdk_c_version" | grep -q "$prefix/lib/libhypersdk.so" \
  || { echo "cmake consumer did not resolve the installed libhypersdk.so"; exit 1; }

# 2. pkg-config consumer
libdir=$(ls -d "$prefix"/lib*/pkgconfig | head -n 1)
flags=$(PKG_CONFIG_PATH="$libdir" pkg-config --cflags --libs hypersdk)
$cc -std=c99 -Wall -Werror -o "$scratch/pkgconfig-consumer" "$src/examples/c/version.c" $flags
LD_LIBRARY_PATH="$prefix/lib" "$scratch/pkgconfig-consumer" | tee "$scratch/pkgconfig-consumer.out"

# 3. The C++ API through the static library and find_package.
cmake -S "$src/examples/cpp" -B "$scratch/cxx-consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release >"$scratch/configure-cxx.log"
cmake --build "$scratch/cxx-consumer" >"$scratch/build-cxx.log"
"$scratch/cxx-consumer/hsdk_cpp_version" | tee "$scratch/cxx-consumer.out"

# 4. The installed shared library exports only hsdk_*.
"$src/tests/capi/check_exports.sh" "$(ls "$prefix"/lib*/libhypersdk.so | head -n 1)" "$prefix/include/hypersdk.h" "$src/capi/hypersdk.map"
# 5. A provider plugin from the installed plugin header alone: it must not link libhypersdk.
cmake -S "$src/examples/plugin" -B "$scratch/plugin-consumer" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=Release >"$scratch/configure-plugin.log"
cmake --build "$scratch/plugin-consumer" >"$scratch/build-plugin.log"
nm -D --defined-only "$scratch/plugin-consumer/hsdk_localdir_plugin.so" | grep -q " T hsdk_plugin_init" \
  || { echo "the plugin does not export hsdk_plugin_init"; exit 1; }
if ldd "$scratch/plugin-consumer/hsdk_localdir_plugin.so" | grep -q libhypersdk; then
  echo "the plugin links libhypersdk; it needs only the header"; exit 1
fi
echo "install consumers ok"
