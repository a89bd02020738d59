#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Corrupted metadata (a dirent name offset past the block, a dirent pointing far past the image,
# an unknown inode format, an absurd file size, an uncompressed file marked compressed) gives the
# reader a clear error (EFSCORRUPTED/EUCLEAN, EIO or EOPNOTSUPP), a kernel log line from erofs_rs,
# no kernel problem (the runner checks the log), the rest of the filesystem still works, and
# umount succeeds. (Corrupted compressed files: 22_compressed_lz4.)
. "$(dirname "$0")/lib.sh"
setup_work
load_module
mkdir -p "$W/tree/sub"
echo hello > "$W/tree/file"
# 0xff bytes: marked compressed, its inline tail reads as a map header no image has
head -c 10000 /dev/zero | tr '\0' '\377' > "$W/tree/data"
echo inner > "$W/tree/sub/inner"
setup_cache
mkdir -p "$W/cachefs/blobs"
mkfs.erofs "$W/cachefs/blobs/good" "$W/tree" > "$W/mkfs.log" 2>&1 || die "mkfs.erofs failed"
start_daemon "$W/cachefs/blobs"

# corrupt NAME KIND [ARG]: a corrupted copy of the image as blob NAME
corrupt() {
  local name=$1; shift
  cp "$W/cachefs/blobs/good" "$W/cachefs/blobs/$name"
  log "$name: $($PY "$SELFTEST_DIR/erofs_poke.py" "$W/cachefs/blobs/$name" "$@")"
}
# expect_error NAME WHAT ERRORS CMD...: CMD fails with one of ERRORS (regex) and a log line
expect_error() {
  local name=$1 what=$2 errs=$3; shift 3
  local out
  if out=$(timeout 120 "$@" 2>&1 | tr -cd "[:print:]\n" | tail -c 300; exit "${PIPESTATUS[0]}"); then
    fail "$name: $what succeeded"
  elif [ $? = 124 ]; then
    fail "$name: $what hung"
  elif ! grep -qE "$errs" <<<"$out"; then
    fail "$name: $what: unexpected error: $out"
  else
    log "ok: $name: $what: $(tail -n 1 <<<"$out")"
  fi
}

check_case() {  # check_case NAME WHAT ERRORS CMD...
  local name=$1
  kmsg "case $name"
  mount_fs erofs_rs "fsid=$name" "$W/mnt" || { fail "$name: mount failed"; return; }
  expect_error "$@"
  # the rest of the filesystem still reads
  if [ "$name" != bad_nameoff ]; then
    check "$name: other files still read" grep -q inner "$W/mnt/sub/inner"
  fi
  kmsg_since "case $name" | grep -q "erofs_rs: .*$name" || fail "$name: no erofs_rs line in the kernel log"
  kmsg_since "case $name" | grep "erofs_rs: " | head -n 2 | sed 's/^/#   /'
  check "$name: umount" umount_fs "$W/mnt"
}

corrupt bad_nameoff dirent-nameoff
corrupt bad_nid dirent-nid file
corrupt bad_format inode-format data
corrupt bad_size inode-size data
corrupt bad_layout inode-layout data
check_case bad_nameoff "readdir of /" "Structure needs cleaning" ls "$W/mnt"
check_case bad_nid "stat of a dirent with a wild nid" "Structure needs cleaning|Input/output error" stat "$W/mnt/file"
check_case bad_format "stat of an inode of unknown format" "Structure needs cleaning|Operation not supported" stat "$W/mnt/data"
check_case bad_size "read of a file with an absurd size" "Structure needs cleaning" cat "$W/mnt/data"
# As in C, a compressed inode's map header is read on first use: stat works, the read fails.
check_case bad_layout "read of a file marked compressed" "Structure needs cleaning|Operation not supported" cat "$W/mnt/data"
finish
