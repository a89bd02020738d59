// SPDX-License-Identifier: GPL-2.0
//! Background prefetch (`--prefetch BLOB[:OFF:LEN]`, `[prefetch]` in the config file): after a
//! blob is OPENed, whole blobs or listed ranges are copied into its cache file ahead of any
//! READ, so later reads are cache hits.
//!
//! Prefetch ranks below demand: it runs on a thread of its own (never on the fetch workers),
//! one window-sized piece at a time; before each piece it waits while any demand READ is in
//! flight, so a READ never waits behind more than the one piece being copied (and not even
//! that: demand fetches run on other threads). The piece being copied is registered with the
//! daemon's coalescer ([`Host::begin`]): a READ of its range that arrives meanwhile waits for
//! the copy instead of fetching the same bytes again, and a piece that overlaps a demand fetch
//! in flight waits for that fetch. Pieces already in the cache file (SEEK_DATA /
//! SEEK_HOLE on the anon fd) are skipped. A token bucket caps the rate (`--prefetch-bandwidth`).
//! An object's prefetch stops at its CLOSE. Writes go through the object's anon fd with
//! [`crate::cache::fill_checked`], as READ's fetches do: a piece that is a whole blob whose
//! key names its digest is checked before anything is written.

use crate::blobs::BlobRead;
use crate::cache::{self, AlignedBuf, DigestMismatch};
use crate::digest::Digest;
use crate::log::Level;
use crate::proto::PAGE;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One `BLOB` (whole blob) or `BLOB:OFF:LEN` (a range of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub blob: Vec<u8>,
    pub range: Option<(u64, u64)>,
}

impl Spec {
    /// `BLOB` or `BLOB:OFF:LEN`. A blob name may contain ':' (`sha256:...`): the last two
    /// fields are a range only if both are numbers.
    pub fn parse(s: &str) -> Result<Spec, String> {
        let bad = |why: &str| format!("bad prefetch {s:?}: {why} (BLOB or BLOB:OFFSET:LENGTH)");
        let mut it = s.rsplitn(3, ':');
        let (last, mid, first) = (it.next(), it.next(), it.next());
        let spec = match (first, mid.map(parse_size), last.map(parse_size)) {
            (Some(b), Some(Ok(off)), Some(Ok(len))) => {
                if len == 0 {
                    return Err(bad("empty range"));
                }
                off.checked_add(len).ok_or_else(|| bad("range past 2^64"))?;
                Spec {
                    blob: b.as_bytes().to_vec(),
                    range: Some((off, len)),
                }
            }
            _ => Spec {
                blob: s.as_bytes().to_vec(),
                range: None,
            },
        };
        if crate::blobs::safe_name(&spec.blob).is_none() {
            return Err(bad("not a blob name"));
        }
        Ok(spec)
    }
}

/// A byte count: digits with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("bad size {s:?}: a number with an optional K, M or G suffix");
    let (num, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// What to prefetch, and how fast.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub specs: Vec<Spec>,
    /// Bytes per second (None: no cap).
    pub bandwidth: Option<u64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// The pieces to copy for blob `key` of `size` bytes: page-aligned ranges (the last may end
    /// at EOF) of at most `window` bytes (1 MiB if 0), in offset order, overlaps merged,
    /// clipped to the blob.
    pub fn pieces(&self, key: &[u8], size: u64, window: u64) -> Vec<(u64, u64)> {
        let window = if window == 0 {
            1 << 20
        } else {
            window.next_multiple_of(PAGE)
        };
        let mut ranges: Vec<(u64, u64)> = self
            .specs
            .iter()
            .filter(|s| s.blob == key)
            .filter_map(|s| {
                let (off, len) = s.range.unwrap_or((0, size));
                let start = off & !(PAGE - 1);
                // A piece's end is page aligned (or EOF): cache::fill pads the last page
                // of a piece with zeros, which is only right at EOF.
                let end = off.saturating_add(len).saturating_add(PAGE - 1) & !(PAGE - 1);
                let end = end.min(size);
                (start < end).then_some((start, end))
            })
            .collect();
        ranges.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in ranges {
            match merged.last_mut() {
                // Starts are page aligned: touching ranges merge too (the end may be unaligned
                // only at EOF).
                Some(last) if s <= last.1.next_multiple_of(PAGE) => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        let mut out = Vec::new();
        for (s, e) in merged {
            let mut p = s;
            while p < e {
                // Pieces end on window boundaries, like demand fetches.
                let next = ((p / window) + 1).saturating_mul(window).min(e);
                out.push((p, next));
                p = next;
            }
        }
        out
    }
}

/// A token bucket: `rate` bytes per second, at most `burst` bytes saved up. Starts empty.
/// Taking more than there is leaves a debt the caller sleeps off.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate: u64, burst: u64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate.max(1),
            burst,
            tokens: 0.0,
            last: now,
        }
    }

    /// Takes `n` bytes at `now`: how long to wait before using them.
    pub fn take(&mut self, n: u64, now: Instant) -> Duration {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.rate as f64).min(self.burst as f64);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate as f64)
        }
    }
}

/// An open object prefetch writes into.
pub trait Target: Send + Sync {
    fn fd(&self) -> BorrowedFd<'_>;
    fn blob(&self) -> &dyn BlobRead;
    fn key(&self) -> &[u8];
    /// The digest the blob's key names, if any: a piece that is the whole blob is checked
    /// against it before it is written, as a whole-blob READ fetch is.
    fn digest(&self) -> Option<&Digest>;
}

/// What the prefetch thread needs from the daemon.
pub trait Host: Send + Sync {
    /// Demand READs are waiting for their data.
    fn demand_pending(&self) -> bool;
    /// Object `object_id` is still the open object `serial` (not CLOSEd).
    fn alive(&self, object_id: u32, serial: u64) -> bool;
    /// Extra latency of fetches from blob `key` (`--source-delay-ms`).
    fn delay(&self, key: &[u8]) -> Duration;
    /// Registers the copy of `[start, end)` of open object `serial` about to start, so that
    /// demand READs of that range wait for it rather than fetch it again. None if a demand
    /// fetch overlapping the range is in flight (try again after it). Every `Some(id)` must be
    /// followed by [`Host::end`].
    fn begin(&self, serial: u64, start: u64, end: u64) -> Option<u64>;
    /// The copy registered as `id` on `obj` is over (`ok`: its data is in the cache file):
    /// completes the READs that waited for it alone.
    fn end(&self, obj: &dyn Target, id: u64, ok: bool);
    /// A piece of `bytes` blob bytes was copied (`verified`: against the key's digest).
    fn copied(&self, bytes: u64, verified: bool);
    /// A piece that was the whole blob did not match the key's digest (nothing was written).
    fn digest_error(&self);
    /// An object's prefetch is over (all pieces copied or skipped, or stopped).
    fn finished(&self);
}

/// The prefetch of one opened object.
pub struct Task {
    pub object_id: u32,
    pub serial: u64,
    pub obj: Arc<dyn Target>,
    pub pieces: VecDeque<(u64, u64)>,
}

#[derive(Default)]
struct State {
    tasks: VecDeque<Task>,
    stop: bool,
}

pub struct Prefetcher {
    state: Mutex<State>,
    cv: Condvar,
    bucket: Option<Mutex<TokenBucket>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How often the prefetch thread looks again while demand READs are pending.
const YIELD_POLL: Duration = Duration::from_millis(2);

/// Is `[start, end)` all data in the file behind `fd` (no hole)? False if unknown.
pub fn present(fd: BorrowedFd<'_>, start: u64, end: u64) -> bool {
    let end = end.next_multiple_of(PAGE);
    let (Ok(s), Ok(e)) = (libc::off_t::try_from(start), libc::off_t::try_from(end)) else {
        return false;
    };
    // SAFETY: lseek on a live borrowed descriptor; no memory is passed.
    let data = unsafe { libc::lseek(fd.as_raw_fd(), s, libc::SEEK_DATA) };
    if data != s {
        return false;
    }
    // SAFETY: as above.
    let hole = unsafe { libc::lseek(fd.as_raw_fd(), s, libc::SEEK_HOLE) };
    hole >= e
}

impl Prefetcher {
    /// A prefetcher capped at `bandwidth` bytes/s (None: no cap). While idle it saves up at
    /// most a quarter second's worth of tokens (and no more than a `window`), so a prefetch
    /// never runs much faster than the cap, even right after a quiet spell.
    pub fn new(bandwidth: Option<u64>, window: u64) -> Arc<Prefetcher> {
        let window = if window == 0 { 1 << 20 } else { window };
        Arc::new(Prefetcher {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            bucket: bandwidth.map(|r| {
                let burst = (r / 4).min(window).max(PAGE);
                Mutex::new(TokenBucket::new(r, burst, Instant::now()))
            }),
        })
    }

    /// Starts the prefetch thread.
    pub fn start(
        self: &Arc<Self>,
        host: Arc<dyn Host>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("prefetch".into())
            .spawn(move || me.run(host.as_ref()))
    }

    pub fn add(&self, task: Task) {
        lock(&self.state).tasks.push_back(task);
        self.cv.notify_all();
    }

    pub fn stop(&self) {
        lock(&self.state).stop = true;
        self.cv.notify_all();
    }

    fn stopped(&self) -> bool {
        lock(&self.state).stop
    }

    fn run(&self, host: &dyn Host) {
        let mut buf = None;
        loop {
            let task = {
                let mut st = lock(&self.state);
                loop {
                    if st.stop {
                        return;
                    }
                    if let Some(t) = st.tasks.pop_front() {
                        break t;
                    }
                    st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            self.run_task(host, task, &mut buf);
            host.finished();
        }
    }

    /// Sleeps `d`, in slices so that a stop is noticed. False if told to stop.
    fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    /// Waits while demand READs are pending. False if told to stop.
    fn yield_to_demand(&self, host: &dyn Host) -> bool {
        while host.demand_pending() {
            if self.stopped() {
                return false;
            }
            std::thread::sleep(YIELD_POLL);
        }
        !self.stopped()
    }

    fn run_task(&self, host: &dyn Host, mut task: Task, buf: &mut Option<AlignedBuf>) {
        let obj = Arc::clone(&task.obj);
        let loc = obj.blob().location();
        let t0 = Instant::now();
        let (mut copied, mut skipped) = (0u64, 0u64);
        while let Some((s, e)) = task.pieces.pop_front() {
            if !self.yield_to_demand(host) {
                return;
            }
            if !host.alive(task.object_id, task.serial) {
                log!(
                    Level::Info,
                    "prefetch of {loc} stopped: the object was closed"
                );
                return;
            }
            if present(obj.fd(), s, e) {
                skipped += e - s;
                continue;
            }
            if let Some(b) = &self.bucket {
                let wait = lock(b).take(e - s, Instant::now());
                if !self.sleep(wait) {
                    return;
                }
                // Demand that came in meanwhile goes first (and may have filled the piece).
                if !self.yield_to_demand(host) {
                    return;
                }
                if present(obj.fd(), s, e) {
                    skipped += e - s;
                    continue;
                }
            }
            // From here on a demand READ of the piece waits for this copy (coalesced).
            let Some(id) = host.begin(task.serial, s, e) else {
                // A demand fetch of part of it is in flight: after it, look again.
                task.pieces.push_front((s, e));
                if !self.sleep(YIELD_POLL) {
                    return;
                }
                continue;
            };
            if !self.sleep(host.delay(obj.key())) {
                host.end(obj.as_ref(), id, false);
                return;
            }
            if !host.alive(task.object_id, task.serial) {
                host.end(obj.as_ref(), id, false);
                log!(
                    Level::Info,
                    "prefetch of {loc} stopped: the object was closed"
                );
                return;
            }
            let res = match buf {
                Some(b) => Ok(b),
                None => AlignedBuf::new(cache::CHUNK).map(|b| buf.insert(b)),
            }
            .and_then(|b| cache::fill_checked(obj.fd(), obj.blob(), s, e, b, obj.digest()));
            host.end(obj.as_ref(), id, res.is_ok());
            match res {
                Ok(f) => {
                    copied += f.bytes;
                    host.copied(f.bytes, f.verified);
                }
                Err(err) => {
                    if DigestMismatch::of(&err).is_some() {
                        host.digest_error();
                    }
                    log!(
                        Level::Warn,
                        "prefetch of {loc} [{s}, {e}): {err}: stopping it"
                    );
                    return;
                }
            }
        }
        log!(
            Level::Info,
            "prefetch of {loc} done: {copied} bytes copied, {skipped} already cached, in {:?}",
            t0.elapsed()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_and_sizes() {
        assert_eq!(
            Spec::parse("blob1").unwrap(),
            Spec {
                blob: b"blob1".to_vec(),
                range: None
            }
        );
        assert_eq!(
            Spec::parse("blob1:0:4194304").unwrap().range,
            Some((0, 4 << 20))
        );
        assert_eq!(Spec::parse("b:4K:1M").unwrap().range, Some((4096, 1 << 20)));
        let s = Spec::parse("sha256:abc").unwrap();
        assert_eq!((s.blob.as_slice(), s.range), (&b"sha256:abc"[..], None));
        let s = Spec::parse("sha256:abc:10:20").unwrap();
        assert_eq!(
            (s.blob.as_slice(), s.range),
            (&b"sha256:abc"[..], Some((10, 20)))
        );
        for bad in ["", "a/b", "..", "b:0:0", "b:1:18446744073709551615"] {
            assert!(Spec::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("20M"), Ok(20 << 20));
        assert_eq!(parse_size("3k"), Ok(3072));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        for bad in ["", "M", "1.5M", "-1", "1T", "99999999999G", " 1"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pieces() {
        let plan = Plan {
            specs: vec![
                Spec::parse("b:5000:100").unwrap(),
                Spec::parse("b:4096:4096").unwrap(),
                Spec::parse("b:3M:10M").unwrap(),
                Spec::parse("other").unwrap(),
            ],
            bandwidth: None,
        };
        let size = (3 << 20) + 1500000;
        assert_eq!(
            plan.pieces(b"b", size, 1 << 20),
            [(4096, 8192), (3 << 20, (4 << 20)), (4 << 20, size)]
        );
        let odd = Plan {
            specs: vec![Spec::parse("b:100:5000").unwrap()],
            bandwidth: None,
        };
        assert_eq!(
            odd.pieces(b"b", 1 << 20, 0),
            [(0, 8192)],
            "ends rounded up to a page"
        );
        assert_eq!(odd.pieces(b"b", 6000, 0), [(0, 6000)], "or to EOF");
        assert_eq!(
            plan.pieces(b"other", 2500000, 1 << 20),
            [(0, 1 << 20), (1 << 20, 2 << 20), (2 << 20, 2500000)]
        );
        assert!(plan.pieces(b"none", 100, 0).is_empty());
        assert!(plan.pieces(b"b", 1000, 0).is_empty(), "ranges past EOF");
        // a range that is not window aligned ends its first piece on a window boundary
        let plan = Plan {
            specs: vec![Spec::parse("b:12288:1M").unwrap()],
            bandwidth: None,
        };
        assert_eq!(
            plan.pieces(b"b", 10 << 20, 65536),
            (0..17)
                .map(|i| {
                    let s = if i == 0 { 12288 } else { i * 65536 };
                    (s, ((i + 1) * 65536).min(12288 + (1 << 20)))
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn token_bucket() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut b = TokenBucket::new(1000, 500, t0);
        // starts empty: 500 bytes at 1000/s cost 0.5 s
        assert_eq!(b.take(500, t0).as_millis(), 500);
        // the debt is paid at 0.5 s: nothing saved up, 100 more cost 0.1 s
        assert_eq!(b.take(100, ms(500)).as_millis(), 100);
        // long idle: at most `burst` saved up
        assert_eq!(b.take(500, ms(10_000)), Duration::ZERO);
        assert_eq!(b.take(250, ms(10_000)).as_millis(), 250);
        // over a long run the rate holds: 10 x 200 bytes from an empty bucket take 2 s
        let mut b = TokenBucket::new(1000, 200, t0);
        let mut now = t0;
        for _ in 0..10 {
            now += b.take(200, now);
        }
        assert_eq!((now - t0).as_millis(), 2000);
        // time going backwards does not mint tokens
        let mut b = TokenBucket::new(1000, 1000, ms(1000));
        assert_eq!(b.take(100, t0).as_millis(), 100);
    }
}
