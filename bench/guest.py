# SPDX-License-Identifier: GPL-2.0
"""The guest side of `make bench` (bench/run boots the VM and runs this as root).

Run with /usr/bin/python3 -I -S (no site packages: the pyenv shim costs seconds under TCG).
One process does everything: sets up a tmpfs work dir with the blobs, an ext4 cache filesystem
on a loop device, starts erofs-ondemandd, mounts each filesystem type in turn and measures
every scenario, alternating which type goes first from run to run. Every measurement is
appended to the --out JSON file as soon as it is taken, so an aborted run keeps what it had.
The method is described in Documentation/benchmarks.md.
"""
import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

FS = ("erofs_rs", "erofs")
WINDOW = 1 << 20          # the daemon's default --window
EXACT = ",fetch_kb=0"     # erofs_rs asking only for what is read, as in-tree erofs does
PAGE = 4096
STAT_KEYS = ("opens", "reads", "bytes_fetched", "bytes_requested", "read_ns")
HIST_PREFIX = "read_len_"


def log(msg):
    print("bench-guest: " + msg, flush=True)


def sh(*cmd, check=True, quiet=False):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stdout.strip()))
    if not quiet and r.returncode != 0:
        log("%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stdout.strip()))
    return r


def drop_caches():
    """Write back, then drop the page cache, dentries and inodes of every filesystem."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


# ---- the workloads: one process, no subprocess per file

def read_all(root, buf=bytearray(1 << 20)):
    """Read every regular file under root (directory walk with scandir); (files, bytes)."""
    files = nbytes = 0
    view = memoryview(buf)
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    fd = os.open(e.path, os.O_RDONLY)
                    try:
                        while True:
                            n = os.readv(fd, [view])
                            if n == 0:
                                break
                            nbytes += n
                    finally:
                        os.close(fd)
                    files += 1
    return {"files": files, "bytes": nbytes}


def walk_stat(root):
    """find + stat: lstat every entry under root; (entries)."""
    entries = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                os.lstat(e.path)
                entries += 1
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
    return {"entries": entries}


def offsets(size, count, seed):
    pages = size // PAGE
    return [p * PAGE for p in random.Random(seed).sample(range(pages), min(count, pages))]


def pread_loop(path, offs, advice_random=True):
    """pread 4 KiB at each offset; per-request latencies in seconds."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if advice_random:
            # Readahead off for this file: one page, one request per miss.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        lat = []
        for off in offs:
            t = time.perf_counter()
            if len(os.pread(fd, PAGE, off)) != PAGE:
                raise RuntimeError("short read at %d of %s" % (off, path))
            lat.append(time.perf_counter() - t)
        return lat
    finally:
        os.close(fd)


class Guest:
    def __init__(self, a):
        self.a = a
        self.trees = json.load(open(a.trees))
        self.records = []
        self.daemon = None
        self.mounts = {}
        self.W = None
        self.fio = shutil.which("fio")
        self.no_fio = "fio not installed"
        self.perf = None

    # ---- setup and teardown

    def setup(self):
        if not os.access("/tmp", os.W_OK):
            sh("mount", "-t", "tmpfs", "tmpfs", "/tmp")
        os.makedirs("/tmp", exist_ok=True)
        self.W = W = "/tmp/erofs_rs_bench"
        os.makedirs(W, exist_ok=True)
        blob_bytes = sum(os.path.getsize(os.path.join(self.a.blobs, b))
                         for b in os.listdir(self.a.blobs))
        tmpfs_mib = (2 * blob_bytes >> 20) + 512
        sh("mount", "-t", "tmpfs", "-o", "size=%dM" % tmpfs_mib, "tmpfs", W)
        t = time.perf_counter()
        os.makedirs(W + "/blobs")
        for b in sorted(os.listdir(self.a.blobs)):
            shutil.copyfile(os.path.join(self.a.blobs, b), os.path.join(W, "blobs", b))
        log("blobs copied to tmpfs (%d MiB) in %.1f s" % (blob_bytes >> 20, time.perf_counter() - t))
        # The cache: ext4 on a loop file (cachefiles refuses tmpfs), room for every blob.
        cache_mib = (blob_bytes >> 20) + (blob_bytes >> 22) + 128
        with open(W + "/cache.img", "wb") as f:
            f.truncate(cache_mib << 20)
        # Inode tables and journal initialised now, not by ext4lazyinit during the runs.
        sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", W + "/cache.img")
        os.makedirs(W + "/cachefs")
        sh("mount", "-o", "loop", W + "/cache.img", W + "/cachefs")
        if not any(l.split()[-1] == "erofs_rs" for l in open("/proc/filesystems")):
            sh("insmod", self.a.module)
        if not any(l.split()[-1] == "erofs" for l in open("/proc/filesystems")):
            sh("modprobe", "erofs")
        self.setup_perf()
        self.probe_fio()

    def probe_fio(self):
        """fio keeps its job state in System V shared memory: without CONFIG_SYSVIPC in the
        guest kernel it cannot run at all, and the random-read scenario falls back to the
        Python pread loop (the results say which engine measured it)."""
        if not self.fio:
            return
        with open(self.W + "/fio-probe", "wb") as f:
            f.write(b"\0" * PAGE)
        r = sh(self.fio, "--name=probe", "--filename=" + self.W + "/fio-probe", "--rw=read",
               "--bs=4k", "--size=4k", "--ioengine=psync", "--output-format=json",
               check=False, quiet=True)
        if r.returncode != 0:
            self.no_fio = "fio cannot run in this guest: " + r.stdout.strip().splitlines()[0]
            log(self.no_fio + "; random reads use the Python pread loop")
            self.fio = None

    def setup_perf(self):
        """perf for the profiles of ratios above 1.00, if it works in this guest."""
        perf = shutil.which("perf")
        if not perf:
            return
        for knob, val in (("/proc/sys/kernel/perf_event_paranoid", "-1"),
                          ("/proc/sys/kernel/kptr_restrict", "0")):
            try:
                with open(knob, "w") as f:
                    f.write(val)
            except OSError:
                pass
        r = subprocess.run([perf, "record", "-e", "cpu-clock", "-a", "-o", self.W + "/perf.probe",
                            "--", "true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if r.returncode == 0:
            self.perf = perf
        else:
            log("perf does not work here (%s): profiles without it" % r.stdout.strip()[-200:])

    def teardown(self):
        for m in list(self.mounts):
            self.umount(m)
        self.stop_daemon()
        if self.W:
            sh("umount", self.W + "/cachefs", check=False)
            sh("umount", self.W, check=False)

    # ---- daemon

    def start_daemon(self, window):
        W = self.W
        for f in ("daemon.pid", "stats"):
            if os.path.exists(W + "/" + f):
                os.unlink(W + "/" + f)
        self.daemon_log = open(W + "/daemon.log", "a")
        self.daemon = subprocess.Popen(
            [self.a.daemon, "--cache-dir", W + "/cachefs/cache", "--blob-dir", W + "/blobs",
             "--stats-file", W + "/stats", "--pid-file", W + "/daemon.pid",
             "--window", str(window), "--log-level", "warn"],
            stdin=subprocess.DEVNULL, stdout=self.daemon_log, stderr=self.daemon_log)
        for _ in range(600):
            if os.path.exists(W + "/daemon.pid") and os.path.getsize(W + "/daemon.pid") > 0:
                return
            if self.daemon.poll() is not None:
                raise RuntimeError("the daemon exited at start: " + open(W + "/daemon.log").read())
            time.sleep(0.05)
        raise RuntimeError("the daemon did not bind the cache in 30 s")

    def stop_daemon(self):
        if self.daemon:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(60)
            self.daemon = None
            self.daemon_log.close()

    def reset(self, window):
        """An empty cache and a fresh daemon: every read is a miss."""
        for m in list(self.mounts):
            self.umount(m)
        self.stop_daemon()
        shutil.rmtree(self.W + "/cachefs/cache", ignore_errors=True)
        os.makedirs(self.W + "/cachefs/cache")
        self.window = window
        self.start_daemon(window)
        drop_caches()

    def read_stats(self):
        s = {}
        for line in open(self.W + "/stats"):
            k, v = line.split()
            s[k] = int(v)
        return s

    def stats(self):
        """The daemon's counters once it is idle: it rewrites its stats file just after
        completing each request, so the last request of a workload may still be on its way
        there when the reader returns. Wait until two reads 50 ms apart agree."""
        s = self.read_stats()
        for _ in range(100):
            time.sleep(0.05)
            s2 = self.read_stats()
            if s2 == s:
                break
            s = s2
        with open("/proc/%d/stat" % self.daemon.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        s["daemon_cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
        # The cache filesystem's block device (the loop device under cachefs): read requests
        # completed and sectors read, i.e. how the filesystem's cache reads reach the disk.
        st = os.stat(self.W + "/cachefs").st_dev
        try:
            with open("/sys/dev/block/%d:%d/stat" % (os.major(st), os.minor(st))) as f:
                io = f.read().split()
            s["cache_ios"], s["cache_bytes"] = int(io[0]), int(io[2]) * 512
        except (OSError, IndexError, ValueError):
            pass
        return s

    # ---- mounts

    def mount(self, fs, img, extra=""):
        if fs == "erofs_rs" and self.a.rs_opts and "fetch_kb=" not in extra:
            extra += self.a.rs_opts
        m = "%s/m_%s_%s" % (self.W, fs, img)
        os.makedirs(m, exist_ok=True)
        # Images with a data blob (<img>_blob) are mounted with it; compressed ones are one blob.
        dev = ",device=%s_blob" % img if os.path.exists("%s/blobs/%s_blob" % (self.W, img)) else ""
        r = subprocess.run(["timeout", "300", "mount", "-t", fs, "-o",
                            "fsid=%s_meta%s%s" % (img, dev, extra), "none", m],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("mount -t %s %s: %s" % (fs, img, r.stdout.strip()))
        self.mounts[m] = (fs, img)
        return m

    def umount(self, m):
        sh("timeout", "300", "umount", m)
        del self.mounts[m]

    def remount_drop(self, *ms):
        """Unmount and mount again (the filesystem's page caches, blob caches included, are
        gone with the super block), then drop every cache: warm state."""
        specs = [self.mounts[m] for m in ms]
        for m in ms:
            self.umount(m)
        drop_caches()
        for fs, img in specs:
            self.mount(fs, img)
        drop_caches()

    # ---- measuring

    def measure(self, scenario, fs, run, fn, *args, **kw):
        s0 = self.stats()
        c0 = os.times()
        t0 = time.perf_counter()
        res = fn(*args, **kw)
        wall = time.perf_counter() - t0
        c1 = os.times()
        s1 = self.stats()
        rec = {"scenario": scenario, "fs": fs, "run": run, "window": self.window,
               "seconds": res.pop("seconds", wall), "wall_s": wall,
               "user_s": c1.user - c0.user, "sys_s": c1.system - c0.system,
               "daemon_cpu_s": s1["daemon_cpu_s"] - s0["daemon_cpu_s"]}
        for k in STAT_KEYS + ("cache_ios", "cache_bytes"):
            rec[k] = s1.get(k, 0) - s0.get(k, 0)
        rec["read_len_hist"] = {k[len(HIST_PREFIX):]: s1[k] - s0.get(k, 0)
                                for k in s1 if k.startswith(HIST_PREFIX) and s1[k] != s0.get(k, 0)}
        rec.update(res)
        self.records.append(rec)
        self.save()
        log("run %d %-9s %-28s %8.3f s  %6d READs  %9.1f MiB fetched%s" % (
            run, fs, scenario, rec["seconds"], rec["reads"], rec["bytes_fetched"] / 2**20,
            "".join("  %s=%s" % (k, res[k]) for k in ("files", "entries") if k in res)))
        return rec

    def save(self):
        doc = {"env": self.env, "records": self.records}
        tmp = self.a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
        os.replace(tmp, self.a.out)

    def check_tree(self, rec, img):
        want = self.trees[img]
        if "files" in rec and (rec["files"], rec["bytes"]) != (want["files"], want["bytes"]):
            raise RuntimeError("%s on %s read %d files, %d bytes; the tree has %d, %d" % (
                rec["fs"], img, rec["files"], rec["bytes"], want["files"], want["bytes"]))
        if "entries" in rec and rec["entries"] != want["entries"]:
            raise RuntimeError("%s on %s saw %d entries; the tree has %d" % (
                rec["fs"], img, rec["entries"], want["entries"]))

    # ---- fio

    def fio_randread(self, path, nios):
        size = os.path.getsize(path) // PAGE * PAGE
        if not self.fio:
            lat = pread_loop(path, offsets(size, nios, 42))
            return {"engine": "python pread loop (%s)" % self.no_fio, "ios": len(lat),
                    "seconds": sum(lat), "lat_us_median": statistics.median(lat) * 1e6}
        r = sh(self.fio, "--name=randread4k", "--filename=" + path, "--readonly",
               "--rw=randread", "--bs=4k", "--ioengine=psync", "--direct=0", "--invalidate=1",
               "--size=%d" % size, "--io_size=%d" % (nios * PAGE), "--randrepeat=1",
               "--randseed=42", "--output-format=json")
        job = json.loads(r.stdout[r.stdout.index("{"):])["jobs"][0]["read"]
        # seconds: the I/Os' summed latencies (ns resolution; fio's runtime is in ms).
        return {"engine": "fio psync randread bs=4k", "ios": job["total_ios"],
                "seconds": job["lat_ns"]["mean"] * job["total_ios"] / 1e9,
                "runtime_s": job["runtime"] / 1000.0, "iops": job["iops"],
                "lat_us_mean": job["clat_ns"]["mean"] / 1000.0,
                "lat_us_p50": job["clat_ns"]["percentile"].get("50.000000", 0) / 1000.0,
                "lat_us_p99": job["clat_ns"]["percentile"].get("99.000000", 0) / 1000.0}

    # ---- the phases of one run for one filesystem type

    def phase_meta_cold(self, fs, run):
        self.reset(WINDOW)
        m = self.mount(fs, "src")
        drop_caches()
        self.check_tree(self.measure("src_meta_cold", fs, run, walk_stat, m), "src")
        self.umount(m)

    def phase_reads(self, fs, run):
        self.reset(WINDOW)
        src, big = self.mount(fs, "src"), self.mount(fs, "large")
        drop_caches()
        self.check_tree(self.measure("src_cold_read", fs, run, read_all, src), "src")
        self.check_tree(self.measure("large_cold_read", fs, run, read_all, big), "large")
        # Every byte is in the cache files now (a complete read of both trees).
        self.remount_drop(src, big)
        for scen in ("warm", "hot"):
            self.check_tree(self.measure("src_%s_read" % scen, fs, run, read_all, src), "src")
            self.check_tree(self.measure("large_%s_read" % scen, fs, run, read_all, big), "large")
        self.check_tree(self.measure("src_meta_hot", fs, run, walk_stat, src), "src")
        self.remount_drop(src, big)
        path = os.path.join(big, self.trees["large"]["largest"])
        self.measure("large_fio_randread_4k_warm", fs, run, self.fio_randread, path, self.a.fio_ios)
        for m in (src, big):
            self.umount(m)

    def phase_daemon(self, fs, run):
        """The daemon's round trip: 4 KiB reads at random pages of a cold file with readahead
        off and --window 0, so each read is exactly one READ request."""
        self.reset(0)
        # erofs_rs with fetch_kb=0: it asks for the page read, as in-tree erofs does (its
        # default granule would fetch the page's whole MiB: a figure of the kernel, not the
        # daemon).
        big = self.mount(fs, "large", EXACT if fs == "erofs_rs" else "")
        path = os.path.join(big, self.trees["large"]["largest"])
        size = os.path.getsize(path)
        # Opening the file reads its inode and chunk indexes: not part of the figure.
        pread_loop(path, [0])
        offs = offsets(size, 2 * self.a.rtt_requests + 1, 1000 + run)[1:]
        serial, par = offs[:self.a.rtt_requests], offs[self.a.rtt_requests:]

        def rtt():
            lat = pread_loop(path, serial)
            return {"seconds": statistics.median(lat), "requests": len(lat),
                    "lat_ms_mean": statistics.mean(lat) * 1e3,
                    "lat_ms_p90": sorted(lat)[int(0.9 * len(lat))] * 1e3,
                    "rps": len(lat) / sum(lat)}
        rec = self.measure("daemon_read_rtt_4k", fs, run, rtt)
        rec["service_ms_mean"] = rec["read_ns"] / max(rec["reads"], 1) / 1e6

        def parallel(nthreads=4):
            parts = [par[i::nthreads] for i in range(nthreads)]
            errs = []

            def worker(p):
                try:
                    pread_loop(path, p)
                except Exception as e:  # noqa: BLE001 - reported below
                    errs.append(e)
            ts = [threading.Thread(target=worker, args=(p,)) for p in parts]
            t = time.perf_counter()
            for th in ts:
                th.start()
            for th in ts:
                th.join()
            wall = time.perf_counter() - t
            if errs:
                raise errs[0]
            return {"seconds": wall, "requests": len(par), "threads": nthreads,
                    "rps": len(par) / wall}
        rec = self.measure("daemon_read_4k_x4_parallel", fs, run, parallel)
        rec["service_ms_mean"] = rec["read_ns"] / max(rec["reads"], 1) / 1e6
        self.save()
        self.umount(big)

    def cold_window0(self, fs, run, suffix, extra=""):
        """Cold reads of both trees with a daemon that fills only what is asked (--window 0),
        mounted with `extra` options; scenarios src_cold_read<suffix>, large_cold_read<suffix>."""
        self.reset(0)
        src, big = self.mount(fs, "src", extra), self.mount(fs, "large", extra)
        drop_caches()
        self.check_tree(self.measure("src_cold_read" + suffix, fs, run, read_all, src), "src")
        self.check_tree(self.measure("large_cold_read" + suffix, fs, run, read_all, big), "large")
        for m in (src, big):
            self.umount(m)

    def phase_window0(self, fs, run):
        """The cold scenario again with a daemon that fills only what is asked (--window 0):
        the requests each kernel module sends by itself."""
        self.cold_window0(fs, run, "_window0")

    def phase_fetch(self, fs, run):
        """The --window 0 cold reads again, erofs_rs mounted with fetch_kb=0 (each miss asks
        only for what is read, as in-tree erofs does: the same READs); in-tree erofs reads as
        in window0."""
        self.cold_window0(fs, run, "_fetch0", EXACT if fs == "erofs_rs" else "")

    def phase_z(self, fs, run):
        """The compressed images, one blob each: the source tree (mkfs.erofs -zlz4hc, srcz) and
        one large file, a tar of it (-zlz4hc -C65536, largez). Warm and hot reads of every file
        by both, the cold read by erofs_rs only. In-tree erofs is not given a cold compressed
        read: in 6.12 it completes a pcluster read once per piece when cachefiles splits it at a
        cached/uncached boundary (the daemon's window widening makes such boundaries), and the
        guest died of it here (KASAN report, then a general protection fault in z_erofs_endio
        from the loop device's completion). For its warm read the cache is filled by an erofs_rs
        read first (same volume and cookie keys, so the same cache file): complete cache files,
        nothing split."""
        for img, tree in (("srcz", "src"), ("largez", "largez")):
            if not os.path.exists("%s/blobs/%s_meta" % (self.W, img)) or tree not in self.trees:
                continue
            self.reset(WINDOW)
            if fs == "erofs_rs":
                z = self.mount(fs, img)
                drop_caches()
                self.check_tree(self.measure(img + "_cold_read", fs, run, read_all, z), tree)
            else:
                fill = self.mount("erofs_rs", img)
                read_all(fill)
                self.umount(fill)
                z = self.mount(fs, img)
            self.remount_drop(z)
            self.check_tree(self.measure(img + "_warm_read", fs, run, read_all, z), tree)
            self.check_tree(self.measure(img + "_hot_read", fs, run, read_all, z), tree)
            self.umount(z)

    # ---- profiles of the scenarios erofs_rs loses

    def profile(self, scenario, fs):
        """Set the scenario up as in the runs and record it once under perf (whole system,
        cpu-clock sampling, call graphs), then keep perf's flat report."""
        # The daemon scenarios read the largest file of the large tree, as phase_daemon does.
        img = "largez" if scenario.startswith("largez") else \
            "large" if scenario.startswith(("large", "daemon")) else \
            "srcz" if scenario.startswith("srcz") else "src"
        window = 0 if scenario.endswith(("window0", "fetch0")) or scenario.startswith("daemon") \
            else WINDOW
        self.reset(window)
        if img in ("srcz", "largez") and fs == "erofs":
            # In-tree erofs must not read compressed data cold (see phase_z): erofs_rs fills.
            fill = self.mount("erofs_rs", img)
            read_all(fill)
            self.umount(fill)
        exact = scenario.endswith("fetch0") or scenario.startswith("daemon")
        m = self.mount(fs, img, EXACT if exact and fs == "erofs_rs" else "")
        if "_warm" in scenario or "_hot" in scenario:
            read_all(m)
            if "_warm" in scenario:
                self.remount_drop(m)
        else:
            drop_caches()
        path = os.path.join(m, self.trees["large"]["largest"]) if img == "large" else None
        if "fio" in scenario:
            work = (self.fio_randread, path, self.a.fio_ios)
        elif "daemon" in scenario:
            size = os.path.getsize(path)
            pread_loop(path, [0])
            work = (lambda: {"lat": len(pread_loop(path, offsets(size, self.a.rtt_requests, 7)))},)
        elif "_meta" in scenario:
            work = (walk_stat, m)
        else:
            work = (read_all, m)
        os.makedirs(self.a.profile_dir, exist_ok=True)
        base = os.path.join(self.a.profile_dir, "%s.%s" % (scenario, fs))
        data = self.W + "/perf.data"
        p = None
        if self.perf:
            p = subprocess.Popen([self.perf, "record", "-q", "-e", "cpu-clock", "-F", "4999",
                                  "-a", "-g", "-o", data], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        rec = self.measure("profile:" + scenario, fs, -1, *work)
        if p:
            p.send_signal(signal.SIGINT)
            p.wait(300)
            # Two views of the same samples. The whole guest by command, object and symbol,
            # idle loop included (how busy the guest was); and the reader alone (fio, or the
            # Python walker), by object and symbol, as shares of the reader's own samples:
            # that is where the two filesystems' read paths differ.
            reader = "fio" if "fio" in scenario else "python3"
            for suffix, extra in ((".perf.txt", ["--sort", "comm,dso,sym", "--percent-limit",
                                                 "0.7"]),
                                  (".reader.perf.txt", ["--comms", reader, "--sort", "dso,sym",
                                                        "--percentage", "relative",
                                                        "--percent-limit", "0.7"])):
                r = subprocess.run([self.perf, "report", "-i", data, "--stdio", "--no-children",
                                    "--kallsyms", "/proc/kallsyms", "-g", "none", *extra],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                lines = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
                with open(base + suffix, "w") as f:
                    f.write("\n".join(lines[:40]) + "\n")
            os.unlink(data)
        with open(base + ".json", "w") as f:
            json.dump(rec, f, indent=1)
        for mm in list(self.mounts):
            self.umount(mm)

    # ---- main

    def main(self):
        a = self.a
        u = os.uname()
        self.env = {"kernel": u.release, "mode": a.mode, "runs": a.runs,
                    "cpus": os.cpu_count(), "trees": self.trees,
                    "mem_mib": int(open("/proc/meminfo").readline().split()[1]) >> 10,
                    "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                                 if l.startswith("model name")), "?"),
                    "fio": sh(self.fio, "--version").stdout.strip() if self.fio else None,
                    "fio_ios": a.fio_ios, "rtt_requests": a.rtt_requests,
                    "phases": a.phases}
        self.setup()
        self.env["perf"] = bool(self.perf)
        if not self.fio and self.env["fio"]:
            self.env["fio"] = None
            self.env["fio_unusable"] = self.no_fio
        t = time.perf_counter()
        phases = [p for p in ("meta_cold", "reads", "daemon", "window0", "fetch", "z")
                  if p in a.phases.split(",")]
        for run in range(a.runs):
            # Alternate which type goes first from run to run.
            order = FS if run % 2 == 0 else FS[::-1]
            for ph in phases:
                for fs in order:
                    getattr(self, "phase_" + ph)(fs, run)
            log("run %d done at %.0f s" % (run, time.perf_counter() - t))
        self.env["bench_seconds"] = time.perf_counter() - t
        # Profiles: every scenario whose median ratio is above 1.00, each type once.
        if a.profile_dir:
            shutil.rmtree(a.profile_dir, ignore_errors=True)
            for scen in self.losing():
                for fs in FS:
                    self.profile(scen, fs)
        self.env["total_seconds"] = time.perf_counter() - t
        self.save()

    def losing(self):
        med = {}
        for r in self.records:
            if r["run"] >= 0:
                med.setdefault(r["scenario"], {}).setdefault(r["fs"], []).append(r["seconds"])
        out = []
        for scen, by in med.items():
            if all(by.get(f) for f in FS):
                ratio = statistics.median(by["erofs_rs"]) / max(statistics.median(by["erofs"]), 1e-9)
                if ratio > 1.0:
                    out.append(scen)
        return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--blobs", required=True)
    p.add_argument("--trees", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--mode", default="full")
    p.add_argument("--daemon", required=True)
    p.add_argument("--module", required=True)
    p.add_argument("--profile-dir", default="")
    p.add_argument("--fio-ios", type=int, default=4096)
    p.add_argument("--rtt-requests", type=int, default=200)
    p.add_argument("--phases", default="meta_cold,reads,daemon,window0,fetch,z")
    p.add_argument("--rs-opts", default="", help="more mount options for erofs_rs, e.g. "
                   "',fetch_kb=4096' (not where a scenario sets fetch_kb= itself)")
    a = p.parse_args()
    g = Guest(a)
    g.env = {}
    try:
        g.main()
    finally:
        g.teardown()
    log("done")


if __name__ == "__main__":
    sys.exit(main())
