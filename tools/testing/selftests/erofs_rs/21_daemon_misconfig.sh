#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 200
# erofs-ondemandd's errors for a misconfigured machine, with the real /dev/cachefiles:
#   the devnode busy (another daemon, as cachefilesd would, holds it): exit 1 at start, naming
#     the device and saying why;
#   a cache directory on tmpfs (no O_DIRECT, no user xattrs for cachefiles): `bind` fails with
#     EOPNOTSUPP, the daemon exits 1 saying which filesystem features are missing;
#   a cache directory that cannot be created (the daemon creates a missing one): exit 1, saying
#     so;
#   an unknown blob (no file for the cookie key): the mount fails promptly, the daemon logs the
#     key and keeps serving;
#   an unreachable HTTP source (connection refused): the mount fails promptly, the daemon logs
#     the server and the error and keeps serving;
#   with --log-format json, the daemon's log is one JSON record per line.
. "$(dirname "$0")/lib.sh"
setup_work
load_module

[ -x "$DAEMON" ] || die "$DAEMON is missing: build it with 'make daemon'"
make_tree "$W/tree"
build_image "$W/tree" "$W/blobs"
setup_cache

# refused NAME STATUS TEXT CMD...: CMD (a daemon start) exits with STATUS within 30 s, and its
# output contains TEXT.
refused() {
  local name=$1 status=$2 text=$3 out rc; shift 3
  out=$(timeout 30 "$@" 2>&1 </dev/null); rc=$?
  log "$name: exit $rc: $(printf '%s' "$out" | tail -n 1)"
  check "$name: the daemon stops at start (exit $status)" test "$rc" = "$status"
  check "$name: it says why ('$text')" grep -qF -- "$text" <<<"$out"
}

# 1. The devnode is held by a running daemon: a second one cannot have it.
start_daemon "$W/blobs"
refused "devnode busy" 1 "/dev/cachefiles: is busy: another daemon (cachefilesd?) has it open" \
  "$DAEMON" --cache-dir "$W/cachefs/cache" --blob-dir "$W/blobs"
check "devnode busy: the first daemon still runs" alive "$DAEMON_PID"

# 2. An unknown blob: the OPEN is refused, the mount fails, the daemon goes on.
n=$(grep -c . "$W/daemon.log")
t=$(now_ms)
mkdir -p "$W/m1"
if timeout 60 mount -t erofs_rs -o fsid=no_such_blob none "$W/m1" 2>"$W/mount.err"; then
  fail "unknown blob: the mount succeeded"
else
  log "unknown blob: mount failed after $(( $(now_ms) - t )) ms: $(head -n 1 "$W/mount.err")"
  check "unknown blob: the mount fails within 20 s" test $(( $(now_ms) - t )) -lt 20000
fi
log "daemon: $(tail -n +$((n + 1)) "$W/daemon.log" | grep -m 1 no_such_blob)"
check "unknown blob: the daemon logs the key" \
  grep -qF 'no blob "no_such_blob"' <(tail -n +$((n + 1)) "$W/daemon.log")
check "unknown blob: the daemon still runs" alive "$DAEMON_PID"
mkdir -p "$W/m2"
check "unknown blob: the next mount works" mount_fs erofs_rs fsid=meta,device=blob1 "$W/m2"
check "unknown blob: the next mount reads" test "$(read_file "$W/m2/random.bin" random.bin)" = "correct data"
umount_fs "$W/m2" || fail "umount after the good mount failed"
stop_daemon

# 3. A cache directory on tmpfs ($W is a tmpfs): cachefiles refuses to bind it.
mkdir -p "$W/tmpfs_cache"
refused "cache dir on tmpfs" 1 "lacks features cachefiles needs (user xattrs, O_DIRECT" \
  "$DAEMON" --cache-dir "$W/tmpfs_cache" --blob-dir "$W/blobs"

# 4. A cache directory that cannot be created (its parent is a file).
refused "cache dir cannot be created" 1 "cannot create $W/tree/hello.txt/cache: Not a directory" \
  "$DAEMON" --cache-dir "$W/tree/hello.txt/cache" --blob-dir "$W/blobs"

# 5. An unreachable source: nothing listens on port 1 of the loopback.
loopback_up
start_daemon "" --source "http://127.0.0.1:1/blobs" --http-timeout 10
n=$(grep -c . "$W/daemon.log")
t=$(now_ms)
mkdir -p "$W/m3"
if timeout 60 mount -t erofs_rs -o fsid=meta,device=blob1 none "$W/m3" 2>"$W/mount.err"; then
  fail "unreachable source: the mount succeeded"
else
  log "unreachable source: mount failed after $(( $(now_ms) - t )) ms: $(head -n 1 "$W/mount.err")"
  check "unreachable source: the mount fails within 20 s" test $(( $(now_ms) - t )) -lt 20000
fi
msg=$(tail -n +$((n + 1)) "$W/daemon.log" | grep -m 1 "OPEN")
log "daemon: $msg"
check "unreachable source: the daemon logs the server and the refused connection" \
  grep -qF "connect to 127.0.0.1:1: Connection refused" <<<"$msg"
check "unreachable source: the daemon still runs" alive "$DAEMON_PID"
stop_daemon

# 6. The same failure logged as JSON (--log-format json, for log collectors): one object per
# line with time, level, pid and the message.
: > "$W/daemon.log"
start_daemon "$W/blobs" --log-format json
mkdir -p "$W/m4"
if timeout 60 mount -t erofs_rs -o fsid=no_such_blob none "$W/m4" 2>/dev/null; then
  fail "json log: the mount of an unknown blob succeeded"
fi
stop_daemon
log "json log: $(grep -m 1 no_such_blob "$W/daemon.log")"
check "json log: every line is a JSON record; the refused OPEN is a warn naming the key" \
  $PY -c '
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert recs and all(set(r) == {"time", "level", "pid", "msg"} for r in recs), recs
assert all(r["time"].endswith("Z") and len(r["time"]) == 24 for r in recs), recs
w = [r for r in recs if r["level"] == "warn" and "no blob \"no_such_blob\"" in r["msg"]]
assert w, recs
' "$W/daemon.log"
finish
