#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Mutant EROFS images for 12_mutant_images.sh: deterministic, seeded corruptions of real images,
each mounted with erofs_rs, walked and read by a forked child of this one process.

usage:
  mutate.py tree DIR
      write the deterministic source tree the mkfs.erofs base images are built from
  mutate.py make BASE OUT --seed S --index I
      write mutant I of image BASE (seed S) to OUT and print the mutation applied
  mutate.py list BASE --seed S --count N [--first I]
      print what mutants first..first+N-1 of BASE would be (nothing is written)
  mutate.py run --seed S --first I --count N --blobs DIR --mnt DIR --stats FILE
                --base NAME=FILE[:OPTIONS[:EXPECTED]] ... [--max-reads R] [--timeout SECONDS]
                [--daemon-pid PID] [--only I] [--baseline] [--case "NAME BASE EDIT..."]
      in the test VM, as root: for each index I, take base I % len(bases) (in the order given),
      write its mutant as blob DIR/mut<S>_<I> (a new cookie key and fscache volume: nothing
      cached is shared with another mutant), mount it (mount -t erofs_rs -o fsid=mut<S>_<I>,
      OPTIONS), walk and read everything in a forked child, umount, and judge:
        * every failure is an errno allowed for that operation (ALLOWED below);
        * the walk ends within --timeout seconds (a hang is a failure);
        * umount succeeds;
        * the daemon served at most --max-reads READ requests for the mutant (a walk that
          crawls through thousands of round trips is a missing bounds check);
        * the kernel logged no oops, BUG, WARNING, KASAN, lockdep or hung task report.
      --baseline first mounts each unmodified base and checks that it reads without any
      error and with the contents of EXPECTED (a source tree, or mkimg.py's manifest).
      --case runs a regression case first: base BASE with explicit EDITs (OFFSET:FORMAT:VALUE,
      FORMAT a struct format such as <H; or truncate:LENGTH), judged like a mutant.
      Prints one line per mutant; for failures the mutation and how to reproduce it.
      Exit status: 0 if all passed, 1 otherwise.

Mutations (1 to 3 per mutant) are field-aware edits of the on-disk structures found by walking
the clean image (dirent nids, name offsets and file types; inode formats, modes, sizes, block
addresses, chunk formats, xattr counts; chunk index block addresses and device ids; block map
entries; xattr headers, shared ids and entry headers; device slots; superblock fields), with
values chosen to hit bounds (0, maximum, off by one, the image's size, other fields' values),
plus bit flips and byte sets inside metadata, inode copies and truncations of the blob. The
superblock checksum is recomputed afterwards, so corruptions reach the parsers behind it.
Everything is a function of (seed, index, base image bytes): same inputs, same mutant.
"""
import ctypes
import errno
import hashlib
import json
import os
import random
import re
import select
import signal
import stat
import struct
import sys
import threading
import time

# mkimg.py (next to this file) has the superblock's crc32c; -I leaves the script's directory out
# of sys.path, so put it in.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mkimg import crc32c  # noqa: E402

SB_OFF = 1024
MAGIC = 0xE0F5E1E2
NULL_ADDR = 0xFFFFFFFF
COMPAT_SB_CHKSUM = 0x1
INCOMPAT_DEVICE_TABLE = 0x8
FLAT_PLAIN, COMPR_FULL, FLAT_INLINE, COMPR_COMPACT, CHUNK_BASED = 0, 1, 2, 3, 4
CHUNK_INDEXES = 0x20

# errnos a walk may meet on a corrupted image, per operation. Anything else is a finding.
E = errno
# Every operation on a path looks it up again: a name readdir returned that the binary search
# cannot find (corrupted order or name offsets, a NUL inside), a name with '/' in it (ENOTDIR or
# ENOENT on the pieces), a directory that two dirents name (d_splice_alias refuses a loop with
# ELOOP, or moves the alias, which can make the other path stale: ENOENT or ESTALE).
LOOKUP = {E.ENOENT, E.ENOTDIR, E.ELOOP, E.ESTALE}
ALLOWED = {
    # mount(2): corrupted superblock, device table or root inode; unsupported features or block
    # sizes; a device= count that no longer matches extra_devices (EINVAL); unreadable metadata.
    "mount": {E.EUCLEAN, E.EINVAL, E.EOPNOTSUPP, E.EIO},
    # lookup + iget: a corrupted or unreadable inode, an unsupported layout or format
    "lstat": LOOKUP | {E.EUCLEAN, E.EIO, E.EOPNOTSUPP},
    "open": LOOKUP | {E.EUCLEAN, E.EIO, E.EOPNOTSUPP},
    # opendir + getdents: a corrupted or unreadable directory block
    "readdir": LOOKUP | {E.EUCLEAN, E.EIO},
    # read(2): corrupted mapping, an extent past its device, a device whose (mutated) tag names
    # no blob (the cookie has no cache object: ENOBUFS, as in-tree erofs), unreadable data; a
    # compressed file's map header read at first use naming an unknown algorithm, or a mapping
    # C does not support (EOPNOTSUPP, as in-tree erofs)
    "read": {E.EUCLEAN, E.EIO, E.ENOBUFS, E.EOPNOTSUPP},
    "readlink": LOOKUP | {E.EUCLEAN, E.EIO, E.ENOBUFS},
    # a header-only xattr area is EOPNOTSUPP in erofs; a name list longer than 64 KiB ERANGE/E2BIG
    "listxattr": LOOKUP | {E.EUCLEAN, E.EIO, E.EOPNOTSUPP, E.ERANGE, E.E2BIG},
    # names listxattr returned: a name containing NUL (split by the list format) or listed twice
    # with another prefix is not found again (ENODATA); an empty suffix or a garbage ACL value is
    # EINVAL (VFS, posix_acl_from_xattr); unknown prefixes EOPNOTSUPP
    "getxattr": LOOKUP | {E.EUCLEAN, E.EIO, E.EOPNOTSUPP, E.ENODATA, E.ERANGE, E.EINVAL, E.E2BIG},
    # lookup of names that are not there
    "absent": {E.ENOENT, E.EUCLEAN, E.EIO, E.ESTALE},
    "statfs": set(),
}
KERNEL_PROBLEMS = re.compile(
    r"BUG:|WARNING:|Oops|general protection fault|KASAN|UBSAN|kernel BUG|possible circular "
    r"locking|possible recursive locking|inconsistent lock state|INFO: task .* blocked|soft "
    r"lockup|hard LOCKUP|detected stalls|self-detected stall|Kernel panic|Call Trace:")

# Walk limits: a corrupted image can claim huge files and directories; these keep one walk
# bounded in time without hiding errors (the first error of a file ends its read anyway).
FILE_READ_CAP = 4 << 20
TOTAL_READ_CAP = 48 << 20
MAX_ENTRIES = 20000
MAX_DIRS = 2000
WALK_SECONDS = 60


# --------------------------------------------------------------------------------------------
# The source tree of the mkfs.erofs bases
# --------------------------------------------------------------------------------------------

def pattern(seed, n):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%s:%d" % (seed.encode(), i)).digest()
        i += 1
    return bytes(out[:n])


def make_tree(t):
    """A small tree with everything the format has for mkfs.erofs 1.5 to encode: inline tails,
    multi-chunk files, a hole, an empty file, a two-block directory, symlinks (one long), a hard
    link, device nodes, a FIFO, inline and shared xattrs (user. and trusted.), an owner that needs
    an extended inode. Deterministic (mkfs.erofs -T fixes the times, -U the UUID)."""
    def write(rel, data, mode=0o644):
        p = os.path.join(t, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.chmod(p, mode)
        return p

    os.makedirs(t, exist_ok=True)
    shared = b"a value several files share"
    p = write("hello.txt", b"hello from erofs_rs\n")
    os.setxattr(p, "user.greeting", b"hi")
    write("data/big.bin", pattern("big", 200000))            # 4 chunks of 64 KiB
    write("data/mid.bin", pattern("mid", 70001))
    write("data/one_block", pattern("one", 4096), 0o640)
    write("data/empty", b"")
    p = os.path.join(t, "data/sparse.bin")
    with open(p, "wb") as f:                                 # a hole in the middle
        f.write(pattern("sparse-a", 5000))
        f.seek(200000)
        f.write(pattern("sparse-b", 6000))
    write("dir/sub/deeper/tiny", b"tail")
    write("dir/sub/numbers.txt", b"".join(b"%d\n" % i for i in range(3000)))
    p = write("dir/owned", b"owned by a large uid\n")
    os.chown(p, 100000, 100001)                              # an extended inode
    for i in range(64):                                      # a directory of two blocks
        p = write("many/entry_%02d_%s" % (i, "x" * (40 + i % 13)), b"%d\n" % i if i % 8 == 0 else b"")
        if i % 8 == 0:
            os.setxattr(p, "user.shared", shared)           # shared xattr
    os.setxattr(os.path.join(t, "many"), "trusted.dir", b"directory xattr")
    os.setxattr(os.path.join(t, "data/big.bin"), "user.shared", shared)
    os.setxattr(os.path.join(t, "data/big.bin"), "user.long", pattern("xattr", 600))
    os.symlink("hello.txt", os.path.join(t, "link"))
    os.symlink("dir/" + "s" * 300, os.path.join(t, "long_link"))
    os.link(os.path.join(t, "hello.txt"), os.path.join(t, "dir/hardlink"))
    os.makedirs(os.path.join(t, "special"))
    os.mknod(os.path.join(t, "special/chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(os.path.join(t, "special/blk"), 0o660 | stat.S_IFBLK, os.makedev(259, 70000))
    os.mkfifo(os.path.join(t, "special/fifo"))
    os.makedirs(os.path.join(t, "empty_dir"))


# --------------------------------------------------------------------------------------------
# The image model: where each on-disk field of a clean image is
# --------------------------------------------------------------------------------------------

class Field:
    __slots__ = ("kind", "pos", "fmt", "label")

    def __init__(self, kind, pos, fmt, label):
        self.kind, self.pos, self.fmt, self.label = kind, pos, fmt, label


class Model:
    """Walks a clean (uncompressed) EROFS image from its root and records every field."""

    def __init__(self, data):
        self.d = bytes(data)
        sb = self.d[SB_OFF:SB_OFF + 128]
        if len(sb) < 128 or struct.unpack_from("<I", sb, 0)[0] != MAGIC:
            raise SystemExit("not an EROFS image")
        self.bits = sb[12]
        self.blksz = 1 << self.bits
        self.compat, = struct.unpack_from("<I", sb, 8)
        self.root_nid, = struct.unpack_from("<H", sb, 14)
        self.blocks, self.meta_blkaddr, self.xattr_blkaddr = struct.unpack_from("<III", sb, 36)
        self.incompat, = struct.unpack_from("<I", sb, 80)
        ndev, self.devt_slotoff = struct.unpack_from("<HH", sb, 86)
        self.extra_devices = ndev if self.incompat & INCOMPAT_DEVICE_TABLE else 0
        self.fields = []
        self.regions = []          # (pos, len, label): metadata bytes, for bit flips
        self.inodes = {}           # nid -> (pos, total length incl. xattrs/tail/table, path)
        self.blkaddrs = set()
        self.nids = {"dir": [], "reg": [], "other": []}
        self.shared_ids = set()
        self.sb_fields()
        self.device_slots()
        self.walk()

    def u(self, pos, fmt):
        return struct.unpack_from(fmt, self.d, pos)[0]

    def field(self, kind, pos, fmt, label):
        if pos + struct.calcsize(fmt) <= len(self.d):
            self.fields.append(Field(kind, pos, fmt, label))

    def region(self, pos, n, label):
        n = min(n, len(self.d) - pos)
        if n > 0:
            self.regions.append((pos, n, label))

    def sb_fields(self):
        s = SB_OFF
        self.region(s, 128, "superblock")
        for kind, off, fmt in [
                ("sb.root_nid", 14, "<H"), ("sb.meta_blkaddr", 40, "<I"),
                ("sb.xattr_blkaddr", 44, "<I"), ("sb.extra_devices", 86, "<H"),
                ("sb.devt_slotoff", 88, "<H"), ("sb.blocks", 36, "<I"),
                ("sb.feature_incompat", 80, "<I"), ("sb.feature_compat", 8, "<I"),
                ("sb.blkszbits", 12, "<B"), ("sb.sb_extslots", 13, "<B"),
                ("sb.dirblkbits", 90, "<B"), ("sb.xattr_prefix_count", 91, "<B"),
                ("sb.xattr_prefix_start", 92, "<I"), ("sb.inos", 16, "<Q"),
                ("sb.packed_nid", 96, "<Q"), ("sb.xattr_filter_reserved", 104, "<B")]:
            self.field(kind, s + off, fmt, "superblock " + kind[3:])

    def device_slots(self):
        for i in range(self.extra_devices):
            pos = (self.devt_slotoff + i) * 128
            if pos + 128 > len(self.d):
                break
            tag = self.d[pos:pos + 64].split(b"\0")[0].decode(errors="replace")
            self.region(pos, 128, "device slot %d (%s)" % (i + 1, tag))
            self.field("dev.blocks", pos + 64, "<I", "device %d (%s) blocks" % (i + 1, tag))
            self.field("dev.mapped_blkaddr", pos + 68, "<I",
                       "device %d (%s) mapped_blkaddr" % (i + 1, tag))
            self.field("dev.tag", pos, "64s", "device %d tag %r" % (i + 1, tag))

    def ipos(self, nid):
        return self.meta_blkaddr * self.blksz + nid * 32

    def inode(self, nid, path):
        pos = self.ipos(nid)
        if pos + 32 > len(self.d):
            return None
        ifmt, icount, mode = struct.unpack_from("<HHH", self.d, pos)
        ext = ifmt & 1
        layout = (ifmt >> 1) & 7
        if ext:
            size, = struct.unpack_from("<Q", self.d, pos + 8)
            isize = 64
        else:
            size, = struct.unpack_from("<I", self.d, pos + 8)
            isize = 32
        iu, = struct.unpack_from("<I", self.d, pos + 16)
        xsize = 0 if icount == 0 else 12 + (icount - 1) * 4
        lbl = "inode nid %d (%s)" % (nid, path)
        ino = dict(nid=nid, pos=pos, ext=ext, layout=layout, size=size, isize=isize, iu=iu,
                   xsize=xsize, mode=mode, path=path, icount=icount)
        self.field("inode.format", pos, "<H", lbl + " i_format")
        self.field("inode.icount", pos + 2, "<H", lbl + " i_xattr_icount")
        self.field("inode.mode", pos + 4, "<H", lbl + " i_mode")
        self.field("inode.size", pos + 8, "<Q" if ext else "<I", lbl + " i_size")
        self.field("inode.nlink", pos + (44 if ext else 6), "<I" if ext else "<H", lbl + " i_nlink")
        ft = stat.S_IFMT(mode)
        if layout == CHUNK_BASED:
            self.field("inode.chunkfmt", pos + 16, "<H", lbl + " chunk format")
        elif ft in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK):
            self.field("inode.blkaddr", pos + 16, "<I", lbl + " raw_blkaddr")
            if iu != NULL_ADDR:
                self.blkaddrs.add(iu)
        elif ft in (stat.S_IFCHR, stat.S_IFBLK):
            self.field("inode.rdev", pos + 16, "<I", lbl + " rdev")
        self.nids["dir" if ft == stat.S_IFDIR else "reg" if ft == stat.S_IFREG else "other"].append(nid)
        tail = 0
        if layout == FLAT_INLINE:
            tail = size % self.blksz if size % self.blksz else (self.blksz if size else 0)
        self.xattrs(ino)
        table = 0
        if layout == CHUNK_BASED:
            table = self.chunks(ino)
        elif layout in (COMPR_FULL, COMPR_COMPACT):
            table = self.zindexes(ino)
        self.inodes[nid] = (pos, isize + xsize + max(tail, table), path)
        self.region(pos, isize + xsize + table, lbl)
        return ino

    def xattrs(self, ino):
        if not ino["xsize"] or ino["xsize"] <= 12:
            return
        lbl = "inode nid %d (%s)" % (ino["nid"], ino["path"])
        h = ino["pos"] + ino["isize"]
        if h + 12 > len(self.d):
            return
        self.field("xattr.shared_count", h + 4, "<B", lbl + " xattr h_shared_count")
        self.field("xattr.name_filter", h, "<I", lbl + " xattr h_name_filter")
        cnt = self.d[h + 4]
        for i in range(cnt):
            p = h + 12 + 4 * i
            if p + 4 > h + ino["xsize"]:
                break
            sid = self.u(p, "<I")
            self.shared_ids.add(sid)
            self.field("xattr.shared_id", p, "<I", lbl + " shared xattr id #%d (%d)" % (i, sid))
            self.entry(self.xattr_blkaddr * self.blksz + 4 * sid, "shared xattr %d" % sid)
        p = h + 12 + 4 * cnt
        end = h + ino["xsize"]
        n = 0
        while p + 4 <= end and n < 64:
            nl, idx, vs = struct.unpack_from("<BBH", self.d, p)
            self.entry(p, lbl + " inline xattr #%d" % n)
            p += (4 + nl + vs + 3) & ~3
            n += 1

    def zindexes(self, ino):
        """The map header and lcluster indexes of a compressed inode: its fields, and the
        index bytes as a region (their length is an upper bound for compact indexes).
        Returns the bytes they take after the inode and its xattrs."""
        start = ino["pos"] + ino["isize"] + ino["xsize"]
        hdr = (start + 7) // 8 * 8
        if hdr + 8 > len(self.d):
            return 0
        lbl = "inode nid %d (%s)" % (ino["nid"], ino["path"])
        self.field("zmap.fragoff", hdr, "<I", lbl + " h_fragmentoff/h_idata_size")
        self.field("zmap.advise", hdr + 4, "<H", lbl + " h_advise")
        self.field("zmap.algtype", hdr + 6, "<B", lbl + " h_algorithmtype")
        self.field("zmap.clusterbits", hdr + 7, "<B", lbl + " h_clusterbits")
        nlc = (ino["size"] + self.blksz - 1) // self.blksz
        n = 8 + (8 + 8 * nlc if ino["layout"] == COMPR_FULL else 4 * nlc + 8)
        n = min(n, len(self.d) - hdr)
        self.region(hdr, n, lbl + " map header and lcluster indexes")
        return hdr - start + n

    def entry(self, p, lbl):
        if p + 4 > len(self.d):
            return
        nl, idx, vs = struct.unpack_from("<BBH", self.d, p)
        self.field("xattr.name_len", p, "<B", lbl + " e_name_len")
        self.field("xattr.name_index", p + 1, "<B", lbl + " e_name_index")
        self.field("xattr.value_size", p + 2, "<H", lbl + " e_value_size")
        self.region(p, 4 + nl + vs, lbl)

    def chunks(self, ino):
        fmt = ino["iu"] & 0xFFFF
        idx = fmt & CHUNK_INDEXES
        unit = 8 if idx else 4
        cbits = self.bits + (fmt & 0x1F)
        n = -(-ino["size"] >> cbits) if ino["size"] else 0
        n = min(n, 4096)
        start = ino["pos"] + ino["isize"] + ino["xsize"]
        start = -(-start // unit) * unit
        lbl = "inode nid %d (%s)" % (ino["nid"], ino["path"])
        for i in range(n):
            p = start + i * unit
            if p + unit > len(self.d):
                break
            if idx:
                self.field("chunk.blkaddr", p + 4, "<I", lbl + " chunk index %d blkaddr" % i)
                self.field("chunk.device", p + 2, "<H", lbl + " chunk index %d device_id" % i)
                self.field("chunk.advise", p, "<H", lbl + " chunk index %d advise" % i)
                b = self.u(p + 4, "<I")
            else:
                self.field("blockmap.blkaddr", p, "<I", lbl + " block map entry %d" % i)
                b = self.u(p, "<I")
            if b != NULL_ADDR:
                self.blkaddrs.add(b)
        return start - (ino["pos"] + ino["isize"] + ino["xsize"]) + n * unit

    def dir_data(self, ino):
        """(position, length) of each block of a directory in this image (device 0 only)."""
        size, b = ino["size"], self.blksz
        nblk = -(-size // b)
        out = []
        if ino["layout"] in (FLAT_PLAIN, FLAT_INLINE):
            full = nblk - 1 if ino["layout"] == FLAT_INLINE else nblk
            for i in range(min(full, 256)):
                out.append(((ino["iu"] + i) * b, min(b, size - i * b)))
            if ino["layout"] == FLAT_INLINE and nblk:
                out.append((ino["pos"] + ino["isize"] + ino["xsize"], size - full * b))
        return out

    def walk(self):
        queue = [(self.root_nid, "/")]
        seen = set()
        while queue and len(seen) < 5000:
            nid, path = queue.pop(0)
            if nid in seen:
                continue
            seen.add(nid)
            ino = self.inode(nid, path)
            if ino is None or stat.S_IFMT(ino["mode"]) != stat.S_IFDIR:
                continue
            for bi, (pos, ln) in enumerate(self.dir_data(ino)):
                blk = self.d[pos:pos + ln]
                if len(blk) < 12:
                    continue
                self.region(pos, ln, "dir %s block %d" % (path, bi))
                nameoff0 = struct.unpack_from("<H", blk, 8)[0]
                n = nameoff0 // 12
                if n == 0 or nameoff0 > len(blk):
                    continue
                for i in range(n):
                    dnid, off, ft = struct.unpack_from("<QHB", blk, i * 12)
                    end = struct.unpack_from("<H", blk, (i + 1) * 12 + 8)[0] if i + 1 < n else len(blk)
                    name = blk[off:end].split(b"\0")[0].decode(errors="replace")
                    lbl = "dir %s block %d dirent %d '%s'" % (path, bi, i, name)
                    self.field("dirent.nid", pos + i * 12, "<Q", lbl + " nid")
                    self.field("dirent.nameoff", pos + i * 12 + 8, "<H", lbl + " nameoff")
                    self.field("dirent.ftype", pos + i * 12 + 10, "<B", lbl + " file_type")
                    if name not in (".", ".."):
                        queue.append((dnid, path.rstrip("/") + "/" + name))


# --------------------------------------------------------------------------------------------
# Mutations
# --------------------------------------------------------------------------------------------

WEIGHTS = {
    "dirent.nid": 10, "dirent.nameoff": 6, "dirent.ftype": 2,
    "inode.format": 4, "inode.mode": 3, "inode.size": 8, "inode.blkaddr": 8,
    "inode.chunkfmt": 4, "inode.icount": 5, "inode.nlink": 1, "inode.rdev": 1,
    "chunk.blkaddr": 8, "chunk.device": 6, "chunk.advise": 1, "blockmap.blkaddr": 4,
    "xattr.shared_count": 4, "xattr.shared_id": 5, "xattr.name_filter": 1,
    "xattr.name_len": 3, "xattr.name_index": 3, "xattr.value_size": 3,
    "dev.blocks": 4, "dev.mapped_blkaddr": 4, "dev.tag": 2,
    "sb.root_nid": 3, "sb.meta_blkaddr": 3, "sb.xattr_blkaddr": 3, "sb.extra_devices": 4,
    "sb.devt_slotoff": 2, "sb.blocks": 2, "sb.feature_incompat": 2, "sb.feature_compat": 1,
    "sb.blkszbits": 1, "sb.sb_extslots": 1, "sb.dirblkbits": 1, "sb.xattr_prefix_count": 1,
    "sb.xattr_prefix_start": 1, "sb.inos": 1, "sb.packed_nid": 1, "sb.xattr_filter_reserved": 1,
    "zmap.fragoff": 2, "zmap.advise": 4, "zmap.algtype": 3, "zmap.clusterbits": 3,
    "bitflip": 10, "byte": 3, "truncate": 2, "copy-inode": 2,
}


def bound_values(m, cur, bits):
    top = (1 << bits) - 1
    img_blocks = len(m.d) // m.blksz
    v = [0, 1, top, top - 1, cur ^ 1, (cur + 1) & top, (cur - 1) & top, top >> 1,
         (top >> 1) + 1, img_blocks, img_blocks + 1, m.blocks, m.blocks + 1,
         len(m.d), len(m.d) // 32]
    return [x & top for x in v]


def candidates(m, kind, cur, bits, rng):
    nids = m.nids["dir"] + m.nids["reg"] + m.nids["other"]
    top = (1 << bits) - 1
    if kind in ("dirent.nid", "sb.root_nid"):
        meta_slots = (len(m.d) - m.meta_blkaddr * m.blksz) // 32
        v = [rng.choice(nids), rng.choice(m.nids["dir"]), m.root_nid, cur + 1, cur + 2, cur - 1,
             meta_slots, meta_slots + 1, 1 << 32, 1 << 40, top, 0]
        v += [rng.choice(m.nids["reg"])] if m.nids["reg"] else []
    elif kind == "dirent.nameoff":
        v = [0, 1, 11, 12, 13, cur - 1, cur + 1, cur + 12, m.blksz - 1, m.blksz, m.blksz + 1,
             0xFFFF, 0xFFF0, cur + 255, cur + 256]
    elif kind == "dirent.ftype":
        v = list(range(0, 9)) + [255]
    elif kind == "inode.format":
        v = [(layout << 1) | ext for layout in range(8) for ext in (0, 1)] + \
            [cur | 0x10, cur | 0x8000, cur ^ 1]
    elif kind == "inode.mode":
        perm = cur & 0o7777
        v = [t | perm for t in (0, 0o010000, 0o020000, 0o040000, 0o060000, 0o100000,
                                0o120000, 0o140000, 0o170000)]
    elif kind == "inode.size":
        v = [0, 1, cur - 1, cur + 1, cur + m.blksz, cur * 16 + 5, m.blksz, m.blksz - 1,
             m.blksz + 1, 4095, 4096, 0xFFFFFFFF, 0x7FFFFFFF, len(m.d), len(m.d) * 4]
        if bits == 64:
            v += [1 << 40, (1 << 62), (1 << 63) - 1, 1 << 63, top, (1 << 63) - 4096]
    elif kind in ("inode.blkaddr", "chunk.blkaddr", "blockmap.blkaddr", "sb.meta_blkaddr",
                  "sb.xattr_blkaddr", "dev.mapped_blkaddr", "sb.blocks", "dev.blocks"):
        v = bound_values(m, cur, bits) + [NULL_ADDR, NULL_ADDR - 1, m.meta_blkaddr,
                                           m.xattr_blkaddr, 0x80000000, 1 << 20]
        if m.blkaddrs:
            v += [rng.choice(sorted(m.blkaddrs))]
    elif kind == "inode.chunkfmt":
        v = [b | i for b in (0, 1, 4, 8, 16, 20, 21, 31) for i in (0, CHUNK_INDEXES)] + \
            [cur | 0x40, cur ^ CHUNK_INDEXES, 0xFFFF]
    elif kind in ("chunk.device", "sb.extra_devices"):
        v = [0, 1, 2, 3, 4, 5, 7, 8, m.extra_devices, m.extra_devices + 1, 0xFF, 0x100, 0x7FFF,
             0x8000, 0xFFFF, cur | 0x100]
    elif kind == "chunk.advise":
        v = [0xFFFF, 1, rng.randrange(1 << 16)]
    elif kind == "inode.icount":
        v = [0, 1, 2, 3, cur - 1, cur + 1, cur + 64, 255, 0x1000, 0xFFFF]
    elif kind == "xattr.shared_count":
        v = [0, 1, 2, cur - 1, cur + 1, cur + 2, 16, 255]
    elif kind == "xattr.shared_id":
        ids = sorted(m.shared_ids)
        v = [0, 1, cur - 1, cur + 1, cur + 2, 1 << 20, 0x3FFFFFFF, 0x40000000, NULL_ADDR,
             len(m.d) // 4] + ([rng.choice(ids)] if ids else [])
    elif kind == "xattr.name_len":
        v = [0, 1, cur - 1, cur + 1, 200, 255]
    elif kind == "xattr.name_index":
        v = list(range(0, 9)) + [0x80, 0x81, 0x85, 0xFF]
    elif kind == "xattr.value_size":
        v = [0, 1, cur - 1, cur + 1, cur + 4, 4096, 0x8000, 0xFFFF]
    elif kind == "sb.devt_slotoff":
        v = [0, 1, cur - 1, cur + 1, 8, 32, len(m.d) // 128, 0xFFFF]
    elif kind == "sb.feature_incompat":
        v = [cur ^ b for b in (0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80, 0x100)]
    elif kind == "sb.feature_compat":
        v = [cur ^ 0x2, cur ^ 0x4, cur ^ 0x8]
    elif kind == "sb.blkszbits":
        v = [8, 9, 10, 11, 12, 13, 16, 255]
    elif kind == "sb.sb_extslots":
        v = [1, 2, 63, 64, 191, 192, 255]
    elif kind == "sb.dirblkbits":
        v = [1, 3, 255]
    elif kind == "sb.xattr_prefix_count":
        v = [1, 2, 127, 128, 255]
    elif kind == "sb.xattr_prefix_start":
        v = [0, 1, 256, (m.meta_blkaddr * m.blksz) // 4, len(m.d) // 4, 0xFFFFFFFF]
    elif kind == "zmap.advise":
        v = [cur ^ b for b in (0x1, 0x2, 0x4, 0x6, 0x8, 0x10, 0x20, 0x40, 0x8000)] + [0, 0xFFFF]
    elif kind == "zmap.algtype":
        v = [0x00, 0x01, 0x02, 0x03, 0x04, 0x10, 0x20, 0x33, 0x40, 0xFF, cur ^ 0x10]
    elif kind == "zmap.clusterbits":
        v = [0, 1, 3, 11, 12, 13, 15, 16, 27, 28, 0x80, 0x8C, 0xFF]
    elif kind == "xattr.name_filter":
        v = [0, 0xFFFFFFFF, rng.randrange(1 << 32)]
    else:   # sb.inos, sb.packed_nid, sb.xattr_filter_reserved, inode.nlink, inode.rdev
        v = bound_values(m, cur, bits) + [rng.randrange(1 << bits)]
    v = [x & top for x in v if x >= 0]
    v = [x for x in v if x != cur]
    return v or [cur ^ 1]


def fix_checksum(buf):
    """Recompute the superblock checksum (if the image has one) over what the kernel checks."""
    if len(buf) < SB_OFF + 128:
        return
    compat, = struct.unpack_from("<I", buf, SB_OFF + 8)
    bits = buf[SB_OFF + 12]
    if not compat & COMPAT_SB_CHKSUM or not 9 <= bits <= 12:
        return
    blksz = 1 << bits
    ln = blksz - SB_OFF if blksz > SB_OFF else blksz
    block = bytes(buf[SB_OFF:SB_OFF + ln])
    block += bytes(ln - len(block))
    block = block[:4] + b"\0\0\0\0" + block[8:]
    struct.pack_into("<I", buf, SB_OFF + 4, crc32c(block))


def apply_edits(base, edits):
    """A regression case: explicit edits "OFFSET:FORMAT:VALUE" (struct format, e.g. 0x456:<H:65535)
    or "truncate:LENGTH"; the checksum is fixed afterwards. Returns (bytes, [descriptions])."""
    buf = bytearray(base)
    descs = []
    for e in edits:
        parts = e.split(":")
        if parts[0] == "truncate":
            del buf[int(parts[1], 0):]
            descs.append("truncate to %s" % parts[1])
            continue
        off, fmt, val = int(parts[0], 0), parts[1], int(parts[2], 0)
        old = struct.unpack_from(fmt, buf, off)[0]
        struct.pack_into(fmt, buf, off, val)
        descs.append("@%#x %s %d -> %d" % (off, fmt, old, val))
    fix_checksum(buf)
    return bytes(buf), descs


def mutate(base, seed, index, tag=""):
    """Returns (mutant bytes, [description of each mutation])."""
    m = Model(base)
    rng = random.Random("erofs_rs-mutant:%s:%d:%s" % (seed, index, tag))
    buf = bytearray(base)
    kinds = {}
    for f in m.fields:
        kinds.setdefault(f.kind, []).append(f)
    avail = [k for k in WEIGHTS if k in kinds or k in ("bitflip", "byte", "truncate")
             or (k == "copy-inode" and len(m.inodes) > 1)]
    weights = [WEIGHTS[k] for k in avail]
    nmut = rng.choices([1, 2, 3], [60, 25, 15])[0]
    descs = []
    for _ in range(nmut):
        kind = rng.choices(avail, weights)[0]
        if kind in kinds:
            f = rng.choice(kinds[kind])
            if f.pos + struct.calcsize(f.fmt) > len(buf):   # truncated away
                continue
            if f.fmt == "64s":
                cur = bytes(buf[f.pos:f.pos + 64])
                choice = rng.choice(["empty", "unknown", "nonul", "flip"])
                if choice == "empty":
                    new = bytes(64)
                elif choice == "unknown":
                    new = b"no_such_blob_%d" % rng.randrange(1000)
                    new += bytes(64 - len(new))
                elif choice == "nonul":
                    new = bytes(rng.randrange(0x21, 0x7f) for _ in range(64))
                else:
                    new = bytearray(cur)
                    new[rng.randrange(max(1, cur.index(0) if 0 in cur else 64))] ^= 0x20
                    new = bytes(new)
                buf[f.pos:f.pos + 64] = new
                descs.append("%s -> %r @%#x" % (f.label, new.rstrip(b"\0")[:64], f.pos))
                continue
            bits = struct.calcsize(f.fmt) * 8
            cur = struct.unpack_from(f.fmt, buf, f.pos)[0]
            new = rng.choice(candidates(m, kind, cur, bits, rng))
            struct.pack_into(f.fmt, buf, f.pos, new)
            descs.append("%s %d -> %d @%#x" % (f.label, cur, new, f.pos))
        elif kind == "bitflip":
            pos, n, lbl = rng.choice(m.regions)
            flips = []
            for _ in range(rng.choice([1, 1, 2, 3, 8])):
                p = pos + rng.randrange(n)
                bit = rng.randrange(8)
                if p < len(buf):
                    buf[p] ^= 1 << bit
                    flips.append("%#x.%d" % (p, bit))
            descs.append("bit flips in %s: %s" % (lbl, " ".join(flips)))
        elif kind == "byte":
            pos, n, lbl = rng.choice(m.regions)
            p = pos + rng.randrange(n)
            v = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
            if p < len(buf) and buf[p] == v:
                v ^= 0xFF
            if p < len(buf):
                descs.append("%s: byte @%#x %#x -> %#x" % (lbl, p, buf[p], v))
                buf[p] = v
        elif kind == "truncate":
            b = m.blksz
            n = rng.choice([len(buf) // 2, len(buf) - b, len(buf) - 1, 4096 + 100,
                            m.meta_blkaddr * b + rng.randrange(max(1, len(buf) - m.meta_blkaddr * b))])
            n = max(SB_OFF + 128, min(n, len(buf) - 1))
            descs.append("truncate the blob from %d to %d bytes" % (len(buf), n))
            del buf[n:]
        elif kind == "copy-inode":
            a, bnid = rng.sample(sorted(m.inodes), 2)
            pa, la, patha = m.inodes[a]
            pb, lb, pathb = m.inodes[bnid]
            n = min(rng.choice([32, 64, la]), la, lb)
            buf[pb:pb + n] = bytes(buf[pa:pa + n])[:max(0, len(buf) - pb)]
            descs.append("copy %d bytes of inode nid %d (%s) over nid %d (%s)" % (
                n, a, patha, bnid, pathb))
    fix_checksum(buf)
    return bytes(buf), descs


# --------------------------------------------------------------------------------------------
# The walk (in a forked child): everything a reader can do, errnos recorded
# --------------------------------------------------------------------------------------------

class Walk:
    def __init__(self, root, deadline):
        self.root = os.fsencode(root)
        self.deadline = deadline
        self.errors = {}        # "op errno" -> count
        self.unexpected = []    # "op path: errno"
        self.entries = 0
        self.files = {}         # rel -> description (baseline comparison)
        self.bytes = 0
        self.absent = 0         # lookups of absent names that gave ENOENT, as they should
        self.truncated = None

    def err(self, op, path, e):
        code = e.errno if isinstance(e, OSError) and e.errno else -1
        name = errno.errorcode.get(code, str(code))
        key = "%s %s" % (op, name)
        self.errors[key] = self.errors.get(key, 0) + 1
        if code not in ALLOWED[op] and len(self.unexpected) < 20:
            self.unexpected.append("%s %s: %s" % (op, os.fsdecode(self.rel(path)), name))

    def rel(self, path):
        r = os.path.relpath(path, self.root)
        return b"." if r in (".", b".") else r

    def over(self):
        if time.monotonic() > self.deadline:
            self.truncated = "time"
        elif self.entries > MAX_ENTRIES:
            self.truncated = "entries"
        elif self.bytes > TOTAL_READ_CAP:
            self.truncated = "bytes"
        return self.truncated is not None

    def xattrs(self, path):
        try:
            names = os.listxattr(path, follow_symlinks=False)
        except OSError as e:
            self.err("listxattr", path, e)
            return "listxattr-error"
        out = []
        for n in sorted(names):
            try:
                v = os.getxattr(path, n, follow_symlinks=False)
                out.append("%s=%s" % (n, hashlib.sha256(v).hexdigest()[:16]))
            except OSError as e:
                self.err("getxattr", path, e)
                out.append("%s=error" % n)
        return ",".join(out)

    def read_file(self, path, size):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as e:
            self.err("open", path, e)
            return "open-error"
        h = hashlib.sha256()
        total = 0
        desc = None
        try:
            while total < FILE_READ_CAP:
                b = os.read(fd, 1 << 18)
                if not b:
                    break
                h.update(b)
                total += len(b)
                self.bytes += len(b)
                if self.over():
                    break
            desc = "sha256=" + h.hexdigest()
            if total >= FILE_READ_CAP:
                desc = "capped"
                # the end and the middle of a huge file, without reading all of it
                for off in (size - 4096, size // 2, (size // 3) & ~4095):
                    if 0 <= off < (1 << 63) - 8192:
                        os.pread(fd, 8192, off)
        except OSError as e:
            self.err("read", path, e)
            desc = "read-error"
        finally:
            os.close(fd)
        return desc

    def entry(self, path, st):
        rel = os.fsdecode(self.rel(path))
        mode = st.st_mode
        if stat.S_ISREG(mode):
            d = "reg " + self.read_file(path, st.st_size)
        elif stat.S_ISLNK(mode):
            try:
                d = "lnk " + os.fsdecode(os.readlink(path))
            except OSError as e:
                self.err("readlink", path, e)
                d = "lnk error"
        elif stat.S_ISDIR(mode):
            d = "dir"
        else:
            d = "other %o %d" % (stat.S_IFMT(mode), st.st_rdev)
        d += " xattrs=" + self.xattrs(path)
        self.files[rel] = d

    def run(self):
        root = self.root
        try:
            os.statvfs(root)
        except OSError as e:
            self.err("statfs", root, e)
        try:
            st = os.lstat(root)
        except OSError as e:
            self.err("lstat", root, e)
            return
        seen = {(st.st_dev, st.st_ino)}
        self.entry(root, st)
        queue = [root]
        ndirs = 0
        while queue and not self.over() and ndirs < MAX_DIRS:
            d = queue.pop(0)
            ndirs += 1
            for absent in (b"\x01", b"zz_not_there", b"\xff" * 8):
                try:
                    os.lstat(os.path.join(d, absent))
                    self.unexpected.append("absent %s/%r: found" % (os.fsdecode(self.rel(d)), absent))
                except FileNotFoundError:
                    self.absent += 1
                except OSError as e:
                    self.err("absent", d, e)
            names = []
            try:
                with os.scandir(d) as it:
                    for e in it:
                        names.append(e.name)
                        if len(names) > MAX_ENTRIES:
                            break
            except OSError as e:
                self.err("readdir", d, e)
            for name in names:
                if self.over():
                    break
                self.entries += 1
                p = os.path.join(d, name)
                try:
                    st = os.lstat(p)
                except OSError as e:
                    self.err("lstat", p, e)
                    continue
                key = (st.st_dev, st.st_ino)
                if stat.S_ISDIR(st.st_mode):
                    if key in seen:
                        continue
                    seen.add(key)
                    queue.append(p)
                self.entry(p, st)

    def result(self):
        return dict(errors=self.errors, unexpected=self.unexpected, entries=self.entries,
                    absent=self.absent,
                    bytes=self.bytes, truncated=self.truncated, files=self.files)


# --------------------------------------------------------------------------------------------
# The run: mount, walk in a child, umount, judge
# --------------------------------------------------------------------------------------------

libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def sys_mount(fstype, opts, target):
    r = libc.mount(b"none", os.fsencode(target), fstype.encode(), 0, opts.encode())
    return 0 if r == 0 else ctypes.get_errno()


def sys_umount(target, flags=0):
    r = libc.umount2(os.fsencode(target), flags)
    return 0 if r == 0 else ctypes.get_errno()


def ename(code):
    return errno.errorcode.get(code, str(code))


class Kmsg:
    """New kernel log records since the last call (reads /dev/kmsg without blocking)."""

    def __init__(self):
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = None

    def mark(self, text):
        try:
            with open("/dev/kmsg", "w") as f:
                f.write("erofs_rs-selftest: %s\n" % text)
        except OSError:
            pass

    def new(self):
        out = []
        if self.fd is None:
            return out
        while True:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EPIPE:      # overwritten records: go on
                    continue
                break
            if not rec:
                break
            text = rec.decode(errors="replace")
            out.append(text.split(";", 1)[-1].rstrip("\n"))
        return out


class Watchdog:
    """If one mutant takes far longer than its time limit (the driver itself stuck in the
    kernel), prints the state and kernel stack of the processes involved and asks the kernel
    for its list of blocked tasks (sysrq w), once per mutant."""

    def __init__(self, limit):
        self.limit = limit
        self.lock = threading.Lock()
        self.label = None
        self.t0 = 0.0
        threading.Thread(target=self.loop, daemon=True).start()

    def arm(self, label):
        with self.lock:
            self.label, self.t0 = label, time.monotonic()

    def disarm(self):
        with self.lock:
            self.label = None

    def loop(self):
        while True:
            time.sleep(5)
            with self.lock:
                label = self.label
                late = label and time.monotonic() - self.t0 > self.limit
                if late:
                    self.label = None
            if late:
                print("watchdog: %s still running after %d s; tasks:" % (label, self.limit),
                      flush=True)
                for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
                    try:
                        with open("/proc/%d/stat" % pid) as f:
                            st = f.read()
                        comm = st[st.index("(") + 1:st.rindex(")")]
                        state = st[st.rindex(")") + 2]
                        if state not in "DS" or comm not in ("python3", "erofs-ondemandd", "mount"):
                            continue
                        with open("/proc/%d/wchan" % pid) as f:
                            wchan = f.read()
                        with open("/proc/%d/stack" % pid) as f:
                            stack = f.read().strip().replace("\n", " <- ")
                        print("watchdog:   %d %s %s wchan %s: %s" % (pid, comm, state, wchan, stack),
                              flush=True)
                    except (OSError, ValueError):
                        pass
                try:
                    with open("/proc/sysrq-trigger", "w") as f:
                        f.write("w")
                except OSError:
                    pass


def stats(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                out[k] = int(v)
    except (OSError, ValueError):
        pass
    return out


def walk_child(fstype, opts, mnt, timeout):
    """Fork: the child mounts and walks, reports JSON on a pipe. Returns (result, problem)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = {}
            t0 = time.monotonic()
            code = sys_mount(fstype, opts, mnt)
            res["mount"] = code
            res["mount_s"] = time.monotonic() - t0
            if code == 0:
                wk = Walk(mnt, time.monotonic() + min(WALK_SECONDS, timeout * 0.6))
                wk.run()
                res.update(wk.result())
                res["walk_s"] = time.monotonic() - t0 - res["mount_s"]
            data = json.dumps(res).encode()
        except BaseException as e:   # report anything, never fall back into the parent's code
            data = json.dumps({"crash": repr(e)}).encode()
        try:
            while data:
                n = os.write(w, data)
                data = data[n:]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    end = time.monotonic() + timeout
    problem = None
    while True:
        left = end - time.monotonic()
        if left <= 0:
            problem = "hang: the walk did not finish within %d s" % timeout
            break
        rd, _, _ = select.select([r], [], [], left)
        if not rd:
            continue
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    if problem:
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
            time.sleep(0.1)
        else:
            problem += "; the walker does not die on SIGKILL (stuck in the kernel)"
        return None, problem
    os.waitpid(pid, 0)
    try:
        return json.loads(b"".join(chunks)), None
    except ValueError:
        return None, "the walker died without a report"


def summarize_errors(errs):
    return ", ".join("%s x%d" % (k, v) for k, v in sorted(errs.items())) or "no errors"


def parse_bases(specs):
    bases = []
    for s in specs:
        name, _, rest = s.partition("=")
        parts = rest.split(":")
        path = parts[0]
        opts = parts[1] if len(parts) > 1 else ""
        expected = parts[2] if len(parts) > 2 else ""
        with open(path, "rb") as f:
            data = f.read()
        bases.append(dict(name=name, path=path, opts=opts, expected=expected, data=data))
    return bases


def expected_files(spec):
    """The baseline: {rel: description} from a source tree (walked like a mount) or from a
    mkimg.py manifest (content hashes and link targets only; xattrs then are not compared)."""
    if os.path.isdir(spec):
        wk = Walk(spec, time.monotonic() + 600)
        wk.run()
        return wk.files, True
    out = {}
    with open(spec) as f:
        for line in f:
            if " dtype=" not in line:
                continue
            rel, rest = line.rstrip("\n").split(" dtype=", 1)
            dtype = rest.split(" ")[0]
            target = re.search(r" target=(.*) xattrs=", rest)
            sha = re.search(r" sha256=(\S+)", rest)
            if dtype == "reg":
                out[rel] = "reg sha256=" + (sha.group(1) if sha else "")
            elif dtype == "lnk":
                out[rel] = "lnk " + (target.group(1) if target else "")
            else:
                out[rel] = dtype
    return out, False


def compare(expected, with_xattrs, got):
    diffs = []
    for rel in sorted(set(expected) | set(got)):
        e, g = expected.get(rel), got.get(rel)
        if e is not None and g is not None:
            if not with_xattrs:
                g = g.split(" xattrs=")[0]
                if e in ("dir", "other"):
                    g = g.split(" ")[0]
        if e != g:
            diffs.append("%s: expected %s, got %s" % (rel, e, g))
    return diffs


def run(args):
    bases = parse_bases(args.base)
    seed, mnt = args.seed, args.mnt
    os.makedirs(mnt, exist_ok=True)
    kmsg = Kmsg()
    dog = Watchdog(args.timeout + 60)
    failures = 0
    max_reads = 0

    def one(label, name, data, opts, descs, expected=None):
        nonlocal failures, max_reads
        blob = os.path.join(args.blobs, name)
        with open(blob, "wb") as f:
            f.write(data)
        fsopts = "fsid=" + name + ("," + opts if opts else "")
        before = stats(args.stats)
        kmsg.mark("mutant %s: %s" % (name, "; ".join(descs)))
        kmsg.new()
        t0 = time.monotonic()
        dog.arm(label)
        res, problem = walk_child("erofs_rs", fsopts, mnt, args.timeout)
        secs = time.monotonic() - t0
        bad = []
        if problem:
            bad.append(problem)
        t_umount = time.monotonic()
        if os.path.ismount(mnt):
            code = sys_umount(mnt)
            if code:
                bad.append("umount failed: %s" % ename(code))
                if sys_umount(mnt, MNT_DETACH):
                    bad.append("lazy umount failed too")
        t_umount = time.monotonic() - t_umount
        after = stats(args.stats)
        reads = after.get("reads", 0) - before.get("reads", 0)
        opens = after.get("opens", 0) - before.get("opens", 0)
        max_reads = max(max_reads, reads)
        if reads > args.max_reads:
            bad.append("%d daemon READ requests (more than %d): a walk crawling through round "
                       "trips, a missing bounds check?" % (reads, args.max_reads))
        if after.get("errors", 0) != before.get("errors", 0):
            pass  # refused OPENs of unknown tags count as daemon errors: expected
        if args.daemon_pid and not alive(args.daemon_pid):
            bad.append("the daemon died")
        dog.disarm()
        klines = kmsg.new()
        kbad = [line for line in klines if KERNEL_PROBLEMS.search(line)]
        if kbad:
            bad.append("kernel problem: " + kbad[0])
        summary = ""
        if res is not None:
            if "crash" in res:
                bad.append("walker crashed: " + res["crash"])
            elif res["mount"]:
                summary = "mount %s" % ename(res["mount"])
                if res["mount"] not in ALLOWED["mount"]:
                    bad.append("mount failed with %s" % ename(res["mount"]))
                if expected is not None:
                    bad.append("the unmodified image does not mount (%s)" % ename(res["mount"]))
            else:
                summary = "%d entries, %d KiB read, %d absent names, %s%s" % (
                    res["entries"], res["bytes"] >> 10, res["absent"], summarize_errors(res["errors"]),
                    ", walk capped (%s)" % res["truncated"] if res["truncated"] else "")
                bad += ["unexpected errno: " + u for u in res["unexpected"]]
                if expected is not None:
                    if res["errors"]:
                        bad.append("errors reading the unmodified image")
                    diffs = compare(expected[0], expected[1], res["files"])
                    if diffs:
                        bad.append("the unmodified image reads differently from its source: "
                                   + "; ".join(diffs[:8]))
        elogs = sum(1 for line in klines if "erofs_rs" in line)
        phases = ""
        if res is not None and "mount_s" in res:
            phases = " (mount %.1f, walk %.1f, umount %.1f)" % (
                res["mount_s"], res.get("walk_s", 0), t_umount)
        line = "%s %s: %s | %s | %d READs, %d OPENs, %d erofs_rs log lines, %.1f s%s" % (
            "FAIL" if bad else "ok", label, "; ".join(descs) or "unmodified", summary, reads,
            opens, elogs, secs, phases)
        print(line, flush=True)
        if bad:
            failures += 1
            for b in bad:
                print("    " + b, flush=True)
            for kl in klines[-25:]:
                print("    kernel: " + kl, flush=True)
        else:
            os.unlink(blob)
        return not bad

    if args.baseline:
        for b in bases:
            exp = expected_files(b["expected"]) if b["expected"] else ({}, False)
            one("base %s" % b["name"], "base%s_%s" % (seed, b["name"]), b["data"], b["opts"], [],
                exp if b["expected"] else None)
    for case in args.case:
        cname, bname, *edits = case.split()
        b = [x for x in bases if x["name"] == bname][0]
        data, descs = apply_edits(b["data"], edits)
        one("regression %s (base %s)" % (cname, bname), "case%s_%s" % (seed, cname), data,
            b["opts"], descs)
    indexes = [args.only] if args.only is not None else range(args.first, args.first + args.count)
    for i in indexes:
        b = bases[i % len(bases)]
        data, descs = mutate(b["data"], seed, i, b["name"])
        ok = one("mutant %d (seed %s, base %s)" % (i, seed, b["name"]), "mut%s_%d" % (seed, i),
                 data, b["opts"], descs)
        if not ok:
            print("    reproduce: EROFS_RS_MUTANT_SEED=%s EROFS_RS_MUTANT_ONLY=%d tools/vm/run -- "
                  "tools/testing/selftests/erofs_rs/run_tests.sh 12_mutant_images.sh" % (seed, i),
                  flush=True)
    print("summary: %d failed, max READs per mutant %d" % (failures, max_reads), flush=True)
    return 1 if failures else 0


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Args:
    pass


def parse(argv, spec):
    """A tiny option parser (argparse is fine too, but this keeps startup light under TCG)."""
    a = Args()
    for k, (default, _) in spec.items():
        setattr(a, k.replace("-", "_"), [] if default is list else default)
    pos = []
    i = 0
    while i < len(argv):
        k = argv[i]
        if k.startswith("--") and k[2:] in spec:
            default, conv = spec[k[2:]]
            attr = k[2:].replace("-", "_")
            if conv is bool:
                setattr(a, attr, True)
                i += 1
                continue
            v = conv(argv[i + 1])
            if default is list:
                getattr(a, attr).append(v)
            else:
                setattr(a, attr, v)
            i += 2
        elif k.startswith("--"):
            raise SystemExit("unknown option %s\n%s" % (k, __doc__))
        else:
            pos.append(k)
            i += 1
    a.pos = pos
    return a


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    spec = {"seed": ("1", str), "index": (0, int), "first": (0, int), "count": (1, int),
            "blobs": ("", str), "mnt": ("", str), "stats": ("", str), "base": (list, str),
            "max-reads": (2000, int), "timeout": (120, float), "daemon-pid": (0, int),
            "only": (None, int), "baseline": (False, bool), "case": (list, str)}
    a = parse(argv, spec)
    if cmd == "tree" and len(a.pos) == 1:
        make_tree(a.pos[0])
    elif cmd == "make" and len(a.pos) == 2:
        with open(a.pos[0], "rb") as f:
            base = f.read()
        tag = os.path.basename(a.pos[0])
        data, descs = mutate(base, a.seed, a.index, tag)
        with open(a.pos[1], "wb") as f:
            f.write(data)
        print("; ".join(descs))
    elif cmd == "list" and len(a.pos) == 1:
        with open(a.pos[0], "rb") as f:
            base = f.read()
        tag = os.path.basename(a.pos[0])
        for i in range(a.first, a.first + a.count):
            print("%d: %s" % (i, "; ".join(mutate(base, a.seed, i, tag)[1])))
    elif cmd == "run" and a.base and a.blobs and a.mnt and a.stats:
        sys.exit(run(a))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
