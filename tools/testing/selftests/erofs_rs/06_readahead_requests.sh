#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Readahead merges contiguous folios into one fscache read per extent, so a cold sequential read
# needs few on-demand requests: with a daemon that fills exactly what is asked (--window 0),
# erofs_rs must need no more READ requests than in-tree erofs for the same file, and far fewer
# than one per page. The data read must be identical.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference
mkdir -p "$W/tree"
head -c $((6 * 1048576 + 5)) /dev/urandom > "$W/tree/big"
build_image "$W/tree" "$W/blobs"
setup_cache

# cold_read TYPE: sets COLD to the READ requests for reading "big" once from an empty cache
# (not a $(...) function: the daemon it starts must not hold the substitution's pipe).
cold_read() {
  reset_cache "$W/blobs" --window 0
  mount_fs "$1" "fsid=meta,device=blob1" "$W/m_$1" || die "mount -t $1 failed"
  local before; before=$(stat_value reads)
  sha256sum "$W/m_$1/big" | cut -d' ' -f1 > "$W/sum_$1"
  local after; after=$(stat_value reads)
  umount_fs "$W/m_$1"
  COLD=$((after - before))
}
cold_read erofs_rs; rs=$COLD
cold_read erofs; ref=$COLD
pages=$(( (6 * 1048576 + 5 + 4095) / 4096 ))
log "cold read of 6 MiB: erofs_rs $rs READ requests, in-tree erofs $ref, pages $pages"
check "same data through both" cmp -s "$W/sum_erofs_rs" "$W/sum_erofs"
check "same data as the source" test "$(cat "$W/sum_erofs_rs")" = "$(sha256sum "$W/tree/big" | cut -d' ' -f1)"
check "erofs_rs needs no more requests than in-tree erofs ($rs <= $ref)" test "$rs" -le "$ref"
check "requests are merged: fewer than a quarter of the pages ($rs < $((pages / 4)))" test "$rs" -lt $((pages / 4))
finish
