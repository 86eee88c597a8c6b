#!/bin/sh
# CI check: rebuilds the BPF object with clang-19 and fails if the committed
# oom-bpf/oomprof.bpf.o no longer matches src/oomprof.bpf.c and include/.
set -eu
cd "$(dirname "$0")"
fresh=$(mktemp /tmp/oomprof.bpf.XXXXXX.o)
trap 'rm -f "$fresh"' EXIT
./build.sh "$fresh"
if cmp -s "$fresh" oomprof.bpf.o; then
	echo "oom-bpf: committed object matches the source"
else
	echo "oom-bpf: oomprof.bpf.o is stale; run oom-bpf/build.sh and commit it" >&2
	exit 1
fi
