#!/usr/bin/env bash
# End to end on one arch (default aarch64): build, qemu-test the tree,
# package, and qemu-test the package unpacked into an empty directory.
# Then the clone must be clean: every output is git-ignored.
set -euo pipefail
arch=${1:-aarch64}
cd "$(dirname "$0")/.."

cargo xtask build --arch "$arch"
tests/pip.sh "$arch"
cargo xtask qemu-test --arch "$arch"
cargo xtask package --arch "$arch"
archive=$(ls deploy/"$arch"/crosspython-*-"$arch".tar.gz)
sums=$(cat deploy/"$arch"/crosspython-*-"$arch".SHA256SUMS)
cargo xtask qemu-test --arch "$arch" --package "$archive"
# Reproducible: packaging again gives the same bytes.
cargo xtask package --arch "$arch"
[ "$sums" = "$(cat deploy/"$arch"/crosspython-*-"$arch".SHA256SUMS)" ] || { echo "package is not reproducible" >&2; exit 1; }
# The smallest profile, relocated, still works.
cargo xtask package --arch "$arch" --profile minimal --prefix /opt/python3
cargo xtask qemu-test --arch "$arch" --package deploy/"$arch"/crosspython-*-"$arch"-minimal-opt-python3.tar.zst

# A second build with nothing changed runs no task (pip's ad-hoc
# installs do not count as a change of the tree's inputs).
out=$(cargo xtask build --arch "$arch" 2>&1 | tail -n 3)
echo "$out"
grep -q "nothing to do" <<<"$out" || { echo "a no-op rebuild ran tasks" >&2; exit 1; }

if [ -n "$(git status --porcelain)" ]; then
  echo "the build left files that git does not ignore:" >&2
  git status --porcelain >&2
  exit 1
fi
