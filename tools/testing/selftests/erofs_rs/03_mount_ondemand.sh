#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Mount a chunk-based mkfs.erofs image with an external blob through cachefiles on-demand mode,
# served by erofs-ondemandd from an empty cache; the root's stat and the whole tree (names, types,
# modes, owners, sizes, link counts, times, symlink targets, content hashes) must equal what
# in-tree erofs shows for the same image over the same cache and daemon. So must the options in
# /proc/mounts and what remount does (stays read-only; [no]user_xattr, [no]acl, cache_strategy=
# change; fsid= is ignored).
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference
make_tree "$W/tree"
build_image "$W/tree" "$W/blobs"
# The plain slice, on the usual ext4 (journal, directory blocks), as most hosts have it
# (lib.sh, CACHE_MKFS_OPTS).
CACHE_MKFS_OPTS=
setup_cache
start_daemon "$W/blobs"

opts="fsid=meta,device=blob1"

# options_probe DIR: /proc/mounts options through a sequence of remounts, with outcomes.
mount_opts() { awk -v d="$1" '$2 == d { print $4 }' /proc/mounts; }
options_probe() {
  local d=$1
  echo "mounted: $(mount_opts "$d")"
  mount -o remount,rw "$d" 2>/dev/null; echo "remount,rw: rc=$? $(mount_opts "$d")"
  touch "$d/new_file" 2>&1 | sed 's/.*: //' | sed 's/^/touch: /'
  mount -o remount,nouser_xattr,noacl,cache_strategy=disabled "$d"; echo "remount,nouser_xattr,noacl,cache_strategy=disabled: rc=$? $(mount_opts "$d")"
  mount -o remount,fsid=other "$d"; echo "remount,fsid=other: rc=$? $(mount_opts "$d")"
  mount -o remount,acl=1 "$d" 2>/dev/null; echo "remount,acl=1: rc=$?"
  mount -o remount,user_xattr,acl "$d"; echo "remount,user_xattr,acl: rc=$? $(mount_opts "$d")"
}
kmsg "mount erofs_rs"
mount_fs erofs_rs "$opts" "$W/rs" || { kmsg_since "mount erofs_rs" | sed 's/^/#   /'; cat "$W/daemon.log"; die "mount -t erofs_rs -o $opts failed"; }
reads_after_mount=$(stat_value reads)
log "daemon READ requests after mount: ${reads_after_mount:-none}"
check "mounting sent READ requests to the daemon (superblock fetched on demand)" \
  test "${reads_after_mount:-0}" -gt 0
check "/proc/mounts shows the options" grep -q "erofs_rs.*fsid=meta" /proc/mounts
tree_manifest "$W/rs" > "$W/rs.manifest" || fail "walking the erofs_rs mount failed"
$PY "$SELFTEST_DIR/treecmp.py" stat "$W/rs" > "$W/rs.rootstat"
log "erofs_rs root: $(cat "$W/rs.rootstat")"
check "reading the files fetched data on demand" test "$(stat_value reads)" -gt "$reads_after_mount"
log "daemon totals: reads=$(stat_value reads) bytes_fetched=$(stat_value bytes_fetched)"
check "content equals the source tree" cmp -s "$W/tree/random.bin" "$W/rs/random.bin"
options_probe "$W/rs" > "$W/rs.options"
check "umount erofs_rs" umount_fs "$W/rs"

kmsg "mount erofs"
mount_fs erofs "$opts" "$W/ref" || die "mount -t erofs -o $opts (reference) failed"
tree_manifest "$W/ref" > "$W/ref.manifest" || fail "walking the erofs mount failed"
$PY "$SELFTEST_DIR/treecmp.py" stat "$W/ref" > "$W/ref.rootstat"
log "erofs    root: $(cat "$W/ref.rootstat")"
options_probe "$W/ref" > "$W/ref.options"
check "umount erofs" umount_fs "$W/ref"

sed 's/^/#   erofs_rs: /' "$W/rs.options"
check "erofs_rs stays read-only after remount,rw" grep -q "^touch: Read-only file system" "$W/rs.options"
if diff -u "$W/ref.options" "$W/rs.options" > "$W/options.diff"; then
  log "ok: mount options and remount behave as in-tree erofs"
else
  fail "mount options or remount differ (- erofs, + erofs_rs):"; sed 's/^/#   /' "$W/options.diff"
fi
if cmp -s "$W/rs.rootstat" "$W/ref.rootstat"; then log "ok: root stat identical"; else fail "root stat differs"; fi
if diff -u "$W/ref.manifest" "$W/rs.manifest" > "$W/manifest.diff"; then
  log "ok: trees identical ($(wc -l < "$W/rs.manifest") entries)"
else
  fail "trees differ (- erofs, + erofs_rs):"; sed 's/^/#   /' "$W/manifest.diff" | head -n 60
fi
finish
