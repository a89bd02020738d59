#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 300
# Stress: for EROFS_RS_STRESS_SECONDS (default 60; `make stress`: 600), one Python driver
# (stress.py) runs reader threads over five erofs_rs mounts (a chunked image with an external
# blob; two images in one domain_id sharing their data blob's cookie; a flat image; mkimg.py's
# crafted image with three extra devices), verifying every byte, symlink and listing against the
# sources, while another thread drops the page, dentry and inode caches and two more mount,
# walk, verify and unmount in loops (one without a domain, on fsids that come back, cold the
# first time; one in the shared domain, on the shared blob). Then every umount must succeed,
# the module must unload and reload (three times, mounting and reading in between), and a
# kmemleak scan must find nothing (with EROFS_RS_LEAK_SCAN=0, as make check sets it: the
# guest's final scan). run_tests.sh fails the test on any oops, KASAN, lockdep or
# hung-task report.
. "$(dirname "$0")/lib.sh"
DURATION=${EROFS_RS_STRESS_SECONDS:-60}
setup_work
load_module
# The usual ext4, with its journal: lockdep sees the jbd2 edges of the daemon's writes under
# the stress (lib.sh, CACHE_MKFS_OPTS).
CACHE_MKFS_OPTS=
setup_cache 512M

$PY "$SELFTEST_DIR/mutate.py" tree "$W/tree" || die "cannot write the source tree"
B=$W/blobs
mkdir -p "$B" "$W/cachefs/build"
mkimage() {  # mkimage META BLOB: a chunked image of $W/tree with its data in BLOB
  mkfs.erofs --quiet --chunksize=65536 --blobdev="$W/cachefs/build/$2" -Eforce-chunk-indexes \
    "$W/cachefs/build/$1" "$W/tree" >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs failed"; }
  mv "$W/cachefs/build/$1" "$W/cachefs/build/$2" "$B/"
}
mkimage metaA blobA
mkimage metaB blobB
cp "$B/metaB" "$B/metaC"                  # a second image on blobB: shares its cookie in domain d
mkfs.erofs --quiet "$W/cachefs/build/flat" "$W/tree" >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs failed"; }
mv "$W/cachefs/build/flat" "$B/"
$PY "$SELFTEST_DIR/mkimg.py" "$W/crafted" >/dev/null || die "mkimg.py failed"
mv "$W/crafted/meta" "$B/crafted"
mv "$W/crafted/blob_a" "$W/crafted/blob_b" "$W/crafted/blob_c" "$B/"
# fsids of the mount/umount loops: links to the images, K of each (each cold once)
K=$(( DURATION / 6 > 10 ? DURATION / 6 : 10 ))
for k in $(seq 0 $((K - 1))); do ln -s metaA "$B/cyc$k"; ln -s metaB "$B/cycd$k"; done
start_daemon "$B"

mount_fs erofs_rs fsid=metaA,device=blobA "$W/a" || die "mount metaA failed"
mount_fs erofs_rs fsid=metaB,domain_id=d,device=blobB "$W/b" || die "mount metaB (domain d) failed"
mount_fs erofs_rs fsid=metaC,domain_id=d,device=blobB "$W/c" || die "mount metaC (domain d) failed"
mount_fs erofs_rs fsid=flat "$W/f" || die "mount flat failed"
mount_fs erofs_rs fsid=crafted "$W/x" || die "mount crafted failed"

kmsg "stress"
$PY "$SELFTEST_DIR/stress.py" --seconds "$DURATION" --readers 4 \
  --check "$W/a=$W/tree" --check "$W/b=$W/tree" --check "$W/c=$W/tree" --check "$W/f=$W/tree" \
  --check "$W/x=$W/crafted/expected" \
  --cycle "cyc:$K:device=blobA:$W/tree:$W/cyc" \
  --cycle "cycd:$K:domain_id=d,device=blobB:$W/tree:$W/cycd" 2>&1 | tee "$W/stress.out"
rc=${PIPESTATUS[0]}
check "readers, cache drops and mount loops: no error, every byte as in the source" test "$rc" = 0
log "daemon: opens=$(stat_value opens) reads=$(stat_value reads) errors=$(stat_value errors)"
check "the daemon is still running" alive "$DAEMON_PID"
for m in a b c f x; do
  check "umount $m after the stress" umount_fs "$W/$m"
done

# Unload and reload the module, using it in between.
for round in 1 2 3; do
  check "round $round: rmmod" rmmod erofs_rs
  check "round $round: insmod" insmod "$MODULE"
  if mount_fs erofs_rs fsid=metaB,domain_id=d,device=blobB "$W/b"; then
    check "round $round: a file reads as in the source" cmp -s "$W/b/data/big.bin" "$W/tree/data/big.bin"
    check "round $round: umount" umount_fs "$W/b"
  else
    fail "round $round: mount after reload failed"
  fi
done

# kmemleak: reports objects unreferenced for 5 s or more, after two scans.
# EROFS_RS_LEAK_SCAN=0 (make check): left to the scan tools/vm/run's guest wrapper makes after
# the guest's last test, which fails the run the same way (its report names no test); the two
# scans cost about 20 s under TCG.
kml=/sys/kernel/debug/kmemleak
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null
if [ "${EROFS_RS_LEAK_SCAN:-1}" = 0 ]; then
  log "kmemleak: left to the guest's final scan (EROFS_RS_LEAK_SCAN=0)"
elif [ -w "$kml" ]; then
  sleep 6; echo scan > "$kml"; sleep 2; echo scan > "$kml"
  if [ -s "$kml" ]; then
    fail "kmemleak reports unreferenced objects:"
    head -n 40 "$kml" | sed 's/^/#   /'
  else
    log "ok: kmemleak: no unreferenced objects"
  fi
else
  log "kmemleak is not available: leak check skipped"
fi
finish
