#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Turn an LZ4 EROFS image into a DEFLATE, Zstandard or MicroLZMA one, for the selftests.

usage: ztranscode.py IMAGE SRC_DIR deflate|zstd|lzma

Debian's mkfs.erofs 1.5 writes LZ4 only (DEFLATE came in erofs-utils 1.7, Zstandard in 1.8;
Debian builds it without liblzma), yet Linux 6.12 reads all three. This rewrites, in place, an image that mkfs.erofs built from SRC_DIR with
LZ4 and big pclusters (-zlz4hc -C65536: the superblock then has COMPR_CFGS and its LZ4 record):
every compressed extent of every regular file is compressed again from its bytes in SRC_DIR, with
Python's zlib (raw DEFLATE, level 9), the zstd command (level 19, one frame per extent, window
at most the configured one) or liblzma's MicroLZMA encoder (lzma_microlzma_encoder, as
erofs-utils uses it; through ctypes, preset 6, 16 KiB dictionary: smaller than most extents), into the same pcluster. The
data ends at the pcluster's end behind zero padding as mkfs.erofs lays it out; where the new
data is a block or more shorter (the padding must end in the first block), it starts the
pcluster and zeros follow it, which Linux's DEFLATE and Zstandard decoders ignore. A MicroLZMA
stream must end with the pcluster (its compressed size is the pcluster's minus the padding), so
there such an extent is an error: use data that LZMA compresses little better than LZ4HC
(treegen.py lzmafit). The inodes' algorithm ids, the superblock's algorithm bitmap and the
configuration record (struct z_erofs_deflate_cfgs / z_erofs_zstd_cfgs / z_erofs_lzma_cfgs,
replacing the LZ4 one) change accordingly, and the superblock checksum is recomputed.

The extents come from dump.erofs (one run per file); a compressed extent is one whose pcluster
is shorter than its data (mkfs.erofs compresses only when a block is saved). Images with inline
(ztailpacking) or fragment extents are refused.
Prints what it changed; exits non-zero (saying why) if an extent does not fit.
"""
import ctypes
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from erofs_poke import BLK, Image, fix_checksum  # noqa: E402

ALGS = {"lzma": 1, "deflate": 2, "zstd": 3}
LZMA_DICT = 16384
EXT_RE = re.compile(r"\s*\d+:\s*(\d+)\.\.\s*(\d+)\s*\|\s*\d+\s*:\s*(\d+)\.\.\s*(\d+)\s*\|\s*(\d+)")


def extents(image, rel):
    """(nid, layout, [(logical start, end, physical, plength)]) of /rel from dump.erofs."""
    out = subprocess.run(["dump.erofs", f"--path=/{rel}", "-e", image],
                         capture_output=True, text=True, check=True).stdout
    nid = int(re.search(r"NID:\s*(\d+)", out).group(1))
    layout = int(re.search(r"Layout:\s*(\d+)", out).group(1))
    ext = []
    for line in out.splitlines():
        m = EXT_RE.match(line)
        if m:
            lo, hi, p, _, plen = map(int, m.groups())
            ext.append((lo, hi, p, plen))
    return nid, layout, ext


def zstd_frames(datas, wlog):
    """One Zstandard frame per bytes object, from a single zstd run."""
    with tempfile.TemporaryDirectory() as d:
        names = []
        for i, data in enumerate(datas):
            names.append(os.path.join(d, f"e{i}"))
            with open(names[-1], "wb") as f:
                f.write(data)
        os.mkdir(os.path.join(d, "out"))
        subprocess.run(["zstd", "-q", "-19", "--no-check", f"--zstd=wlog={wlog}",
                        "--output-dir-flat", os.path.join(d, "out")] + names, check=True)
        frames = []
        for n in names:
            with open(os.path.join(d, "out", os.path.basename(n) + ".zst"), "rb") as f:
                frames.append(f.read())
        return frames


def microlzma(data, cap, dict_size):
    """MicroLZMA of data in at most cap bytes, as erofs-utils' compressor_liblzma.c makes it:
    (bytes of data consumed, stream)."""
    lib = ctypes.CDLL("liblzma.so.5")
    # lzma_options_lzma and lzma_stream, as opaque zeroed buffers larger than both structures;
    # only their stable leading fields are set (dict_size; next_in, avail_in, total_in,
    # next_out, avail_out, total_out).
    opts = ctypes.create_string_buffer(512)
    if lib.lzma_lzma_preset(opts, ctypes.c_uint32(6)):
        raise SystemExit("lzma_lzma_preset failed")
    ctypes.c_uint32.from_buffer(opts, 0).value = dict_size
    strm = ctypes.create_string_buffer(512)
    if lib.lzma_microlzma_encoder(strm, opts) != 0:
        raise SystemExit("lzma_microlzma_encoder failed")
    inb = ctypes.create_string_buffer(data, len(data))
    out = ctypes.create_string_buffer(cap)
    ctypes.c_void_p.from_buffer(strm, 0).value = ctypes.addressof(inb)
    ctypes.c_size_t.from_buffer(strm, 8).value = len(data)
    ctypes.c_void_p.from_buffer(strm, 24).value = ctypes.addressof(out)
    ctypes.c_size_t.from_buffer(strm, 32).value = cap
    ret = lib.lzma_code(strm, 3)  # LZMA_FINISH
    consumed = ctypes.c_uint64.from_buffer(strm, 16).value
    produced = ctypes.c_uint64.from_buffer(strm, 40).value
    lib.lzma_end(strm)
    if ret != 1:  # LZMA_STREAM_END
        raise SystemExit(f"lzma_code: {ret}")
    return consumed, out.raw[:produced]


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in ALGS:
        raise SystemExit(__doc__)
    path, src, name = sys.argv[1], sys.argv[2], sys.argv[3]
    alg = ALGS[name]
    img = Image(path)
    sb = img.read(1024, 128)
    incompat, = struct.unpack_from("<I", sb, 80)
    algs, = struct.unpack_from("<H", sb, 84)
    if not incompat & 0x2 or algs != 1:
        raise SystemExit(f"{path}: not an LZ4 image with COMPR_CFGS (build it with -zlz4hc -C65536)")
    if incompat & 0x20:
        raise SystemExit(f"{path}: has fragments")
    rec = 1024 + 128 + sb[13] * 16   # sb_size: 128 + sb_extslots * 16, 4-byte aligned

    # Every compressed extent: (file bytes, physical, plength); every compressed inode's map header.
    work, headers = [], []
    for root, _, files in os.walk(src):
        for fn in sorted(files):
            full = os.path.join(root, fn)
            if os.path.islink(full) or not os.path.isfile(full):
                continue
            rel = os.path.relpath(full, src)
            nid, layout, ext = extents(path, rel)
            if layout not in (1, 3):
                continue
            ino = img.inode(nid)
            hdr = (ino["pos"] + ino["isize"] + ino["xsize"] + 7) // 8 * 8
            advise, = struct.unpack("<H", img.read(hdr + 4, 2))
            if advise & 0x28:
                raise SystemExit(f"{rel}: inline or fragment pcluster (advise {advise:#x})")
            headers.append(hdr)
            with open(full, "rb") as f:
                data = f.read()
            for lo, hi, p, plen in ext:
                if plen < hi - lo:
                    work.append((data[lo:hi], p, plen, rel))
    if not work:
        raise SystemExit(f"{path}: no compressed extent")

    longest = max(len(w[0]) for w in work)
    windowlog = min(10, max(0, math.ceil(math.log2(longest)) - 10))
    if name == "deflate":
        def deflate(b):
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            return c.compress(b) + c.flush()
        packed = [deflate(w[0]) for w in work]
        cfg = struct.pack("<H6B", 6, 15, 0, 0, 0, 0, 0)
    elif name == "zstd":
        packed = zstd_frames([w[0] for w in work], windowlog + 10)
        cfg = struct.pack("<H6B", 6, 0, windowlog, 0, 0, 0, 0)
    else:
        packed = []
        for data, p, plen, rel in work:
            used, c = microlzma(data, plen, LZMA_DICT)
            if used != len(data):
                raise SystemExit(f"{rel}: {len(data)} bytes at {p}: MicroLZMA fits only {used} in the pcluster's {plen}")
            packed.append(c)
        cfg = struct.pack("<HIH8x", 14, LZMA_DICT, 0)

    right = 0
    for (data, p, plen, rel), c in zip(work, packed):
        if len(c) > plen:
            raise SystemExit(f"{rel}: {len(data)} bytes at {p}: {name} needs {len(c)} bytes, the pcluster has {plen}")
        if c[0] == 0:
            raise SystemExit(f"{rel}: {name} data starting with a zero byte cannot follow zero padding")
        if plen - len(c) < BLK:
            img.write(p, bytes(plen - len(c)) + c)
            right += 1
        elif name == "lzma":
            raise SystemExit(f"{rel}: {len(data)} bytes at {p}: MicroLZMA needs {len(c)} bytes, "
                             f"{plen - len(c)} short of the pcluster's {plen} (at most {BLK - 1} may be padding)")
        else:
            img.write(p, c + bytes(plen - len(c)))
    for hdr in headers:
        img.write(hdr + 6, bytes([alg | alg << 4]))
    # The configuration: the new algorithm's record where the LZ4 one was (16 bytes there).
    old_len, = struct.unpack("<H", img.read(rec, 2))
    if old_len != 14:
        raise SystemExit(f"{path}: unexpected LZ4 configuration record of {old_len} bytes")
    img.write(rec, cfg + bytes(16 - len(cfg)))
    img.write(1024 + 84, struct.pack("<H", 1 << alg))
    fix_checksum(img)
    img.f.close()
    print(f"{name}: {len(work)} extents of {len(headers)} files recompressed "
          f"({right} at the pcluster's end, {len(work) - right} at its start)"
          + (f", window 2^{windowlog + 10}" if name == "zstd" else "")
          + (f", dictionary {LZMA_DICT}" if name == "lzma" else ""))


if __name__ == "__main__":
    main()
