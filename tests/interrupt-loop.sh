#!/usr/bin/env bash
# Crash safety, by hand (long; not in CI): build an arch from an empty build
# directory and artifact cache while a random SIGINT or SIGKILL stops the
# build N times, resuming after each; then package, and compare the
# archive's sha256 with that of an uninterrupted build.
# Usage: tests/interrupt-loop.sh [arch] [N]
# UNINTERRUPTED_SHA256=<sha> skips the uninterrupted build (the sha256 of
# its package, from an earlier run of the same commit).
set -euo pipefail
arch=${1:-aarch64}
n=${2:-10}
cd "$(dirname "$0")/.."
work=$(mktemp -d)
# Kept when something fails: the logs say why.
trap 'status=$?; if [ $status -eq 0 ]; then rm -rf "$work"; else echo "failed; logs kept in $work" >&2; tail -n 30 "$work"/loop-*.log 2>/dev/null >&2; fi' EXIT
cargo build --release -p xtask
xtask=target/release/xtask

# One build directory and artifact cache per run; downloads and the zig
# compiler are shared (they are checked by sha256).
run() { CROSSPYTHON_SSTATE_DIR="$work/$1/sstate" "$xtask" --build-dir "$work/$1/build" "${@:2}"; }
# In the background, as the process the signal must reach: a backgrounded
# shell function is a subshell, and killing it would leave the build running.
start() { (CROSSPYTHON_SSTATE_DIR="$work/$1/sstate" exec "$xtask" --build-dir "$work/$1/build" "${@:2}") & }
package_sum() {
  run "$1" package --arch "$arch" >/dev/null
  sha256sum "$work/$1/deploy/$arch/crosspython-"*"-$arch.tar.zst" | cut -d' ' -f1
}

if [ -n "${UNINTERRUPTED_SHA256:-}" ]; then
  want=$UNINTERRUPTED_SHA256
else
  run clean build --arch "$arch" >"$work/clean.log" 2>&1
  want=$(package_sum clean)
fi
echo "uninterrupted: $want"

ints=0 kills=0
for i in $(seq "$n"); do
  start loop build --arch "$arch" >"$work/loop-$i.log" 2>&1
  pid=$!
  sleep $((RANDOM % 90 + 5))
  if kill -0 "$pid" 2>/dev/null; then
    if ((RANDOM % 2)); then kill -INT "$pid"; ints=$((ints + 1)); what=SIGINT; else kill -KILL "$pid"; kills=$((kills + 1)); what=SIGKILL; fi
    echo "run $i: $what"
  else
    echo "run $i: finished before the signal ($(tail -n 1 "$work/loop-$i.log"))"
  fi
  wait "$pid" || true
  if grep -q "is in use by another crosspython" "$work/loop-$i.log"; then
    echo "run $i found the build directory still locked: a killed build left a process running" >&2; exit 1
  fi
done
run loop build --arch "$arch" >"$work/loop-final.log" 2>&1
got=$(package_sum loop)
echo "after $ints SIGINT and $kills SIGKILL: $got"
[ "$got" = "$want" ] || { echo "the interrupted build's package differs" >&2; exit 1; }
echo "identical"
