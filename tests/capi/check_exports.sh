#!/bin/sh
# The shared library exports exactly the functions hypersdk.h declares, all named hsdk_*.
set -eu
lib=$1
header=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWwDdBbRr]$/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
other=$(nm -D --defined-only "$lib" | awk '$2 !~ /^[TtWwDdBbRr]$/ && $3 !~ /^hsdk_[0-9]/ { print }')
declared=$(grep -oE 'HSDK_API[^;]*[ *](hsdk_[a-z0-9_]+)\(' "$header" | grep -oE 'hsdk_[a-z0-9_]+\($' | tr -d '(' | sort -u)
status=0
bad=$(printf '%s\n' "$exported" | grep -v '^hsdk_' || true)
if [ -n "$bad" ]; then echo "exported symbols not named hsdk_*:"; printf '  %s\n' $bad; status=1; fi
if [ -n "$other" ]; then echo "unexpected dynamic symbols:"; printf '%s\n' "$other"; status=1; fi
missing=$(printf '%s\n' "$declared" | grep -vxF "$exported" || true)
if [ -n "$missing" ]; then echo "declared in hypersdk.h but not exported:"; printf '  %s\n' $missing; status=1; fi
extra=$(printf '%s\n' "$exported" | grep -vxF "$declared" || true)
if [ -n "$extra" ]; then echo "exported but not declared in hypersdk.h:"; printf '  %s\n' $extra; status=1; fi
n=$(printf '%s\n' "$exported" | grep -c . || true)
[ "$status" -eq 0 ] && echo "ok: $n hsdk_* symbols exported, all declared"
exit $status
