#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 900
# domain_id=: mounts of one domain share the fscache volume erofs,<domain_id> and the cookies of
# blobs they have in common, as in-tree erofs does. The same sequence runs with erofs_rs and with
# in-tree erofs, each over a fresh cache and daemon, and must give the same outcomes:
#   two images in one domain mount side by side (one volume, not EBUSY);
#   the same fsid twice in a domain fails with EEXIST;
#   a second image using the same data blob shares its cookie (one OPEN for the blob);
#   the shared blob still reads after the first mount is gone;
#   another domain is another volume; a domain comes back after all its mounts are gone.
. "$(dirname "$0")/lib.sh"
setup_work
load_module
load_reference

make_tree "$W/treeA"
mkdir -p "$W/treeB/b"
echo "image B" > "$W/treeB/b/hello"
head -c 1500000 /dev/urandom > "$W/treeB/b/data"
build_image "$W/treeA" "$W/blobs"
mv "$W/blobs/meta" "$W/blobs/metaA"
mv "$W/blobs/blob1" "$W/blobs/blobA"
# The same image under a second name: another fsid whose data is the same blob.
cp "$W/blobs/metaA" "$W/blobs/metaA2"
mkfs.erofs --chunksize=1048576 --blobdev="$W/blobs/blobB" -Eforce-chunk-indexes "$W/blobs/metaB" \
  "$W/treeB" >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs failed"; }
setup_cache

# try TYPE NAME OPTIONS DIR: mount, and print "NAME: ok" or "NAME: <error text of mount(8)>".
try() {
  local out
  mkdir -p "$4"
  if out=$(timeout 120 mount -t "$1" -o "$3" none "$4" 2>&1); then
    echo "$2: ok"
  else
    # "mount(2) system call failed: File exists." -> "File exists"
    echo "$2: $(echo "$out" | sed -n 's/.*system call failed: \(.*\)\.$/\1/p' | head -n1)"
  fi
}

# same TREE DIR: the mounted tree equals the source tree (names, types, data, symlink targets;
# make_tree has a dangling symlink, so links are compared, not followed).
same() {
  local d
  if d=$(diff -r --no-dereference "$1" "$2" 2>&1); then echo "ok"
  else echo "DIFFERS"; echo "$d" | head -n 5 | sed "s|^|# $2: |" >&2; fi
}

# scenario TYPE OUT: the sequence, outcomes (not timings) to OUT.
scenario() {
  local t=$1 m=$W/mnt-$1 out=$2
  reset_cache "$W/blobs"
  {
    try "$t" "metaA in domain d" "fsid=metaA,domain_id=d,device=blobA" "$m/a"
    try "$t" "metaB in domain d (same volume)" "fsid=metaB,domain_id=d,device=blobB" "$m/b"
    echo "volume erofs,d in use by two mounts: A $(same "$W/treeA" "$m/a"), B $(same "$W/treeB" "$m/b")"
    try "$t" "metaA again in domain d" "fsid=metaA,domain_id=d,device=blobA" "$m/a-again"
    try "$t" "metaA2 sharing blobA in domain d" "fsid=metaA2,domain_id=d,device=blobA" "$m/a2"
    echo "A2 $(same "$W/treeA" "$m/a2")"
    echo "/proc/mounts: $(grep -c "fsid=metaA2,domain_id=d" /proc/mounts) line for metaA2 with domain_id"
    echo "umount A: $(timeout 120 umount "$m/a" 2>&1 && echo ok)"
    echo 3 > /proc/sys/vm/drop_caches
    echo "A2 after A is gone (shared blob cookie still open): $(same "$W/treeA" "$m/a2")"
    try "$t" "metaA in domain e (another volume)" "fsid=metaA,domain_id=e,device=blobA" "$m/e"
    echo "E $(same "$W/treeA" "$m/e")"
    try "$t" "metaA without a domain (volume erofs,metaA)" "fsid=metaA,device=blobA" "$m/nodomain"
    echo "no domain $(same "$W/treeA" "$m/nodomain")"
    echo "umount all: $(timeout 120 umount "$m/b" "$m/a2" "$m/e" "$m/nodomain" 2>&1 && echo ok)"
    try "$t" "metaA in domain d after it was emptied" "fsid=metaA,domain_id=d,device=blobA" "$m/a"
    echo "A again $(same "$W/treeA" "$m/a")"
    echo "umount: $(timeout 120 umount "$m/a" 2>&1 && echo ok)"
    # OPENs: metaA, metaB, blobA, blobB, metaA2 in domain d (blobA once: shared), metaA and
    # blobA in domain e, metaA and blobA without a domain, then metaA and blobA in d again.
    echo "daemon OPEN requests: $(stat_value opens)"
  } > "$out"
}

kmsg "domain erofs_rs"
scenario erofs_rs "$W/rs.out"
sed 's/^/#   erofs_rs: /' "$W/rs.out"
kmsg "domain erofs"
scenario erofs "$W/ref.out"

check "the second image of domain d mounts beside the first (shared volume)" \
  grep -qx "metaB in domain d (same volume): ok" "$W/rs.out"
check "both trees of domain d read correctly" \
  grep -qx "volume erofs,d in use by two mounts: A ok, B ok" "$W/rs.out"
check "the same fsid twice in a domain fails with EEXIST" \
  grep -qx "metaA again in domain d: File exists" "$W/rs.out"
check "the kernel log names the duplicate" \
  bash -c "dmesg | grep -q 'erofs_rs: metaA already exists in domain d'"
check "an image sharing a data blob mounts and reads" grep -qx "A2 ok" "$W/rs.out"
check "the shared blob reads after the first mount is gone" \
  grep -qx "A2 after A is gone (shared blob cookie still open): ok" "$W/rs.out"
check "a domain is usable again after all its mounts are gone" grep -qx "A again ok" "$W/rs.out"
check "one OPEN per blob and volume (shared cookie): 11" grep -qx "daemon OPEN requests: 11" "$W/rs.out"
if diff -u "$W/ref.out" "$W/rs.out" > "$W/out.diff"; then
  log "ok: every outcome identical to in-tree erofs"
else
  fail "outcomes differ (- erofs, + erofs_rs):"; sed 's/^/#   /' "$W/out.diff"
fi
finish
