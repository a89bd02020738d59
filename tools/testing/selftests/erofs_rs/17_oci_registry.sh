#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# TIMEOUT: 300
# erofs-ondemandd --source oci://...: blobs of a real OCI distribution registry (Debian's
# docker-registry, filesystem storage, plain HTTP on loopback), named by digest. The metadata
# and data images are pushed with ocipush.py; the cookie keys are their digests (fsid=<hex>,
# nydus style; device=sha256:<hex>, OCI style). erofs_rs and in-tree erofs read the same tree
# through the registry; whole-blob fetches are checked against the digests (`verified`). Then a
# --blob-dir mirror whose data blob does not match its digest: the fetch is refused before
# anything is cached, the reader gets EIO, `digest_errors` counts it, umount works. A key that
# is no digest fails its OPEN.
. "$(dirname "$0")/lib.sh"
setup_work
REGISTRY=$(command -v docker-registry) ||
  skip "docker-registry is not installed (tools/vm/install-deps installs it)"
load_module
load_reference

make_tree "$W/tree"
# Two metadata images of the same tree, differing in their UUID only: each mount needs an fsid
# of its own (the cache volume is "erofs,<fsid>"), and here the fsid is the image's digest.
for v in a b; do
  mkdir -p "$W/img_$v"
  uuid=$([ $v = a ] && echo 11111111-2222-3333-4444-555555555555 || echo 66666666-7777-8888-9999-000000000000)
  mkfs.erofs --chunksize=1048576 --blobdev="$W/img_$v/blob1" -Eforce-chunk-indexes -U "$uuid" \
    "$W/img_$v/meta" "$W/tree" >"$W/mkfs.log" 2>&1 || { cat "$W/mkfs.log"; die "mkfs.erofs failed"; }
done
hex_of() { local h; read -r h _ < <(sha256sum "$1"); echo "$h"; }
META_A=$(hex_of "$W/img_a/meta"); BLOB_A=$(hex_of "$W/img_a/blob1")
META_B=$(hex_of "$W/img_b/meta"); BLOB_B=$(hex_of "$W/img_b/blob1")
log "meta $META_A / $META_B ($(stat -c %s "$W/img_a/meta") bytes), data blob $BLOB_A ($(stat -c %s "$W/img_a/blob1") bytes)"
setup_cache

# The registry: filesystem storage under $W, loopback only.
loopback_up
PORT=$(( 20000 + RANDOM % 10000 ))
mkdir -p "$W/registry"
cat > "$W/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $W/registry
http:
  addr: 127.0.0.1:$PORT
  secret: erofs-rs-selftest
EOF
"$REGISTRY" serve "$W/registry.yml" > "$W/registry.log" 2>&1 &
REG=$!
stop_registry() { kill "$REG" 2>/dev/null; wait "$REG" 2>/dev/null; }
trap 'stop_registry; cleanup' EXIT
# A Go binary and Python over the guest's 9p root under TCG: starting may take tens of seconds.
t_reg=$(now_ms)
$PY "$SELFTEST_DIR/ocipush.py" --wait 120 "127.0.0.1:$PORT" erofs/test \
  "$W/img_a/meta" "$W/img_a/blob1" > "$W/push.log" 2> "$W/push.err" ||
  die "pushing to the registry failed: $(tail -n 3 "$W/push.err"); registry: $(tail -n 5 "$W/registry.log")"
log "registry up and first images pushed in $(( $(now_ms) - t_reg )) ms"
# the second set with chunked uploads (1 MiB chunks: four PATCHes for the 3 MiB data blob; with
# 64 KiB chunks its 50 HTTP round trips took about 10 s under TCG)
$PY "$SELFTEST_DIR/ocipush.py" --chunked --chunk-size 1048576 "127.0.0.1:$PORT" erofs/test \
  "$W/img_b/meta" "$W/img_b/blob1" >> "$W/push.log" 2>> "$W/push.err" ||
  die "chunked push failed: $(tail -n 3 "$W/push.err")"
check "the registry stored the blobs under their digests" grep -q "^sha256:$BLOB_A " "$W/push.log"
SRC="oci://127.0.0.1:$PORT/erofs/test"

# 0. The fetch subcommand: no kernel involved.
check "fetch: the data blob, verified" "$DAEMON" fetch --source "$SRC" "sha256:$BLOB_A" --out "$W/fetched"
check "fetch: the bytes are the image's" cmp -s "$W/fetched" "$W/img_a/blob1"

# 1. The whole tree through both filesystems; a window larger than every blob: each is fetched
# whole on its first READ and checked against its digest.
start_daemon "" --source "$SRC" --http-timeout 20 --window 16777216
t0=$(now_ms)
mount_fs erofs_rs "fsid=$META_A,device=sha256:$BLOB_A" "$W/rs" ||
  { cat "$W/daemon.log"; die "mount -t erofs_rs over the registry failed"; }
mount_fs erofs "fsid=$META_B,device=sha256:$BLOB_B" "$W/ref" ||
  { tail -n 20 "$W/daemon.log"; die "mount -t erofs over the registry failed"; }
tree_manifests "$W/rs" "$W/rs.manifest" "$W/ref" "$W/ref.manifest" || fail "walking the mounts failed"
log "both trees read from the registry in $(( $(now_ms) - t0 )) ms"
check "erofs_rs over the registry shows what in-tree erofs shows" cmp -s "$W/rs.manifest" "$W/ref.manifest"
check "random.bin from the registry (erofs_rs)" cmp -s "$W/rs/random.bin" "$W/tree/random.bin"
check "random.bin from the registry (erofs)" cmp -s "$W/ref/random.bin" "$W/tree/random.bin"
log "daemon: $(tr '\n' ' ' < "$W/stats" | sed 's/read_len[^ ]* [0-9]* //g')"
check "READs were served" test "$(stat_value reads)" -gt 0
check "whole blobs were verified (metadata and data, both mounts)" test "$(stat_value verified)" -ge 4
check "no digest errors" test "$(stat_value digest_errors)" = 0
check "no daemon errors" test "$(stat_value errors)" = 0
check "umount (erofs_rs)" umount_fs "$W/rs"
check "umount (erofs)" umount_fs "$W/ref"

# 2. A key that is no digest: the OCI source refuses the OPEN (ENOENT), with a log line.
if mount_fs erofs_rs "fsid=meta,device=sha256:$BLOB_A" "$W/nodigest"; then
  fail "a mount with a non-digest fsid succeeded"
  umount_fs "$W/nodigest"
fi
check "the daemon says the key is no digest" grep -q 'cookie key "meta" is not a blob digest' "$W/daemon.log"

# 3. A mirror directory whose data blob does not match its digest (one byte changed).
mkdir -p "$W/mirror"
cp "$W/img_a/meta" "$W/mirror/$META_A"
cp "$W/img_a/blob1" "$W/mirror/sha256:$BLOB_A"
printf '\xff' | dd of="$W/mirror/sha256:$BLOB_A" bs=1 seek=5000 conv=notrunc status=none
cmp -s "$W/mirror/sha256:$BLOB_A" "$W/img_a/blob1" && die "the mirror blob is not corrupted"
"$DAEMON" fetch --source "$W/mirror" "sha256:$BLOB_A" > "$W/fetch.bad" 2>&1; rc=$?
check "fetch: exit status 1 on a corrupted blob" test "$rc" = 1
check "fetch: it says MISMATCH" grep -q MISMATCH "$W/fetch.bad"
reset_cache "$W/mirror" --window 16777216
mount_fs erofs_rs "fsid=$META_A,device=sha256:$BLOB_A" "$W/bad" ||
  { tail -n 20 "$W/daemon.log"; die "mount over the mirror failed"; }
t=$(now_ms)
err=$(timeout 30 cat "$W/bad/random.bin" 2>&1 >/dev/null); rc=$?
log "corrupted blob: read: rc $rc, ${err##*: } after $(( $(now_ms) - t )) ms"
check "corrupted blob: the reader gets EIO" test "${err##*: }" = "Input/output error"
check "corrupted blob: digest_errors counted" test "$(stat_value digest_errors)" -gt 0
check "corrupted blob: the metadata blob still verified" test "$(stat_value verified)" -ge 1
check "corrupted blob: the daemon names the blob" grep -q "blob .*sha256:$BLOB_A.*digest mismatch" "$W/daemon.log"
check "corrupted blob: umount" umount_fs "$W/bad"
check "the daemon is still running" alive "$DAEMON_PID"
log "daemon: $(tr '\n' ' ' < "$W/stats" | sed 's/read_len[^ ]* [0-9]* //g')"
log "total: $(( $(now_ms) - t0 )) ms"
finish
