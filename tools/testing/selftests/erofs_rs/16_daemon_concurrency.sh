#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 300
# The daemon serves requests concurrently: a READ of one blob is not held up by a slow fetch of
# another, and READs of a range already being fetched wait for that fetch instead of fetching
# it again (each still completed on its own). One image, mounted twice through different data
# blob names: `slow` (every fetch held back 5 s by --source-delay-ms) and `fast`.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference

make_tree "$W/tree"
build_image "$W/tree" "$W/blobs"
for n in slow fast; do ln -s blob1 "$W/blobs/$n"; ln -s meta "$W/blobs/meta_$n"; done
setup_cache
DELAY=5000
start_daemon "$W/blobs" --source-delay-ms "$DELAY:slow" --log-level debug
mount_fs erofs_rs fsid=meta_slow,device=slow "$W/slow" || die "mount (slow) failed"
mount_fs erofs fsid=meta_fast,device=fast "$W/fast" || die "mount (fast) failed"
log "mounted; daemon: opens=$(stat_value opens) reads=$(stat_value reads)"
trap 'echo "# daemon log (tail):"; tail -n 30 "$W/daemon.log" | sed "s/^/#   /"; cleanup' EXIT

reads_at_least() { [ "$(stat_value reads)" -ge "$1" ]; }
dead() { ! alive "$1"; }
F=random.bin

# 1. A slow reader, then a reader of the other blob while the slow fetch is held back.
reads=$(stat_value reads)
t0=$(now_ms)
dd if="$W/slow/$F" of="$W/slow.out" bs=4096 count=1 status=none 2> "$W/slow.err" &
SLOW=$!
wait_until 10 reads_at_least $((reads + 1)) || fail "the slow reader sent no READ"
log "the slow reader's READ is in (after $(( $(now_ms) - t0 )) ms)"
t1=$(now_ms)
timeout 60 cat "$W/fast/$F" > "$W/fast.out" || fail "reading through the fast blob failed"
t2=$(now_ms)
slow_alive=no; alive "$SLOW" && slow_alive=yes
log "fast blob: $F (3 MiB) read in $((t2 - t1)) ms while the slow fetch waits"
check "the fast blob's data is right" cmp -s "$W/fast.out" "$W/tree/$F"
check "the slow reader was still waiting when the fast read was done" test "$slow_alive" = yes
check "the fast read took less than the slow fetch's delay" test $((t2 - t1)) -lt "$DELAY"
wait_until 20 dead "$SLOW" || fail "the slow reader never finished"
wait "$SLOW" || fail "the slow reader failed: $(cat "$W/slow.err")"
log "slow reader done after $(( $(now_ms) - t0 )) ms"
check "the slow blob's data is right" cmp -s "$W/slow.out" <(head -c 4096 "$W/tree/$F")
check "the slow read waited for the delay" test $(( $(now_ms) - t0 )) -ge "$DELAY"

# 2. Coalescing: while the 1 MiB fetch for page 0 of the next MiB is held back, readers of
# other pages of that MiB send READs that wait for it instead of fetching again.
c0=$(stat_value coalesced); f0=$(stat_value fetches); reads=$(stat_value reads)
dd if="$W/slow/$F" of="$W/c0.out" bs=4096 skip=256 count=1 status=none &
P0=$!
wait_until 10 reads_at_least $((reads + 1)) || fail "no READ for the first page"
pids=()
for p in 300 400 500; do
  dd if="$W/slow/$F" of="$W/c$p.out" bs=4096 skip=$p count=1 status=none &
  pids+=($!)
done
ok=1
for pid in $P0 "${pids[@]}"; do wait "$pid" || ok=0; done
check "the overlapping readers succeeded" test "$ok" = 1
for p in 0 300 400 500; do
  s=$(( p == 0 ? 256 : p ))
  check "page $s is right" cmp -s "$W/c$p.out" <(dd if="$W/tree/$F" bs=4096 skip=$s count=1 status=none)
done
c1=$(stat_value coalesced); f1=$(stat_value fetches)
log "READs that joined a fetch in flight: $((c1 - c0)); fetches started: $((f1 - f0)); reads: $(( $(stat_value reads) - reads ))"
check "READs of a range being fetched were coalesced" test $((c1 - c0)) -ge 1
check "no error" test "$(stat_value errors)" = 0
finish
