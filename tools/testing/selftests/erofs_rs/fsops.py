#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Mount, read and unmount in one process (each exec costs a good fraction of a second in the
TCG guest, so a shell loop of mount, cat, cmp and umount per case is slow).

usage: fsops.py cycles TREE READ[,READ...] CASE...
    CASE is LABEL|TYPE|OPTIONS|MOUNTPOINT. For each case: mount(2) TYPE with OPTIONS on
    MOUNTPOINT (source "none"), read each file READ (a path relative to the mount and to TREE)
    and compare it with TREE's copy, then umount(2). One line per case on stdout:
        LABEL: OUTCOME[, OUTCOME...]
    where an outcome is "correct data", "WRONG DATA" or the reader's error text (strerror), or
        LABEL: mount: ERROR     /     LABEL: umount: ERROR
    as the shell helpers of lib.sh print them. Exit 0 unless the arguments are wrong.

usage: fsops.py mount-errno MOUNT...
    MOUNT is TYPE|OPTIONS|MOUNTPOINT: mount(2) it and unmount it again; one line per mount with
    "ok" or the name of the errno mount(2) failed with (EINVAL, EBADMSG, ...).
usage: fsops.py mount MOUNT...
    the same, but the filesystems stay mounted.
usage: fsops.py umount MOUNTPOINT...
    umount(2) each; one line per mount point, "ok" or the errno name.
usage: fsops.py residency FILE OFFSET...
    For each OFFSET (a multiple of 4096): drop FILE's page cache (POSIX_FADV_DONTNEED), read
    4 KiB at OFFSET (which starts a readahead window there), then print which pages from
    OFFSET's on are cached (mincore(2) of a mapping of the file):
        OFFSET: FIRST-LAST[ FIRST-LAST...]
    page ranges relative to OFFSET's page, or "none". What readahead brought in, so
    filesystems can be compared; the pages before OFFSET are left out (in-tree erofs also fills
    the uncached head of an extent that began before the window).
usage: fsops.py eof-tail FILE
    Prints how many bytes of FILE's last page lie past EOF and their distinct values, as seen
    through a mapping of the file (mmap(2) of whole pages, then read past st_size):
        tail N bytes, values [V, ...]
usage: fsops.py residency-expanded IMAGE PATH < RESIDENCY
    RESIDENCY: residency's lines for in-tree erofs, each one range 0-K (the readahead window);
    IMAGE and PATH: the image and the file (relative to its root), whose extents dump.erofs -e
    lists. Prints the lines erofs_rs must give: each window grown to the end of the extent its
    last byte falls in (rounded up to a page), as expand_compressed does. In-tree erofs grows it
    so for DEFLATE, Zstandard and MicroLZMA (the line stays as it is), not for LZ4 (where its map
    stops at the end of the lcluster, so the window stays as the VM made it).
"""
import ctypes
import errno
import os
import re
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
PAGE = 4096


def mount(fstype, opts, target):
    if libc.mount(b"none", target.encode(), fstype.encode(), 0, opts.encode()) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def umount(target):
    if libc.umount2(target.encode(), 0) != 0:
        return os.strerror(ctypes.get_errno())
    return None


def read_outcome(path, expected):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return e.strerror
    return "correct data" if data == expected else "WRONG DATA"


def cycles(tree, reads, cases):
    expected = {}
    for r in reads:
        with open(os.path.join(tree, r), "rb") as f:
            expected[r] = f.read()
    for case in cases:
        label, fstype, opts, mnt = case.split("|", 3)
        os.makedirs(mnt, exist_ok=True)
        err = mount(fstype, opts, mnt)
        if err:
            print("%s: mount: %s" % (label, err), flush=True)
            continue
        outcomes = [read_outcome(os.path.join(mnt, r), expected[r]) for r in reads]
        print("%s: %s" % (label, ", ".join(outcomes)), flush=True)
        err = umount(mnt)
        if err:
            print("%s: umount: %s" % (label, err), flush=True)


def ename(e):
    return errno.errorcode.get(e, str(e))


def mount_errnos(mounts, keep):
    for m in mounts:
        fstype, opts, mnt = m.split("|", 2)
        os.makedirs(mnt, exist_ok=True)
        if libc.mount(b"none", mnt.encode(), fstype.encode(), 0, opts.encode()) == 0:
            if not keep:
                libc.umount2(mnt.encode(), 0)
            print("ok", flush=True)
        else:
            print(ename(ctypes.get_errno()), flush=True)


def umounts(mnts):
    for mnt in mnts:
        if libc.umount2(mnt.encode(), 0) == 0:
            print("ok", flush=True)
        else:
            print(ename(ctypes.get_errno()), flush=True)


def cached_pages(fd, size):
    """The page numbers of the file behind fd that are in the page cache (mincore(2))."""
    addr = libc.mmap(None, size, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED: nothing is faulted in
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap: " + os.strerror(ctypes.get_errno()))
    try:
        vec = ctypes.create_string_buffer((size + PAGE - 1) // PAGE)
        if libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore: " + os.strerror(ctypes.get_errno()))
        return [i for i, b in enumerate(vec.raw) if b & 1]
    finally:
        libc.munmap(addr, size)


def residency(path, offsets):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        for off in offsets:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if len(os.pread(fd, PAGE, off)) == 0:
                raise SystemExit("%s: nothing read at %d" % (path, off))
            first = off // PAGE
            pages = [p - first for p in cached_pages(fd, size) if p >= first]
            runs, start = [], None
            for i, p in enumerate(pages):
                if start is None:
                    start = p
                if i + 1 == len(pages) or pages[i + 1] != p + 1:
                    runs.append("%d-%d" % (start, p))
                    start = None
            print("%d: %s" % (off, " ".join(runs) or "none"), flush=True)
    finally:
        os.close(fd)


def eof_tail(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        length = (size + PAGE - 1) // PAGE * PAGE
        addr = libc.mmap(None, length, 1, 1, fd, 0)  # PROT_READ, MAP_SHARED
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap: " + os.strerror(ctypes.get_errno()))
        try:
            tail = ctypes.string_at(addr + size, length - size)
        finally:
            libc.munmap(addr, length)
        print("tail %d bytes, values %s" % (len(tail), sorted(set(tail))))
    finally:
        os.close(fd)


def residency_expanded(image, rel):
    # dump.erofs's extent list, parsed as ztranscode.py does (the last extent ends at EOF)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from ztranscode import extents
    ext = extents(image, rel)[2]
    if not ext:
        raise SystemExit("%s: /%s: no extents" % (image, rel))
    for line in sys.stdin:
        m = re.fullmatch(r"(\d+): 0-(\d+)\s*", line)
        if not m:
            raise SystemExit("not a one-window residency line: %r" % line)
        off, k = int(m.group(1)), int(m.group(2))
        last = off + (k + 1) * PAGE - 1
        for lo, hi, _, _ in ext:
            if lo <= last < hi:
                k = max(k, (hi + PAGE - 1) // PAGE - 1 - off // PAGE)
                break
        print("%d: 0-%d" % (off, k))


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "cycles":
        cycles(sys.argv[2], sys.argv[3].split(","), sys.argv[4:])
    elif len(sys.argv) >= 3 and sys.argv[1] in ("mount-errno", "mount"):
        mount_errnos(sys.argv[2:], sys.argv[1] == "mount")
    elif len(sys.argv) >= 3 and sys.argv[1] == "umount":
        umounts(sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "residency":
        residency(sys.argv[2], [int(x) for x in sys.argv[3:]])
    elif len(sys.argv) == 3 and sys.argv[1] == "eof-tail":
        eof_tail(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == "residency-expanded":
        residency_expanded(sys.argv[2], sys.argv[3].lstrip("/"))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
