# SPDX-License-Identifier: GPL-2.0
"""Host-side helpers of bench/run (run with /usr/bin/python3 -I -S).

  mktrees.py large DIR MIB...   write one pseudo-random file of each size (deterministic seed)
  mktrees.py describe DIR       JSON summary of DIR/src and DIR/large: entries, files, bytes,
                                largest file
"""
import json
import os
import random
import sys


def large(d, sizes):
    os.makedirs(d, exist_ok=True)
    for i, mib in enumerate(sizes):
        rng = random.Random(0x5EED + i)
        path = os.path.join(d, "file%d-%dM.bin" % (i, mib))
        with open(path, "wb") as f:
            for _ in range(mib):
                f.write(rng.randbytes(1 << 20))


def describe(d):
    out = {}
    for name in ("src", "large", "largez"):
        root = os.path.join(d, name)
        if not os.path.isdir(root):
            continue
        entries = files = nbytes = 0
        largest, lsize = "", -1
        stack = [root]
        while stack:
            for e in os.scandir(stack.pop()):
                entries += 1
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    files += 1
                    size = e.stat(follow_symlinks=False).st_size
                    nbytes += size
                    if size > lsize:
                        largest, lsize = os.path.relpath(e.path, root), size
        out[name] = {"entries": entries, "files": files, "bytes": nbytes,
                     "largest": largest, "largest_bytes": lsize}
    json.dump(out, sys.stdout, indent=1)
    print()


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "large":
        large(sys.argv[2], [int(x) for x in sys.argv[3:]])
    elif len(sys.argv) == 3 and sys.argv[1] == "describe":
        describe(sys.argv[2])
    else:
        sys.exit(__doc__)


main()
