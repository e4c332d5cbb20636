#!/bin/sh
# The shared library exports exactly the functions hypersdk.h declares, all named hsdk_*, each under
# the version node capi/hypersdk.map assigns it (every declared function listed in one node).
set -eu
lib=$1
header=$2
map=$3
dyn=$(nm -D --defined-only "$lib")
exported=$(printf '%s\n' "$dyn" | awk '$2 ~ /^[TtWwDdBbRr]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
versioned=$(printf '%s\n' "$dyn" | awk '$2 ~ /^[TtWwDdBbRr]$/ { print $3 }' | sort -u)
other=$(printf '%s\n' "$dyn" | awk '$2 !~ /^[TtWwDdBbRr]$/ && $3 !~ /^hsdk_[0-9]/ { print }')
declared=$(grep -oE 'HSDK_API[^;]*[ *](hsdk_[a-z0-9_]+)\(' "$header" | grep -oE 'hsdk_[a-z0-9_]+\($' | tr -d '(' | sort -u)
# "symbol node" pairs from the map: a node starts with "NAME {", symbols are "hsdk_x;" lines.
mapped=$(sed -e 's|/\*.*\*/||' "$map" | awk '
  /^[A-Za-z0-9_.]+ *\{/ { node = $1; sub(/\{.*/, "", node); next }
  /^ *hsdk_[a-z0-9_]+;/ { s = $1; sub(/;.*/, "", s); print s " " node }' | sort)
status=0
bad=$(printf '%s\n' "$exported" | grep -v '^hsdk_' || true)
if [ -n "$bad" ]; then echo "exported symbols not named hsdk_*:"; printf '  %s\n' $bad; status=1; fi
if [ -n "$other" ]; then echo "unexpected dynamic symbols:"; printf '%s\n' "$other"; status=1; fi
missing=$(printf '%s\n' "$declared" | grep -vxF "$exported" || true)
if [ -n "$missing" ]; then echo "declared in hypersdk.h but not exported:"; printf '  %s\n' $missing; status=1; fi
extra=$(printf '%s\n' "$exported" | grep -vxF "$declared" || true)
if [ -n "$extra" ]; then echo "exported but not declared in hypersdk.h:"; printf '  %s\n' $extra; status=1; fi
dupes=$(printf '%s\n' "$mapped" | awk '{print $1}' | uniq -d)
if [ -n "$dupes" ]; then echo "listed in more than one version node:"; printf '  %s\n' $dupes; status=1; fi
unmapped=$(printf '%s\n' "$declared" | grep -vxF "$(printf '%s\n' "$mapped" | awk '{print $1}')" || true)
if [ -n "$unmapped" ]; then echo "declared but in no version node of $map:"; printf '  %s\n' $unmapped; status=1; fi
for pair in $(printf '%s\n' "$mapped" | tr ' ' '@'); do
  sym=${pair%@*}; node=${pair#*@}
  if ! printf '%s\n' "$versioned" | grep -qxF "$sym@@$node"; then
    echo "$sym is not exported as $sym@@$node"; status=1
  fi
done
n=$(printf '%s\n' "$exported" | grep -c . || true)
[ "$status" -eq 0 ] && echo "ok: $n hsdk_* symbols exported, all declared, each in its version node"
exit $status
