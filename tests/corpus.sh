#!/usr/bin/env bash
# The packages board teams put on a board (issue 16), on one arch: each is
# cross-installed on its own with `cargo xtask pip install`, as a new user
# would, and its route (wheel or built from its sdist), version and time
# are recorded; a refusal is recorded with its reason, and must leave the
# tree as it was. Then the tree is packaged, and `qemu-test --package` runs
# every installed package's check ([python_package.<p>] check in the
# manifest) from the unpacked package on the arch's board root.
#
# The table goes to deploy/<arch>/corpus.tsv. The script fails when a
# package that installed fails its check, or when a refusal changed the
# tree; a refusal itself is a result (Rust packages on mipsel).
#
# Usage: tests/corpus.sh <arch> [package ...]   (default: the whole corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: tests/corpus.sh <arch> [package ...]}
shift
packages=("$@")
if [ ${#packages[@]} = 0 ]; then
  # pydantic>=2: its check is a v2 model; pip would otherwise fall back
  # to the pure-Python 1.10 where pydantic-core cannot be built (mipsel).
  packages=(msgpack psutil ujson pyserial paho-mqtt smbus2 spidev aiohttp lxml pillow pyzmq cryptography bcrypt "pydantic>=2" orjson)
fi
top=$(dirname "${CROSSPYTHON_BUILD_DIR:-build}")
tree=$top/sysroots/$arch
deploy=$top/deploy/$arch
mkdir -p "$deploy"
table=$deploy/corpus.tsv
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

fingerprint() { (cd "$tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }

[ -d "$tree" ] || { echo "no tree for $arch: run cargo xtask build --arch $arch first" >&2; exit 1; }
printf 'package\tresult\tversion\troute\tseconds\tcheck\n' >"$table"
status=0
for spec in "${packages[@]}"; do
  p=${spec%%[<>=!~ ]*}
  before=$(fingerprint)
  start=$(date +%s)
  if cargo xtask pip --arch "$arch" install "$spec" >"$scratch/out" 2>&1; then
    result=installed
  else
    result=refused
  fi
  secs=$(( $(date +%s) - start ))
  # The route pip's summary gives for the requirement itself, and the
  # version installed (or already there).
  # The last route pip's summary gives for the requirement (the first may
  # say that a dependency is built first).
  route=$(sed -n "s/^  route $spec: //p" "$scratch/out" | tail -n 1 || true)
  version=$(grep -i -m1 -E "^  $p [^ ]+(: new|: already installed)|^  $p [^ ]+ -> " "$scratch/out" | sed -E 's/^  [^ ]+ ([^ :]+).*-> ([^ ]+).*/\2/; s/^  [^ ]+ ([^ :]+).*/\1/' || true)
  if [ "$result" = refused ]; then
    # The reason: what follows "the tree ... is unchanged: " in the error.
    route=$(sed -n 's/^error: pip install for .* is unchanged: //p' "$scratch/out" | head -1 | tr '\t' ' ' | cut -c1-400 || true)
    if [ "$(fingerprint)" != "$before" ]; then
      echo "FAIL: the refused install of $p changed the tree" >&2
      status=1
    fi
  fi
  printf '%s\t%s\t%s\t%s\t%s\t-\n' "$p" "$result" "${version:--}" "${route:--}" "$secs" >>"$table"
  echo "$arch: $p: $result in ${secs}s ${route:+($route)}"
done

cargo xtask package --arch "$arch"
archive=$(ls -t "$deploy"/crosspython-*.tar.zst | head -1)
cargo xtask qemu-test --arch "$arch" --package "$archive" || status=1
# Each package's check result from the package, into the table.
python3 - "$table" "$deploy/$(basename "$archive" .tar.zst).qemu-test-checks.json" <<'PY'
import csv, json, sys
table, checks = sys.argv[1], sys.argv[2]
results = {r["name"].removeprefix("package:"): r for r in json.load(open(checks)) if r["name"].startswith("package:")}
rows = list(csv.reader(open(table), delimiter="\t"))
for row in rows[1:]:
    r = results.get(row[0])
    if r:
        row[5] = ("ok: " if r["ok"] else "FAILED: ") + r["detail"]
    elif row[1] == "installed":
        row[5] = "no check ran"
with open(table, "w", newline="") as f:
    csv.writer(f, delimiter="\t", lineterminator="\n").writerows(rows)
PY
column -t -s $'\t' "$table" | cut -c1-220
exit $status
