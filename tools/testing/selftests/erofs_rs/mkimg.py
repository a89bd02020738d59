#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write EROFS images that Debian's mkfs.erofs 1.5 cannot make, for the selftests.

usage: mkimg.py OUTDIR [--blkszbits N[,N...]] [--no-checksum] [--suffix S]

Writes OUTDIR/meta (the primary device: superblock, device table, inodes, directories, small
data) and OUTDIR/blob_a, blob_b, blob_c (three extra devices, device-table tags "blob_a" ...,
so in-tree erofs and erofs_rs find their cookies by tag, without device= options; with
--suffix S the files and tags are metaS, blob_aS, ...: images of several block sizes can share
one blob directory; several block sizes at once (--blkszbits 9,12) write one image each,
with suffix _N), plus
OUTDIR/expected: the manifest (tools/testing/selftests/erofs_rs/treecmp.py format, without the
readdir hash, directory sizes or inode numbers) the mounted tree must show.

What the image exercises, beyond mkfs.erofs 1.5:
  * block sizes 512, 1024, 2048 and 4096 (--blkszbits 9..12);
  * three extra devices with tags; a file whose chunks (chunk indexes) alternate over the
    primary device and all three blobs, with a null chunk (a hole);
  * mapped_blkaddr routing: chunks with device id 0 whose block address lies in the range
    that blob_b's device slot maps (in fscache mode erofs routes them to blob_b);
  * a chunk-based file with a block map (4-byte entries) and a hole; a chunk larger than 1 MiB;
  * flat plain and flat inline (tail-packed) files; a long symlink over several blocks;
  * 255-byte names, UTF-8 names, a directory spanning several blocks, every file type,
    hard links, nanosecond mtimes;
  * the superblock checksum (EROFS_FEATURE_COMPAT_SB_CHKSUM) unless --no-checksum.
Inodes are the extended (64-byte) format. Deterministic: same arguments, same bytes.
"""
import os
import stat
import struct
import sys
import zlib
import hashlib

EROFS_MAGIC = 0xE0F5E1E2
SB_OFF = 1024
NULL_ADDR = 0xFFFFFFFF
INCOMPAT_CHUNKED_FILE = 0x4
INCOMPAT_DEVICE_TABLE = 0x8
COMPAT_SB_CHKSUM = 0x1
COMPAT_MTIME = 0x2
FLAT_PLAIN, FLAT_INLINE, CHUNK_BASED = 0, 2, 4
CHUNK_FORMAT_INDEXES = 0x20
FT = {stat.S_IFREG: 1, stat.S_IFDIR: 2, stat.S_IFCHR: 3, stat.S_IFBLK: 4,
      stat.S_IFIFO: 5, stat.S_IFSOCK: 6, stat.S_IFLNK: 7}
DEVICES = ["blob_a", "blob_b", "blob_c"]
SUFFIX = ""


def crc32c(data, crc=0xFFFFFFFF):
    # Castagnoli, reflected, no final xor (as the kernel's crc32c(~0, ...) is used by erofs).
    table = crc32c.table
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


crc32c.table = _crc_table()


def pattern(seed, n):
    """n deterministic pseudo-random bytes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%s:%d" % (seed.encode(), i)).digest()
        i += 1
    return bytes(out[:n])


class Node:
    def __init__(self, name, mode, uid=0, gid=0, mtime=(1700000000, 0), data=b"", rdev=0,
                 layout=FLAT_PLAIN, chunks=None):
        self.name = name.encode() if isinstance(name, str) else name
        self.mode = mode
        self.uid, self.gid = uid, gid
        self.mtime = mtime
        self.data = data
        self.rdev = rdev
        self.layout = layout
        self.chunks = chunks  # (chunkbits_extra, indexes, [(device, part) ...]) for CHUNK_BASED
        self.children = []
        self.nlink = 1
        self.nid = None
        self.parent = None

    def add(self, child):
        child.parent = self
        self.children.append(child)
        return child


class Image:
    def __init__(self, blkszbits, checksum):
        self.bits = blkszbits
        self.blksz = 1 << blkszbits
        self.checksum = checksum
        self.primary = bytearray()
        self.blobs = {d: bytearray() for d in DEVICES}
        # blob_b's slot maps it into the primary address space at this block (set at layout).
        self.mapped_blkaddr = 0

    # -- the tree ---------------------------------------------------------------------------
    def tree(self):
        b = self.blksz
        root = Node("", stat.S_IFDIR | 0o755, mtime=(1700000000, 123456789))
        root.add(Node("hello.txt", stat.S_IFREG | 0o644, 1000, 1000, (1700000001, 1),
                      b"hello from a crafted image\n", layout=FLAT_INLINE))
        root.add(Node("empty", stat.S_IFREG | 0o600, 2, 3, (0, 0)))
        root.add(Node("flat.bin", stat.S_IFREG | 0o640, 5, 6, (1600000000, 999999999),
                      pattern("flat", 3 * b + 77), layout=FLAT_PLAIN))
        root.add(Node("tail.bin", stat.S_IFREG | 0o644, 0, 0, (1700000002, 5),
                      pattern("tail", 2 * b + min(100, b // 4)), layout=FLAT_INLINE))
        # chunks of 2 blocks, over every device, with a hole (None)
        cb = 2 * b
        parts = [0, 1, 2, 3, None, 3, 2, 1, 0, 1]
        data = bytearray(pattern("multi", cb * len(parts) - 123))
        for i, d in enumerate(parts):
            if d is None:
                data[i * cb:(i + 1) * cb] = bytes(len(data[i * cb:(i + 1) * cb]))
        root.add(Node("multi_device.bin", stat.S_IFREG | 0o644, 7, 8, (1700000003, 7),
                      bytes(data), layout=CHUNK_BASED,
                      chunks=(1, True, parts)))
        # device id 0 with block addresses in blob_b's mapped range ("m")
        parts = ["m", "m", 0, "m"]
        root.add(Node("mapped.bin", stat.S_IFREG | 0o644, 0, 0, (1700000004, 0),
                      pattern("mapped", 4 * 4 * b - 1), layout=CHUNK_BASED,
                      chunks=(2, True, parts)))
        # block map (4-byte entries, primary device only) with a hole
        parts = [0, None, 0, 0, 0]
        data = bytearray(pattern("blockmap", 4 * b + 9))
        data[b:2 * b] = bytes(b)
        root.add(Node("blockmap.bin", stat.S_IFREG | 0o644, 0, 0, (1700000005, 0),
                      bytes(data), layout=CHUNK_BASED, chunks=(0, False, parts)))
        # one 2 MiB chunk in blob_c, a second partial one in blob_a
        big_extra = 21 - self.bits
        root.add(Node("big_chunks.bin", stat.S_IFREG | 0o644, 0, 0, (1700000006, 0),
                      pattern("big", (2 << 20) + 5000), layout=CHUNK_BASED,
                      chunks=(big_extra, True, [3, 1])))
        root.add(Node("link", stat.S_IFLNK | 0o777, data=b"hello.txt"))
        root.add(Node("long_link", stat.S_IFLNK | 0o777, data=(b"d/" * 500)[:1000]))
        devs = root.add(Node("devices", stat.S_IFDIR | 0o755))
        devs.add(Node("chr", stat.S_IFCHR | 0o600, rdev=os.makedev(1, 3)))
        devs.add(Node("blk", stat.S_IFBLK | 0o660, 0, 6, rdev=os.makedev(259, 70000)))
        devs.add(Node("fifo", stat.S_IFIFO | 0o644))
        devs.add(Node("sock", stat.S_IFSOCK | 0o755))
        names = root.add(Node("names", stat.S_IFDIR | 0o750, 11, 12, (1700000007, 11)))
        names.add(Node("x" * 255, stat.S_IFREG | 0o644, data=b"longest name\n", layout=FLAT_INLINE))
        names.add(Node("y" * 254 + "z", stat.S_IFREG | 0o644))
        names.add(Node("ünïcødé ✓", stat.S_IFREG | 0o644, data=b"utf8\n", layout=FLAT_INLINE))
        names.add(Node("with space", stat.S_IFREG | 0o644))
        # enough entries to span several directory blocks at every block size
        for i in range(120):
            names.add(Node("entry_%03d_%s" % (i, "q" * (i % 37)), stat.S_IFREG | 0o444))
        sub = names.add(Node("sub", stat.S_IFDIR | 0o700))
        deep = sub
        for i in range(8):
            deep = deep.add(Node("d%d" % i, stat.S_IFDIR | 0o755))
        deep.add(Node("bottom", stat.S_IFREG | 0o644, data=b"bottom\n", layout=FLAT_INLINE))
        # a hard link: the same node in two directories
        hard = root.children[0]
        names.children.append(hard)
        hard.nlink = 2
        hard.hardlink_name = b"hardlink_to_hello"
        return root

    # -- layout -----------------------------------------------------------------------------
    def build(self):
        root = self.tree()
        nodes = []
        seen = set()

        def collect(n):
            if id(n) in seen:
                return
            seen.add(id(n))
            nodes.append(n)
            for c in n.children:
                collect(c)
        collect(root)
        for n in nodes:
            if stat.S_ISDIR(n.mode):
                n.nlink = 2 + sum(1 for c in n.children if stat.S_ISDIR(c.mode))

        b = self.blksz
        ndev = len(DEVICES)
        devt_slotoff = (SB_OFF + 128) // 128
        meta_start = SB_OFF + 128 + 128 * ndev
        meta_blkaddr = -(-meta_start // b)
        meta_base = meta_blkaddr * b

        # Directory contents first (their sizes do not depend on nids: dirents are fixed size).
        for n in nodes:
            if stat.S_ISDIR(n.mode):
                n.entries = self.dir_entries(n)
                n.dirblocks = self.pack_dir(n.entries, None)
                n.size = len(n.dirblocks) * b

        # Inodes: 64 bytes, then inline tail or chunk table; inline tails must not cross a block.
        # No inode gets nid 0: erofs reports the nid as d_ino, and glibc's readdir skips entries
        # whose d_ino is 0 (the root's "." and its children's ".." would vanish from `ls -a`).
        pos = meta_base + 32
        for n in nodes:
            isz = 64 + self.inline_size(n)
            if n.layout == FLAT_INLINE and stat.S_ISREG(n.mode):
                if (pos % b) + isz > b:
                    pos = -(-pos // b) * b
            n.ipos = pos
            n.nid = (pos - meta_base) // 32
            pos = -(-(pos + isz) // 32) * 32
        data_blk = -(-pos // b)
        self.primary = bytearray(data_blk * b)

        # Data in the primary device and the blobs.
        self.mapped_blkaddr = 0
        for n in nodes:
            if stat.S_ISDIR(n.mode):
                blocks = self.pack_dir(n.entries, {id(c): c.nid for c in nodes})
                n.raw_blkaddr = self.append_primary(b"".join(blocks))
            elif stat.S_ISLNK(n.mode) or n.layout == FLAT_PLAIN:
                n.raw_blkaddr = self.append_primary(n.data) if n.data else NULL_ADDR
            elif n.layout == FLAT_INLINE:
                full = len(n.data) // b * b
                if len(n.data) % b == 0:
                    full -= b
                n.raw_blkaddr = self.append_primary(n.data[:full]) if full else 0
                n.tail = n.data[full:]
            elif n.layout == CHUNK_BASED:
                pass
        # Chunk-based data: blob_b's mapped range starts after the primary's own blocks.
        pending_mapped = []
        for n in nodes:
            if n.layout != CHUNK_BASED:
                continue
            extra, indexes, parts = n.chunks
            csz = b << extra
            n.table = []
            for i, d in enumerate(parts):
                piece = n.data[i * csz:(i + 1) * csz]
                if d is None:
                    n.table.append((0, NULL_ADDR))
                elif d == 0:
                    n.table.append((0, self.append_primary(piece)))
                elif d == "m":
                    blk = self.append_blob("blob_b", piece)
                    pending_mapped.append((n, len(n.table), blk))
                    n.table.append((0, None))
                else:
                    n.table.append((d, self.append_blob(DEVICES[d - 1], piece)))
        primary_blocks = len(self.primary) // b
        self.mapped_blkaddr = primary_blocks + 16
        for n, i, blk in pending_mapped:
            n.table[i] = (0, self.mapped_blkaddr + blk)
        for d in DEVICES:
            if not self.blobs[d]:
                self.append_blob(d, b"\0")

        # Inodes.
        for n in nodes:
            self.write_inode(n, meta_base)

        # Superblock and device table.
        sb = bytearray(128)
        struct.pack_into("<IIIBBHQQIIII", sb, 0, EROFS_MAGIC, 0,
                         COMPAT_MTIME | (COMPAT_SB_CHKSUM if self.checksum else 0),
                         self.bits, 0, root.nid, len(nodes), 1700000000, 0,
                         primary_blocks, meta_blkaddr, 0)
        sb[48:64] = hashlib.md5(b"erofs_rs crafted %d" % self.bits).digest()
        sb[64:80] = b"erofs_rs-crafted"[:15] + b"\0"
        struct.pack_into("<I", sb, 80, INCOMPAT_CHUNKED_FILE | INCOMPAT_DEVICE_TABLE)
        struct.pack_into("<HH", sb, 86, ndev, devt_slotoff)
        self.primary[SB_OFF:SB_OFF + 128] = sb
        for i, d in enumerate(DEVICES):
            slot = bytearray(128)
            tag = (d + SUFFIX).encode()
            slot[:len(tag)] = tag
            blocks = len(self.blobs[d]) // b
            mapped = self.mapped_blkaddr if d == "blob_b" else 0
            struct.pack_into("<II", slot, 64, blocks, mapped)
            off = devt_slotoff * 128 + i * 128
            self.primary[off:off + 128] = slot
        if self.checksum:
            ln = b - SB_OFF if b > SB_OFF else b
            crc = crc32c(bytes(self.primary[SB_OFF:SB_OFF + ln]))
            struct.pack_into("<I", self.primary, SB_OFF + 4, crc)
        self.root = root
        self.nodes = nodes

    def inline_size(self, n):
        if n.layout == FLAT_INLINE and stat.S_ISREG(n.mode):
            r = len(n.data) % self.blksz
            return r if r else (self.blksz if n.data else 0)
        if n.layout == CHUNK_BASED:
            extra, indexes, parts = n.chunks
            unit = 8 if indexes else 4
            return unit * len(parts)  # 64 is a multiple of both units: the table is aligned
        return 0

    def append_primary(self, data):
        b = self.blksz
        blk = len(self.primary) // b
        self.primary += data + bytes(-len(data) % b)
        return blk

    def append_blob(self, dev, data):
        b = self.blksz
        blob = self.blobs[dev]
        blk = len(blob) // b
        blob += data + bytes(-len(data) % b)
        return blk

    def dir_entries(self, n):
        ents = [(b".", n, stat.S_IFDIR), (b"..", n.parent or n, stat.S_IFDIR)]
        for c in n.children:
            name = getattr(c, "hardlink_name", None) if c.parent is not n else None
            ents.append((name or c.name, c, stat.S_IFMT(c.mode)))
        return sorted(ents, key=lambda e: e[0])

    def pack_dir(self, entries, nids):
        """Pack sorted dirents into blocks: [dirents][names] per block, like mkfs.erofs."""
        b = self.blksz
        blocks, cur = [], []

        def flush():
            if not cur:
                return
            nde = len(cur)
            head = bytearray()
            names = bytearray()
            for name, node, fmt in cur:
                nid = nids[id(node)] if nids else 0
                head += struct.pack("<QHBB", nid, nde * 12 + len(names), FT[fmt], 0)
                names += name
            blk = bytes(head + names)
            blocks.append(blk + bytes(b - len(blk)))
            cur.clear()

        used = 0
        for e in entries:
            need = 12 + len(e[0])
            if used + need > b:
                flush()
                used = 0
            cur.append(e)
            used += need
        flush()
        return blocks

    def write_inode(self, n, meta_base):
        b = self.blksz
        fmt = stat.S_IFMT(n.mode)
        if fmt == stat.S_IFDIR:
            layout, size, u = FLAT_PLAIN, n.size, n.raw_blkaddr
        elif fmt == stat.S_IFLNK:
            layout, size, u = FLAT_PLAIN, len(n.data), n.raw_blkaddr
        elif fmt == stat.S_IFREG and n.layout == CHUNK_BASED:
            extra, indexes, parts = n.chunks
            layout, size = CHUNK_BASED, len(n.data)
            u = extra | (CHUNK_FORMAT_INDEXES if indexes else 0)
        elif fmt == stat.S_IFREG:
            layout, size = n.layout, len(n.data)
            u = n.raw_blkaddr if n.data else NULL_ADDR
            if layout == FLAT_INLINE and not n.data:
                layout = FLAT_PLAIN
        else:
            layout, size = FLAT_PLAIN, 0
            u = ((os.major(n.rdev) & 0xfff) << 8) | (os.minor(n.rdev) & 0xff) | \
                ((os.minor(n.rdev) & ~0xff) << 12)  # new_encode_dev
        ino = struct.pack("<HHHHQIIIIQII", 1 | (layout << 1), 0, n.mode & 0xFFFF, 0, size,
                          u, n.nid + 1, n.uid, n.gid, n.mtime[0], n.mtime[1], n.nlink)
        ino += bytes(64 - len(ino))
        extra = b""
        if fmt == stat.S_IFREG and layout == FLAT_INLINE:
            extra = n.tail
        elif layout == CHUNK_BASED:
            extra_bits, indexes, parts = n.chunks
            for dev, blk in n.table:
                if indexes:
                    extra += struct.pack("<HHI", 0, dev, blk)
                else:
                    extra += struct.pack("<I", blk)
        rec = ino + extra
        self.primary[n.ipos:n.ipos + len(rec)] = rec

    # -- the expected manifest ----------------------------------------------------------------
    def manifest(self):
        lines = []

        def walk(n, rel):
            fmt = stat.S_IFMT(n.mode)
            dtype = {stat.S_IFDIR: "dir", stat.S_IFREG: "reg", stat.S_IFLNK: "lnk"}.get(fmt, "other")
            f = [rel, "dtype=" + dtype, "mode=%o" % n.mode, "uid=%d" % n.uid, "gid=%d" % n.gid]
            if fmt != stat.S_IFDIR:
                f.append("size=%d" % len(n.data))
            f += ["nlink=%d" % n.nlink, "mtime=%d" % (n.mtime[0] * 10**9 + n.mtime[1]),
                  "rdev=%d" % n.rdev]
            if fmt == stat.S_IFLNK:
                f.append("target=" + n.data.decode())
            elif fmt == stat.S_IFREG:
                f.append("sha256=" + hashlib.sha256(n.data).hexdigest())
            f.append("xattrs=")
            lines.append(" ".join(f))
            for c in n.children:
                name = c.name if c.parent is n else c.hardlink_name
                walk(c, os.fsdecode(name) if rel == "." else os.path.join(rel, os.fsdecode(name)))
        walk(self.root, ".")
        return "\n".join(sorted(lines)) + "\n"


def main():
    global SUFFIX
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = args[0]
    bits = [12]
    checksum = True
    i = 1
    while i < len(args):
        if args[i] == "--blkszbits":
            bits = [int(b) for b in args[i + 1].split(",")]
            i += 2
        elif args[i] == "--suffix":
            SUFFIX = args[i + 1]
            i += 2
        elif args[i] == "--no-checksum":
            checksum = False
            i += 1
        else:
            print("unknown argument %s" % args[i], file=sys.stderr)
            sys.exit(2)
    if not all(9 <= b <= 12 for b in bits):
        print("--blkszbits must be 9..12", file=sys.stderr)
        sys.exit(2)
    for b in bits:
        if len(bits) > 1:
            SUFFIX = "_%d" % b
        write_image(out, b, checksum)


def write_image(out, bits, checksum):
    img = Image(bits, checksum)
    img.build()
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "meta" + SUFFIX), "wb") as f:
        f.write(img.primary)
    for d in DEVICES:
        with open(os.path.join(out, d + SUFFIX), "wb") as f:
            f.write(img.blobs[d])
    with open(os.path.join(out, "expected" + SUFFIX), "w") as f:
        f.write(img.manifest())
    print("mkimg: %s: %d-byte blocks, %d inodes, meta %d bytes, mapped_blkaddr %d, blobs %s" % (
        out, img.blksz, len(img.nodes), len(img.primary), img.mapped_blkaddr,
        ", ".join("%s %d" % (d, len(img.blobs[d])) for d in DEVICES)))


if __name__ == "__main__":
    main()
