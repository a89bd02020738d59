#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Create the selftests' corpus trees in one process (spawning one process per file is slow
under TCG).

usage: treegen.py corpus DIR      every file type and the awkward cases (run as root)
       treegen.py bigdir DIR N    a directory of N empty files
       treegen.py compressible DIR [TEXT_BYTES]
                                  files that compress (text-like, zeros, repeats, mixed with
                                  random blocks) at sizes around lcluster and pcluster edges,
                                  plus DIR/text of TEXT_BYTES (default 512 KiB + 7) text-like
                                  bytes; deterministic
       treegen.py lzmafit DIR     files that MicroLZMA recompresses into LZ4HC pclusters
                                  (ztranscode.py lzma); deterministic
"""
import os
import random
import socket
import struct
import sys


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def acl_xattr(entries):
    """The system.posix_acl_* xattr value: version 2, then (tag, perm, id) entries."""
    out = struct.pack("<I", 2)
    for tag, perm, ident in entries:
        out += struct.pack("<HHI", tag, perm, ident)
    return out


# ACL tags (include/uapi/linux/posix_acl.h)
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEF = 0xFFFFFFFF


def corpus(t):
    rnd = lambda n: os.urandom(n)
    for d in ("files", "empty_dir", "special", "links", "modes"):
        os.makedirs(os.path.join(t, d))
    for i in range(61):
        write(f"{t}/files/f{i}", rnd(i * 151))
    for s in (4095, 4096, 4097, 65535, 65536, 65537):
        write(f"{t}/files/size_{s}", rnd(s))
    write(f"{t}/large", rnd(1048576 + 65536 + 7))   # over two 1 MiB chunks
    with open(f"{t}/sparse", "wb") as f:          # 2.5 MiB, data in the middle and at the end
        f.truncate(5 * 524288)
        f.seek(1572864); f.write(b"middle")
        f.seek(5 * 524288 - 3); f.write(b"end")
    write(f"{t}/empty", b"")
    os.symlink("files/f1", f"{t}/links/short")
    os.symlink("x" * 1000, f"{t}/links/long_target")
    os.symlink("/nonexistent/dangling", f"{t}/links/dangling")
    os.link(f"{t}/files/f2", f"{t}/links/hard1")
    os.link(f"{t}/files/f2", f"{t}/links/hard2")
    os.mknod(f"{t}/special/null", 0o20666, os.makedev(1, 3))
    os.mknod(f"{t}/special/loop", 0o60660, os.makedev(7, 200))
    os.mknod(f"{t}/special/big", 0o20600, os.makedev(259, 70000))
    os.mkfifo(f"{t}/special/fifo")
    socket.socket(socket.AF_UNIX).bind(f"{t}/special/sock")
    write(os.path.join(t, "n" * 254), b"long name\n")
    d = os.path.join(t, "deep", *[f"d{i}" for i in range(1, 41)])
    os.makedirs(d)
    write(f"{d}/file", b"bottom\n")
    for m in (0o000, 0o444, 0o600, 0o755, 0o1777, 0o2755, 0o4755, 0o711):
        p = f"{t}/modes/m{m:04o}"
        write(p, b"")
        os.chmod(p, m)
    os.chown(f"{t}/modes/m0600", 1000, 1000)
    os.chown(f"{t}/modes/m0444", 4294967294, 65534)
    os.chown(f"{t}/modes/m0755", 70000, 80000)
    os.utime(f"{t}/files/f3", ns=(981173106123456789, 981173106123456789))
    os.utime(f"{t}/links/short", ns=(981173106123456789, 981173106123456789), follow_symlinks=False)
    os.utime(f"{t}/files/f4", ns=(0, 0))
    os.utime(f"{t}/files/f5", ns=(4294967295 * 10**9, 4294967295 * 10**9))
    for f in ("f6", "f7", "f8", "f9", "f10"):      # the same xattr on many files: shared
        os.setxattr(f"{t}/files/{f}", "user.shared", b"same-everywhere")
    os.setxattr(f"{t}/files/f6", "user.inline", b"v" * 200)
    os.setxattr(f"{t}/files/f7", "user.empty", b"")
    os.setxattr(f"{t}/files/f8", "trusted.t", b"trusted-value")
    os.setxattr(f"{t}/files/f9", "security.s", b"security-value")
    os.setxattr(f"{t}/files", "user.on_dir", b"yes")
    os.setxattr(f"{t}/links/short", "trusted.link", b"on-symlink", follow_symlinks=False)
    os.setxattr(f"{t}/files/f11", "system.posix_acl_access", acl_xattr(
        [(USER_OBJ, 6, UNDEF), (USER, 5, 1234), (GROUP_OBJ, 4, UNDEF), (GROUP, 6, 5678),
         (MASK, 7, UNDEF), (OTHER, 4, UNDEF)]))
    os.setxattr(f"{t}/empty_dir", "system.posix_acl_default", acl_xattr(
        [(USER_OBJ, 7, UNDEF), (USER, 7, 1234), (GROUP_OBJ, 5, UNDEF), (MASK, 7, UNDEF),
         (OTHER, 5, UNDEF)]))
    os.utime(t, ns=(1577836800 * 10**9, 1577836800 * 10**9))


def text_bytes(n, seed=1):
    """n bytes of deterministic text-like data (LZ4HC compresses it about 2:1). Past 256 KiB
    it repeats rotated copies of its first 256 KiB: farther back than LZ4's 64 KiB window, so
    it compresses no better, and it is quick to make under TCG."""
    r = random.Random(seed)
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 9)))
             for _ in range(2000)]
    out = []
    size = 0
    while size < min(n, 262144):
        w = r.choice(words)
        out.append(w)
        size += len(w) + 1
    base = " ".join(out).encode() + b" "
    parts, size, i = [], 0, 0
    while size < n:
        k = i * 4099 % len(base)
        parts.append(base[k:] + base[:k])
        size += len(base)
        i += 1
    return b"".join(parts)[:n]


def compressible(t, text_size=524288 + 7):
    os.makedirs(t)
    r = random.Random(2)
    rnd = r.randbytes
    for s in (1, 100, 4095, 4096, 4097, 65535, 65536, 65537, 200001):
        write(f"{t}/text_{s}", text_bytes(s, seed=s))
    write(f"{t}/text", text_bytes(text_size))
    write(f"{t}/zeros", bytes(262144 + 3))
    write(f"{t}/repeat", b"0123456789abcdef-erofs_rs-" * 5000)
    # 4 KiB random, 4 KiB text, ...: pclusters that do and do not compress, side by side
    write(f"{t}/mixed", b"".join(rnd(4096) if i % 2 else text_bytes(4096, seed=100 + i)
                                 for i in range(40)) + b"tail")
    write(f"{t}/random", rnd(70001))


def lzma_fit_bytes(n, seed):
    """n bytes that LZMA compresses only a little better than LZ4HC: runs of random bytes
    (incompressible for both) between runs of words. A MicroLZMA stream recompressed into an
    LZ4HC pcluster then needs less than a block of padding (ztranscode.py lzma)."""
    r = random.Random(seed)
    words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randrange(2, 9)))
             for _ in range(500)]
    out = bytearray()
    while len(out) < n:
        if r.random() < 0.3:
            out += b" ".join(r.choice(words) for _ in range(r.randrange(5, 30))) + b" "
        else:
            out += r.randbytes(r.randrange(16, 200))
    return bytes(out[:n])


def lzmafit(t):
    """The MicroLZMA tree of 22_compressed_lz4: sizes at block, lcluster and big pcluster edges,
    `victim` for the corruption case and `other`, the same bytes as the corruption tree's."""
    os.makedirs(t)
    for s in (1, 4095, 4097, 65537, 200001):
        write(f"{t}/lz_{s}", lzma_fit_bytes(s, seed=s))
    write(f"{t}/victim", lzma_fit_bytes(300000, seed=7))
    write(f"{t}/other", text_bytes(4097, seed=4097))


def bigdir(t, n):
    os.makedirs(t)
    for i in range(1, n + 1):
        open(f"{t}/entry_{i:06d}", "wb").close()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "corpus":
        corpus(sys.argv[2])
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "compressible":
        compressible(sys.argv[2], *map(int, sys.argv[3:]))
    elif len(sys.argv) == 3 and sys.argv[1] == "lzmafit":
        lzmafit(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "bigdir":
        bigdir(sys.argv[2], int(sys.argv[3]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
