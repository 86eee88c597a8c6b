#!/bin/sh
# CI check: rebuilds the BPF objects with clang-19 and fails if a committed
# oom-bpf/*.bpf.o no longer matches src/*.bpf.c and include/.
set -eu
cd "$(dirname "$0")"
fresh=$(mktemp -d /tmp/oomprof.bpf.XXXXXX)
trap 'rm -rf "$fresh"' EXIT
./build.sh "$fresh"
stale=0
for name in oomprof growth; do
	if cmp -s "$fresh/$name.bpf.o" "$name.bpf.o"; then
		echo "oom-bpf: committed $name.bpf.o matches the source"
	else
		echo "oom-bpf: $name.bpf.o is stale; run oom-bpf/build.sh and commit it" >&2
		stale=1
	fi
done
exit $stale
