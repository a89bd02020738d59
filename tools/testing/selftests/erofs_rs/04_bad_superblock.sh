#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# A metadata blob with a bad magic, or with an incompatible feature bit erofs_rs does not know,
# is refused with EINVAL and one kernel log line saying why (naming the bit), and nothing breaks.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
mkdir -p "$W/tree" && echo data > "$W/tree/file"
build_image "$W/tree" "$W/blobs"
# patch_le32 FILE OFFSET VALUE
patch_le32() { $PY - "$@" <<'PY'
import struct, sys
path, off, val = sys.argv[1], int(sys.argv[2]), int(sys.argv[3], 0)
with open(path, "r+b") as f:
    f.seek(off); f.write(struct.pack("<I", val))
PY
}
cp "$W/blobs/meta" "$W/blobs/badmagic"
patch_le32 "$W/blobs/badmagic" 1024 0x12345678
cp "$W/blobs/meta" "$W/blobs/badfeature"
# With the superblock checksum fixed up (mkfs.erofs sets SB_CHKSUM; a stale one would be
# refused first, with EBADMSG, as C does).
$PY "$SELFTEST_DIR/erofs_poke.py" "$W/blobs/badfeature" incompat-bit 0x80000000 > /dev/null
setup_cache
start_daemon "$W/blobs"

# expect_refused FSID LOG_TEXT
expect_refused() {
  kmsg "bad $1"
  if timeout 120 mount -t erofs_rs -o "fsid=$1,device=blob1" none "$W/mnt" 2>"$W/err"; then
    umount "$W/mnt"; fail "mounting $1 succeeded"; return
  fi
  [ $? = 124 ] && { fail "mounting $1 hung"; return; }
  grep -q "Invalid argument\|wrong fs type" "$W/err" || fail "$1: unexpected error $(cat "$W/err")"
  local n
  n=$(kmsg_since "bad $1" | grep -c "erofs_rs: .*$2")
  if [ "$n" = 1 ]; then log "ok: $1 refused: $(kmsg_since "bad $1" | grep "erofs_rs: ")"
  else fail "$1: expected one kernel log line matching '$2', got $n"; kmsg_since "bad $1" | sed 's/^/#   /'; fi
}
mkdir -p "$W/mnt"
expect_refused badmagic "cannot find valid erofs superblock (magic 0x12345678)"
expect_refused badfeature "unidentified incompatible feature 0x80000000"
# The good image still mounts afterwards.
check "the unmodified image mounts after the refusals" mount_fs erofs_rs "fsid=meta,device=blob1" "$W/ok"
check "and reads" grep -q data "$W/ok/file"
umount_fs "$W/ok"
finish
