#!/usr/bin/env bash
# Every arch of the manifest end to end, in one build (native recipes and
# downloads shared): build, qemu-test, package, qemu-test of the package.
# Long: a cold run compiles every library and CPython once per arch.
set -euo pipefail
cd "$(dirname "$0")/.."
arches=${1:-all}
cargo xtask build --arch "$arches"
cargo xtask qemu-test --arch "$arches"
cargo xtask package --arch "$arches"
for archive in deploy/*/crosspython-*.tar.gz; do
  arch=$(basename "$(dirname "$archive")")
  cargo xtask qemu-test --arch "$arch" --package "$archive"
done
# The board teams' packages, one by one, each checked from the package.
corpus_failed=
for arch in $(sed -n 's/^\[arch\.\([a-z0-9_-]*\)\]$/\1/p' recipes-manifest.toml); do
  if [ "$arches" = all ] || [[ ",$arches," == *",$arch,"* ]]; then
    tests/corpus.sh "$arch" || corpus_failed="$corpus_failed $arch"
  fi
done
# Debian's cross gcc instead of zig, on mipsel, where the release set
# needs it (gcc's LTO and PGO): the tree carries gcc's newer glibc privately
# (its own loader), and the import check of the packages must run it so.
if [ "$arches" = all ] || [[ ",$arches," == *",mipsel,"* ]]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get install -y --no-install-recommends gcc-mipsel-linux-gnu g++-mipsel-linux-gnu >/dev/null
  fi
  gcc_dir=gcc-mipsel/build
  cargo xtask --build-dir "$gcc_dir" build --arch mipsel --toolchain debian-gcc
  cargo xtask --build-dir "$gcc_dir" qemu-test --arch mipsel
  cargo xtask --build-dir "$gcc_dir" package --arch mipsel
  cargo xtask --build-dir "$gcc_dir" qemu-test --arch mipsel --package gcc-mipsel/deploy/mipsel/crosspython-*-mipsel.tar.zst
fi
# On a booted kernel too, where the manifest knows how to boot the arch
# ([system.<arch>]), with Debian's qemu-system-* for it.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get install -y --no-install-recommends qemu-system-arm qemu-system-misc qemu-system-mips >/dev/null
fi
for arch in $(sed -n 's/^\[system\.\(.*\)\]$/\1/p' recipes-manifest.toml); do
  if [ "$arches" = all ] || [[ ",$arches," == *",$arch,"* ]]; then
    cargo xtask qemu-test --arch "$arch" --system
  fi
done
# Each board with its own gcc (`[board.<name>-devel]`) builds a C extension
# from the full package, booted.
for board in $(sed -n 's/^\[board\.\(.*-devel\)\]$/\1/p' recipes-manifest.toml); do
  arch=$(sed -n "/^\[board\.$board\]/,/^\[/s/^arch = \"\(.*\)\"/\1/p" recipes-manifest.toml)
  if [ "$arches" = all ] || [[ ",$arches," == *",$arch,"* ]]; then
    tests/board-compiler.sh "$arch" "$board"
  fi
done
# CPython's whole test suite, on a booted kernel and under qemu-user: hours
# per arch (deploy/<arch>/cpython-suite-system.txt, cpython-suite.txt).
# Every failure must be fixed or be a distro.cpython_test_limits entry.
suite_failed=
for arch in $(sed -n 's/^\[system\.\(.*\)\]$/\1/p' recipes-manifest.toml); do
  if [ "$arches" = all ] || [[ ",$arches," == *",$arch,"* ]]; then
    cargo xtask qemu-test --arch "$arch" --system --cpython-tests all || suite_failed="$suite_failed $arch(system)"
    cargo xtask qemu-test --arch "$arch" --cpython-tests all || suite_failed="$suite_failed $arch(qemu-user)"
  fi
done
if [ -n "$suite_failed" ]; then
  echo "CPython's test suite failed on:$suite_failed" >&2
  exit 1
fi
if [ -n "$corpus_failed" ]; then
  echo "the corpus failed on:$corpus_failed (deploy/<arch>/corpus.tsv)" >&2
  exit 1
fi
