#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 1500
# A corpus tree with every file type and the awkward cases (holes, empty files, hard links,
# long names and symlink targets, deep nesting, odd modes and owners,
# nanosecond times, inline and shared xattrs, POSIX ACLs), built with every uncompressed layout
# of mkfs.erofs (default, -Enoinline_data, compact inodes, chunk-based with 4 KiB, 64 KiB and
# 1 MiB chunks each with and without --blobdev, block maps and chunk indexes), plus a directory
# of EROFS_RS_BIGDIR entries (default 10000) spanning many blocks. Every image is mounted twice
# at once, with erofs_rs and with in-tree erofs (two fsids naming the same blob, so two cookies)
# over the same cache and daemon, and one Python process walks all the mounts: the trees must be
# identical (names, readdir order and d_type, types, modes, owners, sizes, link counts, times,
# rdev, symlink targets, content hashes, xattrs).
#   EROFS_RS_CORPUS=full|quick  quick (make check): a 2000-entry directory; full (the default
#                               when run alone, and make check-full): 10000 entries
#   EROFS_RS_BIGDIR=N           entries of the large directory (overrides the above)
#   --prebuild DIR              (on the host, by prebuild.sh) build the trees and images into DIR
#                               only; the test uses them when EROFS_RS_PREBUILT names DIR's parent
. "$(dirname "$0")/lib.sh"
mode=${EROFS_RS_CORPUS:-full}
if [ "$mode" = quick ]; then bigdir=${EROFS_RS_BIGDIR:-2000}; else bigdir=${EROFS_RS_BIGDIR:-10000}; fi

NAMES=()
declare -A OPTS
# layout NAME MOUNT_OPTS MKFS_ARGS...: build the image into $B (fsid NAME, and NAME_ref for
# in-tree erofs: another cookie on the same blob).
layout() {
  local name=$1 opts=$2; shift 2
  if ! mkfs_erofs "$@" >"$LOGS/mkfs-$name.log" 2>&1; then
    tr -cd '[:print:]\n' < "$LOGS/mkfs-$name.log" | tail -n 5 | sed 's/^/#   /'
    fail "$name: mkfs.erofs $* failed"; return
  fi
  ln -s "$name" "$B/${name}_ref"
  NAMES+=("$name"); OPTS[$name]=$opts
}
# build_all DIR: the corpus tree and the large directory under DIR, every image in $B.
build_all() {
  local t="$1/tree"
  $PY "$SELFTEST_DIR/treegen.py" corpus "$t" || die "cannot create the corpus tree"
  $PY "$SELFTEST_DIR/treegen.py" bigdir "$1/bigtree/big" "$bigdir" || die "cannot create the large directory"
  layout default      ""                   "$B/default" "$t"
  layout noinline     ""                   -Enoinline_data "$B/noinline" "$t"
  layout compact      ""                   -T1700000000 "$B/compact" "$t"
  layout chunk4k      ""                   --chunksize=4096 "$B/chunk4k" "$t"
  layout chunk64k_idx ""                   --chunksize=65536 -Eforce-chunk-indexes "$B/chunk64k_idx" "$t"
  layout chunk1m      ""                   --chunksize=1048576 "$B/chunk1m" "$t"
  layout chunk4k_blob ",device=blob4k"     --chunksize=4096 --blobdev="$B/blob4k" "$B/chunk4k_blob" "$t"
  layout chunk64k_blob ",device=blob64k"   --chunksize=65536 --blobdev="$B/blob64k" "$B/chunk64k_blob" "$t"
  layout chunk1m_blob ",device=blob1m"     --chunksize=1048576 -Eforce-chunk-indexes --blobdev="$B/blob1m" \
    "$B/chunk1m_blob" "$t"
  layout bigdir       ""                   "$B/bigdir" "$1/bigtree"
}

if [ "${1:-}" = --prebuild ]; then
  D=${2:?usage: $0 --prebuild DIR}
  rm -rf "$D"; B="$D/blobs" LOGS="$D"
  mkdir -p "$B" || exit 1
  build_all "$D"
  [ "$FAILED" = 0 ] || exit 1
  rm -rf "$D/tree" "$D/bigtree"
  for name in "${NAMES[@]}"; do printf '%s %s\n' "$name" "${OPTS[$name]}"; done > "$D/layouts"
  prebuilt_key "$bigdir" > "$D/stamp"
  exit 0
fi

setup_work
load_module
load_reference
log "corpus mode $mode, large directory of $bigdir entries"
setup_cache 512M
# Images go on the ext4 cache filesystem (mkfs_erofs stages them on /tmp's own filesystem first:
# see lib.sh).
B="$W/cachefs/blobs" LOGS="$W"
if P=$(prebuilt 07_corpus_layouts "$bigdir"); then
  # Linked, not copied: the daemon reads only what the mounts ask for, through the guest's
  # cached view of the host (lib.sh; copying the 30 MiB took 8 s to 15 s under TCG).
  B="$W/blobs"
  mkdir -p "$B"
  ln -s "$P"/blobs/* "$B/" || die "cannot link the prebuilt images from $P"
  while read -r name opts; do NAMES+=("$name"); OPTS[$name]=$opts; done < "$P/layouts"
  log "images prebuilt on the host ($P)"
else
  mkdir -p "$B"
  build_all "$W"
fi
start_daemon "$B"
log "${#NAMES[@]} images built"

# Mount everything with both filesystems, walk all mounts with one process, compare.
kmsg corpus
specs=() walk=() MOUNTED=()
for name in "${NAMES[@]}"; do
  specs+=("erofs_rs|fsid=$name${OPTS[$name]}|$W/rs/$name" "erofs|fsid=${name}_ref${OPTS[$name]}|$W/ref/$name")
done
# (all mounts with one process: fsops.py)
mapfile -t got < <(timeout 600 $PY "$SELFTEST_DIR/fsops.py" mount "${specs[@]}")
i=0
for name in "${NAMES[@]}"; do
  for side in rs ref; do
    r=${got[i]:-"no answer"}; i=$((i + 1))
    if [ "$r" = ok ]; then MOUNTED+=("$W/$side/$name"); else fail "$name: mount ($side) failed: $r"; fi
  done
  [ "${got[i - 2]:-}" = ok ] && [ "${got[i - 1]:-}" = ok ] &&
    walk+=("$W/rs/$name" "$W/rs-$name.manifest" "$W/ref/$name" "$W/ref-$name.manifest")
done
log "$(( ${#walk[@]} / 2 )) mounts; walking them"
tree_manifests "${walk[@]}" 2>"$W/walk.err" || fail "walking failed: $(head -c 600 "$W/walk.err")"
for name in "${NAMES[@]}"; do
  [ -s "$W/rs-$name.manifest" ] || continue
  # (compared in bash: diff only to show a difference)
  mapfile -t a < "$W/ref-$name.manifest"; mapfile -t b < "$W/rs-$name.manifest"
  IFS=$'\n' same=0; [ "${a[*]}" = "${b[*]}" ] && same=1; unset IFS
  if [ "$same" = 1 ]; then
    log "ok: $name: identical (${#b[@]} entries)"
  else
    diff -u "$W/ref-$name.manifest" "$W/rs-$name.manifest" > "$W/$name.diff"
    fail "$name: trees differ (- erofs, + erofs_rs):"; sed 's/^/#   /' "$W/$name.diff" | head -n 40
  fi
done
mapfile -t got < <(timeout 600 $PY "$SELFTEST_DIR/fsops.py" umount "${MOUNTED[@]}")
for ((i = 0; i < ${#MOUNTED[@]}; i++)); do
  [ "${got[i]:-}" = ok ] || fail "umount ${MOUNTED[i]}: ${got[i]:-no answer}"
done
check "no errors logged by the daemon" test "$(stat_value errors)" = 0
check "erofs_rs logged nothing while mounting and reading" test -z "$(kmsg_since corpus | grep erofs_rs | head -n 3)"
finish
