#!/bin/sh
# Rebuilds oom-bpf/oomprof.bpf.o from src/oomprof.bpf.c with Debian clang-19.
#
# The output is reproducible: paths are relative, DWARF is stripped (the
# loader needs only .BTF / .BTF.ext), so CI can rebuild and compare bytes
# (see check.sh).
#
# Usage: oom-bpf/build.sh [output]   (default: oom-bpf/oomprof.bpf.o)
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
STRIP=${LLVM_STRIP:-llvm-strip-19}
out=${1:-oomprof.bpf.o}
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
"$CLANG" -target bpf -mcpu=v3 -O2 -g -Wall -Werror \
	-fdebug-prefix-map="$PWD"=. -fno-ident \
	-I include -I/usr/include/x86_64-linux-gnu \
	-c src/oomprof.bpf.c -o "$tmp"
"$STRIP" --strip-debug "$tmp"
mv "$tmp" "$out"
