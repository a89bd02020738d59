#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Corrupt one on-disk field of an uncompressed EROFS image (4 KiB blocks), for the selftests.

usage: erofs_poke.py IMAGE KIND [NAME]
KIND: dirent-nameoff     root directory: first dirent's name offset past the block
      dirent-nid NAME    root directory: the dirent NAME points to a nid far past the image
      inode-format NAME  inode of NAME: unknown on-disk format version
      inode-size NAME    inode of NAME: size far past the image (flat layouts)
      inode-layout NAME  inode of NAME: a compressed data layout
      incompat-bit BIT   superblock: set feature_incompat bit(s) BIT (e.g. 0x80000000)
      zindex NAME        compressed inode of NAME: its first 32 bytes of lcluster indexes
                         (after the map header) set to 0xff
      zfragment NAME PACKED OFFSET
                         not a corruption: compressed NAME becomes a whole-file fragment at
                         OFFSET of the data of PACKED, which becomes the packed inode
                         (feature FRAGMENTS; mkfs.erofs 1.5 cannot write fragments)
Prints what it changed.
"""
import os
import struct
import sys

# mkimg.py (next to this file) has the superblock's crc32c; -I leaves the script's directory out
# of sys.path, so put it in.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mkimg import crc32c  # noqa: E402

BLK = 4096


class Image:
    def __init__(self, path):
        self.f = open(path, "r+b")
        sb = self.read(1024, 128)
        magic, = struct.unpack_from("<I", sb, 0)
        assert magic == 0xE0F5E1E2, "not an EROFS image"
        assert sb[12] == 12, "only 4 KiB blocks"
        self.root_nid, = struct.unpack_from("<H", sb, 14)
        self.meta_blkaddr, = struct.unpack_from("<I", sb, 40)

    def read(self, pos, n):
        self.f.seek(pos)
        return self.f.read(n)

    def write(self, pos, data):
        self.f.seek(pos)
        self.f.write(data)

    def inode_pos(self, nid):
        return self.meta_blkaddr * BLK + nid * 32

    def inode(self, nid):
        pos = self.inode_pos(nid)
        raw = self.read(pos, 64)
        fmt, icount = struct.unpack_from("<HH", raw, 0)
        extended = fmt & 1
        layout = (fmt >> 1) & 7
        if extended:
            size, = struct.unpack_from("<Q", raw, 8)
            isize = 64
        else:
            size, = struct.unpack_from("<I", raw, 8)
            isize = 32
        raw_blkaddr, = struct.unpack_from("<I", raw, 16)
        xsize = 0 if icount == 0 else 12 + (icount - 1) * 4
        return dict(pos=pos, extended=extended, layout=layout, size=size, isize=isize,
                    blkaddr=raw_blkaddr, xsize=xsize)

    def dir_block0(self, nid):
        """Byte position of the first directory block of a (small) directory."""
        ino = self.inode(nid)
        if ino["layout"] == 2 and ino["size"] <= BLK and ino["blkaddr"] == 0xFFFFFFFF or \
                ino["layout"] == 2 and ino["size"] < BLK:
            return ino["pos"] + ino["isize"] + ino["xsize"]   # inline (tail-packed) block
        return ino["blkaddr"] * BLK

    def dirents(self, nid):
        base = self.dir_block0(nid)
        size = min(self.inode(nid)["size"], BLK)
        blk = self.read(base, size)
        nameoff0, = struct.unpack_from("<H", blk, 8)
        n = nameoff0 // 12
        out = []
        for i in range(n):
            dnid, off, ftype = struct.unpack_from("<QHB", blk, i * 12)
            end = struct.unpack_from("<H", blk, (i + 1) * 12 + 8)[0] if i + 1 < n else len(blk)
            name = blk[off:end].split(b"\0")[0]
            out.append(dict(pos=base + i * 12, nid=dnid, name=name.decode()))
        return out

    def child(self, name):
        for d in self.dirents(self.root_nid):
            if d["name"] == name:
                return d
        raise SystemExit(f"{name} not in the root directory")


def fix_checksum(img):
    """Recompute the superblock checksum (feature_compat SB_CHKSUM) over the changed block."""
    sb = bytearray(img.read(1024, BLK - 1024))
    compat, = struct.unpack_from("<I", sb, 8)
    if not compat & 0x1:
        return
    struct.pack_into("<I", sb, 4, 0)
    img.write(1024 + 4, struct.pack("<I", crc32c(bytes(sb))))


def main():
    img = Image(sys.argv[1])
    kind = sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else None
    if kind == "dirent-nameoff":
        d = img.dirents(img.root_nid)[0]
        img.write(d["pos"] + 8, struct.pack("<H", 0xFFF0))
        print(f"root dirent 0 ({d['name']}): nameoff -> 0xfff0")
    elif kind == "dirent-nid":
        d = img.child(name)
        img.write(d["pos"], struct.pack("<Q", 1 << 40))
        print(f"root dirent {name}: nid {d['nid']} -> {1 << 40}")
    elif kind == "incompat-bit":
        bit = int(name, 0)
        incompat, = struct.unpack("<I", img.read(1024 + 80, 4))
        img.write(1024 + 80, struct.pack("<I", incompat | bit))
        print(f"feature_incompat {incompat:#x} -> {incompat | bit:#x}")
    elif kind == "zindex":
        ino = img.inode(img.child(name)["nid"])
        assert ino["layout"] in (1, 3), f"{name} is not compressed (layout {ino['layout']})"
        pos = (ino["pos"] + ino["isize"] + ino["xsize"] + 7) // 8 * 8 + 8
        if ino["layout"] == 1:
            pos += 8    # full indexes start after 8 reserved bytes
        img.write(pos, b"\xff" * 32)
        print(f"{name}: 32 index bytes at {pos} -> 0xff")
    elif kind == "zfragment":
        ino = img.inode(img.child(name)["nid"])
        assert ino["layout"] in (1, 3), f"{name} is not compressed (layout {ino['layout']})"
        packed = img.child(sys.argv[4])["nid"]
        off = int(sys.argv[5])
        pos = (ino["pos"] + ino["isize"] + ino["xsize"] + 7) // 8 * 8
        # the map header: bit 63 (Z_EROFS_FRAGMENT_INODE_BIT of h_clusterbits) and the offset
        img.write(pos, struct.pack("<Q", 1 << 63 | off))
        incompat, = struct.unpack("<I", img.read(1024 + 80, 4))
        img.write(1024 + 80, struct.pack("<I", incompat | 0x20))
        img.write(1024 + 96, struct.pack("<Q", packed))
        print(f"{name}: whole-file fragment at {off} of {sys.argv[4]} (nid {packed}, the packed inode)")
    elif kind not in ("inode-format", "inode-size", "inode-layout"):
        raise SystemExit(__doc__)
    else:
        nid = img.child(name)["nid"]
        ino = img.inode(nid)
        fmt, = struct.unpack("<H", img.read(ino["pos"], 2))
        if kind == "inode-format":
            img.write(ino["pos"], struct.pack("<H", fmt | 0x2 << 4 | 1 << 4))
            print(f"{name} (nid {nid}): i_format {fmt:#x} -> unknown version")
        elif kind == "inode-size":
            if ino["extended"]:
                img.write(ino["pos"] + 8, struct.pack("<Q", 1 << 50))
            else:
                img.write(ino["pos"] + 8, struct.pack("<I", 0xFFFFF000))
            print(f"{name} (nid {nid}): size {ino['size']} -> huge")
        elif kind == "inode-layout":
            img.write(ino["pos"], struct.pack("<H", (fmt & ~0xE) | (1 << 1)))
            print(f"{name} (nid {nid}): data layout {ino['layout']} -> 1 (compressed)")
        else:
            raise SystemExit(__doc__)
    fix_checksum(img)
    img.f.close()


if __name__ == "__main__":
    main()
