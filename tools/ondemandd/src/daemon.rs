// SPDX-License-Identifier: GPL-2.0
//! Request handling: OPEN → look the blob up and `copen`; READ → fill the cache file and
//! complete; CLOSE → release the object. Kernel-facing side effects go through [`Kernel`] so
//! the dispatch can be tested without /dev/cachefiles.
//!
//! The thread reading /dev/cachefiles only dispatches: OPENs and fetches run on a pool of worker
//! threads, so a slow blob never holds up requests for others (see [`crate::queue`] for the cap
//! per blob), and READs of ranges already being fetched wait for that fetch instead of fetching
//! again ([`crate::coalesce`]). Every READ still gets its own completion. CLOSE is handled at
//! once; the anon fd is closed when the last fetch using it is done. Injected faults (`--fault`)
//! act on the dispatching thread.

use crate::blobs::{BlobRead, BlobStore, Delays};
use crate::cache::{self, AlignedBuf, DigestMismatch};
use crate::coalesce::{Coalescer, NewFetch};
use crate::devnode::Devnode;
use crate::digest::{key_digest, Digest};
use crate::fault::{self, Faults, Kind, Source};
use crate::log;
use crate::log::Level;
use crate::prefetch::{self, Prefetcher};
use crate::proto::{self, ParseError, Request};
use crate::queue::Queue;
use crate::stats::{self, Stats};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// The kernel-facing effects of handling a request. Called from several threads at once.
pub trait Kernel: Send + Sync + 'static {
    /// Writes a reply command (`copen ...`) to the devnode.
    fn reply(&self, cmd: &str) -> io::Result<()>;
    /// Completes READ `msg_id` on the object's anon fd.
    fn complete(&self, anon_fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()>;
}

impl Kernel for Devnode {
    fn reply(&self, cmd: &str) -> io::Result<()> {
        self.command(cmd)
    }

    fn complete(&self, anon_fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()> {
        cache::complete(anon_fd, msg_id)
    }
}

impl<T: Kernel> Kernel for Arc<T> {
    fn reply(&self, cmd: &str) -> io::Result<()> {
        (**self).reply(cmd)
    }

    fn complete(&self, anon_fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()> {
        (**self).complete(anon_fd, msg_id)
    }
}

pub struct Options {
    /// Where blobs come from (`--blob-dir`, `--source`).
    pub store: Arc<dyn BlobStore>,
    pub stats_file: Option<PathBuf>,
    /// Minimum bytes filled per READ (0: just the request, page aligned).
    pub window: u64,
    /// Faults to inject on purpose (`--fault`).
    pub faults: Faults,
    /// Latency added to fetches on purpose (`--source-delay-ms`).
    pub delays: Delays,
    /// Worker threads (`--threads`, at least 1).
    pub threads: usize,
    /// At most this many fetches of one blob at once (`--per-blob`, at least 1).
    pub per_blob: usize,
    /// The supervisor's restart count, shown in the stats file.
    pub restarts: u64,
    /// Background prefetch after OPEN (`--prefetch`, `[prefetch]`); empty: none.
    pub prefetch: prefetch::Plan,
}

/// An opened cache object: its anon fd and the blob behind it.
struct Object {
    /// Our own id of the object (the kernel's object id may be reused after CLOSE).
    serial: u64,
    fd: OwnedFd,
    blob: Box<dyn BlobRead>,
    /// The cookie key (blob name), which faults and delays are selected by.
    key: Vec<u8>,
    /// The digest the key names, if it does (`sha256:<hex>` or `<hex>`): whole-blob fetches
    /// are checked against it.
    digest: Option<Digest>,
}

/// A READ waiting for its fetches.
struct ReadReq {
    msg_id: u32,
    object_id: u32,
    off: u64,
    len: u64,
    t: Instant,
}

enum Job {
    Open {
        msg_id: u32,
        object_id: u32,
        vkey: Vec<u8>,
        ckey: Vec<u8>,
        fd: OwnedFd,
        flags: u32,
    },
    Fetch {
        fetch: NewFetch,
        obj: Arc<Object>,
    },
}

struct State {
    stats: Stats,
    co: Coalescer<ReadReq>,
    queue: Queue<Job>,
    /// Jobs being run by workers.
    busy: usize,
    stop: bool,
}

struct Shared<K: Kernel> {
    opts: Options,
    kernel: K,
    objects: Mutex<HashMap<u32, Arc<Object>>>,
    state: Mutex<State>,
    /// Signalled when a job is queued or may have become runnable, and on stop.
    work: Condvar,
    /// Signalled when a worker finishes a job.
    idle: Condvar,
    /// Held while writing the stats file, so the last write has the latest counters.
    stats_writer: Mutex<()>,
    next_serial: AtomicU64,
    /// Demand READs queued and not yet completed (prefetch waits while there are any).
    in_flight: AtomicU64,
    started: Instant,
    prefetcher: Option<Arc<Prefetcher>>,
}

pub struct Daemon<K: Kernel> {
    sh: Arc<Shared<K>>,
    workers: Vec<JoinHandle<()>>,
    prefetch_thread: Option<JoinHandle<()>>,
    /// For fault injection on the dispatching thread.
    buf: AlignedBuf,
    /// Set by the `exit-on-read` fault: the request loop must exit now.
    pub exit_requested: bool,
}

/// The errno to fail an OPEN with for a blob lookup/open error.
fn open_errno(e: &io::Error) -> i32 {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => libc::ENOENT,
        _ => match e.raw_os_error() {
            Some(n) if (1..4096).contains(&n) => n,
            _ => libc::EIO,
        },
    }
}

/// Locks `m`, also if a thread panicked while holding it (the data stays usable: counters and
/// bookkeeping, no invariants a panic could leave half-done that matter more than serving on).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<K: Kernel> Shared<K> {
    /// Rewrites the stats file, if any.
    fn write_stats(&self) {
        if let Some(p) = &self.opts.stats_file {
            let _w = lock(&self.stats_writer);
            let s = lock(&self.state).stats.render();
            if let Err(e) = stats::write_atomic(p, &s) {
                log!(Level::Warn, "cannot write {}: {e}", p.display());
            }
        }
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut lock(&self.state).stats)
    }

    /// A worker thread: runs jobs until told to stop.
    fn worker(&self) {
        let mut buf = None;
        let mut st = lock(&self.state);
        loop {
            if st.stop {
                return;
            }
            let Some((key, job)) = st.queue.take() else {
                st = self.work.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            st.busy += 1;
            drop(st);
            match job {
                Job::Open {
                    msg_id,
                    object_id,
                    vkey,
                    ckey,
                    fd,
                    flags,
                } => self.open(msg_id, object_id, &vkey, &ckey, fd, flags),
                Job::Fetch { fetch, obj } => self.fetch(fetch, &obj, &mut buf),
            }
            self.write_stats();
            st = lock(&self.state);
            st.busy -= 1;
            st.queue.finish(key.as_deref());
            // A job of a blob that was at its cap may be runnable now.
            self.work.notify_all();
            self.idle.notify_all();
        }
    }

    fn open(&self, msg_id: u32, object_id: u32, vkey: &[u8], ckey: &[u8], fd: OwnedFd, flags: u32) {
        let vk = String::from_utf8_lossy(vkey);
        let ck = String::from_utf8_lossy(ckey);
        match self.opts.store.open_in(vkey, ckey) {
            Ok(blob) => {
                let size = blob.size();
                log!(Level::Info, "OPEN {msg_id} object {object_id}: volume {vk:?} cookie {ck:?} -> {} ({size} bytes, flags {flags:#x})", blob.location());
                let Ok(isize) = i64::try_from(size) else {
                    self.fail_open(msg_id, libc::EFBIG, fd);
                    return;
                };
                // Known before the copen: READs of the object can come as soon as it is written.
                let obj = Arc::new(Object {
                    serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
                    fd,
                    blob,
                    key: ckey.to_vec(),
                    digest: key_digest(ckey),
                });
                if lock(&self.objects).insert(object_id, obj).is_some() {
                    log!(
                        Level::Warn,
                        "OPEN {msg_id}: object {object_id} was already open; replaced"
                    );
                }
                if let Err(e) = self.kernel.reply(&proto::copen(msg_id, isize)) {
                    self.count(|s| s.errors += 1);
                    log!(Level::Error, "copen {msg_id}: {e}");
                    lock(&self.objects).remove(&object_id);
                } else {
                    self.start_prefetch(object_id, ckey, size);
                }
            }
            Err(e) => {
                let errno = open_errno(&e);
                log!(Level::Warn, "OPEN {msg_id} object {object_id}: volume {vk:?} cookie {ck:?}: {e}: failing it with -{errno}");
                self.fail_open(msg_id, errno, fd);
            }
        }
    }

    /// Fails an OPEN with `-errno`, then closes the anon fd.
    fn fail_open(&self, msg_id: u32, errno: i32, fd: OwnedFd) {
        self.count(|s| s.errors += 1);
        if let Err(e) = self.kernel.reply(&proto::copen(msg_id, -(errno as i64))) {
            log!(Level::Error, "copen {msg_id}: {e}");
        }
        drop(fd);
    }

    /// Fills `[start, end)` of `obj` into its cache file, then completes the READs that waited
    /// for this fetch only.
    fn fetch(&self, f: NewFetch, obj: &Object, buf: &mut Option<AlignedBuf>) {
        let delay = self.opts.delays.get(&obj.key);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        let t = Instant::now();
        let res = match buf {
            Some(b) => Ok(b),
            None => AlignedBuf::new(cache::CHUNK).map(|b| buf.insert(b)),
        }
        .and_then(|b| {
            cache::fill_checked(
                obj.fd.as_fd(),
                obj.blob.as_ref(),
                f.start,
                f.end,
                b,
                obj.digest.as_ref(),
            )
        });
        let ready = {
            let mut st = lock(&self.state);
            match &res {
                Ok(filled) => {
                    st.stats.bytes_fetched += filled.bytes;
                    st.stats.verified += u64::from(filled.verified);
                }
                Err(e) => st.stats.digest_errors += u64::from(DigestMismatch::of(e).is_some()),
            }
            st.co.done(f.id, res.is_ok())
        };
        match &res {
            Ok(filled) => log!(
                Level::Debug,
                "fetch {} of {} [{}, {}): {} bytes in {:?}{}",
                f.id,
                obj.blob.location(),
                f.start,
                f.end,
                filled.bytes,
                t.elapsed(),
                if filled.verified {
                    ", digest verified"
                } else {
                    ""
                }
            ),
            Err(e) if DigestMismatch::of(e).is_some() => log!(
                Level::Error,
                "blob {} (key {:?}): {e}",
                obj.blob.location(),
                String::from_utf8_lossy(&obj.key)
            ),
            Err(e) => log!(
                Level::Error,
                "fetch of {} [{}, {}): {e}",
                obj.blob.location(),
                f.start,
                f.end
            ),
        }
        for (r, ok) in ready {
            self.complete(obj, &r, ok);
        }
    }

    /// Completes READ `r` on `obj`: always, also when its data could not be fetched (the reader
    /// then gets EIO instead of waiting forever).
    fn complete(&self, obj: &Object, r: &ReadReq, ok: bool) {
        self.complete_on(obj.fd.as_fd(), &obj.blob.location(), r, ok)
    }

    /// [`Shared::complete`] given the object's anon fd and its blob's location (for the log).
    fn complete_on(&self, fd: BorrowedFd<'_>, loc: &str, r: &ReadReq, ok: bool) {
        let ReadReq {
            msg_id,
            object_id,
            off,
            len,
            t,
        } = *r;
        if !ok {
            log!(Level::Error, "READ {msg_id} object {object_id} off {off} len {len} ({loc}): not fetched; completing anyway (the reader gets EIO)");
        }
        let res = self.kernel.complete(fd, msg_id);
        if let Err(e) = &res {
            log!(Level::Error, "READ {msg_id}: completion ioctl failed: {e}");
        }
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut st = lock(&self.state);
        st.stats.errors += u64::from(!ok) + u64::from(res.is_err());
        st.stats.count_read(len, ns);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Queues the prefetch of object `object_id` (just opened), if the plan names its blob.
    fn start_prefetch(&self, object_id: u32, key: &[u8], size: u64) {
        let Some(pf) = &self.prefetcher else { return };
        let pieces = self.opts.prefetch.pieces(key, size, self.opts.window);
        if pieces.is_empty() {
            return;
        }
        let Some(obj) = lock(&self.objects).get(&object_id).cloned() else {
            return;
        };
        log!(
            Level::Info,
            "prefetch of {}: {} piece(s) queued",
            obj.blob.location(),
            pieces.len()
        );
        pf.add(prefetch::Task {
            object_id,
            serial: obj.serial,
            obj,
            pieces: pieces.into(),
        });
    }
}

impl prefetch::Target for Object {
    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
    fn blob(&self) -> &dyn BlobRead {
        self.blob.as_ref()
    }
    fn key(&self) -> &[u8] {
        &self.key
    }
    fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
}

impl<K: Kernel> prefetch::Host for Shared<K> {
    fn demand_pending(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }
    fn alive(&self, object_id: u32, serial: u64) -> bool {
        lock(&self.objects)
            .get(&object_id)
            .is_some_and(|o| o.serial == serial)
    }
    fn delay(&self, key: &[u8]) -> std::time::Duration {
        self.opts.delays.get(key)
    }
    fn begin(&self, serial: u64, start: u64, end: u64) -> Option<u64> {
        lock(&self.state).co.begin(serial, start, end)
    }
    fn end(&self, obj: &dyn prefetch::Target, id: u64, ok: bool) {
        let ready = lock(&self.state).co.done(id, ok);
        let loc = obj.blob().location();
        for (r, ok) in ready {
            log!(
                Level::Debug,
                "READ {}: served by the prefetch of {loc}",
                r.msg_id
            );
            self.complete_on(obj.fd(), &loc, &r, ok);
        }
    }
    fn copied(&self, bytes: u64, verified: bool) {
        self.count(|s| {
            s.prefetch_bytes += bytes;
            s.prefetch_pieces += 1;
            s.verified += u64::from(verified);
        });
        self.write_stats();
    }
    fn digest_error(&self) {
        self.count(|s| s.digest_errors += 1);
        self.write_stats();
    }
    fn finished(&self) {
        self.count(|s| s.prefetch_done += 1);
        self.write_stats();
    }
}

impl<K: Kernel> Daemon<K> {
    pub fn new(opts: Options, kernel: K) -> io::Result<Daemon<K>> {
        let threads = opts.threads.max(1);
        let sh = Arc::new(Shared {
            kernel,
            objects: Mutex::new(HashMap::new()),
            state: Mutex::new(State {
                stats: Stats {
                    restarts: opts.restarts,
                    ..Stats::default()
                },
                co: Coalescer::default(),
                queue: Queue::new(opts.per_blob),
                busy: 0,
                stop: false,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
            stats_writer: Mutex::new(()),
            next_serial: AtomicU64::new(1),
            in_flight: AtomicU64::new(0),
            started: Instant::now(),
            prefetcher: (!opts.prefetch.is_empty())
                .then(|| Prefetcher::new(opts.prefetch.bandwidth, opts.window)),
            opts,
        });
        let prefetch_thread = match &sh.prefetcher {
            Some(pf) => {
                let host: Arc<dyn prefetch::Host> = Arc::clone(&sh) as _;
                Some(pf.start(host)?)
            }
            None => None,
        };
        let mut workers = Vec::new();
        for i in 0..threads {
            let s = Arc::clone(&sh);
            let h = std::thread::Builder::new()
                .name(format!("fetch{i}"))
                .spawn(move || s.worker())?;
            workers.push(h);
        }
        Ok(Daemon {
            sh,
            workers,
            prefetch_thread,
            buf: AlignedBuf::new(cache::CHUNK)?,
            exit_requested: false,
        })
    }

    /// A copy of the counters.
    pub fn stats(&self) -> Stats {
        lock(&self.sh.state).stats.clone()
    }

    /// Rewrites the stats file, if any.
    pub fn write_stats(&self) {
        self.sh.write_stats()
    }

    /// READs queued and not yet completed.
    #[cfg(test)]
    pub fn in_flight(&self) -> u64 {
        self.sh.in_flight.load(Ordering::Relaxed)
    }

    /// What the stats socket sends (see [`Stats::render_live`]), taken when called.
    pub fn snapshot(&self) -> crate::statsock::Snapshot {
        let sh = Arc::clone(&self.sh);
        Arc::new(move || {
            let st = lock(&sh.state).stats.clone();
            let up = u64::try_from(sh.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            st.render_live(sh.in_flight.load(Ordering::Relaxed), up)
        })
    }

    fn count(&self, f: impl FnOnce(&mut Stats)) {
        self.sh.count(f)
    }

    /// Waits until no job is queued or running (tests; a READ joined to a fetch in flight is
    /// done with it).
    #[cfg(test)]
    pub fn wait_idle(&self) {
        let mut st = lock(&self.sh.state);
        while st.busy > 0 || st.queue.len() > 0 {
            st = self.sh.idle.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Handles one message as read from the devnode, then updates the stats file.
    pub fn handle_message(&mut self, msg: &[u8]) {
        match proto::parse(msg) {
            Ok(req) => self.handle(req),
            Err(e) => self.bad_message(msg, e),
        }
        self.write_stats();
    }

    /// A message that does not parse: answer what can be answered so no request hangs.
    fn bad_message(&mut self, msg: &[u8], e: ParseError) {
        self.count(|s| s.errors += 1);
        let Ok(h) = proto::parse_header(msg) else {
            log!(
                Level::Error,
                "bad message from the kernel ({} bytes): {e}",
                msg.len()
            );
            return;
        };
        log!(
            Level::Error,
            "bad message {} (opcode {}, object {}): {e}",
            h.msg_id,
            h.opcode,
            h.object_id
        );
        match h.opcode {
            proto::OP_OPEN => {
                // The fd field cannot be trusted, so it is left alone.
                if let Err(e) = self
                    .sh
                    .kernel
                    .reply(&proto::copen(h.msg_id, -(libc::EINVAL as i64)))
                {
                    log!(Level::Error, "copen {}: {e}", h.msg_id);
                }
            }
            proto::OP_READ => {
                if let Some(obj) = self.object(h.object_id) {
                    if let Err(e) = self.sh.kernel.complete(obj.fd.as_fd(), h.msg_id) {
                        log!(Level::Error, "READ {}: completion failed: {e}", h.msg_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn object(&self, object_id: u32) -> Option<Arc<Object>> {
        lock(&self.sh.objects).get(&object_id).cloned()
    }

    fn queue(&self, key: Option<Vec<u8>>, job: Job) {
        lock(&self.sh.state).queue.push(key, job);
        self.sh.work.notify_one();
    }

    pub fn handle(&mut self, req: Request) {
        match req {
            Request::Open {
                msg_id,
                object_id,
                volume_key,
                cookie_key,
                fd,
                flags,
            } => {
                // SAFETY: the kernel installed `fd` in our table for this OPEN message (the fd
                // field was range-checked by the parser); nothing else owns or closes it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                self.open(msg_id, object_id, volume_key, cookie_key, fd, flags)
            }
            Request::Read {
                msg_id,
                object_id,
                off,
                len,
            } => self.read(msg_id, object_id, off, len),
            Request::Close { msg_id, object_id } => {
                self.count(|s| s.closes += 1);
                // In-flight fetches of the object hold it: its anon fd closes after them.
                match lock(&self.sh.objects).remove(&object_id) {
                    Some(obj) => log!(
                        Level::Debug,
                        "CLOSE {msg_id} object {object_id} ({})",
                        obj.blob.location()
                    ),
                    None => log!(Level::Warn, "CLOSE {msg_id} for unknown object {object_id}"),
                }
            }
            Request::Unknown {
                msg_id,
                object_id,
                opcode,
            } => {
                self.count(|s| s.errors += 1);
                log!(
                    Level::Warn,
                    "message {msg_id} (object {object_id}): unknown opcode {opcode}, ignored"
                );
            }
        }
    }

    fn open(
        &mut self,
        msg_id: u32,
        object_id: u32,
        vkey: Vec<u8>,
        ckey: Vec<u8>,
        fd: OwnedFd,
        flags: u32,
    ) {
        self.count(|s| s.opens += 1);
        if self.sh.opts.faults.refuse_open(&ckey) {
            self.count(|s| s.faults += 1);
            let vk = String::from_utf8_lossy(&vkey);
            let ck = String::from_utf8_lossy(&ckey);
            log!(Level::Warn, "OPEN {msg_id} object {object_id}: volume {vk:?} cookie {ck:?}: fault refuse-open: failing it with -EIO");
            if let Err(e) = self
                .sh
                .kernel
                .reply(&proto::copen(msg_id, -(libc::EIO as i64)))
            {
                self.count(|s| s.errors += 1);
                log!(Level::Error, "copen {msg_id}: {e}");
            }
            drop(fd);
            return;
        }
        // Looking the blob up may take a while (a remote source): a worker does it.
        self.queue(
            None,
            Job::Open {
                msg_id,
                object_id,
                vkey,
                ckey,
                fd,
                flags,
            },
        );
    }

    fn read(&mut self, msg_id: u32, object_id: u32, off: u64, len: u64) {
        self.count(|s| s.reads += 1);
        log!(
            Level::Debug,
            "READ {msg_id} object {object_id}: off {off} len {len}"
        );
        let t = Instant::now();
        let Some(obj) = self.object(object_id) else {
            // The completion ioctl must be issued on the object's own anon fd: nothing to do.
            self.count(|s| s.errors += 1);
            log!(
                Level::Error,
                "READ {msg_id} for unknown object {object_id}: cannot complete it"
            );
            return;
        };
        if let Some(kind) = self.sh.opts.faults.on_read(&obj.key) {
            self.count(|s| s.faults += 1);
            self.read_fault(kind, msg_id, object_id, off, len, &obj);
            return;
        }
        let size = obj.blob.size();
        let Some((start, end)) = proto::fill_range(off, len, size, 0) else {
            log!(Level::Error, "READ {msg_id} object {object_id} off {off} len {len} ({}): nothing to fill: blob size {size}; completing anyway (the reader gets EIO)", obj.blob.location());
            let res = self.sh.kernel.complete(obj.fd.as_fd(), msg_id);
            if let Err(e) = &res {
                log!(Level::Error, "READ {msg_id}: completion ioctl failed: {e}");
            }
            let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.count(|s| {
                s.errors += 1 + u64::from(res.is_err());
                s.count_read(len, ns);
            });
            return;
        };
        // A blob whose key names its digest and that fits in the window is fetched whole,
        // wherever the READ is, so that its contents can be checked before they are cached.
        let (start, end) = if obj.digest.is_some() && size <= self.sh.opts.window {
            (0, size)
        } else {
            (start, end)
        };
        let r = ReadReq {
            msg_id,
            object_id,
            off,
            len,
            t,
        };
        let mut st = lock(&self.sh.state);
        let added = st
            .co
            .add(obj.serial, r, start, end, size, self.sh.opts.window);
        if added.new.is_empty() {
            st.stats.coalesced += 1;
            log!(
                Level::Debug,
                "READ {msg_id}: waits for {} fetch(es) in flight",
                added.joined
            );
        }
        st.stats.fetches += added.new.len() as u64;
        self.sh.in_flight.fetch_add(1, Ordering::Relaxed);
        for fetch in added.new {
            let job = Job::Fetch {
                fetch,
                obj: Arc::clone(&obj),
            };
            st.queue.push(Some(obj.key.clone()), job);
        }
        drop(st);
        self.sh.work.notify_all();
    }
}

impl<K: Kernel> Drop for Daemon<K> {
    /// Stops the workers once they finish their current job (the daemon exits through
    /// `std::process::exit` instead, without waiting for fetches in flight).
    fn drop(&mut self) {
        lock(&self.sh.state).stop = true;
        self.sh.work.notify_all();
        if let Some(pf) = &self.sh.prefetcher {
            pf.stop();
        }
        if let Some(h) = self.prefetch_thread.take() {
            let _ = h.join();
        }
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl<K: Kernel> Daemon<K> {
    /// Handles a READ of a known object the way fault `kind` says.
    fn read_fault(
        &mut self,
        kind: Kind,
        msg_id: u32,
        object_id: u32,
        off: u64,
        len: u64,
        obj: &Object,
    ) {
        let what = format!(
            "READ {msg_id} object {object_id} off {off} len {len}: fault {}",
            kind.name()
        );
        match kind {
            Kind::NoAnswer => {
                log!(Level::Warn, "{what}: leaving it unanswered");
                return;
            }
            Kind::CloseAnonFd => {
                // Forgetting the object closes its anon fd (no fetch of it runs: every READ of
                // this blob takes this path): the READ can no longer be completed.
                lock(&self.sh.objects).remove(&object_id);
                log!(
                    Level::Warn,
                    "{what}: closed the anon fd instead of answering"
                );
                return;
            }
            Kind::ExitOnRead => {
                log!(Level::Warn, "{what}: exiting with the request pending");
                self.exit_requested = true;
                return;
            }
            // refuse-open acts on OPEN only; the others write (or not) and complete below.
            Kind::RefuseOpen
            | Kind::ReadNoData
            | Kind::ShortWrite
            | Kind::MisalignedWrite
            | Kind::WritePast => {}
        }
        let size = obj.blob.size();
        let plan = fault::write_plan(kind, off, len, size, self.sh.opts.window);
        if plan.is_empty() {
            log!(Level::Warn, "{what}: writing nothing");
        }
        for p in &plan {
            let piece = format!("write of {} bytes at {}", p.len, p.at);
            match fault::write_piece(obj.fd.as_fd(), obj.blob.as_ref(), p, &mut self.buf) {
                Ok(n) => {
                    if let Source::Blob(from) = p.what {
                        self.count(|s| s.bytes_fetched += n.min(size.saturating_sub(from)));
                    }
                    if kind == Kind::MisalignedWrite {
                        log!(Level::Warn, "{what}: {piece}: accepted by the kernel");
                    } else {
                        log!(Level::Warn, "{what}: {piece}: done");
                    }
                }
                Err(e) if kind == Kind::MisalignedWrite => {
                    log!(Level::Warn, "{what}: {piece}: refused: {e}");
                }
                Err(e) => {
                    self.count(|s| s.errors += 1);
                    log!(Level::Error, "{what}: {piece}: failed: {e}");
                }
            }
        }
        if let Err(e) = self.sh.kernel.complete(obj.fd.as_fd(), msg_id) {
            self.count(|s| s.errors += 1);
            log!(Level::Error, "{what}: completion ioctl failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use crate::blobs::DirStore;
    use std::os::fd::IntoRawFd;
    use std::os::unix::fs::MetadataExt;

    /// Records replies and completions (with the inode of the fd completed on).
    #[derive(Default)]
    struct Mock {
        replies: Mutex<Vec<String>>,
        completed: Mutex<Vec<(u32, u64)>>,
    }

    impl Mock {
        fn replies(&self) -> Vec<String> {
            lock(&self.replies).clone()
        }
        /// Completions, in msg_id order (workers complete in any order).
        fn completed(&self) -> Vec<(u32, u64)> {
            let mut v = lock(&self.completed).clone();
            v.sort();
            v
        }
    }

    impl Kernel for Mock {
        fn reply(&self, cmd: &str) -> io::Result<()> {
            lock(&self.replies).push(cmd.to_string());
            Ok(())
        }
        fn complete(&self, fd: BorrowedFd<'_>, msg_id: u32) -> io::Result<()> {
            let f = std::fs::File::from(fd.try_clone_to_owned()?);
            lock(&self.completed).push((msg_id, f.metadata()?.ino()));
            Ok(())
        }
    }

    type Dm = Daemon<Arc<Mock>>;

    /// Handles `m` and waits until the workers are done with it.
    fn handle(dm: &mut Dm, m: &[u8]) {
        dm.handle_message(m);
        dm.wait_idle();
    }

    fn options(blobs: PathBuf, faults: Faults, window: u64) -> Options {
        Options {
            store: Arc::new(DirStore(blobs)),
            stats_file: None,
            window,
            faults,
            delays: Delays::default(),
            threads: 4,
            per_blob: 2,
            restarts: 0,
            prefetch: prefetch::Plan::default(),
        }
    }

    fn msg(msg_id: u32, op: u32, obj: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for x in [msg_id, op, (16 + payload.len()) as u32, obj] {
            v.extend_from_slice(&x.to_ne_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn open_payload(vkey: &[u8], ckey: &[u8], fd: i32) -> Vec<u8> {
        let mut p = Vec::new();
        for x in [vkey.len() as u32, ckey.len() as u32, fd as u32, 0] {
            p.extend_from_slice(&x.to_ne_bytes());
        }
        p.extend_from_slice(vkey);
        p.extend_from_slice(ckey);
        p
    }

    fn read_payload(off: u64, len: u64) -> Vec<u8> {
        [off.to_ne_bytes(), len.to_ne_bytes()].concat()
    }

    /// Is `fd` open on inode `ino`? (Other tests may reuse a closed fd number concurrently.)
    fn fd_is_open(fd: i32, ino: u64) -> bool {
        // SAFETY: `st` is plain data for fstat to fill; fstat only queries the descriptor.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: see above; `st` is a valid, writable stat buffer.
        unsafe { libc::fstat(fd, &mut st) == 0 && st.st_ino == ino }
    }

    #[test]
    fn open_read_close_round_trip() {
        let d = TempDir::new("daemon");
        let blobs = d.0.join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        std::fs::write(blobs.join("fsid1.img"), &data).unwrap();
        let stats_file = d.0.join("stats");
        let mock = Arc::new(Mock::default());
        let opts = Options {
            stats_file: Some(stats_file.clone()),
            ..options(blobs.clone(), Faults::default(), 0)
        };
        let mut dm = Daemon::new(opts, Arc::clone(&mock)).unwrap();

        // A regular file stands in for the anon fd the kernel would install.
        let cache = std::fs::File::create(d.0.join("cachefile")).unwrap();
        let ino = cache.metadata().unwrap().ino();
        let cfd = cache.into_raw_fd();
        handle(
            &mut dm,
            &msg(
                1,
                proto::OP_OPEN,
                5,
                &open_payload(b"erofs,fsid1\0", b"fsid1", cfd),
            ),
        );
        handle(
            &mut dm,
            &msg(2, proto::OP_READ, 5, &read_payload(5000, 100)),
        );
        handle(
            &mut dm,
            &msg(3, proto::OP_READ, 5, &read_payload(9000, 4096)),
        );
        handle(
            &mut dm,
            &msg(4, proto::OP_READ, 5, &read_payload(20000, 4096)),
        ); // past EOF
        handle(&mut dm, &msg(5, proto::OP_READ, 6, &read_payload(0, 4096))); // unknown object
        let got = std::fs::read(d.0.join("cachefile")).unwrap();
        assert_eq!(got.len(), 12288);
        assert!(got[..4096].iter().all(|&b| b == 0));
        assert_eq!(&got[4096..10_000], &data[4096..]);
        assert!(fd_is_open(cfd, ino));
        handle(&mut dm, &msg(6, proto::OP_CLOSE, 5, &[]));
        assert!(!fd_is_open(cfd, ino), "CLOSE closes the anon fd");

        // unknown blob and unsafe key: -ENOENT and the fd is closed
        for key in [&b"nope"[..], b"../blobs/fsid1.img"] {
            let f = std::fs::File::open(d.0.join("cachefile"))
                .unwrap()
                .into_raw_fd();
            handle(
                &mut dm,
                &msg(7, proto::OP_OPEN, 8, &open_payload(b"erofs,x\0", key, f)),
            );
            assert!(!fd_is_open(f, ino));
        }
        // garbage OPEN (len mismatch) still gets an answer; unknown opcodes are ignored
        let mut bad = msg(
            9,
            proto::OP_OPEN,
            9,
            &open_payload(b"erofs,x\0", b"x", 1000),
        );
        bad.truncate(bad.len() - 1);
        handle(&mut dm, &bad);
        handle(&mut dm, &msg(10, 42, 9, &[]));

        let s = dm.stats();
        assert_eq!(std::fs::read_to_string(&stats_file).unwrap(), s.render());
        drop(dm);
        assert_eq!(
            mock.replies(),
            ["copen 1,10000", "copen 7,-2", "copen 7,-2", "copen 9,-22"]
        );
        assert_eq!(mock.completed(), [(2, ino), (3, ino), (4, ino)]);
        assert_eq!((s.fetches, s.coalesced), (2, 0));
        assert_eq!((s.opens, s.reads, s.closes), (3, 4, 1));
        assert_eq!(s.bytes_fetched, 4096 + (10_000 - 8192));
        // the known object's three READs, as asked (before page rounding)
        assert_eq!(s.bytes_requested, 100 + 4096 + 4096);
        assert_eq!(s.read_len_hist[0], 3);
        // past-EOF read, unknown object, two failed opens, bad message, unknown opcode
        assert_eq!(s.errors, 6);
    }

    /// Two blobs named by digest keys, with the same 10000 bytes: `good` (`sha256:<hex>` of
    /// them) and `bad` (bare hex, nydus style, of other contents).
    struct DigestBlobs {
        d: TempDir,
        blobs: std::path::PathBuf,
        data: Vec<u8>,
        good: String,
        bad: String,
    }

    impl DigestBlobs {
        fn new(name: &str) -> DigestBlobs {
            use crate::digest::{hex, sha256};
            let d = TempDir::new(name);
            let blobs = d.0.join("blobs");
            std::fs::create_dir(&blobs).unwrap();
            let data: Vec<u8> = (0..10_000u32).map(|i| (i * 11) as u8).collect();
            let good = format!("sha256:{}", hex(&sha256(&data)));
            let bad = hex(&sha256(b"other contents"));
            std::fs::write(blobs.join(&good), &data).unwrap();
            std::fs::write(blobs.join(&bad), &data).unwrap();
            DigestBlobs {
                d,
                blobs,
                data,
                good,
                bad,
            }
        }

        /// OPENs `good` as object 5 and `bad` as object 6; returns their cache files.
        fn open(&self, dm: &mut Dm) -> Vec<std::path::PathBuf> {
            let mut files = Vec::new();
            for (obj, key) in [(5u32, self.good.as_bytes()), (6, self.bad.as_bytes())] {
                let path = self.d.0.join(format!("cache{obj}"));
                let f = std::fs::File::create(&path).unwrap();
                files.push(path);
                handle(
                    dm,
                    &msg(
                        obj,
                        proto::OP_OPEN,
                        obj,
                        &open_payload(b"erofs,x\0", key, f.into_raw_fd()),
                    ),
                );
            }
            files
        }
    }

    #[test]
    fn whole_blob_fetches_are_verified_against_digest_keys() {
        let b = DigestBlobs::new("digest");
        let data = &b.data;
        let mock = Arc::new(Mock::default());
        // a window larger than the blob: the first READ fetches it whole
        let mut dm = Daemon::new(
            options(b.blobs.clone(), Faults::default(), 1 << 20),
            Arc::clone(&mock),
        )
        .unwrap();
        let files = b.open(&mut dm);
        handle(&mut dm, &msg(10, proto::OP_READ, 5, &read_payload(0, 4096)));
        // a READ in the middle: the blob fits in the window, so it is fetched whole too
        handle(
            &mut dm,
            &msg(11, proto::OP_READ, 6, &read_payload(8192, 100)),
        );
        let s = dm.stats();
        drop(dm);
        assert_eq!(mock.replies(), ["copen 5,10000", "copen 6,10000"]);
        // both READs are completed; only the good blob's data is in its cache file
        assert_eq!(
            mock.completed().iter().map(|c| c.0).collect::<Vec<_>>(),
            [10, 11]
        );
        assert_eq!(&std::fs::read(&files[0]).unwrap()[..10_000], &data[..]);
        assert_eq!(
            std::fs::metadata(&files[1]).unwrap().len(),
            0,
            "nothing cached"
        );
        assert_eq!((s.verified, s.digest_errors), (1, 1));
        assert_eq!(s.bytes_fetched, 10_000);
        assert_eq!(s.errors, 1, "the failed READ");
    }

    #[test]
    fn whole_blob_prefetch_is_verified_against_digest_keys() {
        let b = DigestBlobs::new("pfdigest");
        let data = &b.data;
        let mock = Arc::new(Mock::default());
        let opts = Options {
            prefetch: prefetch::Plan {
                specs: [b.good.as_str(), b.bad.as_str()]
                    .iter()
                    .map(|p| prefetch::Spec::parse(p).unwrap())
                    .collect(),
                bandwidth: None,
            },
            ..options(b.blobs.clone(), Faults::default(), 1 << 20)
        };
        let mut dm = Daemon::new(opts, Arc::clone(&mock)).unwrap();
        let files = b.open(&mut dm);
        wait_for("prefetch", 10, || dm.stats().prefetch_done == 2);
        let s = dm.stats();
        assert_eq!((s.verified, s.digest_errors), (1, 1), "{s:?}");
        assert_eq!(s.prefetch_bytes, 10_000, "only the good blob");
        assert_eq!(&std::fs::read(&files[0]).unwrap()[..10_000], &data[..]);
        assert_eq!(
            std::fs::metadata(&files[1]).unwrap().len(),
            0,
            "nothing cached"
        );
    }

    /// A daemon with `faults` over a blob `fsid1` (10000 bytes) and another, `other`; OPENs
    /// both (objects 5 and 6) on regular files standing in for anon fds.
    struct Setup {
        d: TempDir,
        data: Vec<u8>,
        fds: Vec<(i32, u64)>,
    }

    fn setup(what: &str) -> Setup {
        let d = TempDir::new(what);
        let blobs = d.0.join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 13) as u8).collect();
        std::fs::write(blobs.join("fsid1"), &data).unwrap();
        std::fs::write(blobs.join("other"), &data).unwrap();
        Setup {
            d,
            data,
            fds: vec![],
        }
    }

    impl Setup {
        fn daemon(&self, faults: &[&str], mock: &Arc<Mock>) -> Dm {
            let mut f = Faults::default();
            for s in faults {
                f.add(Fault::parse(s).unwrap()).unwrap();
            }
            Daemon::new(options(self.d.0.join("blobs"), f, 0), Arc::clone(mock)).unwrap()
        }

        fn open(&mut self, dm: &mut Dm, msg_id: u32, obj: u32, key: &[u8]) {
            let name = format!("cache{obj}");
            let f = std::fs::File::create(self.d.0.join(&name)).unwrap();
            let ino = f.metadata().unwrap().ino();
            let fd = f.into_raw_fd();
            self.fds.push((fd, ino));
            handle(
                dm,
                &msg(
                    msg_id,
                    proto::OP_OPEN,
                    obj,
                    &open_payload(b"erofs,x\0", key, fd),
                ),
            );
        }

        fn cache(&self, obj: u32) -> Vec<u8> {
            std::fs::read(self.d.0.join(format!("cache{obj}"))).unwrap()
        }
    }

    use crate::fault::Fault;

    #[test]
    fn slow_blob_does_not_delay_others_and_overlaps_coalesce() {
        let mut s = setup("concurrent");
        let mock = Arc::new(Mock::default());
        let mut delays = Delays::default();
        delays.add("400:fsid1").unwrap();
        let opts = Options {
            delays,
            ..options(s.d.0.join("blobs"), Faults::default(), 0)
        };
        let mut dm = Daemon::new(opts, Arc::clone(&mock)).unwrap();
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        let t = Instant::now();
        // slow blob: a READ, the same range again, and one overlapping its end
        dm.handle_message(&msg(10, proto::OP_READ, 5, &read_payload(0, 8192)));
        dm.handle_message(&msg(11, proto::OP_READ, 5, &read_payload(0, 4096)));
        dm.handle_message(&msg(12, proto::OP_READ, 5, &read_payload(4096, 8192)));
        // then the other blob: served while the slow fetches wait
        dm.handle_message(&msg(13, proto::OP_READ, 6, &read_payload(0, 4096)));
        while !mock.completed().iter().any(|c| c.0 == 13) {
            assert!(t.elapsed().as_secs() < 10, "READ 13 never completed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let first: Vec<u32> = mock.completed().iter().map(|c| c.0).collect();
        assert_eq!(first, [13], "the fast blob's READ came first");
        assert!(t.elapsed().as_millis() < 400, "{:?}", t.elapsed());
        dm.wait_idle();
        assert!(t.elapsed().as_millis() >= 400);
        let st = dm.stats();
        drop(dm);
        let ids: Vec<u32> = mock.completed().iter().map(|c| c.0).collect();
        assert_eq!(ids, [10, 11, 12, 13], "each READ completed once");
        // [0, 8192) for 10 (11 waits for it), [8192, 12288) for 12, [0, 4096) for 13
        assert_eq!((st.reads, st.fetches, st.coalesced), (4, 3, 1));
        assert_eq!(st.bytes_fetched, 10_000 + 4096);
        let c = s.cache(5);
        assert_eq!(c.len(), 12288, "padded to a page");
        assert!(c[..10_000] == s.data[..], "slow blob's data");
        assert!(s.cache(6)[..] == s.data[..4096], "other blob's data");
    }

    #[test]
    fn fault_refuse_open() {
        let mut s = setup("refuse");
        let mock = Arc::new(Mock::default());
        let mut dm = s.daemon(&["refuse-open:fsid1"], &mock);
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        assert!(
            !fd_is_open(s.fds[0].0, s.fds[0].1),
            "refused OPEN closes the fd"
        );
        assert!(fd_is_open(s.fds[1].0, s.fds[1].1));
        let st = dm.stats();
        drop(dm);
        assert_eq!(mock.replies(), ["copen 1,-5", "copen 2,10000"]);
        assert_eq!((st.faults, st.errors, st.opens), (1, 0, 2));
    }

    #[test]
    fn fault_read_no_data_and_short_write() {
        let mut s = setup("nodata");
        let mock = Arc::new(Mock::default());
        let mut dm = s.daemon(&["read-no-data:fsid1", "short-write:other"], &mock);
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        handle(&mut dm, &msg(3, proto::OP_READ, 5, &read_payload(0, 8192)));
        handle(
            &mut dm,
            &msg(4, proto::OP_READ, 6, &read_payload(0, 10_000)),
        );
        handle(
            &mut dm,
            &msg(5, proto::OP_READ, 6, &read_payload(8192, 100)),
        );
        let st = dm.stats();
        drop(dm);
        // every READ is completed
        let ids: Vec<u32> = mock.completed().iter().map(|c| c.0).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert!(s.cache(5).is_empty(), "read-no-data wrote nothing");
        // short-write: the first two of the three pages asked for; nothing for a one-page READ
        let c = s.cache(6);
        assert_eq!(c.len(), 8192);
        assert_eq!(&c[..], &s.data[..8192]);
        assert_eq!((st.faults, st.errors, st.bytes_fetched), (3, 0, 8192));
    }

    #[test]
    fn fault_misaligned_and_write_past() {
        let mut s = setup("misaligned");
        let mock = Arc::new(Mock::default());
        let mut dm = s.daemon(&["misaligned-write:fsid1", "write-past:other"], &mock);
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        handle(
            &mut dm,
            &msg(3, proto::OP_READ, 5, &read_payload(4096, 4096)),
        );
        handle(&mut dm, &msg(4, proto::OP_READ, 6, &read_payload(9000, 10)));
        let st = dm.stats();
        drop(dm);
        assert_eq!(mock.completed().len(), 2);
        // A regular file takes the misaligned writes (the kernel's anon fd would refuse them):
        // the data lands one byte off, then one byte short.
        let c = s.cache(5);
        assert_eq!(c.len(), 4096 + 1 + 4096);
        assert_eq!(&c[4096..8191], &s.data[4096..8191]);
        assert_eq!(&c[8191..], &s.data[8190..8192]);
        // write-past: the right data, zero padding, then garbage past the blob
        let c = s.cache(6);
        assert_eq!(c.len() as u64, 12288 + fault::PAST_LEN);
        assert_eq!(&c[8192..10_000], &s.data[8192..]);
        assert!(c[10_000..12288].iter().all(|&b| b == 0));
        assert!(c[12288..].iter().all(|&b| b == fault::PAST_BYTE));
        assert_eq!((st.faults, st.errors), (2, 0));
    }

    #[test]
    fn fault_no_answer_close_exit() {
        let mut s = setup("noanswer");
        let mock = Arc::new(Mock::default());
        let mut dm = s.daemon(&["no-answer:fsid1", "close-anon-fd:other"], &mock);
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        handle(&mut dm, &msg(3, proto::OP_READ, 5, &read_payload(0, 4096)));
        handle(&mut dm, &msg(4, proto::OP_READ, 6, &read_payload(0, 4096)));
        assert!(fd_is_open(s.fds[0].0, s.fds[0].1), "no-answer keeps the fd");
        assert!(
            !fd_is_open(s.fds[1].0, s.fds[1].1),
            "close-anon-fd closed it"
        );
        // later READs of the closed object cannot be served: an error, no completion
        handle(
            &mut dm,
            &msg(5, proto::OP_READ, 6, &read_payload(4096, 4096)),
        );
        assert!(!dm.exit_requested);
        let st = dm.stats();
        drop(dm);
        assert!(mock.completed().is_empty());
        assert!(s.cache(5).is_empty() && s.cache(6).is_empty());
        assert_eq!((st.faults, st.errors, st.reads), (2, 1, 3));

        let mut s = setup("exit");
        let mock = Arc::new(Mock::default());
        let mut dm = s.daemon(&["exit-on-read"], &mock);
        s.open(&mut dm, 1, 5, b"fsid1");
        assert!(!dm.exit_requested, "OPEN is answered");
        handle(&mut dm, &msg(2, proto::OP_READ, 5, &read_payload(0, 4096)));
        assert!(dm.exit_requested);
        assert_eq!(dm.stats().faults, 1);
        drop(dm);
        assert_eq!(mock.replies(), ["copen 1,10000"]);
        assert!(mock.completed().is_empty());
    }

    /// A daemon over `setup`'s blobs with a prefetch plan, `window` and `delays`.
    fn prefetch_daemon(
        s: &Setup,
        mock: &Arc<Mock>,
        plan: &[&str],
        window: u64,
        delays: &[&str],
    ) -> Dm {
        let mut d = Delays::default();
        for x in delays {
            d.add(x).unwrap();
        }
        let opts = Options {
            delays: d,
            prefetch: prefetch::Plan {
                specs: plan
                    .iter()
                    .map(|p| prefetch::Spec::parse(p).unwrap())
                    .collect(),
                bandwidth: None,
            },
            ..options(s.d.0.join("blobs"), Faults::default(), window)
        };
        Daemon::new(opts, Arc::clone(mock)).unwrap()
    }

    fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed().as_secs() < secs, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[test]
    fn prefetch_fills_blobs_and_skips_cached_pieces() {
        let mut s = setup("prefetch");
        let mock = Arc::new(Mock::default());
        let mut dm = prefetch_daemon(&s, &mock, &["fsid1", "other:8192:10"], 4096, &[]);
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        wait_for("prefetch", 10, || dm.stats().prefetch_done == 2);
        let st = dm.stats();
        assert_eq!(
            (st.prefetch_bytes, st.prefetch_pieces),
            (10_000 + 10_000 - 8192, 4)
        );
        assert_eq!(&s.cache(5)[..10_000], &s.data[..]);
        let c = s.cache(6);
        assert_eq!(c.len(), 12288);
        assert!(c[..8192].iter().all(|&b| b == 0), "only the range");
        assert_eq!(&c[8192..10_000], &s.data[8192..]);
        // no READ was needed, none completed
        assert!(mock.completed().is_empty());
        assert_eq!(dm.in_flight(), 0);
        // the same blob again, on a cache file that has it all: nothing copied
        handle(&mut dm, &msg(3, proto::OP_CLOSE, 5, &[]));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(s.d.0.join("cache5"))
            .unwrap();
        handle(
            &mut dm,
            &msg(
                4,
                proto::OP_OPEN,
                7,
                &open_payload(b"erofs,x\0", b"fsid1", f.into_raw_fd()),
            ),
        );
        wait_for("second prefetch", 10, || dm.stats().prefetch_done == 3);
        let st2 = dm.stats();
        assert_eq!(
            (st2.prefetch_bytes, st2.prefetch_pieces),
            (st.prefetch_bytes, 4)
        );
    }

    #[test]
    fn demand_reads_go_before_prefetch() {
        let mut s = setup("prio");
        let mock = Arc::new(Mock::default());
        // `other`'s fetches take 300 ms; the prefetch of fsid1 waits while its READ is pending
        let mut dm = prefetch_daemon(&s, &mock, &["fsid1"], 4096, &["300:other"]);
        s.open(&mut dm, 1, 6, b"other");
        let t = Instant::now();
        dm.handle_message(&msg(2, proto::OP_READ, 6, &read_payload(0, 4096)));
        let f = std::fs::File::create(s.d.0.join("cache5")).unwrap();
        dm.handle_message(&msg(
            3,
            proto::OP_OPEN,
            5,
            &open_payload(b"erofs,x\0", b"fsid1", f.into_raw_fd()),
        ));
        std::thread::sleep(std::time::Duration::from_millis(150));
        assert_eq!(
            dm.stats().prefetch_bytes,
            0,
            "no prefetch while a READ is pending"
        );
        wait_for("prefetch", 10, || dm.stats().prefetch_done == 1);
        assert!(t.elapsed().as_millis() >= 300);
        assert_eq!(mock.completed().len(), 1);
        assert_eq!(&s.cache(5)[..10_000], &s.data[..]);

        // and a slow prefetch does not hold demand up: fsid1 pieces take 300 ms each
        let mut s = setup("prio2");
        let mock = Arc::new(Mock::default());
        let mut dm = prefetch_daemon(&s, &mock, &["fsid1"], 4096, &["300:fsid1"]);
        s.open(&mut dm, 1, 5, b"fsid1");
        s.open(&mut dm, 2, 6, b"other");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let t = Instant::now();
        handle(&mut dm, &msg(3, proto::OP_READ, 6, &read_payload(0, 8192)));
        assert_eq!(mock.completed().len(), 1);
        assert!(t.elapsed().as_millis() < 250, "{:?}", t.elapsed());
        assert!(
            dm.stats().prefetch_done == 0,
            "the prefetch was still running"
        );
        // CLOSE stops it before the last piece
        handle(&mut dm, &msg(4, proto::OP_CLOSE, 5, &[]));
        wait_for("prefetch end", 10, || dm.stats().prefetch_done == 1);
        assert!(dm.stats().prefetch_pieces < 3, "{:?}", dm.stats());
    }

    #[test]
    fn reads_of_a_piece_being_prefetched_wait_for_it() {
        let mut s = setup("pfjoin");
        let mock = Arc::new(Mock::default());
        // each piece of fsid1 (4096 bytes) takes 300 ms, demand fetches of it too
        let mut dm = prefetch_daemon(&s, &mock, &["fsid1"], 4096, &["300:fsid1"]);
        s.open(&mut dm, 1, 5, b"fsid1");
        std::thread::sleep(std::time::Duration::from_millis(100));
        // the first piece is being copied: a READ inside it waits for that copy
        dm.handle_message(&msg(2, proto::OP_READ, 5, &read_payload(0, 4096)));
        wait_for("the READ", 10, || mock.completed().len() == 1);
        let st = dm.stats();
        assert_eq!((st.reads, st.fetches, st.coalesced), (1, 0, 1), "{st:?}");
        assert_eq!(&s.cache(5)[..4096], &s.data[..4096]);
        wait_for("prefetch", 10, || dm.stats().prefetch_done == 1);
        assert_eq!(dm.stats().prefetch_bytes, 10_000);
        assert_eq!(dm.in_flight(), 0);
    }

    #[test]
    fn prefetch_keeps_to_the_bandwidth_cap() {
        let mut s = setup("pfcap");
        let mock = Arc::new(Mock::default());
        let opts = Options {
            prefetch: prefetch::Plan {
                specs: vec![prefetch::Spec::parse("fsid1").unwrap()],
                bandwidth: Some(20_000),
            },
            ..options(s.d.0.join("blobs"), Faults::default(), 4096)
        };
        let mut dm = Daemon::new(opts, Arc::clone(&mock)).unwrap();
        // idle time before the OPEN saves up at most a quarter second's worth of tokens
        std::thread::sleep(std::time::Duration::from_millis(300));
        let t = Instant::now();
        s.open(&mut dm, 1, 5, b"fsid1");
        wait_for("prefetch", 10, || dm.stats().prefetch_done == 1);
        // 10000 bytes at 20000 bytes/s, less the 5000 saved up: at least 0.25 s
        let el = t.elapsed().as_millis();
        assert!(el >= 240, "{el} ms");
        assert_eq!(dm.stats().prefetch_pieces, 3);
        assert_eq!(&s.cache(5)[..10_000], &s.data[..]);
    }

    #[test]
    fn snapshot_has_live_counters() {
        let mut s = setup("snap");
        let mock = Arc::new(Mock::default());
        let mut dm = prefetch_daemon(&s, &mock, &[], 0, &["200:fsid1"]);
        s.open(&mut dm, 1, 5, b"fsid1");
        let snap = dm.snapshot();
        dm.handle_message(&msg(2, proto::OP_READ, 5, &read_payload(0, 4096)));
        let live = snap();
        assert!(live.contains("\nin_flight 1\n"), "{live}");
        dm.wait_idle();
        let live = snap();
        assert!(live.contains("\nin_flight 0\n"), "{live}");
        assert!(live.contains("\nread_lat_le_256ms 1\n"), "{live}");
        assert!(live.starts_with(&dm.stats().render()));
    }
}
