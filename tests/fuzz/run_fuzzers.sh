#!/usr/bin/env bash
# usage: run_fuzzers.sh ASAN_BUILD_DIR RESULTS_XML
# Generates a seed corpus per format with qemu-img (small images), then runs every fuzz target
# for a fixed number of inputs with a fixed seed, and writes a JUnit file with one case per target.
set -uo pipefail
build=$(cd "$1" && pwd)
xml=$2
here=$(cd "$(dirname "$0")" && pwd)
corpus=$build/fuzz-corpus
runs=${HSDK_FUZZ_RUNS:-3000}
rm -rf "$corpus"
mkdir -p "$corpus"

seed_images() {  # fmt qemu-fmt [create options...]
  local fmt=$1 qfmt=$2
  shift 2
  mkdir -p "$corpus/$fmt"
  local raw=$corpus/seed.raw
  python3 - "$raw" <<'PY'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 20)
    for off in (0, 70000, 300000, 900000):
        f.seek(off)
        f.write(rng.randbytes(5000) if off % 2 == 0 else b"text " * 900)
PY
  local i=0
  for opts in "$@"; do
    # shellcheck disable=SC2086
    qemu-img convert -q -f raw -O "$qfmt" $opts "$raw" "$corpus/$fmt/seed$i" 2>/dev/null || true
    i=$((i + 1))
  done
}

seed_images raw raw ""
# Small clusters keep the seeds under the fuzzers' 256 KiB input limit.
seed_images qcow2 qcow2 "-o cluster_size=4k" "-c -o cluster_size=4k" "-c -o compression_type=zstd,cluster_size=4k" \
  "-o extended_l2=on,cluster_size=16k" "-o compat=0.10,cluster_size=512" "-c -o compat=0.10,cluster_size=512"
seed_images vhdx vhdx "-o subformat=dynamic,block_size=1M" "-o subformat=fixed,block_size=1M"
# Variants qemu-img cannot make (dirty log, differencing), in a compact layout that fits max_len.
python3 "$here/../integration/gen_vhdx.py" seeds "$corpus/vhdx"
seed_images vhd vpc "-o subformat=dynamic" "-o subformat=fixed" "-o subformat=dynamic,force_size=on"
seed_images vdi vdi "" "-o static=on"
python3 "$here/seeds_vhd_vdi.py" "$corpus"  # small seeds, and differencing VHDs qemu-img cannot make
seed_images vmdk vmdk "-o subformat=monolithicSparse" "-o subformat=streamOptimized"
# A stream with the directory at the end (qemu writes it up front) and a self-contained descriptor.
[ -x "$build/tools/hsdk/hsdk" ] &&
  "$build/tools/hsdk/hsdk" convert -f raw -O vmdk -c "$corpus/seed.raw" "$corpus/vmdk/seed-stream-gd-at-end" >/dev/null 2>&1
printf '# Disk DescriptorFile\nversion=1\nCID=1234abcd\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 2048 ZERO\nRDONLY 8 ZERO\nddb.adapterType = "ide"\n' >"$corpus/vmdk/seed-descriptor"
mkdir -p "$corpus/format_options"
printf 'cluster_size=65536,compression_type=zstd' >"$corpus/format_options/a"
printf 'subformat=streamOptimized' >"$corpus/format_options/b"
printf 'a=b,,c,d=' >"$corpus/format_options/c"

mkdir -p "$corpus/ovf" "$corpus/manifest" "$corpus/tar"
cp "$here"/../data/ovf/*.ovf "$corpus/ovf/"
printf 'SHA256(a.ovf)= %064d\nSHA1(b.vmdk)= %040d\n' 0 0 >"$corpus/manifest/a"
(cd "$here/../data/ovf" && tar --format=ustar -cf "$corpus/tar/ustar.tar" linux-bios-vcenter.ovf ovf2-generic.ovf)
(cd "$here/../data/ovf" && tar --format=pax -cf "$corpus/tar/pax.tar" virtualbox-debian.ovf)

# Formats whose metadata lies past the default input size (VHDX puts its tables at 1 MiB and beyond).
declare -A max_len=([vhdx]=4194304)
cases=()
failed=0
for target in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$target" ] || continue
  name=$(basename "$target")
  fmt=${name#fuzz_image_}
  fmt=${fmt#fuzz_}
  dir=$corpus/$fmt
  mkdir -p "$dir"
  log=$build/$name.log
  if "$target" -runs="$runs" -seed=1 -max_len="${max_len[$fmt]:-262144}" -rss_limit_mb=1024 -timeout=10 "$dir" >"$log" 2>&1; then
    cases+=("<testcase classname=\"fuzz\" name=\"$name\"/>")
    echo "fuzz $name: ok"
  else
    failed=$((failed + 1))
    msg=$(tail -n 30 "$log" | sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g')
    cases+=("<testcase classname=\"fuzz\" name=\"$name\"><failure message=\"fuzzer found a problem\">$msg</failure></testcase>")
    echo "fuzz $name: FAILED (see $log)"
  fi
done
{
  echo '<?xml version="1.0" encoding="UTF-8"?>'
  echo "<testsuite name=\"fuzz\" tests=\"${#cases[@]}\" failures=\"$failed\">"
  printf '%s\n' "${cases[@]}"
  echo '</testsuite>'
} >"$xml"
[ "$failed" -eq 0 ]
