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
"""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


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


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "cycles":
        cycles(sys.argv[2], sys.argv[3].split(","), sys.argv[4:])
    elif len(sys.argv) >= 3 and sys.argv[1] in ("mount-errno", "mount"):
        mount_errnos(sys.argv[2:], sys.argv[1] == "mount")
    elif len(sys.argv) >= 3 and sys.argv[1] == "umount":
        umounts(sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
