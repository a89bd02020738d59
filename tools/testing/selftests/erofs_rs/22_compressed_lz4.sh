#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 900
# Compressed images (LZ4, LZ4HC) through fscache:
#  1. the corpus tree plus compressible files (text-like, zeros, repeats, random and text
#     blocks mixed, sizes at lcluster and pcluster edges), built with mkfs.erofs -zlz4,
#     -zlz4hc, -zlz4hc -C65536 (big pclusters), -zlz4 -Eztailpacking (inline tail pclusters) and
#     -zlz4 -Elegacy-compress (full indexes, no zero padding), mounted with erofs_rs and with
#     in-tree erofs over the same cache and daemon: identical trees (content hashes included);
#  2. split reads (issue 5): a big-pcluster image whose cache file holds every other block
#     (the daemon prefetches them, --window 0 fetches only what is asked), so that every
#     pcluster read finds its range part cached, part not, and prepare_ondemand_read returns
#     short lengths: 50 reads across pcluster boundaries with the page cache dropped, then the
#     whole file; data checked, no hang, at least one READ per missing block (so the reads were
#     split), no kernel report (the runner checks). In-tree erofs is not run on this image: its
#     6.12 pseudo-bio is completed once per piece;
#  1b. DEFLATE, Zstandard and MicroLZMA (mkfs.erofs 1.5 writes LZ4 only): the compressible
#     files (for MicroLZMA, treegen.py lzmafit's) built with -zlz4hc -C16384, then recompressed
#     by ztranscode.py (the same pclusters, the algorithm's configuration record), mounted with
#     erofs_rs and in-tree erofs: identical trees, and the files read back as their sources;
#  2b. readahead over compressed extents: a 4 KiB read at four offsets of a file with the page
#     cache dropped caches, from there on, the readahead window grown to the end of its last
#     extent: for DEFLATE the same pages as in-tree erofs, for LZ4 in-tree erofs's
#     window (which it does not grow for LZ4) grown to the extent's end from dump.erofs;
#  3. a whole-file fragment (patched in: mkfs.erofs 1.5 cannot write fragments) read from the
#     packed inode, by erofs_rs and in-tree erofs;
#  4. corrupted compressed files (lcluster indexes, LZ4, DEFLATE, Zstandard and MicroLZMA
#     pcluster bytes): EUCLEAN, EIO or
#     EOPNOTSUPP with an erofs_rs log line naming the blob, no hang, the rest still reads.
#   --prebuild DIR   (on the host, by prebuild.sh) build the trees, the images and the split
#                    image's extent list into DIR only; used when EROFS_RS_PREBUILT names
#                    DIR's parent
. "$(dirname "$0")/lib.sh"

mkimage() {  # mkimage NAME MKFS_ARGS... (tree last)
  local name=$1; shift
  mkfs.erofs "$@" >"$LOGS/mkfs-$name.log" 2>&1 || { tr -cd '[:print:]\n' < "$LOGS/mkfs-$name.log" | tail -n 5; die "mkfs.erofs $name failed"; }
}
# corrupt DIR NAME HOW [BASE]: a corrupted copy of image BASE (default zgood) as blob NAME, its
# victim's extents from DIR; says what it changed.
corrupt() {
  local d=$1 name=$2 how=$3 base=${4:-zgood}
  cp "$B/$base" "$B/$name" || die "cannot copy $base" >&2
  case $how in
  zindex) echo "$name: $($PY "$SELFTEST_DIR/erofs_poke.py" "$B/$name" zindex victim)" ;;
  pcluster)
    # the first pcluster of victim, all 0xff: no valid LZ4 block, DEFLATE stream (block type
    # 3), Zstandard frame (magic) or MicroLZMA stream that ends exactly with the pcluster and
    # the file's bytes. dump.erofs 1.5 cannot map DEFLATE or Zstandard files:
    # their extents are those of the LZ4 image they were made from (build_all saved them).
    local ext=$d/$base.victim.extents
    [ -f "$ext" ] || ext=
    echo "$name: $($PY -c '
import re, subprocess, sys
img, ext = sys.argv[1], sys.argv[2]
if ext:
    out = open(ext).read()
else:
    out = subprocess.run(["dump.erofs", "--path=/victim", "-e", img], capture_output=True, text=True).stdout
p, plen = next((int(m.group(1)), int(m.group(2))) for m in (re.match(r"\s*0:.*:\s*(\d+)\.\.\s*\d+\s*\|\s*(\d+)", l) for l in out.splitlines()) if m)
with open(img, "r+b") as f:
    f.seek(p)
    f.write(b"\xff" * plen)
print("victim: pcluster at %d (+%d) -> 0xff" % (p, plen))' "$B/$name" "$ext")" ;;
  esac
}
# build_all DIR: the trees under DIR, the images in $B (the corrupted copies too),
# DIR/zsplit.extents, DIR/corrupt.log.
build_all() {
  local t="$1/tree"
  $PY "$SELFTEST_DIR/treegen.py" corpus "$t" || die "cannot create the corpus tree"
  $PY "$SELFTEST_DIR/treegen.py" compressible "$t/z" || die "cannot create the compressible files"
  # (1.5 MiB: about 12 big pclusters and 100 blocks left to fetch, each a READ round trip of
  # about 100 ms under TCG; 3 MiB doubled that and found nothing more)
  $PY "$SELFTEST_DIR/treegen.py" compressible "$1/splittree" 1572864 || die "cannot create the split tree"
  mkdir -p "$1/ctree"
  $PY "$SELFTEST_DIR/treegen.py" compressible "$1/ctree/z" 300000 || die "cannot create the corruption tree"
  mv "$1/ctree/z/text" "$1/ctree/victim"; mv "$1/ctree/z/text_4097" "$1/ctree/other"; rm -rf "$1/ctree/z"
  $PY "$SELFTEST_DIR/treegen.py" lzmafit "$1/ltree" || die "cannot create the MicroLZMA tree"
  log "trees made"
  mkimage z_lz4 -zlz4 "$B/z_lz4" "$t"
  mkimage z_lz4hc -zlz4hc "$B/z_lz4hc" "$t"
  mkimage z_big -zlz4hc -C65536 "$B/z_big" "$t"
  mkimage z_ztail -zlz4 -Eztailpacking "$B/z_ztail" "$t"
  mkimage z_legacy -zlz4 -Elegacy-compress "$B/z_legacy" "$t"
  mkimage zsplit -zlz4hc -C65536 "$B/zsplit" "$1/splittree"
  mkimage zgood -zlz4 "$B/zgood" "$1/ctree"
  local alg
  for alg in deflate zstd; do
    mkimage "z_$alg" -zlz4hc -C16384 "$B/z_$alg" "$t/z"
    $PY "$SELFTEST_DIR/ztranscode.py" "$B/z_$alg" "$t/z" "$alg" >> "$1/transcode.log" 2>&1 \
      || die "ztranscode.py z_$alg failed: $(tail -n 3 "$1/transcode.log")"
    mkimage "zgood_$alg" -zlz4hc -C16384 "$B/zgood_$alg" "$1/ctree"
    dump.erofs --path=/victim -e "$B/zgood_$alg" > "$1/zgood_$alg.victim.extents" || die "dump.erofs failed"
    $PY "$SELFTEST_DIR/ztranscode.py" "$B/zgood_$alg" "$1/ctree" "$alg" >> "$1/transcode.log" 2>&1 \
      || die "ztranscode.py zgood_$alg failed: $(tail -n 3 "$1/transcode.log")"
  done
  # MicroLZMA: one image for both the layout walk and the corruption case (its victim and
  # other are at the top, other with the corruption tree's bytes).
  mkimage z_lzma -zlz4hc -C16384 "$B/z_lzma" "$1/ltree"
  dump.erofs --path=/victim -e "$B/z_lzma" > "$1/z_lzma.victim.extents" || die "dump.erofs failed"
  $PY "$SELFTEST_DIR/ztranscode.py" "$B/z_lzma" "$1/ltree" lzma >> "$1/transcode.log" 2>&1 \
    || die "ztranscode.py z_lzma failed: $(tail -n 3 "$1/transcode.log")"
  dump.erofs --path=/text -e "$B/zsplit" > "$1/zsplit.extents" || die "dump.erofs failed"
  # the corrupted copies (case 4), and what each changed (DIR/corrupt.log, printed by the test)
  { corrupt "$1" zbad_index zindex
    corrupt "$1" zbad_pcluster pcluster
    corrupt "$1" zbad_deflate pcluster zgood_deflate
    corrupt "$1" zbad_zstd pcluster zgood_zstd
    corrupt "$1" zbad_lzma pcluster z_lzma; } > "$1/corrupt.log"
  log "images built"
}

if [ "${1:-}" = --prebuild ]; then
  D=${2:?usage: $0 --prebuild DIR}
  rm -rf "$D"; B="$D/blobs" LOGS="$D"
  mkdir -p "$B" || exit 1
  command -v dump.erofs >/dev/null || die "dump.erofs (erofs-utils) is missing"
  command -v zstd >/dev/null || die "zstd is missing (tools/vm/install-deps installs it)"
  build_all "$D"
  prebuilt_key > "$D/stamp"
  exit 0
fi

setup_work
load_module
load_reference
command -v dump.erofs >/dev/null || skip "dump.erofs (erofs-utils) is missing"
command -v zstd >/dev/null || skip "zstd is missing (tools/vm/install-deps installs it)"
setup_cache 512M
# Images on the ext4 cache filesystem, as 07 does (mkfs.erofs 1.5 and tmpfs do not mix well).
B="$W/cachefs/blobs" LOGS="$W"
mkdir -p "$B"
# The fixtures: prebuilt on the host (trees read from there: only read), or built here.
if F=$(prebuilt 22_compressed_lz4); then
  # Linked, not copied (as in 07): the cases that change an image change a copy of it.
  ln -s "$F"/blobs/* "$B/" || die "cannot link the prebuilt images from $F"
  log "trees and images prebuilt on the host ($F)"
else
  F=$W
  build_all "$F"
fi
t="$F/tree"
[ -f "$F/transcode.log" ] && sed 's/^/# ztranscode: /' "$F/transcode.log"

# The split image: the daemon will copy every other 4 KiB block (odd block numbers) into the
# cache after the blob's OPEN; demand READs (--window 0) then fetch exactly the missing blocks.
split_size=$(stat -L -c %s "$B/zsplit")
prefetch=()
for ((o = 4096; o < split_size; o += 8192)); do prefetch+=(--prefetch "zsplit:$o:4096"); done
# EROFS_RS_SPLIT_REFERENCE=1: also read a copy of the split image with in-tree erofs, and log
# what happens (not checked: 6.12's C code completes its pseudo-bio once per piece, which may
# end in a kernel report, and the runner fails a test on any)
split_ref=${EROFS_RS_SPLIT_REFERENCE:-0}
if [ "$split_ref" = 1 ]; then
  cp "$B/zsplit" "$B/zsplit_c"
  for ((o = 4096; o < split_size; o += 8192)); do prefetch+=(--prefetch "zsplit_c:$o:4096"); done
fi
start_daemon "$B"

# Every layout mounted with erofs_rs, walked (one Python process), unmounted; then the same
# with in-tree erofs (a blob's volume can be used by one mount at a time); trees compared.
layouts=(z_lz4 z_lz4hc z_big z_ztail z_legacy z_deflate z_zstd z_lzma)
# (mounts and umounts with one process each, fsops.py: 16 mount(8) and umount(8) runs and
# their timeout(1)s cost several seconds of the TCG guest)
walk_all() {  # walk_all FSTYPE TAG
  local fstype=$1 tag=$2 i name specs=() args=() mounted=() got=()
  kmsg "walk $tag"
  for name in "${layouts[@]}"; do specs+=("$fstype|fsid=$name|$W/$tag-$name"); done
  mapfile -t got < <(timeout 300 $PY "$SELFTEST_DIR/fsops.py" mount "${specs[@]}")
  for i in "${!layouts[@]}"; do
    name=${layouts[i]}
    if [ "${got[i]:-}" = ok ]; then
      mounted+=("$W/$tag-$name")
      args+=("$W/$tag-$name" "$W/$tag-$name.manifest")
    else
      fail "$name: $fstype mount failed: ${got[i]:-no answer}"
      kmsg_since "walk $tag" | tail -n 5 | sed 's/^/#   /'
    fi
  done
  [ ${#args[@]} = 0 ] || tree_manifests "${args[@]}" 2>"$W/$tag.err" ||
    fail "walking the $fstype mounts failed: $(head -c 300 "$W/$tag.err")"
  [ ${#mounted[@]} = 0 ] && return
  mapfile -t got < <(timeout 300 $PY "$SELFTEST_DIR/fsops.py" umount "${mounted[@]}")
  for i in "${!mounted[@]}"; do
    [ "${got[i]:-}" = ok ] || fail "${mounted[i]##*/}: umount $fstype: ${got[i]:-no answer}"
  done
}
reads0=$(stat_value reads)
walk_all erofs_rs rs
reads1=$(stat_value reads)
walk_all erofs ref
log "READ requests (cold cache): $((reads1 - reads0)) for the erofs_rs walks of the ${#layouts[@]} images, $(($(stat_value reads) - reads1)) for in-tree erofs on the cache they left"
for name in "${layouts[@]}"; do
  # (compared in bash: diff only to show a difference)
  a=() b=()
  [ -f "$W/ref-$name.manifest" ] && mapfile -t a < "$W/ref-$name.manifest"
  [ -f "$W/rs-$name.manifest" ] && mapfile -t b < "$W/rs-$name.manifest"
  IFS=$'\n' same=0; [ ${#b[@]} -gt 0 ] && [ "${a[*]}" = "${b[*]}" ] && same=1; unset IFS
  if [ "$same" = 1 ]; then
    log "ok: $name: identical (${#b[@]} entries)"
  else
    diff -u "$W/ref-$name.manifest" "$W/rs-$name.manifest" > "$W/$name.diff"
    fail "$name: trees differ (- erofs, + erofs_rs):"; sed 's/^/#   /' "$W/$name.diff" | head -n 40
  fi
done
# The source itself: the compressible files are what mkfs.erofs was given.
check_sources() {  # check_sources WHAT MANIFEST PREFIX [SRC_DIR, default $t/z]
  check "$1: the compressible files read back as their sources" $PY -c '
import hashlib, os, sys
man, src, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
want = {}
for n in os.listdir(src):
    want[prefix + n] = hashlib.sha256(open(os.path.join(src, n), "rb").read()).hexdigest()
got = {}
for line in open(man):
    f = line.split()
    if f[0] in want:
        got[f[0]] = next(x[7:] for x in f if x.startswith("sha256="))
sys.exit(0 if got == want else 1)' "$2" "${4:-$t/z}" "$3"
}
check_sources lz4 "$W/rs-z_big.manifest" z/
check_sources deflate "$W/rs-z_deflate.manifest" ""
check_sources zstd "$W/rs-z_zstd.manifest" ""
check_sources lzma "$W/rs-z_lzma.manifest" "" "$F/ltree"

# --- split reads: the daemon again, now filling only what is asked, with the prefetch plan
check "no errors logged by the daemon (layouts)" test "$(stat_value errors)" = 0
stop_daemon
start_daemon "$B" --window 0 "${prefetch[@]}"
kmsg "split reads"
mount_fs erofs_rs fsid=zsplit "$W/split" || die "zsplit: erofs_rs mount failed"
prefetch_over() { [ "$(stat_value prefetch_done)" -ge 1 ] 2>/dev/null; }
wait_until 120 prefetch_over || fail "zsplit: the daemon's prefetch did not finish"
log "prefetched $(stat_value prefetch_bytes) bytes of zsplit (every other block)"
reads0=$(stat_value reads)
split_start=$SECONDS
cat > "$W/split.py" <<'EOF'
import os, random, re, sys, time
path, src, extents, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
data = open(src, "rb").read()
ext = []   # (logical start, logical end, physical start, physical length) from dump.erofs -e
for line in open(extents):
    m = re.match(r"\s*\d+:\s*(\d+)\.\.\s*(\d+)\s*\|\s*\d+\s*:\s*(\d+)\.\.\s*(\d+)\s*\|\s*(\d+)", line)
    if m:
        lo, hi, p, _, plen = map(int, m.groups())
        ext.append((lo, hi, p, plen))
assert len(ext) > 8, "too few extents: %d" % len(ext)
# The blocks of the pclusters the prefetch left out (even block numbers): each needs a READ.
missing = sum(1 for _, _, p, plen in ext for b in range(p // 4096, (p + plen) // 4096) if b % 2 == 0)
r = random.Random(5)
fd = os.open(path, os.O_RDONLY)
t0 = time.time()
for i in range(n):
    # across the boundary between extent k and k + 1 (so two pclusters), random length
    k = r.randrange(len(ext) - 1)
    b = ext[k][1]
    off = max(0, b - r.randrange(1, 200000))
    ln = r.randrange(1, 300000)
    got = os.pread(fd, ln, off)
    if got != data[off:off + ln]:
        print("iteration %d: pread(%d, %d) returned wrong data (%d bytes)" % (i, off, ln, len(got)))
        sys.exit(1)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    if i % 10 == 9:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3")
# then the whole file, cold
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
whole = b""
while len(whole) < len(data) + 1:
    chunk = os.pread(fd, 1 << 20, len(whole))
    if not chunk:
        break
    whole += chunk
if whole != data:
    print("the whole file read back wrong (%d bytes)" % len(whole))
    sys.exit(1)
print("%d pclusters, %d blocks not cached, %d reads + the whole file in %.1f s" % (len(ext), missing, n, time.time() - t0))
print("missing=%d" % missing)
EOF
if timeout 300 $PY "$W/split.py" "$W/split/text" "$F/splittree/text" "$F/zsplit.extents" 50 > "$W/split.out" 2>&1; then
  reads1=$(stat_value reads)
  missing=$(sed -n 's/^missing=//p' "$W/split.out")
  log "zsplit: $(head -n 1 "$W/split.out"); $((reads1 - reads0)) READ requests in $((SECONDS - split_start)) s"
  check "zsplit: every missing block was fetched by its own READ (split reads)" test "$((reads1 - reads0))" -ge "${missing:-1}"
else
  fail "zsplit: split reads failed or hung: $(tr -cd '[:print:]\n' < "$W/split.out" | tail -n 3)"
fi
check "zsplit: umount" umount_fs "$W/split"
if [ "$split_ref" = 1 ]; then
  kmsg "split reads, in-tree erofs"
  if mount_fs erofs fsid=zsplit_c "$W/split_c"; then
    prefetch_over2() { [ "$(stat_value prefetch_done)" -ge 2 ] 2>/dev/null; }
    wait_until 120 prefetch_over2 || log "zsplit_c: the prefetch did not finish"
    timeout 300 $PY "$W/split.py" "$W/split_c/text" "$F/splittree/text" "$F/zsplit.extents" 50 > "$W/split_c.out" 2>&1
    log "in-tree erofs on the split image: exit $?: $(tr -cd '[:print:]\n' < "$W/split_c.out" | head -n 2 | tr '\n' ' ')"
    kmsg_since "split reads, in-tree erofs" | grep -iE "erofs|bug|warn|kasan" | head -n 8 | sed 's/^/#   /'
    umount_fs "$W/split_c" || log "in-tree erofs: umount failed"
  else
    log "in-tree erofs: mount of zsplit_c failed"
  fi
fi

# --- READ requests of a cold sequential read (--window 0: one READ per range the kernel asks
# for), erofs_rs and in-tree erofs each on its own copy of the lz4 and big-pcluster images
for img in z_lz4 z_big; do
  cp "$B/$img" "$B/${img}_rq_rs"; cp "$B/$img" "$B/${img}_rq_c"
  n=()
  for fstype in erofs_rs erofs; do
    blob=${img}_rq_rs; [ "$fstype" = erofs ] && blob=${img}_rq_c
    mount_fs "$fstype" "fsid=$blob" "$W/rq" || { fail "$blob: $fstype mount failed"; continue; }
    r0=$(stat_value reads)
    cmp -s "$W/rq/z/text" "$t/z/text" || fail "$blob: $fstype read z/text wrong"
    n+=($(($(stat_value reads) - r0)))
    umount_fs "$W/rq" || fail "$blob: umount $fstype"
  done
  log "$img: a cold read of z/text ($(stat -c %s "$t/z/text") bytes): ${n[0]:-?} READ requests with erofs_rs, ${n[1]:-?} with in-tree erofs"
  check "$img: erofs_rs needs at most twice the READ requests of in-tree erofs" test "${n[0]:-999}" -le $(( 2 * ${n[1]:-0} + 2 ))
done

# --- readahead over compressed extents: a 4 KiB read starts a readahead window there, and
# erofs_rs grows it to the end of the extent its last byte falls in (expand_compressed), as
# in-tree erofs does for DEFLATE, Zstandard and MicroLZMA (z_erofs_pcluster_readmore; for LZ4 its
# map stops at the end of the lcluster, so it keeps the VM's window). The pages cached from the
# read's page on: DEFLATE the same as in-tree erofs; LZ4 in-tree erofs's window
# grown to the extent's end (the extents from dump.erofs). The images are in the cache by now.
ra_offsets=(0 65536 200704 401408)
for img in z_lz4 z_big z_deflate; do
  f=z/text; [ "$img" = z_deflate ] && f=text
  for fstype in erofs_rs erofs; do
    mount_fs "$fstype" "fsid=$img" "$W/ra" || { fail "$img: $fstype mount failed"; continue; }
    $PY "$SELFTEST_DIR/fsops.py" residency "$W/ra/$f" "${ra_offsets[@]}" \
      > "$W/ra-$img-$fstype.txt" 2>&1 || fail "$img: $fstype: residency: $(tail -n 2 "$W/ra-$img-$fstype.txt")"
    umount_fs "$W/ra" || fail "$img: umount $fstype"
  done
  want=$W/ra-$img-erofs.txt
  case $img in
    z_lz4|z_big)
      want=$W/ra-$img-want.txt
      $PY "$SELFTEST_DIR/fsops.py" residency-expanded "$B/$img" "$f" \
        < "$W/ra-$img-erofs.txt" > "$want" 2>&1 || fail "$img: $(tail -n 2 "$want")" ;;
  esac
  if diff -u "$want" "$W/ra-$img-erofs_rs.txt" > "$W/ra-$img.diff"; then
    log "ok: $img: the pages readahead cached are the window grown to its last extent's end (offset: pages from there): $(paste -sd';' "$W/ra-$img-erofs_rs.txt"); in-tree erofs: $(paste -sd';' "$W/ra-$img-erofs.txt")"
  else
    fail "$img: readahead cached other pages than expected (- expected, + erofs_rs; in-tree erofs: $(paste -sd';' "$W/ra-$img-erofs.txt")):"
    sed 's/^/#   /' "$W/ra-$img.diff"
  fi
done

# --- fragments (mkfs.erofs 1.5 cannot write them): a compressed file patched into a whole-file
# fragment of another file, which becomes the packed inode; erofs_rs and in-tree erofs read it
kmsg "fragments"
mkdir -p "$W/fragtree"
$PY -c '
import os, sys
t = sys.argv[1]
c = b"".join(b"line %d of the fragment file\n" % i for i in range(700))
open(os.path.join(t, "f"), "wb").write(c)
open(os.path.join(t, "packed"), "wb").write(os.urandom(5000) + c)' "$W/fragtree"
mkimage zfrag -zlz4 "$B/zfrag" "$W/fragtree"
log "zfrag: $($PY "$SELFTEST_DIR/erofs_poke.py" "$B/zfrag" zfragment f packed 5000)"
for fstype in erofs_rs erofs; do
  mount_fs "$fstype" fsid=zfrag "$W/frag" || { fail "zfrag: $fstype mount failed"; kmsg_since fragments | tail -n 3 | sed 's/^/#   /'; continue; }
  check "zfrag: $fstype reads the fragment file" cmp "$W/frag/f" "$W/fragtree/f"
  check "zfrag: $fstype reads the packed inode as a file" cmp "$W/frag/packed" "$W/fragtree/packed"
  check "zfrag: umount $fstype" umount_fs "$W/frag"
done

# --- corrupted compressed files (the copies were made with the other images: build_all)
while IFS= read -r line; do log "$line"; done < "$F/corrupt.log"
for name in zbad_index zbad_pcluster zbad_deflate zbad_zstd zbad_lzma; do
  kmsg "case $name"
  mount_fs erofs_rs "fsid=$name" "$W/bad" || { fail "$name: mount failed"; continue; }
  out=$(timeout 120 cat "$W/bad/victim" 2>&1 >/dev/null); rc=$?
  if [ $rc = 0 ]; then fail "$name: reading the corrupted file succeeded"
  elif [ $rc = 124 ]; then fail "$name: reading the corrupted file hung"
  elif grep -qE "Structure needs cleaning|Input/output error|Operation not supported" <<<"$out"; then log "ok: $name: ${out##*: }"
  else fail "$name: unexpected error: $out"; fi
  check "$name: the other file still reads" cmp -s "$W/bad/other" "$F/ctree/other"
  klog=$(kmsg_since "case $name" | grep "erofs_rs: .*$name")
  [ -n "$klog" ] || fail "$name: no erofs_rs line in the kernel log"
  head -n 2 <<<"$klog" | sed 's/^/#   /'
  check "$name: umount" umount_fs "$W/bad"
done
check "no errors logged by the daemon" test "$(stat_value errors)" = 0
finish
