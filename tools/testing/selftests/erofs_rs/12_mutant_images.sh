#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 420
# Mutant images in the VM: deterministic, seeded corruptions (mutate.py) of six images,
#   chunk:   mkfs.erofs, 64 KiB chunk indexes, data in an external blob (device=blob1);
#   flat:    mkfs.erofs defaults (flat and tail-packed inline data, no blob);
#   crafted: mkimg.py, 4 KiB blocks (three extra devices by tag, block maps, mapped_blkaddr);
#   zlz4:    mkfs.erofs -zlz4hc -C16384 (compact indexes, big pclusters, plain pclusters);
#   zzstd:   the same recompressed with Zstandard (ztranscode.py), decoded by the kernel's zstd;
#   zlzma:   treegen.py lzmafit's files, -zlz4hc -C16384 recompressed with MicroLZMA
#            (ztranscode.py), decoded by the kernel's xz;
# each written as a new metadata blob (own cookie key and fscache volume), mounted with
# erofs_rs and the daemon, walked and read entirely by one forked walker (readdir, lstat,
# readlink, listxattr/getxattr, reads, lookups of absent names). A mutant passes if every
# failure is an errno allowed for its operation (mutate.py's ALLOWED: EUCLEAN, EIO, ENOENT for
# a name readdir returned but lookup cannot find, EOPNOTSUPP for unsupported layouts, ...), the
# walk ends in time, umount succeeds, the daemon served at most EROFS_RS_MAX_READS READ requests
# (a crawl through round trips is a missing bounds check), and the kernel logged no problem
# (checked per mutant; run_tests.sh and tools/vm/run check the whole log too).
# First each unmodified image must read without any error and equal its source.
#
# EROFS_RS_MUTANTS (default 30), EROFS_RS_MUTANT_SEED (default 1), EROFS_RS_MUTANT_ONLY=I (just
# mutant I; EROFS_RS_MUTANT_FIRST=I: mutants I..N-1, without the unmodified bases), EROFS_RS_MAX_READS
# (default 2000). `make fuzz-vm N=... SEED=...` runs more.
#   --prebuild DIR: (on the host, by prebuild.sh) the six base images into DIR only; the test
#   links them when EROFS_RS_PREBUILT names DIR's parent (it still writes the source trees).
. "$(dirname "$0")/lib.sh"
N=${EROFS_RS_MUTANTS:-30}
SEED=${EROFS_RS_MUTANT_SEED:-1}
ONLY=${EROFS_RS_MUTANT_ONLY:-}
FIRST=${EROFS_RS_MUTANT_FIRST:-0}
MAX_READS=${EROFS_RS_MAX_READS:-2000}
BATCH=100        # mutants per cache: each leaves up to ~2.5 MB of cache files behind
UUID=6a6f7e15-1c9d-4d5e-9f3e-0123456789ab
# The bases, deterministic: same seed and index, same mutant, run after run; the same trees and
# images on the host (--prebuild) and in the guest.
umask 022

# trees DIR: the source trees DIR/tree and DIR/ltree
trees() {
  $PY "$SELFTEST_DIR/mutate.py" tree "$1/tree" || die "cannot write the source tree"
  $PY "$SELFTEST_DIR/treegen.py" lzmafit "$1/ltree" || die "cannot write the MicroLZMA tree"
}
# bases DIR STAGE BLOBS CRAFTED: the six base images of DIR's trees into BLOBS (written in STAGE
# first), the crafted image's blobs too, its expected manifest into CRAFTED
bases() {
  local t=$1/tree l=$1/ltree S=$2 B=$3
  mkdir -p "$S" "$B"
  mkfs.erofs --quiet -T1700000000 -U$UUID --chunksize=65536 --blobdev="$S/blob1" \
    -Eforce-chunk-indexes "$S/chunk" "$t" >"$W/mkfs.log" 2>&1 \
    || { cat "$W/mkfs.log"; die "mkfs.erofs (chunk) failed"; }
  mkfs.erofs --quiet -T1700000000 -U$UUID "$S/flat" "$t" >"$W/mkfs.log" 2>&1 \
    || { cat "$W/mkfs.log"; die "mkfs.erofs (flat) failed"; }
  mkfs.erofs --quiet -T1700000000 -U$UUID -zlz4hc -C16384 "$S/zlz4" "$t" \
    >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs (zlz4) failed"; }
  cp "$S/zlz4" "$S/zzstd"
  $PY "$SELFTEST_DIR/ztranscode.py" "$S/zzstd" "$t" zstd >"$W/ztranscode.log" 2>&1 \
    || { cat "$W/ztranscode.log"; die "ztranscode.py (zzstd) failed"; }
  mkfs.erofs --quiet -T1700000000 -U$UUID -zlz4hc -C16384 "$S/zlzma" "$l" \
    >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs (zlzma) failed"; }
  $PY "$SELFTEST_DIR/ztranscode.py" "$S/zlzma" "$l" lzma >>"$W/ztranscode.log" 2>&1 \
    || { cat "$W/ztranscode.log"; die "ztranscode.py (zlzma) failed"; }
  mv "$S/chunk" "$S/blob1" "$S/flat" "$S/zlz4" "$S/zzstd" "$S/zlzma" "$B/"
  $PY "$SELFTEST_DIR/mkimg.py" "$4" >/dev/null || die "mkimg.py failed"
  mv "$4/meta" "$B/crafted"
  mv "$4/blob_a" "$4/blob_b" "$4/blob_c" "$B/"
}

if [ "${1:-}" = --prebuild ]; then
  D=${2:?usage: $0 --prebuild DIR}
  rm -rf "$D"; mkdir -p "$D" || exit 1
  W=$D
  trees "$D"
  bases "$D" "$D/build" "$D/blobs" "$D/crafted"
  rm -rf "$D/tree" "$D/ltree" "$D/build"
  prebuilt_key > "$D/stamp"
  exit 0
fi

setup_work
load_module
setup_cache 512M
# The trees are built here even with prebuilt images (seconds): the unmodified bases are
# compared with them, so images built on the host must equal what this guest would build.
# The images take half a minute here (ztranscode.py's recompression), seconds on the host.
trees "$W"
B=$W/blobs
if P=$(prebuilt 12_mutant_images); then
  # Linked, not copied (see 07); the mutants are new files beside them.
  mkdir -p "$B"
  ln -s "$P"/blobs/* "$B/" || die "cannot link the prebuilt images from $P"
  crafted_expected=$P/crafted/expected
  log "base images prebuilt on the host ($P)"
else
  bases "$W" "$W/cachefs/build" "$B" "$W/crafted"
  crafted_expected=$W/crafted/expected
fi
log "bases: $(cd "$B" && sha256sum chunk flat crafted zlz4 zzstd zlzma | awk '{ printf "%s %.12s  ", $2, $1 }')"

# Regression cases: mutants that found bugs, as explicit edits ("NAME BASE OFFSET:FORMAT:VALUE...",
# see mutate.py), run before the mutants on every run.
CASES=(
)
args=(--seed "$SEED" --blobs "$B" --mnt "$W/mnt" --stats "$W/stats" --max-reads "$MAX_READS"
      --base "chunk=$B/chunk:device=blob1:$W/tree" --base "flat=$B/flat::$W/tree"
      --base "crafted=$B/crafted::$crafted_expected" --base "zlz4=$B/zlz4::$W/tree"
      --base "zzstd=$B/zzstd::$W/tree" --base "zlzma=$B/zlzma::$W/ltree")
# run_batch FIRST COUNT [extra args]: one walker process for a batch, over a fresh cache
run_batch() {
  start_daemon "$B" --window 0
  $PY "$SELFTEST_DIR/mutate.py" run "${args[@]}" --daemon-pid "$DAEMON_PID" --first "$1" --count "$2" \
    "${@:3}" 2>&1 | tee "$W/run.out"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || fail "mutants $1..$(( $1 + $2 - 1 )): $(grep -c '^FAIL' "$W/run.out") failed (seed $SEED)"
  grep -q '^summary:' "$W/run.out" || fail "the walker did not finish (exit $rc)"
  stop_daemon
}

t0=$(date +%s)
if [ -n "$ONLY" ]; then
  run_batch "$ONLY" 1 --only "$ONLY"
else
  first=$FIRST
  while [ "$first" -lt "$N" ]; do
    n=$(( N - first < BATCH ? N - first : BATCH ))
    if [ "$first" = 0 ]; then
      extra=(--baseline)
      for c in "${CASES[@]}"; do extra+=(--case "$c"); done
      run_batch 0 "$n" "${extra[@]}"
    else
      run_batch "$first" "$n"
    fi
    first=$(( first + n ))
    if [ "$first" -lt "$N" ]; then
      umount "$W/cachefs" && rm -f "$W/cache.img" && setup_cache 512M
    fi
  done
fi
log "$N mutants (seed $SEED) in $(( $(date +%s) - t0 )) s"
finish
