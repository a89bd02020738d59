#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 200
# erofs-ondemandd --config FILE (TOML): a [[source]] table maps the volume and its blobs to a
# blob directory, [prefetch] copies the data blob into the cache in the background after its
# OPEN, capped by a bandwidth. The prefetch takes at least about size/cap; afterwards every file
# reads from the cache with no READ request. `erofs-ondemandd stats --socket` shows the stats
# file's counters (plus in_flight, the READ latency histogram, uptime). A blob no [[source]]
# matches is refused (the mount fails); config errors stop the daemon at start, naming the
# file, line and key; the stats socket is removed on a clean exit.
. "$(dirname "$0")/lib.sh"
setup_work
load_module

[ -x "$DAEMON" ] || die "$DAEMON is missing: build it with 'make daemon'"

# 1. Config errors: clear, at start, before /dev/cachefiles is touched.
# config_error NAME TEXT EXPECTED: the daemon refuses config TEXT with a message containing
# EXPECTED (and exit status 2).
config_error() {
  printf '%s\n' "$2" > "$W/$1.toml"
  local out rc
  out=$(timeout 30 "$DAEMON" --config "$W/$1.toml" 2>&1 </dev/null); rc=$?
  log "$1: exit $rc: $(printf '%s' "$out" | head -n 1)"
  check "$1: refused at start (exit 2)" test "$rc" = 2
  check "$1: the message names file, line and key" grep -qF -- "$W/$1.toml:$3" <<<"$out"
}
config_error unknown_key $'cache_dir = "/x"\n\nwindw = 65536' '3: windw: unknown key'
config_error missing_dir $'cache_dir = "/x"\n[[source]]\ndir = "/nonexistent-blobs"' \
  '3: source[0].dir: /nonexistent-blobs: not a directory'
config_error wrong_type $'threads = "8"' '1: threads: must be an integer, not a string'
config_error bad_toml $'[prefetch]\nblobs = ["blob1",' '3: unterminated array (opened on line 2)'

# 2. The image, and a config serving it with a capped prefetch of the data blob.
make_tree "$W/tree"
build_image "$W/tree" "$W/blobs"
ln -s meta "$W/blobs/meta_other"   # in the directory, but no [[source]] matches its volume
SIZE=$(stat -L -c %s "$W/blobs/blob1")
CAP=1048576                        # bytes/s: the blob (~3.2 MiB) takes >= ~3 s
setup_cache
cat > "$W/ondemandd.toml" <<EOF
# erofs-ondemandd config of selftest 18
cache_dir = "$W/cachefs/cache"
stats_file = "$W/stats"
stats_socket = "$W/stats.sock"
log_level = "debug"

[[source]]                    # volume erofs,meta (mounted with fsid=meta): its two blobs
volume = "meta"
blobs = ["meta", "blob1"]
dir = "$W/blobs"

[prefetch]
bandwidth = "1M"
blobs = ["blob1"]
EOF
# start_daemon adds --cache-dir/--stats-file/--pid-file: the same values, overriding the file's.
start_daemon "" --config "$W/ondemandd.toml"
trap 'echo "# daemon log (tail):"; tail -n 30 "$W/daemon.log" | sed "s/^/#   /"; cleanup' EXIT
check "the daemon routes by the config" grep -q "serving 1 source(s)" "$W/daemon.log"

t0=$(now_ms)
mount_fs erofs_rs fsid=meta,device=blob1 "$W/mnt" || die "mount through the config's source failed"
log "mounted after $(( $(now_ms) - t0 )) ms; opens=$(stat_value opens) reads=$(stat_value reads)"

# 3. The prefetch: whole blob, no faster than the cap.
prefetch_over() { [ "$(stat_value prefetch_done)" -ge 1 ] 2>/dev/null; }
wait_until 90 prefetch_over || die "the prefetch did not finish in 90 s: prefetch_bytes=$(stat_value prefetch_bytes) of $SIZE"
el=$(( $(now_ms) - t0 ))
pb=$(stat_value prefetch_bytes)
min_ms=$(( SIZE * 800 / CAP ))
log "prefetch: $pb of $SIZE bytes in $(stat_value prefetch_pieces) pieces, $el ms after the mount started (cap $CAP bytes/s: at least $min_ms ms)"
check "the whole data blob was prefetched" test "$pb" = "$SIZE"
check "the prefetch kept to the bandwidth cap" test "$el" -ge "$min_ms"
check "the daemon logged the prefetch" grep -q "prefetch of .*blob1 done" "$W/daemon.log"

# 4. Every file now reads from the cache: right content, no READ request.
reads0=$(stat_value reads)
bad=0 n=0
while IFS= read -r -d '' f; do
  n=$((n + 1))
  cmp -s "$W/tree/$f" "$W/mnt/$f" || { bad=$((bad + 1)); log "differs: $f"; }
done < <(cd "$W/tree" && find . -type f -print0)
(cd "$W/tree" && find . -printf '%y %p %l\n' | sort) > "$W/tree.list"
(cd "$W/mnt" && find . -printf '%y %p %l\n' | sort) > "$W/mnt.list" || fail "walking the mount failed"
reads1=$(stat_value reads)
log "read $n files: $bad differ; READs before $reads0, after $reads1"
check "every file has the tree's content" test "$bad" = 0
check "the mount lists the tree's entries (types, names, link targets)" cmp -s "$W/tree.list" "$W/mnt.list"
check "all cache hits: no READ after the prefetch" test "$reads1" = "$reads0"

# 5. The stats socket: the stats file's counters, plus the live ones.
"$DAEMON" stats --socket "$W/stats.sock" > "$W/sock.out" 2> "$W/sock.err" || fail "stats --socket failed: $(cat "$W/sock.err")"
grep -vE '^(in_flight|read_lat_[a-z0-9_]+|uptime_ms) ' "$W/sock.out" > "$W/sock.counters"
check "stats --socket shows the stats file's counters" cmp -s "$W/sock.counters" "$W/stats"
check "stats --socket: nothing in flight" grep -qx "in_flight 0" "$W/sock.out"
check "stats --socket: uptime" grep -qE "^uptime_ms [0-9]+$" "$W/sock.out"
lat=$(awk '$1 ~ /^read_lat_/ { s += $2 } END { print s + 0 }' "$W/sock.out")
len=$(awk '$1 ~ /^read_len_/ { s += $2 } END { print s + 0 }' "$W/sock.out")
check "stats --socket: 8 latency buckets" test "$(grep -c '^read_lat_' "$W/sock.out")" = 8
check "stats --socket: the latency histogram counts every served READ ($lat)" test "$lat" = "$len"

# 6. A volume no [[source]] matches: its OPEN is refused, the mount fails.
if mount_fs erofs_rs fsid=meta_other,device=blob1 "$W/other"; then
  fail "a mount of a volume no source matches succeeded"
else
  log "mount of volume erofs,meta_other failed, as it should"
fi
check "the daemon says why" grep -q 'no \[\[source\]\] of the config file matches volume "erofs,meta_other" blob "meta_other"' "$W/daemon.log"

# 7. A clean exit removes the stats socket.
check "the stats socket exists while the daemon runs" test -S "$W/stats.sock"
umount_fs "$W/mnt" || fail "umount failed"
stop_daemon
check "the stats socket is removed on a clean exit" test ! -e "$W/stats.sock"
check "no daemon error but the refused OPEN" test "$(stat_value errors)" -le 1
finish
