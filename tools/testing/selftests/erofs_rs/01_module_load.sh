#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# erofs_rs.ko loads, registers filesystem type erofs_rs, unloads cleanly, and reloads.
. "$(dirname "$0")/lib.sh"
require_root
[ -f "$MODULE" ] || die "$MODULE is missing: build it with 'make'"
grep -qw erofs_rs /proc/filesystems && { rmmod erofs_rs || die "cannot unload a leftover erofs_rs"; }

for round in 1 2 3; do
  kmsg "load round $round"
  insmod "$MODULE" || die "insmod failed (round $round)"
  check "round $round: /proc/filesystems lists erofs_rs as nodev" \
    grep -qP '^nodev\terofs_rs$' /proc/filesystems
  check "round $round: lsmod shows erofs_rs" grep -q '^erofs_rs ' /proc/modules
  kmsg_since "load round $round" | grep -q 'registered filesystem type erofs_rs' ||
    fail "round $round: no registration message in the kernel log"
  rmmod erofs_rs || die "rmmod failed (round $round)"
  check "round $round: erofs_rs gone from /proc/filesystems after rmmod" \
    bash -c '! grep -qw erofs_rs /proc/filesystems'
done
finish
