#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Concurrent readers, cache drops and mount/umount loops over erofs_rs mounts, for 13_stress.sh.

usage: stress.py --seconds S [--readers N] --check DIR=EXPECTED ...
                 [--cycle FSID_PREFIX:NAMES:OPTIONS:EXPECTED:MNT ...]

--check DIR=EXPECTED: a mounted erofs_rs tree and what it must hold: a source tree, or a
    mkimg.py manifest (content hashes and link targets).
--cycle PREFIX:K:OPTIONS:EXPECTED:MNT: a thread that, until the time is up, mounts
    `-o fsid=PREFIX<k>,OPTIONS` on MNT for k = 0, 1, ... K-1, 0, ... (blobs PREFIX<k> must exist),
    walks and verifies the whole tree, and unmounts; umount must succeed.

Readers (threads) pick random entries of the --check mounts and verify them: files read whole
(read(2) in random sizes, or through mmap) against the expected SHA-256, symlink targets,
directory listings, lstat. Another thread drops the page cache (and dentries and inodes) every
0.2-1 s. Any error or mismatch is a failure. Prints counters; exit status 0 if nothing failed.
"""
import hashlib
import mmap
import os
import random
import stat
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mutate  # noqa: E402  (the walker, mount(2) and the expected manifests)


def expected_of(spec):
    """{rel: ("reg", sha256) | ("lnk", target) | ("dir", {names}) | ("other", None)}"""
    out = {}
    if os.path.isdir(spec):
        for top, dirs, files in os.walk(spec):
            rel = os.path.relpath(top, spec)
            out[rel] = ("dir", set(dirs) | set(files))
            for n in dirs:
                p = os.path.join(top, n)
                if os.path.islink(p):
                    out[os.path.normpath(os.path.join(rel, n))] = ("lnk", os.readlink(p))
            for n in files:
                p = os.path.join(top, n)
                r = os.path.normpath(os.path.join(rel, n))
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    out[r] = ("lnk", os.readlink(p))
                elif stat.S_ISREG(st.st_mode):
                    with open(p, "rb") as f:
                        out[r] = ("reg", hashlib.sha256(f.read()).hexdigest())
                else:
                    out[r] = ("other", None)
        return out
    files, _ = mutate.expected_files(spec)
    children = {}
    for rel, d in files.items():
        if rel != ".":
            children.setdefault(os.path.dirname(rel) or ".", set()).add(os.path.basename(rel))
    for rel, d in files.items():
        kind = d.split(" ")[0]
        if kind == "reg":
            out[rel] = ("reg", d.split("sha256=")[1])
        elif kind == "lnk":
            out[rel] = ("lnk", d[4:])
        elif kind == "dir":
            out[rel] = ("dir", children.get(rel, set()))
        else:
            out[rel] = ("other", None)
    return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.failures = []

    def add(self, k, n=1):
        with self.lock:
            self.c[k] = self.c.get(k, 0) + n

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
        print("FAIL: " + what, flush=True)


def verify(root, rel, exp, rng, st_):
    """Checks one entry; returns a failure text or None."""
    path = os.path.join(root, rel)
    kind, val = exp
    try:
        st = os.lstat(path)
        if kind == "reg":
            if not stat.S_ISREG(st.st_mode):
                return "%s: not a regular file" % path
            with open(path, "rb", buffering=0) as f:
                h = hashlib.sha256()
                if st.st_size and rng.random() < 0.25:
                    with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
                        h.update(m[:])
                    st_.add("mmap reads")
                else:
                    while True:
                        b = f.read(rng.choice([4096, 65536, 1 << 20, 777]))
                        if not b:
                            break
                        h.update(b)
                    st_.add("file reads")
                st_.add("bytes", st.st_size)
            if h.hexdigest() != val:
                return "%s: content differs from the source (sha256 %s, expected %s)" % (
                    path, h.hexdigest(), val)
        elif kind == "lnk":
            t = os.readlink(path)
            if t != val:
                return "%s: symlink target %r, expected %r" % (path, t, val)
            st_.add("readlinks")
        elif kind == "dir":
            names = set(os.listdir(path))
            if names != val:
                return "%s: directory lists %d names, expected %d (%s)" % (
                    path, len(names), len(val), sorted(names ^ val)[:5])
            st_.add("readdirs")
        os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        return "%s: %s" % (path, e)
    return None


def reader(checks, deadline, seed, st_):
    rng = random.Random(seed)
    items = [(root, rel, e) for root, exp in checks for rel, e in sorted(exp.items())]
    while time.monotonic() < deadline:
        root, rel, e = rng.choice(items)
        err = verify(root, rel, e, rng, st_)
        if err:
            st_.fail("reader: " + err)


def dropper(deadline, seed, st_):
    rng = random.Random(seed)
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.2, 1.0))
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write(rng.choice(["1", "2", "3", "3"]))
            st_.add("cache drops")
        except OSError as e:
            st_.fail("drop_caches: %s" % e)


def cycler(spec, deadline, seed, st_):
    prefix, k, opts, expected, mnt = spec
    exp = expected_of(expected)
    rng = random.Random(seed)
    os.makedirs(mnt, exist_ok=True)
    i = 0
    while time.monotonic() < deadline:
        name = "%s%d" % (prefix, i % k)
        i += 1
        code = mutate.sys_mount("erofs_rs", "fsid=%s%s" % (name, "," + opts if opts else ""), mnt)
        if code:
            st_.fail("cycle: mount fsid=%s: %s" % (name, mutate.ename(code)))
            time.sleep(1)
            continue
        for rel, e in sorted(exp.items()):
            if rng.random() < 0.5 or e[0] == "dir":
                err = verify(mnt, rel, e, rng, st_)
                if err:
                    st_.fail("cycle %s: %s" % (name, err))
        code = mutate.sys_umount(mnt)
        if code:
            st_.fail("cycle: umount fsid=%s: %s" % (name, mutate.ename(code)))
            mutate.sys_umount(mnt, mutate.MNT_DETACH)
        st_.add("mount cycles")


def main():
    a = mutate.parse(sys.argv[1:], {"seconds": (60, float), "readers": (4, int),
                                    "check": (list, str), "cycle": (list, str),
                                    "seed": (1, int)})
    if not a.check:
        raise SystemExit(__doc__)
    checks = []
    for c in a.check:
        d, _, e = c.partition("=")
        checks.append((d, expected_of(e)))
    cycles = []
    for c in a.cycle:
        prefix, k, opts, expected, mnt = c.split(":")
        cycles.append((prefix, int(k), opts, expected, mnt))
    st_ = Stats()
    deadline = time.monotonic() + a.seconds
    threads = [threading.Thread(target=reader, args=(checks, deadline, a.seed * 100 + i, st_))
               for i in range(a.readers)]
    threads.append(threading.Thread(target=dropper, args=(deadline, a.seed, st_)))
    threads += [threading.Thread(target=cycler, args=(c, deadline, a.seed * 1000 + i, st_))
                for i, c in enumerate(cycles)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    print("stress: %.0f s, %d reader threads, %d mount/umount loops: %s" % (
        secs, a.readers, len(cycles),
        ", ".join("%s %d" % (k, v) for k, v in sorted(st_.c.items()))), flush=True)
    if st_.c.get("file reads", 0) + st_.c.get("mmap reads", 0) == 0:
        st_.fail("no file was read")
    if cycles and not st_.c.get("mount cycles"):
        st_.fail("no mount/umount cycle completed")
    print("stress: %d failures" % len(st_.failures))
    sys.exit(1 if st_.failures else 0)


if __name__ == "__main__":
    main()
