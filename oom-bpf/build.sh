#!/bin/sh
# Rebuilds oom-bpf/oomprof.bpf.o and oom-bpf/growth.bpf.o from src/*.bpf.c with
# Debian clang-19.
#
# The output is reproducible: paths are relative, DWARF is stripped (the
# loader needs only .BTF / .BTF.ext), so CI can rebuild and compare bytes
# (see check.sh).
#
# Usage: oom-bpf/build.sh [output directory]   (default: oom-bpf/)
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
STRIP=${LLVM_STRIP:-llvm-strip-19}
dir=${1:-.}
for name in oomprof growth; do
	out="$dir/$name.bpf.o"
	tmp="$out.tmp.$$"
	trap 'rm -f "$tmp"' EXIT
	"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Werror \
		-fdebug-prefix-map="$PWD"=. -fno-ident \
		-I include -I/usr/include/x86_64-linux-gnu \
		-c "src/$name.bpf.c" -o "$tmp"
	"$STRIP" --strip-debug "$tmp"
	mv "$tmp" "$out"
done
