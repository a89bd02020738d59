#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# After mounts and umounts the module unloads (no reference leaked), reloads, and mounts again.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
mkdir -p "$W/tree/d" && echo one > "$W/tree/d/f"
build_image "$W/tree" "$W/blobs"
setup_cache
start_daemon "$W/blobs"
for round in 1 2; do
  mount_fs erofs_rs "fsid=meta,device=blob1" "$W/mnt" || die "mount failed (round $round)"
  check "round $round: read through the mount" grep -q one "$W/mnt/d/f"
  check "round $round: umount" umount_fs "$W/mnt"
  check "round $round: rmmod after umount" rmmod erofs_rs
  check "round $round: insmod again" insmod "$MODULE"
done
finish
