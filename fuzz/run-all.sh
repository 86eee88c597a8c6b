#!/bin/sh
# Runs every fuzz target (oom-core's parsers, the ring ABI, oom-cli's pprof reader)
# for $1 seconds each (default 60), seeded from fuzz/seeds/.
# Needs nightly and cargo-fuzz. Exits non-zero on the first crash.
set -e
cd "$(dirname "$0")"
secs=${1:-60}
for t in buildinfo bucket pclntab stripped encode abi pprof_read; do
    mkdir -p "corpus/$t"
    [ -d "seeds/$t" ] && cp seeds/$t/* "corpus/$t/"
    cargo +nightly fuzz run -O -a "$t" -- -max_total_time="$secs" -max_len=8192
done
