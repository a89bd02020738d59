#!/bin/sh
# usage: make-image.sh SRC_DIR BLOB_DIR
# Builds BLOB_DIR/meta (metadata) and BLOB_DIR/blob1 (data, 1 MiB chunks) from SRC_DIR.
set -eu
src=$1 out=$2
mkdir -p "$out"
mkfs.erofs --chunksize=1048576 --blobdev="$out/blob1" -Eforce-chunk-indexes "$out/meta" "$src" >/dev/null
echo "serve:  erofs-ondemandd --cache-dir /var/cache/erofs-ondemand --blob-dir $out"
echo "mount:  mount -t erofs_rs -o fsid=meta,device=blob1 none /mnt"
