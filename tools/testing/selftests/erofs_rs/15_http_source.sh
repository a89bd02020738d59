#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 300
# erofs-ondemandd --source http://...: blobs fetched with HEAD (size at OPEN) and Range GETs
# from a small HTTP server on loopback (rangeserver.py, standard library only). erofs_rs and
# in-tree erofs read the same tree through it. A failing fetch (500, a body cut short, the
# server gone) completes the READ without data: the reader gets EIO, nothing hangs. A blob the
# server does not have (404) fails its OPEN: reads of it fail too.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference

make_tree "$W/tree"
build_image "$W/tree" "$W/blobs"
for n in rs ref broken short missing down; do ln -s meta "$W/blobs/meta_$n"; done
ln -s blob1 "$W/blobs/broken1"   # GETs answered 500
ln -s blob1 "$W/blobs/short1"    # bodies cut in half, then the connection closes
setup_cache

loopback_up
$PY "$SELFTEST_DIR/rangeserver.py" "$W/blobs" "$W/port" "$W/http.log" /blobs 2> "$W/server.err" &
SRV=$!
stop_server() { kill "$SRV" 2>/dev/null; wait "$SRV" 2>/dev/null; }
trap 'stop_server; cleanup' EXIT
# Python's http.server imports some 40 modules over the guest's 9p root: under TCG that alone
# can take tens of seconds.
t_srv=$(now_ms)
wait_until 120 test -s "$W/port" ||
  die "the range server did not start in 120 s: $(tail -n 5 "$W/server.err"); state: $(grep -E '^(State|wchan)' /proc/$SRV/status 2>/dev/null | tr '\n' ' ')"
log "range server up in $(( $(now_ms) - t_srv )) ms"
URL="http://127.0.0.1:$(cat "$W/port")/blobs"
log "range server at $URL"
start_daemon "" --source "$URL" --http-timeout 10

# 1. The whole tree through both filesystems.
t0=$(now_ms)
mount_fs erofs_rs fsid=meta_rs,device=blob1 "$W/rs" || { cat "$W/daemon.log"; die "mount -t erofs_rs over HTTP failed"; }
mount_fs erofs fsid=meta_ref,device=blob1 "$W/ref" || die "mount -t erofs over HTTP failed"
tree_manifests "$W/rs" "$W/rs.manifest" "$W/ref" "$W/ref.manifest" || fail "walking the mounts failed"
log "both trees read over HTTP in $(( $(now_ms) - t0 )) ms"
check "erofs_rs over HTTP shows what in-tree erofs shows" cmp -s "$W/rs.manifest" "$W/ref.manifest"
check "random.bin over HTTP (erofs_rs)" test "$(read_file "$W/rs/random.bin" random.bin)" = "correct data"
check "random.bin over HTTP (erofs)" test "$(read_file "$W/ref/random.bin" random.bin)" = "correct data"
heads=$(grep -c "^HEAD .* 200$" "$W/http.log")
ranges=$(grep -c "^GET .* bytes=[0-9]*-[0-9]* 206$" "$W/http.log")
log "server saw $heads HEADs, $ranges Range GETs, $(grep -c . "$W/http.log") requests in all"
check "OPENs asked for the blob sizes (HEAD)" test "$heads" -ge 4
check "data came in Range GETs" test "$ranges" -ge 4
check "no GET without a Range" test "$(grep -c "^GET [^ ]* - " "$W/http.log")" = 0
check "no daemon error so far" test "$(stat_value errors)" = 0

# 2. Failing fetches: metadata is served, the data blob's GETs fail.
for c in broken short; do
  mount_fs erofs_rs "fsid=meta_$c,device=${c}1" "$W/$c" || { fail "$c: mount failed"; continue; }
  t=$(now_ms)
  r=$(read_file "$W/$c/random.bin" random.bin)
  log "$c: read: $r after $(( $(now_ms) - t )) ms"
  check "$c: the reader gets EIO" test "$r" = "Input/output error"
  check "$c: umount" umount_fs "$W/$c"
done
check "the 500s reached the server" grep -q "^GET broken1 .* 500$" "$W/http.log"
check "the cut bodies were sent" grep -q "^GET short1 .* 206$" "$W/http.log"

# 3. A data blob the server does not have: its OPEN fails (404 -> ENOENT), reads fail.
if mount_fs erofs_rs fsid=meta_missing,device=nothere "$W/missing"; then
  r=$(read_file "$W/missing/random.bin" random.bin)
  check "missing data blob: the reader gets an error, not data" test "$r" != "correct data"
  log "missing data blob: read: $r"
  umount_fs "$W/missing"
else
  log "missing data blob: the mount failed"
fi
check "the server answered 404" grep -q "^HEAD nothere - 404$" "$W/http.log"

# 4. The server goes away: uncached data fails at once with EIO, cached data still reads.
mount_fs erofs_rs fsid=meta_down,device=blob1 "$W/down" || die "mount (down) failed"
stop_server
t=$(now_ms)
r=$(read_file "$W/down/random.bin" random.bin)
log "server gone: read: $r after $(( $(now_ms) - t )) ms"
check "server gone: the reader gets EIO" test "$r" = "Input/output error"
echo 3 > /proc/sys/vm/drop_caches
check "server gone: data in the cache files still reads" test "$(read_file "$W/rs/random.bin" random.bin)" = "correct data"
check "server gone: umount" umount_fs "$W/down"
check "the daemon is still running" alive "$DAEMON_PID"
log "daemon: $(tr '\n' ' ' < "$W/stats" | sed 's/read_len[^ ]* [0-9]* //g')"
log "total: $(( $(now_ms) - t0 )) ms"
finish
