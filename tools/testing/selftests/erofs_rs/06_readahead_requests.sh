#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Readahead merges contiguous folios into one fscache read per extent, so a cold sequential read
# needs few on-demand requests: with a daemon that fills exactly what is asked (--window 0) and
# erofs_rs mounted with fetch_kb=0 (ask only for what is read, as in-tree erofs does), erofs_rs
# must need no more READ requests than in-tree erofs for the same file, and far fewer than one
# per page. The data read must be identical.
# Then erofs_rs's fetch granule (fetch_kb=, default 1024): each miss asks the daemon for the
# aligned 1 MiB blocks of the blob around it, twice as many as the last fetch when it continues
# where that one ended (1, 2, 4 MiB...), so the same cold read takes at most one READ per MiB of
# the blob (3 for 6 MiB + 5 bytes), fetches nothing twice, and reads the same data; with
# fetch_kb=2048, at most 4 and no more than the default. A random reader fetches one block per
# miss. The option shows in /proc/mounts when not the default, remount changes it, and bad
# values (not a multiple of 4, over 16384) are refused. Last, the bytes of the last page past
# EOF read as zeros through mmap even where the blob holds other bytes.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference
mkdir -p "$W/tree"
head -c $((6 * 1048576 + 5)) /dev/urandom > "$W/tree/big"
build_image "$W/tree" "$W/blobs"
setup_cache
start_daemon "$W/blobs" --window 0

# cold_read TYPE TAG [OPTIONS]: sets COLD to the READ requests and FETCHED to the bytes fetched
# for reading "big" once from an empty cache, its hash in $W/sum_TAG. Each read goes through
# cookies of its own (meta_TAG, blob1_TAG: links to the same blobs), so it starts from empty
# cache files with the one daemon (--window 0: it fills only what is asked).
cold_read() {
  ln -s meta "$W/blobs/meta_$2"; ln -s blob1 "$W/blobs/blob1_$2"
  mount_fs "$1" "fsid=meta_$2,device=blob1_$2${3:-}" "$W/m_$2" || die "mount -t $1 -o ...${3:-} failed"
  local before; before=$(stat_value reads)
  local fbefore; fbefore=$(stat_value bytes_fetched)
  sha256sum "$W/m_$2/big" | cut -d' ' -f1 > "$W/sum_$2"
  local after; after=$(stat_value reads)
  FETCHED=$(( $(stat_value bytes_fetched) - fbefore ))
  OPTS=$(awk -v m="$W/m_$2" '$2 == m { print $4 }' /proc/mounts)
  umount_fs "$W/m_$2"
  COLD=$((after - before))
}
cold_read erofs_rs rs ,fetch_kb=0; rs=$COLD
cold_read erofs ref; ref=$COLD
pages=$(( (6 * 1048576 + 5 + 4095) / 4096 ))
log "cold read of 6 MiB: erofs_rs (fetch_kb=0) $rs READ requests, in-tree erofs $ref, pages $pages"
check "same data through both" cmp -s "$W/sum_rs" "$W/sum_ref"
check "same data as the source" test "$(cat "$W/sum_rs")" = "$(sha256sum "$W/tree/big" | cut -d' ' -f1)"
check "fetch_kb=0: erofs_rs needs no more requests than in-tree erofs ($rs <= $ref)" test "$rs" -le "$ref"
check "requests are merged: fewer than a quarter of the pages ($rs < $((pages / 4)))" test "$rs" -lt $((pages / 4))

blob=$(stat -c %s "$W/blobs/blob1")
mib=$(( (blob + 1048575) / 1048576 ))
cold_read erofs_rs def; def=$COLD
log "cold read with the default fetch granule: $def READ requests, $FETCHED bytes fetched (blob: $blob bytes, $mib MiB blocks); options $OPTS"
check "default granule: same data as the source" test "$(cat "$W/sum_def")" = "$(sha256sum "$W/tree/big" | cut -d' ' -f1)"
check "default granule: at most one READ per MiB of the blob ($def <= $mib)" test "$def" -le "$mib" -a "$def" -ge 1
check "default granule: a sequential read ramps up: 1, 2, 4 MiB... ($def <= 3)" test "$def" -le 3
check "default granule: fewer requests than in-tree erofs ($def < $ref)" test "$def" -lt "$ref"
check "default granule: nothing fetched twice or past the blob's end ($FETCHED <= $blob)" test "$FETCHED" -le "$blob"
check "the default fetch_kb is not shown in /proc/mounts" bash -c "! grep -q fetch_kb <<<'$OPTS'"
# A reader that jumps (4 KiB at 5, 1 and 3 MiB into the file): one block of 1 MiB per miss.
ln -s meta "$W/blobs/meta_rnd"; ln -s blob1 "$W/blobs/blob1_rnd"
mount_fs erofs_rs "fsid=meta_rnd,device=blob1_rnd" "$W/m_rnd" || die "mount (random reader) failed"
r0=$(stat_value reads); f0=$(stat_value bytes_fetched)
for mib_at in 5 1 3; do
  cmp -s <(dd if="$W/m_rnd/big" bs=4096 skip=$((mib_at * 256)) count=1 status=none) \
    <(dd if="$W/tree/big" bs=4096 skip=$((mib_at * 256)) count=1 status=none) || fail "random reader: wrong data at $mib_at MiB"
done
rr=$(( $(stat_value reads) - r0 )); rf=$(( $(stat_value bytes_fetched) - f0 ))
umount_fs "$W/m_rnd"
log "random reader: $rr READ requests, $rf bytes fetched"
check "random reader: one READ of one 1 MiB block per miss ($rr READs, $rf bytes)" test "$rr" = 3 -a "$rf" = $((3 * 1048576))
cold_read erofs_rs fk ,fetch_kb=2048; fk=$COLD
log "cold read with fetch_kb=2048: $fk READ requests, $FETCHED bytes fetched (blob: $blob bytes); options $OPTS"
check "fetch_kb=2048: same data as the source" test "$(cat "$W/sum_fk")" = "$(sha256sum "$W/tree/big" | cut -d' ' -f1)"
check "fetch_kb=2048: at most 4 READ requests for 6 MiB ($fk)" test "$fk" -le 4 -a "$fk" -ge 1
check "fetch_kb=2048: no more requests than the default ($fk <= $def)" test "$fk" -le "$def"
check "fetch_kb=2048: nothing fetched twice or past the blob's end ($FETCHED <= $blob)" test "$FETCHED" -le "$blob"
check "fetch_kb=2048 shows in /proc/mounts" grep -q ',fetch_kb=2048\(,\|$\)' <<<"$OPTS"
mount_fs erofs_rs "fsid=meta,device=blob1,fetch_kb=64" "$W/m_opt" || fail "mount with fetch_kb=64 failed"
mount -o remount,fetch_kb=512 "$W/m_opt" 2>"$W/remount.err" || fail "remount,fetch_kb=512: $(cat "$W/remount.err")"
check "remount sets fetch_kb=512" grep -q "^none $W/m_opt erofs_rs .*,fetch_kb=512" /proc/mounts
mount -o remount,fetch_kb=0 "$W/m_opt" 2>"$W/remount.err" || fail "remount,fetch_kb=0: $(cat "$W/remount.err")"
check "remount sets fetch_kb=0, shown" grep -q "^none $W/m_opt erofs_rs .*,fetch_kb=0\(,\| \)" /proc/mounts
# (mount(8) passes the options /proc/mounts shows again on remount: the default is set by name)
mount -o remount,fetch_kb=1024 "$W/m_opt" 2>"$W/remount.err" || fail "remount,fetch_kb=1024: $(cat "$W/remount.err")"
check "remount sets the default, 1024, not shown" bash -c "! grep -q '^none $W/m_opt .*fetch_kb' /proc/mounts"
umount_fs "$W/m_opt" || fail "umount"
bad=()
for v in fetch_kb fetch_kb= fetch_kb=x fetch_kb=-1 fetch_kb=6 fetch_kb=1025 fetch_kb=16388 fetch_kb=99999999999; do
  bad+=("erofs_rs|fsid=meta,device=blob1,$v|$W/m_bad")
done
mkdir -p "$W/m_bad"
$PY "$SELFTEST_DIR/fsops.py" mount-errno "${bad[@]}" > "$W/bad.out" 2>&1 || fail "fsops.py mount-errno failed: $(head -c 300 "$W/bad.out")"
check "bad fetch_kb values are refused with EINVAL: $(tr '\n' ' ' < "$W/bad.out")" test "$(grep -c 'EINVAL' "$W/bad.out")" = "${#bad[@]}"

# The last page past EOF reads as zeros through mmap even when the blob holds other bytes there
# (the file's last block is read whole from the cache; the window zeroes its tail once that read
# has ended). A copy of blob1 with 0xa5 after the file's end, under a cookie of its own.
cp "$W/blobs/blob1" "$W/blobs/blob1_tail"
size=$(stat -c %s "$W/tree/big")
$PY -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(int(sys.argv[2])); f.write(b"\xa5" * (4096 - int(sys.argv[2]) % 4096))' "$W/blobs/blob1_tail" "$size"
ln -s meta "$W/blobs/meta_tail"
ln -s meta "$W/blobs/meta_tail_c"
mount_fs erofs_rs "fsid=meta_tail,device=blob1_tail" "$W/m_tail" || die "mount (tail) failed"
out=$($PY "$SELFTEST_DIR/fsops.py" eof-tail "$W/m_tail/big" 2>&1)
log "erofs_rs, the last page past EOF through mmap: $out"
check "the last page past EOF reads as zeros through mmap, whatever the blob holds there ($out)" \
  test "$out" = "tail $((4096 - size % 4096)) bytes, values [0]"
check "the data before it is right" cmp -s "$W/m_tail/big" "$W/tree/big"
umount_fs "$W/m_tail" || fail "umount (tail)"
if mount_fs erofs "fsid=meta_tail_c,device=blob1_tail" "$W/m_tail_c"; then
  log "in-tree erofs, the same page: $($PY "$SELFTEST_DIR/fsops.py" eof-tail "$W/m_tail_c/big" 2>&1) (not checked: fscache-mode C leaves the blob's bytes there)"
  umount_fs "$W/m_tail_c" || fail "umount (tail, in-tree erofs)"
fi
finish
