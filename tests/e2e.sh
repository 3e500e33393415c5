#!/usr/bin/env bash
# End to end on one arch (default aarch64): build for the glibc floor,
# qemu-test the tree and the package installed over the arch's Debian board
# root (the board's own programs still run afterwards), the refusals that
# protect a board, and the clone must be clean: every output is git-ignored.
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
# The same on a booted kernel, where the manifest knows how to boot the arch.
if grep -q "^\[system\.$arch\]" recipes-manifest.toml; then
  cargo xtask qemu-test --arch "$arch" --package "$archive" --system
fi
# Reproducible: packaging again gives the same bytes.
cargo xtask package --arch "$arch"
[ "$sums" = "$(cat deploy/"$arch"/crosspython-*-"$arch".SHA256SUMS)" ] || { echo "package is not reproducible" >&2; exit 1; }
# The profile that keeps debug information names no directory of this
# machine in it (the package check refuses one).
if [ "$arch" = aarch64 ]; then
  # That profile has the headers: on a booted board with Debian's gcc,
  # sysconfig's compiler and flags build a C extension, as pip's source
  # builds do there (it packages the full profile itself).
  tests/board-compiler.sh "$arch" debian11-arm64-devel
else
  cargo xtask package --arch "$arch" --profile full
fi
# The smallest profile, relocated, still works.
cargo xtask package --arch "$arch" --profile minimal --prefix /opt/python3
cargo xtask qemu-test --arch "$arch" --package deploy/"$arch"/crosspython-*-"$arch"-minimal-opt-python3.tar.zst
# Application-sized: only what the sample service imports, proven by running
# it from the package alone; numpy, which it does not import, is left out.
cargo xtask package --arch "$arch" --app tests/apps/http_service.py -- --self-test
if tar -tzf deploy/"$arch"/crosspython-*-"$arch"-app.tar.gz | grep -q '/site-packages/numpy/'; then
  echo "the app profile kept numpy, which the application does not import" >&2; exit 1
fi
# The same application package alone on a booted kernel with a small board's memory.
if grep -q "^\[system\.$arch\]" recipes-manifest.toml; then
  out=$(cargo xtask qemu-test --arch "$arch" --system --memory-mib 256 --package deploy/"$arch"/crosspython-*-"$arch"-app.tar.zst \
    --app tests/apps/http_service.py -- --self-test)
  grep -q "ran on a booted kernel .* 256 MiB) in .*; peak RSS [0-9.]* MiB" <<<"$out" || { echo "no booted app run in: $out" >&2; exit 1; }
fi

# Nothing of glibc in the package: the board's own C library is used.
if tar -tzf "$archive" | grep -E '(^|/)(libc\.so\.6|libm\.so\.6|ld-linux[^/]*|ld\.so\.1)$'; then
  echo "the package carries glibc" >&2; exit 1
fi
if tar -tzf "$archive" | grep -v -e '^usr/' -e '^usr$' | grep -q .; then
  echo "the package writes outside /usr:" >&2; tar -tzf "$archive" | grep -v -e '^usr/' -e '^usr$' >&2; exit 1
fi

# A board that cannot run the build is refused before anything builds: the
# Debian 11 board has glibc 2.31, older than a floor of 2.36.
board=$(ls -d "${CROSSPYTHON_CACHE_DIR:-$HOME/.cache/crosspython}"/boards/*/root | grep -m1 "$(sed -n "/^\[arch.$arch\]/,/^\[/s/^test_board = \"\(.*\)\"/\1/p" recipes-manifest.toml)")
if out=$(cargo xtask build --arch "$arch" --board "$board" --glibc-floor 2.36 2>&1); then
  echo "a board older than the floor was accepted" >&2; exit 1
fi
grep -q "older than the glibc floor 2.36" <<<"$out" || { echo "unexpected refusal: $out" >&2; exit 1; }

# Installing into a board root that already has one of the package's files
# with other content lists it and writes nothing.
rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
cp -a "$board/." "$rootfs/"
mkdir -p "$rootfs/usr/local/bin"
echo "the board's own" > "$rootfs/usr/local/bin/python3"
if out=$(cargo xtask package --arch "$arch" --rootfs "$rootfs" 2>&1); then
  echo "package --rootfs overwrote a board file" >&2; exit 1
fi
grep -q "usr/local/bin/python3: " <<<"$out" || { echo "unexpected refusal: $out" >&2; exit 1; }
[ "$(cat "$rootfs/usr/local/bin/python3")" = "the board's own" ] && [ ! -e "$rootfs/usr/local/lib" ] \
  || { echo "package --rootfs wrote despite the conflict" >&2; exit 1; }

# musl boards (OpenWrt, Alpine): the same CPU linked against musl, tested
# over a musl root (Debian's musl and busybox-static); a glibc build is
# refused for that root before anything builds.
if [ "$arch" = aarch64 ]; then
  cargo xtask build --arch aarch64-musl
  cargo xtask qemu-test --arch aarch64-musl
  cargo xtask package --arch aarch64-musl
  cargo xtask qemu-test --arch aarch64-musl --package deploy/aarch64-musl/crosspython-*-aarch64-musl.tar.zst
  musl_root=$(ls -d ~/.cache/crosspython/boards/debian12-musl-arm64-*/root | head -n 1)
  if out=$(cargo xtask build --arch aarch64 --board "$musl_root" 2>&1); then
    echo "a glibc build for a musl board was not refused" >&2; exit 1
  fi
  grep -q "runs musl" <<<"$out" || { echo "unexpected refusal: $out" >&2; exit 1; }
fi

# A part of the board teams' corpus: wheels with C libraries of their own
# (Pillow: libjpeg, freetype) and a C extension, each checked from the
# package (tests/all-arches.sh runs the whole corpus on every arch).
if [ "$arch" = aarch64 ]; then
  tests/corpus.sh aarch64 msgpack pillow
fi

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
