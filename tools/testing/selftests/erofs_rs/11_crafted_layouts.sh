#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Layouts Debian's mkfs.erofs 1.5 cannot make, written by mkimg.py: three extra devices found by
# their device-table tags (no device= options), a file whose chunks alternate over all devices
# with a hole, mapped_blkaddr routing (device-0 chunks in blob_b's mapped range), a block-map
# chunked file with a hole, 2 MiB chunks, 255-byte and UTF-8 names, multi-block directories.
#  * 4 KiB blocks: erofs_rs and in-tree erofs show identical trees and statfs, and both equal
#    what mkimg.py says the image holds.
#  * 512, 1024 and 2048-byte blocks: erofs_rs shows the expected tree. In-tree erofs refuses
#    sub-page blocks in fscache mode ("unsupported blksize for fscache mode"): a documented
#    difference, checked here so we notice if that changes.
#  * readdir positions are stable (dirseek.py: telldir/seekdir, getdents64 restarts, d_off).
#  * A superblock checksum mismatch fails the mount with EBADMSG in both, as in C.
#  --prebuild DIR: (on the host, by prebuild.sh) write the images into DIR only; the test links
#  them when EROFS_RS_PREBUILT names DIR's parent (mkimg.py takes seconds here, more under TCG).
# TIMEOUT: 900
. "$(dirname "$0")/lib.sh"
# crafted DIR: mkimg.py's images of every block size into DIR, what it said into DIR/mkimg.out
crafted() {
  mkdir -p "$1"
  $PY "$SELFTEST_DIR/mkimg.py" "$1" --blkszbits 9,10,11,12 > "$1/mkimg.out" 2>&1 ||
    { cat "$1/mkimg.out"; die "mkimg.py --blkszbits 9,10,11,12 failed"; }
}
if [ "${1:-}" = --prebuild ]; then
  D=${2:?usage: $0 --prebuild DIR}
  rm -rf "$D"
  crafted "$D/crafted"
  prebuilt_key > "$D/stamp"
  exit 0
fi

setup_work
load_module
load_reference
setup_cache
img="$W/cachefs/crafted"
if P=$(prebuilt 11_crafted_layouts); then
  mkdir -p "$img"
  ln -s "$P"/crafted/* "$img/" || die "cannot link the prebuilt images from $P"
  log "images prebuilt on the host ($P)"
else
  crafted "$img"
fi
sed 's/^/# /' "$img/mkimg.out"
# A copy of the 4 KiB image with one reserved superblock byte flipped: checksum mismatch.
cp "$img/meta_12" "$img/meta_badcsum"
printf '\x55' | dd of="$img/meta_badcsum" bs=1 seek=$((1024 + 120)) conv=notrunc status=none
start_daemon "$img"

# The manifest minus what legitimately depends on the block size or the reader: directory sizes
# and readdir hashes (mkimg.py's expected manifest has neither).
normalize() { sed -e 's/ readdir=[^ ]*//' -e '/ dtype=dir /s/ size=[0-9]*//' "$1"; }

# mount_errno TYPE OPTS DIR: the errno name mount(2) failed with ("ok" if it mounted).
mount_errno() {
  $PY - "$1" "$2" "$3" <<'EOF'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs(sys.argv[3], exist_ok=True)
r = libc.mount(b"none", sys.argv[3].encode(), sys.argv[1].encode(), 0, sys.argv[2].encode())
if r == 0:
    libc.umount2(sys.argv[3].encode(), 0)
    print("ok")
else:
    print(errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno())))
EOF
}

for bits in 12 9 10 11; do
  opts="fsid=meta_$bits"
  kmsg "erofs_rs blkszbits $bits"
  if ! mount_fs erofs_rs "$opts" "$W/rs$bits"; then
    kmsg_since "erofs_rs blkszbits $bits" | sed 's/^/#   /'
    fail "mount -t erofs_rs -o $opts ($((1 << bits))-byte blocks) failed"
    continue
  fi
  tree_manifest "$W/rs$bits" > "$W/rs$bits.manifest" || fail "walking erofs_rs ($((1 << bits))-byte blocks) failed"
  stat -f -c 'bsize=%S blocks=%b free=%f files=%c' "$W/rs$bits" > "$W/rs$bits.statfs"
  if diff -u "$img/expected_$bits" <(normalize "$W/rs$bits.manifest") > "$W/rs$bits.diff"; then
    log "ok: $((1 << bits))-byte blocks: erofs_rs shows the expected tree ($(wc -l < "$img/expected_$bits") entries; $(cat "$W/rs$bits.statfs"))"
  else
    fail "$((1 << bits))-byte blocks: erofs_rs differs from the image's contents (- expected, + erofs_rs):"
    sed 's/^/#   /' "$W/rs$bits.diff" | head -n 40
    kmsg_since "erofs_rs blkszbits $bits" | tail -n 20 | sed 's/^/#   /'
  fi
  # readdir positions: telldir/seekdir, getdents64 restarts with tiny buffers, lseek to d_off
  r=$($PY "$SELFTEST_DIR/dirseek.py" "$W/rs$bits/names")
  check "$((1 << bits))-byte blocks: stable readdir positions in a multi-block directory ($r)" test "${r%% *}" = ok
  check "umount erofs_rs ($((1 << bits))-byte blocks)" umount_fs "$W/rs$bits"
done
log "daemon opens=$(stat_value opens) reads=$(stat_value reads) bytes_fetched=$(stat_value bytes_fetched)"

# The reference, 4 KiB blocks: the same tree, statfs and readdir order as erofs_rs.
kmsg "erofs blkszbits 12"
if mount_fs erofs "fsid=meta_12" "$W/ref12"; then
  tree_manifest "$W/ref12" > "$W/ref12.manifest" || fail "walking erofs failed"
  stat -f -c 'bsize=%S blocks=%b free=%f files=%c' "$W/ref12" > "$W/ref12.statfs"
  r=$($PY "$SELFTEST_DIR/dirseek.py" "$W/ref12/names")
  check "erofs: stable readdir positions too ($r)" test "${r%% *}" = ok
  check "umount erofs" umount_fs "$W/ref12"
  # In-tree erofs 6.12 reads zeros after a hole: erofs_fscache_data_read_slice() zero-fills the
  # whole rest of the request when it meets an unmapped extent, so chunks mapped after a null
  # chunk in the same readahead request read as zeros (fs/erofs/fscache.c, "count = req->len -
  # req->submitted" before the EROFS_MAP_MAPPED test). The files with a hole followed by data
  # are compared with the image's real contents above (erofs_rs is right there); here they must
  # differ from in-tree erofs in their content hash only, and everything else must be identical.
  hole_then_data="blockmap.bin multi_device.bin"
  drop() { grep -v -E "^($(echo "$hole_then_data" | sed 's/ /|/g; s/\./\\./g')) " "$1"; }
  if diff -u <(drop "$W/ref12.manifest") <(drop "$W/rs12.manifest") > "$W/ref12.diff"; then
    log "ok: 4096-byte blocks: erofs_rs and erofs identical, readdir order included (files with data after a hole compared below)"
  else
    fail "4096-byte blocks: erofs and erofs_rs differ (- erofs, + erofs_rs):"
    sed 's/^/#   /' "$W/ref12.diff" | head -n 40
  fi
  for f in $hole_then_data; do
    c=$(grep "^$f " "$W/ref12.manifest"); r=$(grep "^$f " "$W/rs12.manifest")
    e=$(grep "^$f " "$img/expected_12" || true)
    check "$f: erofs_rs reads the data after the hole (matches the image)" \
      test -n "$r" -a "$(normalize <(echo "$r"))" = "$e"
    if [ "${c%% sha256=*}" = "${r%% sha256=*}" ] && [ "$c" != "$r" ]; then
      log "ok: $f: in-tree erofs reads zeros after the hole (its known 6.12 bug), metadata identical"
    elif [ "$c" = "$r" ]; then
      log "ok: $f: in-tree erofs reads it right too (this kernel has the hole fix)"
    else
      fail "$f: in-tree erofs differs in more than the content: '$c' vs '$r'"
    fi
  done
  if cmp -s "$W/ref12.statfs" "$W/rs12.statfs"; then log "ok: statfs identical ($(cat "$W/ref12.statfs"))"
  else fail "statfs differs: erofs '$(cat "$W/ref12.statfs")', erofs_rs '$(cat "$W/rs12.statfs")'"; fi
else
  kmsg_since "erofs blkszbits 12" | sed 's/^/#   /'
  fail "in-tree erofs cannot mount the 4 KiB crafted image"
fi

# In-tree erofs and sub-page blocks in fscache mode.
# (one process for the three mounts)
mapfile -t gots < <($PY "$SELFTEST_DIR/fsops.py" mount-errno "erofs|fsid=meta_9|$W/ref9" \
  "erofs|fsid=meta_10|$W/ref10" "erofs|fsid=meta_11|$W/ref11")
for bits in 9 10 11; do
  got=${gots[bits - 9]:-none}
  if [ "$got" = EINVAL ]; then
    log "ok: in-tree erofs refuses $((1 << bits))-byte blocks in fscache mode (EINVAL), erofs_rs reads them"
  else
    fail "in-tree erofs with $((1 << bits))-byte blocks: expected EINVAL (unsupported blksize for fscache mode), got $got: update Documentation/design.md"
  fi
done

# Superblock checksum mismatch: EBADMSG from both, and one log line from erofs_rs.
kmsg "bad checksum"
got=$(mount_errno erofs_rs "fsid=meta_badcsum" "$W/bad")
check "erofs_rs refuses a superblock checksum mismatch with EBADMSG (got $got)" test "$got" = EBADMSG
lines=$(kmsg_since "bad checksum" | grep -c "erofs_rs.*invalid superblock checksum")
check "one erofs_rs log line names the checksum (got $lines)" test "$lines" = 1
got=$(mount_errno erofs "fsid=meta_badcsum" "$W/bad")
check "in-tree erofs refuses it with EBADMSG too (got $got)" test "$got" = EBADMSG
finish
