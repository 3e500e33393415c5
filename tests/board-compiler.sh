#!/usr/bin/env bash
# `pip install` of an sdist on a board that has its own gcc (a `-devel`
# board of the manifest): the full package (the profile with headers)
# installed over it, on a booted kernel, builds a C extension with what
# sysconfig names (`c_extension_builds_on_the_board` in
# tests/target/checks.py), and the extension imports.
#   tests/board-compiler.sh <arch> <board>
set -euo pipefail
arch=$1 board=$2
cd "$(dirname "$0")/.."
cargo xtask package --arch "$arch" --profile full
archive=$(ls deploy/"$arch"/crosspython-*-"$arch"-full.tar.zst)
cargo xtask qemu-test --arch "$arch" --system --package "$archive" --board "$board"
python3 - "${archive%.tar.zst}.qemu-test-system-checks.json" <<'PY'
import json, sys
check = next(c for c in json.load(open(sys.argv[1])) if c["name"] == "c_extension_builds_on_the_board")
assert check["ok"] and check["detail"].endswith("which imports"), f"no C extension was built on the board with gcc: {check['detail']}"
print(f"board compiler: {check['detail']}")
PY
