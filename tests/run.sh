#!/usr/bin/env bash
# The project's tests: the unit tests of every module (the manifest
# semantics, fetch, the task engine, ...) and the end-to-end aarch64 path
# on the real cross compiler and qemu-user.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --workspace --release --all-targets -- -D warnings
cargo test --workspace --release
tests/e2e.sh aarch64
