#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# prebuild.sh DIR: on the host, build the fixtures of the tests that support `--prebuild` (their
# trees and mkfs.erofs images) into DIR/<test>, so that in the TCG guest they only copy them
# (tools/check runs this before booting the guests and passes EROFS_RS_PREBUILT=DIR to them).
# Each run builds them afresh (seconds at native speed). Needs root (the corpus has device nodes, owners
# and trusted xattrs); without it nothing is built and the tests build their own in the guest.
# Takes the same EROFS_RS_* variables as the tests (EROFS_RS_CORPUS...).
set -u
out=${1:?usage: prebuild.sh DIR}
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "prebuild: not root: the tests build their fixtures in the guest"
  exit 0
fi
command -v mkfs.erofs >/dev/null || { echo "prebuild: no mkfs.erofs"; exit 0; }
mkdir -p "$out"
rc=0
for t in 07_corpus_layouts 11_crafted_layouts 12_mutant_images 22_compressed_lz4; do
  # Only a test that handles --prebuild may be run here (any other would run for real).
  grep -q '^if \[ "${1:-}" = --prebuild \]' "$here/$t.sh" || continue
  start=$SECONDS
  if bash "$here/$t.sh" --prebuild "$out/$t.new" > "$out/$t.log" 2>&1; then
    rm -rf "$out/$t" && mv "$out/$t.new" "$out/$t"
    echo "prebuild: $t in $((SECONDS - start)) s"
  else
    rm -rf "$out/$t" "$out/$t.new"
    echo "prebuild: $t failed (the test will build its fixtures in the guest):"
    sed 's/^/  /' "$out/$t.log" | tail -n 20
    rc=1
  fi
done
exit $rc
