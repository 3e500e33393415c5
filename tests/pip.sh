#!/usr/bin/env bash
# `cargo xtask pip install` on a built tree: bad input is refused with a
# clear error and leaves the tree exactly as it was; cffi built from source
# links the tree's libffi. Usage: tests/pip.sh [arch]
set -euo pipefail
arch=${1:-aarch64}
cd "$(dirname "$0")/.."
tree=$(dirname "${CROSSPYTHON_BUILD_DIR:-build}")/sysroots/$arch
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Every file of the tree with its size and content hash.
fingerprint() { (cd "$tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }

expect_refusal() {
  local what=$1 pattern=$2; shift 2
  local before after
  before=$(fingerprint)
  if cargo xtask pip --arch "$arch" install "$@" >"$scratch/out" 2>&1; then
    echo "FAIL: $what was accepted" >&2; cat "$scratch/out" >&2; exit 1
  fi
  grep -q -- "$pattern" "$scratch/out" || { echo "FAIL: $what: no '$pattern' in:" >&2; cat "$scratch/out" >&2; exit 1; }
  after=$(fingerprint)
  [ "$before" = "$after" ] || { echo "FAIL: $what changed the tree" >&2; exit 1; }
  echo "ok: $what is refused ($(grep -m1 -- "$pattern" "$scratch/out" | cut -c1-150))"
}

# A wheel for another arch, made here: only its name matters to the check.
other=$( [ "$arch" = mipsel ] && echo aarch64 || echo mips )
mkdir -p "$scratch/wheels"
python3 - "$scratch/wheels/demo-1.0-cp313-cp313-linux_$other.whl" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("demo/__init__.py", "")
PY
expect_refusal "a wheel for linux_$other" "is built for linux_$other, not for $arch" "$scratch/wheels/demo-1.0-cp313-cp313-linux_$other.whl"

# A wheel that installs but does not import on the target (as bcrypt built
# without its Rust extension): refused by the import check under qemu.
python3 - "$scratch/wheels/halfbuilt-1.0-py3-none-any.whl" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("halfbuilt/__init__.py", "from . import _ext\n")
    z.writestr("halfbuilt-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: halfbuilt\nVersion: 1.0\n")
    z.writestr("halfbuilt-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("halfbuilt-1.0.dist-info/RECORD", "halfbuilt/__init__.py,,\nhalfbuilt-1.0.dist-info/METADATA,,\nhalfbuilt-1.0.dist-info/WHEEL,,\nhalfbuilt-1.0.dist-info/RECORD,,\n")
PY
expect_refusal "a wheel that does not import" "halfbuilt-1.0: \`import halfbuilt\` fails on the target" "$scratch/wheels/halfbuilt-1.0-py3-none-any.whl"

# A requirement that exists nowhere.
expect_refusal "an unknown project" "neither a wheel for the target nor an sdist" crosspython-no-such-project-4242

# An sdist whose C extension does not compile for the target.
mkdir -p "$scratch/broken-0.1/broken"
cat >"$scratch/broken-0.1/setup.py" <<'PY'
from setuptools import setup, Extension
setup(name="broken", version="0.1", packages=["broken"], ext_modules=[Extension("broken._c", ["broken/_c.c"])])
PY
echo '#error "crosspython test: this extension must not compile"' >"$scratch/broken-0.1/broken/_c.c"
touch "$scratch/broken-0.1/broken/__init__.py"
tar -C "$scratch" -czf "$scratch/broken-0.1.tar.gz" broken-0.1
expect_refusal "an sdist that fails to build" "building the wheel for the target failed" "$scratch/broken-0.1.tar.gz"

# A requirements file with a pip option.
printf 'cffi\n--index-url http://example.invalid/simple\n' >"$scratch/req.txt"
expect_refusal "a requirements file with pip options" "pip options are not supported" -r "$scratch/req.txt"

# cffi from source against the tree's libffi; qemu-test checks it.
cargo xtask pip --arch "$arch" install cffi --no-binary cffi
cargo xtask pip --arch "$arch" install cffi | grep -q "already installed"
echo "ok: cffi installed from source; a second install is a no-op"
