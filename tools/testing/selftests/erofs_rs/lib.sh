# SPDX-License-Identifier: GPL-2.0
# Shared helpers of the erofs_rs selftests. Source it; each test stays runnable alone:
#   tools/vm/run tools/testing/selftests/erofs_rs/03_mount_ondemand.sh
# Tests print diagnostics on stdout and exit 0 (pass), 1 (fail) or 4 (skip), as kselftests do.

set -u
# Under TCG in the test VM every exec costs 100 to 300 ms of guest CPU (dynamic loading and page
# faults under KASAN and lockdep): the helpers below use bash itself where they can.
_lib_dir=${BASH_SOURCE[0]%/*}
[ "$_lib_dir" != "${BASH_SOURCE[0]}" ] || _lib_dir=.
SELFTEST_DIR=$(cd "$_lib_dir" && pwd)
# In a tools/vm/run guest, read the repository through the guest's cached view of the host's
# root (guest-wrapper): the helpers, the daemon, the module and the prebuilt fixtures, each
# opened or executed hundreds of times, cost a round trip to the host per read otherwise.
if [ -n "${EROFS_RS_HOST_ROOT:-}" ] && [ -f "$EROFS_RS_HOST_ROOT$SELFTEST_DIR/lib.sh" ]; then
  SELFTEST_DIR=$EROFS_RS_HOST_ROOT$SELFTEST_DIR
fi
REPO=$(cd "$SELFTEST_DIR/../../../.." && pwd)
# mkdir, ln, rm, rmdir and mktemp as builtins when Debian's bash-builtins is installed (make
# check installs it): the tests run them hundreds of times, and the loadable versions take the
# options used here (mkdir -p, ln -s, rm -f/-rf, mktemp -d). Without the package the tests run
# the usual commands.
for _b in mkdir ln rm rmdir mktemp; do
  [ -f "/usr/lib/bash/$_b" ] && enable -f "/usr/lib/bash/$_b" "$_b" 2>/dev/null
done
unset _b _lib_dir
MODULE="$REPO/erofs_rs.ko"
DAEMON=${EROFS_RS_DAEMON:-$REPO/tools/ondemandd/target/release/erofs-ondemandd}
# The system Python, isolated: in the guest, `python3` on PATH may be a pyenv shim that costs
# seconds per call under TCG. Word-split on use: $PY script.py ...
PY=${EROFS_RS_PYTHON:-/usr/bin/python3 -I -S}
KSFT_PASS=0
KSFT_FAIL=1
KSFT_SKIP=4
W=
DAEMON_PID=
FAILED=0

# Every line says how far into the test it was written ($SECONDS: no fork), so a slow test's
# output shows where the time went.
log() { echo "# [+${SECONDS}s] $*"; }
fail() { echo "# [+${SECONDS}s] FAIL: $*"; FAILED=1; }
die() { echo "# [+${SECONDS}s] FAIL: $*"; exit $KSFT_FAIL; }
skip() { echo "# SKIP: $*"; exit $KSFT_SKIP; }
# check DESCRIPTION CMD...: run CMD, record a failure naming DESCRIPTION if it fails.
check() { local what=$1; shift; if "$@"; then log "ok: $what"; else fail "$what"; return 1; fi; }
finish() { [ "$FAILED" = 0 ] && exit $KSFT_PASS || exit $KSFT_FAIL; }

require_root() { [ "$EUID" = 0 ] || skip "needs root (run it through tools/vm/run)"; }

# A scratch directory on tmpfs, cleaned up at exit with everything mounted below it.
setup_work() {
  require_root
  [ -w /tmp ] || mount -t tmpfs tmpfs /tmp
  W=$(mktemp -d /tmp/erofs_rs_test.XXXXXX)
  # A tmpfs of its own: xattrs and ACLs for test trees, nothing left behind.
  mount -t tmpfs -o size=1G tmpfs "$W" || die "cannot mount a tmpfs on $W"
  trap cleanup EXIT
}

# Unmounts what the test left mounted below $W (the filesystems under test first, newest
# first, then, with the daemon stopped, the cache filesystem and $W itself), found in
# /proc/self/mounts: one umount(8) for each step, not one per mount the test ever made.
cleanup() {
  [ -n "$W" ] || { stop_daemon; return; }
  local dev mp rest left=()
  while read -r dev mp rest; do
    case $mp in "$W"|"$W"/cachefs) ;; "$W"/*) left=("$mp" "${left[@]}") ;; esac
  done < /proc/self/mounts
  [ ${#left[@]} = 0 ] || umount "${left[@]}" 2>/dev/null
  stop_daemon
  umount -R "$W" 2>/dev/null
  rm -rf "$W"
}

kmsg() { echo "erofs_rs-selftest: $*" > /dev/kmsg 2>/dev/null || true; }

# has_fs TYPE: TYPE is registered (/proc/filesystems)
has_fs() {
  local a b
  while read -r a b; do [ "${b:-$a}" = "$1" ] && return 0; done < /proc/filesystems
  return 1
}

load_module() {
  if ! has_fs erofs_rs; then
    [ -f "$MODULE" ] || die "$MODULE is missing: build it with 'make'"
    insmod "$MODULE" || die "insmod $MODULE failed"
  fi
}

load_reference() {
  has_fs erofs || modprobe erofs || die "cannot load in-tree erofs (modprobe erofs)"
}

# The cachefiles cache directory: ext4 on a loop file (cachefiles refuses tmpfs).
# Its features: no journal, and small directories kept in their inodes. Every mount of an image
# with a new fsid makes cachefiles create a volume directory with 256 fan-out subdirectories;
# under KASAN, lockdep and TCG each ext4 mkdir allocating a block and journaling it, that was
# about 0.7 s of every mount (1.5 s in all), and is 0.3 s on this ext4 (measured in the test
# VM, 2026-12-03). cachefiles, the daemon and the module see the same thing: O_DIRECT writes go
# to extents as before (a cache file's 4 KiB blocks never fit inline), SEEK_DATA/SEEK_HOLE and
# the user xattrs work alike. A test that wants the usual ext4 (journal, directory blocks) sets
# CACHE_MKFS_OPTS= before setup_cache (03, 13 and 20 do: the plain slice, and the lock chains
# through jbd2 under stress and in the lock-order test).
CACHE_MKFS_OPTS=${CACHE_MKFS_OPTS--O inline_data,^has_journal}
setup_cache() {
  : > "$W/cache.img"  # (mke2fs grows it to the size given, and says so if it had to create it)
  # shellcheck disable=SC2086 # options, word-split
  mkfs.ext4 -q -F $CACHE_MKFS_OPTS "$W/cache.img" "${1:-256M}" || die "mkfs.ext4 failed"
  mkdir -p "$W/cachefs"
  mount -o loop "$W/cache.img" "$W/cachefs" || die "cannot mount the cache filesystem"
  mkdir -p "$W/cachefs/cache"
}

# start_daemon BLOBDIR [extra daemon args]: serve BLOBDIR (none if empty: give --source);
# waits until the cache is bound.
start_daemon() {
  local blobs=$1; shift
  [ -x "$DAEMON" ] || die "$DAEMON is missing: build it with 'make daemon'"
  rm -f "$W/daemon.pid" "$W/stats"
  "$DAEMON" --cache-dir "$W/cachefs/cache" ${blobs:+--blob-dir "$blobs"} --stats-file "$W/stats" \
    --pid-file "$W/daemon.pid" "$@" >>"$W/daemon.log" 2>&1 </dev/null &
  DAEMON_PID=$!
  local i
  for ((i = 0; i < 300; i++)); do
    [ -s "$W/daemon.pid" ] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$W/daemon.log"; die "the daemon exited at start"; }
    nap 0.1
  done
  die "the daemon did not bind the cache within 30 s"
}

# reset_cache [daemon args]: an empty cache (new ext4) and a restarted daemon on the same blobs.
reset_cache() {
  local blobs=$1; shift
  stop_daemon
  umount "$W/cachefs" || die "cannot unmount the cache filesystem"
  rm -f "$W/cache.img"
  setup_cache
  start_daemon "$blobs" "$@"
}

stop_daemon() {
  if [ -n "$DAEMON_PID" ]; then
    kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
    DAEMON_PID=
  fi
}

# nap [SECONDS]: a short pause between polls (default 50 ms).
# loopback_up: the guest boots without networking; servers on 127.0.0.1 need lo up.
loopback_up() { ip link set lo up 2>/dev/null || ip link set dev lo up; }

# A pause without a fork: `read -t` on a pipe nobody writes (opened once). An exec of sleep(1)
# costs about 200 ms of guest CPU under TCG, so polling with it was slow and kept a vCPU busy.
nap() {
  [ -n "${NAP_FD:-}" ] || exec {NAP_FD}<> <(:)
  read -rt "${1:-0.05}" -u "$NAP_FD" _ || :
}

# now_ms: milliseconds since the epoch, without a fork.
now_ms() { local t=${EPOCHREALTIME//[!0-9]/}; echo $(( t / 1000 )); }

# wait_until SECONDS CMD...: run CMD every 50 ms until it succeeds (0), or fail (1) once
# SECONDS have passed. Use it instead of fixed sleeps.
wait_until() {
  local end=$(( ${EPOCHREALTIME//[!0-9]/} + $1 * 1000000 )); shift
  until "$@"; do
    [ "${EPOCHREALTIME//[!0-9]/}" -lt "$end" ] || return 1
    nap
  done
}

# alive PID: PID exists and is not a zombie (a killed background job stays a zombie until waited).
alive() {
  local pid comm state rest
  read -r pid comm state rest 2>/dev/null < "/proc/$1/stat" || return 1
  [ "$state" != Z ]
}

# read_file PATH NAME: reads PATH (a mount's copy of $W/tree/NAME) within 30 s: "correct data", "WRONG DATA", "HUNG ..." or the reader's error text
read_file() {
  local err rc
  err=$(timeout 30 cat "$1" 2>&1 >"$W/read.out"); rc=$?
  if [ $rc = 124 ]; then echo "HUNG (killed after 30 s)"
  elif [ $rc != 0 ]; then echo "${err##*: }"
  elif cmp -s "$W/read.out" "$W/tree/$2"; then echo "correct data"
  else echo "WRONG DATA"; fi
}

# stat_value KEY: a counter from the daemon's stats file.
# Read with bash alone: tests poll it, and each exec costs a good fraction of a second under TCG.
stat_value() {
  local k v
  { while read -r k v; do [ "$k" = "$1" ] && { echo "$v"; return 0; }; done < "$W/stats"; } 2>/dev/null
  return 0
}

# mount_fs TYPE OPTIONS DIR: mount with a time limit (cleanup unmounts whatever is left).
mount_fs() {
  mkdir -p "$3"
  timeout 120 mount -t "$1" -o "$2" none "$3"
}

umount_fs() { timeout 120 umount "$1"; }

# A small but varied tree: text, binary data over several chunks, empty file, symlinks,
# nested directories.
make_tree() {
  local t=$1
  mkdir -p "$t/dir/sub/deeper" "$t/empty_dir"
  echo "hello from erofs_rs" > "$t/hello.txt"
  head -c 3145739 /dev/urandom > "$t/random.bin"     # 3 MiB + 11: spans 4 chunks of 1 MiB
  head -c 4096 /dev/urandom > "$t/dir/one_block"
  : > "$t/dir/empty"
  seq 1 20000 > "$t/dir/sub/numbers.txt"
  printf 'tail' > "$t/dir/sub/deeper/tiny"
  ln -s hello.txt "$t/link"
  ln -s dir/sub/deeper/tiny "$t/dir/link_to_tiny"
  chmod 0640 "$t/dir/one_block"
  chown 123:456 "$t/dir/empty" 2>/dev/null || true
}

# build_image TREE BLOBDIR: chunk-based metadata image BLOBDIR/meta with data in BLOBDIR/blob1.
build_image() {
  mkdir -p "$2"
  mkfs.erofs --chunksize=1048576 --blobdev="$2/blob1" -Eforce-chunk-indexes "$2/meta" "$1" \
    >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs failed"; }
}

# tree_manifest DIR: one line per entry (type, mode, ids, size, nlink, mtime, rdev, link target,
# content hash, xattrs), walking with one Python process.
tree_manifest() { $PY "$SELFTEST_DIR/treecmp.py" manifest "$1"; }
# tree_manifests DIR OUT [DIR OUT]...: the manifest of each DIR into OUT, with one Python process
# (each start costs about a second in the TCG guest); fails if any walk failed (named on stderr).
tree_manifests() { $PY "$SELFTEST_DIR/treecmp.py" manifests "$@"; }

# mkfs_erofs MKFS_ARGS... IMAGE TREE: mkfs.erofs, writing IMAGE first to a scratch directory on
# /tmp's own filesystem, then moving it. mkfs.erofs 1.5 stages the data of chunk-based files
# without --blobdev in a tmpfile() on /tmp and copies it into the image with copy_file_range(2);
# when the image is on another filesystem that fails with EXDEV, which 1.5 reports as
# "Could not format the device : [Error 5]" (it has no fallback).
mkfs_erofs() {
  local args=("$@") n=$# img stage rc
  img=${args[n - 2]}
  stage=$(mktemp -d /tmp/erofs_rs_mkfs.XXXXXX) || return 1
  args[n - 2]=$stage/image
  mkfs.erofs "${args[@]}" && mv "$stage/image" "$img"
  rc=$?
  rm -rf "$stage"
  return $rc
}

# Prebuilt fixtures. mkfs.erofs and the tree generators run many times slower in the TCG guest
# than on the host, so tools/check (make check) first runs prebuild.sh on the host, which calls
# `TEST.sh --prebuild DIR` for the tests that support it: they build their trees and images into
# DIR and write DIR/stamp last. In the guest, `prebuilt NAME` (EROFS_RS_PREBUILT set by
# tools/check) prints that directory if its stamp matches what the fixture depends on now
# (prebuilt_key: the test script, lib.sh, treegen.py, ztranscode.py, erofs_poke.py, mutate.py,
# mkimg.py, the mkfs.erofs binary, the extra words given); otherwise the test builds everything
# itself, as when it is run alone.
prebuilt_key() {
  { cat "$SELFTEST_DIR/lib.sh" "$SELFTEST_DIR/treegen.py" "$SELFTEST_DIR/ztranscode.py" \
      "$SELFTEST_DIR/erofs_poke.py" "$SELFTEST_DIR/mutate.py" "$SELFTEST_DIR/mkimg.py" "$0" \
      "$(command -v mkfs.erofs)"; echo "$*"; } \
    | sha256sum | cut -c1-32
}
prebuilt() {  # prebuilt NAME KEY_WORDS...
  local d=${EROFS_RS_PREBUILT:-}/$1; shift
  [ -n "${EROFS_RS_HOST_ROOT:-}" ] && [ -d "$EROFS_RS_HOST_ROOT$d" ] && d=$EROFS_RS_HOST_ROOT$d
  [ -n "${EROFS_RS_PREBUILT:-}" ] && [ -f "$d/stamp" ] && [ "$(cat "$d/stamp")" = "$(prebuilt_key "$@")" ] \
    && echo "$d"
}

# kernel log lines after the last "erofs_rs-selftest: MARK" line
kmsg_since() { dmesg | awk -v m="erofs_rs-selftest: $1" 'index($0, m) { buf = ""; next } { buf = buf $0 "\n" } END { printf "%s", buf }'; }
