#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The lock order of page faults on erofs_rs files, checked by lockdep (regression test for the
# circular-dependency report 13_stress once hit; Documentation/design.md, "Lock order and
# lockdep"). In one guest, teach lockdep the three edges of that cycle on purpose:
#   ext4 i_rwsem -> mmap_lock:   an O_DIRECT write to a file on the cache filesystem from an
#                                anonymous mapping never touched (slow gup under i_rwsem), as a
#                                daemon whose buffers are not faulted in does;
#   invalidate_lock -> i_rwsem:  a cold read(2) of an erofs_rs file (readahead reads the cache
#                                file: SEEK_DATA and direct I/O under the mapping's lock);
#   mmap_lock -> invalidate_lock: a page fault on a mapped, uncached erofs_rs file.
# The data read both ways must equal the source, and the kernel must log no lockdep report
# (run_tests.sh and tools/vm/run fail on one). Skipped on a kernel without lockdep.
# Limit: with the lockdep exemption removed from the module, this test did NOT reproduce the
# report (checked 2026-12-02), so it is a lock-order smoke test for mmap faults and reads, not
# yet a proven regression test; 13_stress is what found the cycle. The report 13_stress saw went
# through the per-VMA lock (mmap_lock -> vm_lock -> invalidate_lock), which faults take instead
# of mmap_lock: the edge this test probably still lacks.
. "$(dirname "$0")/lib.sh"
setup_work
[ -r /proc/lockdep_stats ] || skip "the kernel has no lockdep (CONFIG_PROVE_LOCKING)"
grep -q "debug_locks: *1" /proc/lockdep_stats ||
  die "lockdep is already off (an earlier report in this boot disabled it): see the kernel log"
load_module
mkdir -p "$W/tree"
head -c $((3 * 1048576 + 123)) /dev/urandom > "$W/tree/read_me"
head -c $((2 * 1048576 + 45)) /dev/urandom > "$W/tree/map_me"
build_image "$W/tree" "$W/blobs"
# The usual ext4, with its journal: its lock chains (jbd2) are part of what lockdep checks here
# (lib.sh, CACHE_MKFS_OPTS).
CACHE_MKFS_OPTS=
setup_cache
start_daemon "$W/blobs"
mount_fs erofs_rs "fsid=meta,device=blob1" "$W/rs" || die "mount -t erofs_rs failed"

out=$($PY - "$W/cachefs/dio_probe" "$W/rs/read_me" "$W/rs/map_me" "$W/tree" <<'PYEOF' 2>&1
import hashlib, mmap, os, sys
probe, read_path, map_path, tree = sys.argv[1:5]
# 1. O_DIRECT write on ext4 from an untouched anonymous mapping.
buf = mmap.mmap(-1, 16 * 4096)
fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o600)
n = os.pwrite(fd, buf, 0)
os.close(fd)
print(f"direct write from an unfaulted buffer: {n} bytes")
# 2. read(2) of an uncached erofs_rs file.
with open(read_path, "rb") as f:
    got = hashlib.sha256(f.read()).hexdigest()
want = hashlib.sha256(open(os.path.join(tree, "read_me"), "rb").read()).hexdigest()
print("read(2): " + ("same data" if got == want else "WRONG DATA"))
# 3. page faults on a mapped, uncached erofs_rs file, page by page.
with open(map_path, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    h = hashlib.sha256()
    for off in range(0, len(m), 4096):
        h.update(m[off:off + 4096])
    m.close()
want = hashlib.sha256(open(os.path.join(tree, "map_me"), "rb").read()).hexdigest()
print("mmap faults: " + ("same data" if h.hexdigest() == want else "WRONG DATA"))
PYEOF
)
rc=$?
printf '%s\n' "$out" | sed 's/^/#   /'
check "the probe ran" test "$rc" = 0
check "read(2) of an erofs_rs file gives the source's data" grep -qx "read(2): same data" <<<"$out"
check "page faults on a mapped erofs_rs file give the source's data" grep -qx "mmap faults: same data" <<<"$out"
umount_fs "$W/rs" || fail "umount"
check "lockdep is still on (no report disabled it)" grep -q "debug_locks: *1" /proc/lockdep_stats
finish
