#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check that a directory's readdir positions are stable, through libc and raw getdents64.

usage: dirseek.py DIR

1. readdir the whole directory, recording telldir() before each entry;
2. seekdir() to every recorded position (in a scrambled order) and check that readdir returns
   the entry that was there, and that seekdir to the end position returns nothing;
3. getdents64 with a buffer that holds only one or two entries (so the kernel restarts from
   the file position on every call) returns the same sequence as one large buffer, and the
   d_off of each entry, passed to lseek, resumes right after it.
Prints one line "ok N entries" or "FAIL: what"; exits 1 on failure.
"""
import ctypes
import os
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)


class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir64.restype = ctypes.POINTER(Dirent)
libc.readdir64.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]
SYS_getdents64 = 217  # x86_64


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def libc_walk(path):
    d = libc.opendir(path.encode())
    if not d:
        fail("opendir: errno %d" % ctypes.get_errno())
    seq = []
    while True:
        pos = libc.telldir(d)
        e = libc.readdir64(d)
        if not e:
            break
        seq.append((pos, e.contents.d_name, e.contents.d_type))
    end = libc.telldir(d)
    order = list(range(len(seq)))
    order = order[::-1][::3] + order[1::2] + order  # scrambled, with repeats
    for i in order:
        pos, name, dtype = seq[i]
        libc.seekdir(d, pos)
        e = libc.readdir64(d)
        if not e or e.contents.d_name != name or e.contents.d_type != dtype:
            got = e.contents.d_name if e else None
            fail("seekdir to the position of %r (#%d) read %r" % (name, i, got))
    libc.seekdir(d, end)
    if libc.readdir64(d):
        fail("seekdir to the end position read an entry")
    libc.closedir(d)
    return [(n, t) for _, n, t in seq]


def getdents(fd, size):
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_getdents64, fd, buf, size)
    if n < 0:
        return None, ctypes.get_errno()
    out = []
    off = 0
    raw = buf.raw[:n]
    while off < n:
        ino, d_off, reclen, dtype = struct.unpack_from("<QqHB", raw, off)
        name = raw[off + 19:off + reclen].split(b"\0", 1)[0]
        if ino == 0:
            # glibc's readdir skips these (deleted entries in old filesystems); so does this walk,
            # and says so, since the comparison with readdir would otherwise only say "differs".
            print("# %r has d_ino 0: glibc's readdir hides it" % name, file=sys.stderr)
            off += reclen
            continue
        out.append((name, dtype, d_off))
        off += reclen
    return out, 0


def raw_walk(path, size):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    seq = []
    while True:
        ents, err = getdents(fd, size)
        if ents is None:
            os.close(fd)
            fail("getdents64 with a %d-byte buffer: errno %d" % (size, err))
        if not ents:
            break
        seq.extend(ents)
    # Resume after each entry from its d_off.
    for i, (name, dtype, d_off) in enumerate(seq[:-1]):
        if i % 7:
            continue
        os.lseek(fd, d_off, os.SEEK_SET)
        ents, err = getdents(fd, 300)
        if not ents or ents[0][0] != seq[i + 1][0]:
            os.close(fd)
            fail("lseek to d_off of %r did not resume at %r" % (name, seq[i + 1][0]))
    os.close(fd)
    return [(n, t) for n, t, _ in seq]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    path = sys.argv[1]
    ref = libc_walk(path)
    big = raw_walk(path, 1 << 16)
    if big != ref:
        fail("getdents64 with a large buffer differs from readdir")
    # 19-byte header + name, 8-aligned: 300 bytes hold one entry of a 255-byte name.
    for size in (300, 600):
        if raw_walk(path, size) != ref:
            fail("getdents64 with a %d-byte buffer (restarts) differs from one large buffer" % size)
    print("ok %d entries" % len(ref))


if __name__ == "__main__":
    main()
