#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 400
# Daemon failover. --supervise: the supervisor holds /dev/cachefiles, the worker serves. An
# erofs_rs mount and an in-tree erofs mount (two fsids, so four cache objects) are read by
# four readers while fetches are slowed down; the worker is killed with SIGKILL mid-read. The
# supervisor starts a new worker, which writes `restore`; cachefiles re-sends the requests the
# dead worker had taken and reopens (new OPEN, new anon fd) the objects whose anon fds died
# with it. Every reader must finish with the right data and no error. The same with a holder
# process (`erofs-ondemandd hold`) passing the descriptor (SCM_RIGHTS) to each daemon started
# with --fd-store. Then without failover (holder and daemon killed): a reader waiting for data
# gets EIO at once instead of hanging. (A plain daemon exiting with a READ pending is in
# 09_hostile_daemon.sh, exit-on-read.)
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference

make_tree "$W/tree"
head -c 8388608 /dev/urandom > "$W/tree/big.bin"     # 8 MiB: 8 fetches of 1 MiB
head -c 2097152 /dev/urandom > "$W/tree/late.bin"    # read only after the failover
build_image "$W/tree" "$W/blobs"
ln -s meta "$W/blobs/meta_rs"
ln -s meta "$W/blobs/meta_ref"
setup_cache
t0=$(now_ms)
# Every fetch of data blob blob1 takes 300 ms more: the readers are surely mid-read at the kill.
start_daemon "$W/blobs" --supervise --worker-pid-file "$W/worker.pid" --source-delay-ms 300:blob1
SUP=$DAEMON_PID
wait_until 10 test -s "$W/worker.pid" || die "no worker pid file"
W1=$(cat "$W/worker.pid")
check "the worker is a child of the supervisor" test "$(awk '{print $4}' "/proc/$W1/stat")" = "$SUP"

mount_fs erofs_rs fsid=meta_rs,device=blob1 "$W/rs" || die "mount -t erofs_rs failed"
mount_fs erofs fsid=meta_ref,device=blob1 "$W/ref" || die "mount -t erofs (in-tree) failed"

# reader NAME FILE: cat FILE to $W/NAME.out in the background; its pid in PIDS[NAME]
declare -A PIDS
reader() { cat "$2" > "$W/$1.out" 2> "$W/$1.err" & PIDS[$1]=$!; }
reads_at_least() { [ "$(stat_value reads)" -ge "$1" ]; }
dead() { ! alive "$1"; }
reader rs_big "$W/rs/big.bin"
reader ref_big "$W/ref/big.bin"
reader rs_random "$W/rs/random.bin"
reader ref_random "$W/ref/random.bin"
wait_until 30 reads_at_least 4 || fail "the readers sent fewer than 4 READs in 30 s"
nap 0.2
alive_before=0
for n in "${!PIDS[@]}"; do alive "${PIDS[$n]}" && alive_before=$((alive_before + 1)); done
log "readers still reading at the kill: $alive_before of 4; READs served so far: $(stat_value reads)"
check "the readers are mid-read when the worker is killed" test "$alive_before" -ge 2
t_kill=$(now_ms)
kill -KILL "$W1"
new_worker() { [ -s "$W/worker.pid" ] && [ "$(cat "$W/worker.pid")" != "$W1" ]; }
wait_until 30 new_worker || die "no new worker within 30 s of the kill"
W2=$(cat "$W/worker.pid")
log "new worker $W2 up $(( $(now_ms) - t_kill )) ms after the kill"
check "the supervisor survived" alive "$SUP"

failed=0
for n in rs_big ref_big rs_random ref_random; do
  pid=${PIDS[$n]}
  if ! wait_until 120 dead "$pid" 2>/dev/null; then fail "$n: still reading 120 s after the kill"; continue; fi
  wait "$pid"; rc=$?
  f=big.bin; [ "${n#*_}" = random ] && f=random.bin
  if [ "$rc" != 0 ]; then fail "$n: reader failed (status $rc): $(cat "$W/$n.err")"; failed=1
  elif ! cmp -s "$W/$n.out" "$W/tree/$f"; then fail "$n: wrong data"; failed=1
  else log "ok: $n: correct data"; fi
done
log "readers done $(( $(now_ms) - t_kill )) ms after the kill"
check "every reader finished with the right data" test "$failed" = 0
check "the new worker wrote restore" grep -q "wrote 'restore'" "$W/daemon.log"
check "the stats show one restart" test "$(stat_value restarts)" = 1
# Objects whose anon fd died with the worker are reopened: OPENs to the new worker.
log "new worker: opens=$(stat_value opens) reads=$(stat_value reads) errors=$(stat_value errors)"
check "cachefiles reopened the objects in use (OPENs to the new worker)" test "$(stat_value opens)" -ge 2
check "the new worker had no errors" test "$(stat_value errors)" = 0
# The whole trees, also files nobody read yet, through both mounts.
check "erofs_rs: late.bin after the failover" cmp -s "$W/rs/late.bin" "$W/tree/late.bin"
check "erofs: late.bin after the failover" cmp -s "$W/ref/late.bin" "$W/tree/late.bin"
tree_manifests "$W/rs" "$W/rs.manifest" "$W/ref" "$W/ref.manifest" || fail "walking the mounts failed"
check "the whole tree after the failover: erofs_rs shows what erofs shows" cmp -s "$W/rs.manifest" "$W/ref.manifest"
log "failover part: $(( $(now_ms) - t0 )) ms"

# The same with the descriptor kept by a holder process (erofs-ondemandd hold) and handed to
# each daemon that starts with --fd-store: SIGKILL to the daemon mid-read, a new daemon
# started by hand gets the bound device, writes restore and serves on.
umount_fs "$W/rs" && umount_fs "$W/ref" || fail "umount after the failover"
stop_daemon
"$DAEMON" hold --socket "$W/hold.sock" --pid-file "$W/hold.pid" >>"$W/daemon.log" 2>&1 </dev/null &
HOLD=$!
trap 'kill -TERM "$HOLD" 2>/dev/null; cleanup' EXIT
wait_until 10 test -s "$W/hold.pid" || die "the holder did not start"
start_daemon "$W/blobs" --fd-store "$W/hold.sock" --source-delay-ms 300:blob1
D1=$DAEMON_PID
ln -s meta "$W/blobs/meta_fd"
mount_fs erofs_rs fsid=meta_fd,device=blob1 "$W/fd" || die "mount for the fd-store case failed"
reads=$(stat_value reads)
reader fd_big "$W/fd/big.bin"
wait_until 20 reads_at_least $((reads + 2)) || fail "the fd-store reader sent no READ"
check "the fd-store reader is mid-read at the kill" alive "${PIDS[fd_big]}"
t_kill=$(now_ms)
kill -KILL "$D1"
wait "$D1" 2>/dev/null
# Slow too: the no-failover part below must catch its reader waiting for data.
start_daemon "$W/blobs" --fd-store "$W/hold.sock" --source-delay-ms 300:blob1
log "fd store: new daemon up $(( $(now_ms) - t_kill )) ms after the kill"
if wait_until 60 dead "${PIDS[fd_big]}"; then
  wait "${PIDS[fd_big]}"; rc=$?
  check "fd store: the reader finished without error" test "$rc" = 0
  check "fd store: the reader got the right data" cmp -s "$W/fd_big.out" "$W/tree/big.bin"
else
  fail "fd store: the reader still reads 60 s after the kill"
fi
if ! check "fd store: the new daemon got the bound device" \
    grep -q "got the bound device from .* (hand-over 1)" "$W/daemon.log"; then
  grep -E "bound|hold:" "$W/daemon.log" | sed 's/^/# daemon.log: /'
fi
check "fd store: cachefiles reopened the object (OPEN to the new daemon)" test "$(stat_value opens)" -ge 1
log "fd-store part: $(( $(now_ms) - t0 )) ms"

# Without failover: SIGKILL to the holder and the daemon while a reader waits for data. The
# device closes with them: the pending READ fails, the reader gets EIO at once.
# A fresh volume (fsid) over the same blobs: its cache files are empty.
ln -s meta "$W/blobs/meta_nf"
mount_fs erofs_rs fsid=meta_nf,device=blob1 "$W/nf" || die "mount for the no-failover case failed"
reads=$(stat_value reads)
cat "$W/nf/big.bin" > /dev/null 2> "$W/nf.err" &
NF=$!
wait_until 20 reads_at_least $((reads + 1)) || fail "no READ from the last reader"
nap 0.1
t_kill=$(now_ms)
kill -KILL "$HOLD" "$DAEMON_PID"
DAEMON_PID=
if wait_until 10 dead "$NF"; then
  wait "$NF"; rc=$?
  log "reader ended $(( $(now_ms) - t_kill )) ms after the kill: status $rc: $(cat "$W/nf.err")"
  check "without failover the reader gets EIO" grep -q "Input/output error" "$W/nf.err"
else
  fail "without failover the reader still waits 10 s after the kill"
  kill -KILL "$NF"
fi
check "umount works after the daemon is gone" umount_fs "$W/nf"
log "total: $(( $(now_ms) - t0 )) ms"
finish
