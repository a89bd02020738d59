// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers of fscache volumes, cookies and on-demand read operations.
//!
//! This is erofs_rs's replacement for `erofs_fscache_read_io_async()` of fs/erofs/fscache.c: a
//! blob range is read into the page cache by `prepare_ondemand_read` (which, on a cache miss, sends
//! a READ request to the user daemon through `/dev/cachefiles` and waits for it) followed by
//! `fscache_read` (direct I/O on the cache file). A range is read either synchronously
//! (`read_into_mapping`, `read_into_buf`: every piece waited for, then the operation ended) or
//! asynchronously (`read_into_mapping_async`: the operation is ended, and the caller told, by
//! whichever piece ends last). Either way each piece's completion is counted exactly once,
//! however `prepare_ondemand_read` splits the range (C's 6.12 pseudo-bio completes more than once).

use crate::ffi;
use kernel::ffi::c_void;
use core::pin::Pin;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::{eopnotsupp};
use kernel::bindings;
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVec};
use kernel::error::{code::*, Error, Result};
use kernel::str::CStr;
use kernel::types::Opaque;

/// An fscache volume (`erofs,<domain_id|fsid>`), relinquished on drop.
///
/// # Invariants
///
/// `self.0` is a volume returned by `fscache_acquire_volume()` that has not been relinquished.
pub(crate) struct Volume(NonNull<ffi::FscacheVolume>);

// SAFETY: fscache volumes are reference-counted kernel objects usable from any thread.
unsafe impl Send for Volume {}
// SAFETY: all operations on a volume go through fscache, which does its own locking.
unsafe impl Sync for Volume {}

impl Volume {
    /// Acquires the volume `name`. Fails with `EBUSY` if it is in use (same fsid mounted twice),
    /// or `eopnotsupp()` when no cache is bound (no cachefiles daemon).
    pub(crate) fn acquire(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a valid NUL-terminated string for the duration of the call;
        // fscache copies it.
        let v = unsafe { ffi::erofs_rs_acquire_volume(name.as_char_ptr()) };
        if let Some(err) = ffi::ptr_err(v) {
            return Err(Error::from_errno(err));
        }
        // INVARIANT: non-NULL and not an error pointer: an acquired volume.
        NonNull::new(v).map(Self).ok_or(eopnotsupp())
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the volume is acquired; it is relinquished once, here.
        unsafe { ffi::erofs_rs_relinquish_volume(self.0.as_ptr()) };
    }
}

/// An fscache cookie for one blob, in use for as long as it lives.
///
/// # Invariants
///
/// `ptr` was returned by `fscache_acquire_cookie()` and `fscache_use_cookie()` was called on it;
/// it is unused and relinquished only on drop. The volume it belongs to outlives it (owners drop
/// cookies before their volume).
pub(crate) struct Cookie {
    ptr: NonNull<ffi::FscacheCookie>,
    /// Where the last fetch the granule asked for ended (blob offset): a miss in the block
    /// that starts there continues a sequential stream through the blob.
    fetch_next: AtomicU64,
    /// Blocks the last fetch asked for (1 to [`MAX_FETCH_BLOCKS`]): doubled along a stream.
    fetch_blocks: AtomicU32,
}

/// Most granule blocks one miss asks for (along a sequential stream; 8 MiB with the default
/// 1 MiB granule), and never more bytes than the largest granule (`fetch_kb=16384`).
const MAX_FETCH_BLOCKS: u32 = 8;

// SAFETY: fscache cookies are reference-counted kernel objects usable from any thread.
unsafe impl Send for Cookie {}
// SAFETY: reads on a cookie from several threads are what fscache is built for.
unsafe impl Sync for Cookie {}

impl Cookie {
    /// Acquires and uses the cookie `key` (a blob name: fsid, device tag or `device=` value).
    pub(crate) fn acquire(volume: &Volume, key: &[u8]) -> Result<Self> {
        // SAFETY: the volume is acquired (type invariant) and `key` is valid for `key.len()`
        // bytes during the call; fscache copies it.
        let c = unsafe {
            ffi::erofs_rs_acquire_cookie(volume.0.as_ptr(), key.as_ptr().cast(), key.len())
        };
        // INVARIANT: a non-NULL return is an acquired cookie, and the shim used it.
        let ptr = NonNull::new(c).ok_or(EINVAL)?;
        Ok(Self { ptr, fetch_next: AtomicU64::new(u64::MAX), fetch_blocks: AtomicU32::new(1) })
    }

    /// The blob range to ask the daemon for when a read of `want` bytes at blob offset `pos`
    /// misses the cache, with fetch granule `grain` bytes (`fetch_kb=`; 0: `[pos, pos + want)`
    /// only, as in-tree erofs asks): `[pos, pos + want)` widened to whole `grain`-aligned
    /// blocks of the blob, but not past the end of the blob as the daemon declared it in its
    /// copen reply (never past `pos + want` when that size is unknown). Always
    /// `start <= pos` and `end >= pos + want` (saturating).
    ///
    /// A miss in the block where the previous fetch of this blob ended continues a sequential
    /// stream: it asks for twice as many blocks as that fetch (up to [`MAX_FETCH_BLOCKS`]),
    /// as readahead ramps up its window; any other miss asks for one block. So a stream costs
    /// few READs, and a random reader fetches one block per miss.
    ///
    /// cachefiles asks the daemon only for what is not cached (an asked range stops at the
    /// first cached byte), so on a cold read the blob is fetched in aligned blocks, each once,
    /// whatever order the files are read in; and a cached range costs nothing more than
    /// before (see [`Cookie::issue_reads`]).
    fn fetch_range(&self, pos: u64, want: u64, grain: u64) -> (u64, u64) {
        let end = pos.saturating_add(want);
        if grain == 0 {
            return (pos, end);
        }
        let start = pos - pos % grain;
        // Heuristic state, racy by design: concurrent readers of the blob only make a stream
        // look random (one block) or an interleaved one look sequential (a larger fetch).
        let blocks = if self.fetch_next.load(Ordering::Relaxed) == start {
            self.fetch_blocks.load(Ordering::Relaxed).saturating_mul(2).clamp(1, MAX_FETCH_BLOCKS)
        } else {
            1
        };
        let span = u64::from(blocks)
            .saturating_mul(grain)
            .min(u64::from(crate::options::MAX_FETCH_KB) * 1024);
        // SAFETY: the cookie is acquired (type invariant); the shim only reads a field.
        let size = unsafe { ffi::erofs_rs_cookie_object_size(self.ptr.as_ptr()) };
        let size = u64::try_from(size).unwrap_or(0);
        let wide = end.div_ceil(grain).checked_mul(grain).unwrap_or(end).max(start.saturating_add(span));
        let wide_end = wide.min(size).max(end);
        self.fetch_next.store(wide_end, Ordering::Relaxed);
        self.fetch_blocks.store(blocks, Ordering::Relaxed);
        (start, wide_end)
    }

    /// Reads `len` bytes at blob offset `pos` into the page cache of `mapping`, at file offset
    /// `start`, and waits for the read to finish. On a cache miss the daemon is asked for the
    /// `grain`-aligned blocks around the range (see [`Cookie::fetch_range`]).
    ///
    /// # Safety
    ///
    /// The caller holds the lock of every folio of `mapping` covering `[start, start + len)`, so
    /// nobody else writes or frees them during the read.
    pub(crate) unsafe fn read_into_mapping(
        &self,
        pos: u64,
        mapping: *mut bindings::address_space,
        start: u64,
        len: usize,
        grain: u64,
    ) -> Result {
        let start = i64::try_from(start).map_err(|_| EIO)?;
        let iter = Opaque::<bindings::iov_iter>::uninit();
        // SAFETY: `iter` is writable storage; the shim initialises it over the page cache range,
        // whose folios the caller keeps locked.
        unsafe { ffi::erofs_rs_iter_mapping(iter.get(), mapping, start, len) };
        // SAFETY: `iter` is initialised and describes folios the caller keeps locked until we
        // return (this function's contract).
        unsafe { self.read_iter(pos, &iter, grain) }
    }

    /// Reads `buf.len()` bytes at blob offset `pos` into `buf` and waits for the read to finish.
    ///
    /// `buf` should be page aligned and a whole number of pages long (e.g. a `KVVec` of such
    /// a capacity): the cache reads with direct I/O, which refuses (`EIO`) memory not aligned
    /// to the cache device's blocks. A read that finds part of the range cached and part not
    /// is done piece by piece (see [`Cookie::read_iter`]).
    pub(crate) fn read_into_buf(&self, pos: u64, buf: &mut [u8], grain: u64) -> Result {
        if buf.is_empty() {
            return Ok(());
        }
        let pages = buf.len().div_ceil(bindings::PAGE_SIZE) + 1;
        let mut bvecs = KVec::from_elem(bindings::bio_vec::default(), pages, GFP_KERNEL)?;
        let nr = kernel::ffi::c_uint::try_from(pages).map_err(|_| EINVAL)?;
        let iter = Opaque::<bindings::iov_iter>::uninit();
        // SAFETY: `iter` is writable storage and `bvecs` has room for `nr` entries; `buf` is
        // valid for `buf.len()` bytes. The shim checks that every page of `buf` has a
        // `struct page` (linear map or vmalloc).
        let ret = unsafe {
            ffi::erofs_rs_iter_kbuf(
                iter.get(),
                bvecs.as_mut_ptr(),
                nr,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `iter` is initialised over `bvecs`, which describe `buf`; both outlive the
        // call, which waits for every read, and `buf` is borrowed mutably, so nothing else
        // touches it meanwhile.
        let r = unsafe { self.read_iter(pos, &iter, grain) };
        // SAFETY: `buf` is valid for its length; no read into it is in flight any more.
        unsafe { ffi::erofs_rs_kbuf_read_done(buf.as_mut_ptr().cast(), buf.len()) };
        r
    }

    /// Issues `fscache_read()` calls on `cres` for the blob from `pos` until `iter` is consumed:
    /// each step first calls `prepare_ondemand_read` (on a hole cachefiles asks the daemon for
    /// the `grain`-aligned blocks around the rest of the range, see [`Cookie::fetch_range`], and
    /// waits; with `grain` 0 it probes and asks in one call; it may shorten the step at a
    /// cached/uncached boundary), then reads the step. Each read takes one count of `pending`
    /// before it is issued; its `end_io(priv_, ...)`, which cachefiles calls exactly once per
    /// call (also when it fails before submitting), drops it. Stops at the first failure and
    /// returns it; reads already issued still end through `end_io`.
    ///
    /// # Safety
    ///
    /// `cres` holds a begun cache operation; `iter` is initialised and describes memory reserved
    /// for these reads until every `end_io` has run; `end_io` may be called with `priv_` until
    /// then.
    #[allow(clippy::too_many_arguments)]
    unsafe fn issue_reads(
        &self,
        cres: *mut ffi::CacheResources,
        mut pos: i64,
        iter: *mut bindings::iov_iter,
        grain: u64,
        pending: &AtomicUsize,
        end_io: ffi::TermFn,
        priv_: *mut c_void,
    ) -> Result {
        loop {
            // SAFETY: `iter` is initialised (caller's guarantee).
            let orig = unsafe { ffi::erofs_rs_iov_iter_count(iter) };
            if orig == 0 {
                return Ok(());
            }
            let mut n = orig;
            // SAFETY: `cres` holds a begun operation. Asking (no granule), a hole sleeps
            // (killably) until the daemon has answered; otherwise it is only reported.
            let mut source = unsafe { ffi::erofs_rs_prepare_ondemand_read(cres, pos, &mut n, grain == 0) };
            if source != ffi::NETFS_READ_FROM_CACHE && grain != 0 {
                // A miss: fetch the granule-aligned blocks around the range. From their start
                // first, if that is before `pos` (cachefiles asks only from the offset it is
                // given); then from `pos`, which is normally cached by then (no READ), else
                // asked for up to the blocks' end.
                let p = u64::try_from(pos).map_err(|_| EIO)?;
                let want = u64::try_from(orig).map_err(|_| EIO)?;
                let (start, end) = self.fetch_range(p, want, grain);
                if start < p {
                    let mut len = usize::try_from(end - start).map_err(|_| EIO)?;
                    let at = i64::try_from(start).map_err(|_| EIO)?;
                    // SAFETY: as above; this one asks the daemon on a hole.
                    let s = unsafe { ffi::erofs_rs_prepare_ondemand_read(cres, at, &mut len, true) };
                    if s == ffi::NETFS_INVALID_READ {
                        crate::erofs_err!("blob fetch at {} (+{}) for a read at {} failed", start, end - start, pos);
                        return Err(EIO);
                    }
                }
                n = usize::try_from(end - p).map_err(|_| EIO)?;
                // SAFETY: as above; this one asks the daemon on a hole.
                source = unsafe { ffi::erofs_rs_prepare_ondemand_read(cres, pos, &mut n, true) };
            }
            if source != ffi::NETFS_READ_FROM_CACHE || n == 0 {
                crate::erofs_err!("blob read at {} failed: cache source {}", pos, source);
                return Err(EIO);
            }
            // What is cached from `pos` on may reach past what we read (a widened ask).
            let n = n.min(orig);
            // SAFETY: `iter` is initialised and `n <= orig`.
            unsafe { ffi::erofs_rs_iov_iter_truncate(iter, n) };
            pending.fetch_add(1, Ordering::AcqRel);
            // SAFETY: `cres` is live, `iter` describes memory reserved for this read and `priv_`
            // stays valid for `end_io` (caller's guarantee); the count taken above is the read's.
            let ret = unsafe { ffi::erofs_rs_cache_read(cres, pos, iter, end_io, priv_) };
            if ret != 0 && ret != -(bindings::EIOCBQUEUED as i32) {
                crate::erofs_err!("blob read at {} failed: {}", pos, ret);
                return Err(Error::from_errno(ret));
            }
            // SAFETY: `iter` is initialised.
            if unsafe { ffi::erofs_rs_iov_iter_count(iter) } != 0 {
                // fscache_read() consumes the whole (truncated) iterator or fails.
                return Err(EIO);
            }
            // SAFETY: `iter` is initialised; `orig - n` bytes remain of the original range.
            unsafe { ffi::erofs_rs_iov_iter_reexpand(iter, orig - n) };
            // `n <= orig`, and the whole range fits the memory handed in.
            pos = i64::try_from(n).ok().and_then(|n| pos.checked_add(n)).ok_or(EIO)?;
        }
    }

    /// Reads the blob from offset `pos` into the memory `iter` describes, until `iter` is
    /// consumed, and waits for every read to finish (`erofs_fscache_read_io_async`).
    ///
    /// `prepare_ondemand_read` may shorten each step at a cached/uncached boundary (the part
    /// not cached is first fetched by the daemon): the range is then read in several pieces,
    /// each one `fscache_read` with its own completion, all counted by one [`ReadOp`] and
    /// waited for before the cache operation ends. Each piece completes exactly once (C's
    /// 6.12 pseudo-bio completes its bio once per piece).
    ///
    /// # Safety
    ///
    /// `iter` is initialised and describes memory nobody else reads, writes or frees until
    /// this function returns.
    unsafe fn read_iter(&self, pos: u64, iter: &Opaque<bindings::iov_iter>, grain: u64) -> Result {
        let pos = i64::try_from(pos).map_err(|_| EIO)?;
        let op = core::pin::pin!(ReadOp::new());
        op.as_ref().init();

        let mut cres = ffi::CacheResources {
            ops: core::ptr::null(),
            cache_priv: core::ptr::null_mut(),
            cache_priv2: core::ptr::null_mut(),
            debug_id: 0,
            inval_counter: 0,
        };
        // SAFETY: `cres` is zeroed storage for a `netfs_cache_resources` and the cookie is in use.
        let ret = unsafe { ffi::erofs_rs_begin_read(&mut cres, self.ptr.as_ptr()) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        // From here `cres` holds a cache operation that must be ended, after all reads on it
        // have completed: `op.finish()` waits for them.
        let op_ptr = (&*op as *const ReadOp).cast_mut().cast();
        // SAFETY: `cres` was begun above; `iter` describes memory reserved for these reads
        // (caller's guarantee) and `op` outlives every read because `op.finish()` below waits
        // for every `end_io` call.
        let result = unsafe {
            self.issue_reads(&mut cres, pos, iter.get(), grain, &op.pending, ReadOp::end_io, op_ptr)
        };
        let io_result = op.finish();
        // SAFETY: no read on `cres` is in flight any more (`finish` waited for all of them).
        unsafe { ffi::erofs_rs_end_operation(&mut cres) };
        result.and(io_result)
    }
}

/// Called exactly once with the result of a [`Cookie::read_into_mapping_async`] call: either
/// before that call returns, or later from the I/O completion, which may run in interrupt
/// context, so it must not sleep.
pub(crate) type ReadDone = unsafe fn(ctx: *const c_void, result: Result);

/// Whom an asynchronous read reports to: `done(ctx, result)`.
#[derive(Clone, Copy)]
pub(crate) struct OnDone {
    pub(crate) done: ReadDone,
    pub(crate) ctx: *const c_void,
}

/// One asynchronous read into the page cache: its cache operation, the iterator over its range,
/// and the count of its `fscache_read()` calls still in flight (`struct erofs_fscache_io`).
///
/// # Invariants
///
/// Lives on the heap (from `KBox::into_raw`) until `pending` drops to zero. Until then `cres`
/// holds a begun cache operation. Whoever drops `pending` to zero owns the object: it ends the
/// cache operation, frees the object and calls `done(ctx, ...)`, each exactly once. The
/// submitter holds one count until it has issued every read, so only it touches `cres` and
/// `iter` meanwhile; completions touch only `pending` and `error`.
struct AsyncRead {
    cres: ffi::CacheResources,
    iter: Opaque<bindings::iov_iter>,
    pending: AtomicUsize,
    /// First error reported by a read, as a negative errno, or 0.
    error: AtomicI32,
    on_done: OnDone,
}

impl AsyncRead {
    /// Drops one count; the last one ends the cache operation, frees the object and reports.
    ///
    /// # Safety
    ///
    /// `this` is a live `AsyncRead` (type invariant) and the caller owns one of its counts.
    unsafe fn put(this: *mut AsyncRead) {
        // SAFETY: live while the caller's count is held (caller's guarantee); only the field is
        // borrowed, which completions share.
        if unsafe { &(*this).pending }.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // SAFETY: the count was the last one: nobody else refers to the object any more, and it
        // came from `KBox::into_raw` (type invariant).
        let mut this = unsafe { KBox::from_raw(this) };
        // SAFETY: the operation was begun and every read on it has ended; ended once, here.
        unsafe { ffi::erofs_rs_end_operation(&mut this.cres) };
        let result = match this.error.load(Ordering::Acquire) {
            0 => Ok(()),
            e => Err(Error::from_errno(e)),
        };
        let on_done = this.on_done;
        drop(this);
        // SAFETY: called once, as `read_into_mapping_async`'s caller was promised.
        unsafe { (on_done.done)(on_done.ctx, result) };
    }

    /// `netfs_io_terminated_t` of asynchronous reads: once per `fscache_read()` call.
    ///
    /// # Safety
    ///
    /// Only the kernel calls this, with the arguments its C contract describes.
    unsafe extern "C" fn end_io(priv_: *mut c_void, transferred_or_error: isize, _was_async: bool) {
        let this = priv_.cast::<AsyncRead>();
        if transferred_or_error < 0 {
            // SAFETY: the read holds a count of the `AsyncRead` passed to `fscache_read()`.
            let error = unsafe { &(*this).error };
            // The value is a negative errno, so it fits in an i32.
            let _ = error.compare_exchange(0, transferred_or_error as i32, Ordering::AcqRel, Ordering::Acquire);
        }
        // SAFETY: this call owns the count taken for its read.
        unsafe { AsyncRead::put(this) };
    }
}

impl Cookie {
    /// Starts reading `len` bytes at blob offset `pos` into the page cache of `mapping` at file
    /// offset `start`, and returns without waiting for the cache I/O (`erofs_fscache_read_io_async`).
    ///
    /// On a cache miss this still waits for the daemon to fetch the range (inside
    /// `prepare_ondemand_read`); only the reads from the cache file complete later. A range that
    /// is part cached and part not is read in pieces, as [`Cookie::read_iter`] does. On a
    /// cache miss the daemon is asked for the `grain`-aligned blocks around the range
    /// ([`Cookie::fetch_range`]). When
    /// every read has ended, `on_done.done(on_done.ctx, result)` is called exactly once,
    /// possibly before this returns, possibly in interrupt context.
    ///
    /// # Safety
    ///
    /// The caller holds the lock of every folio of `mapping` covering `[start, start + len)`
    /// until `on_done` is called, and `on_done.done` is safe to call with `on_done.ctx`.
    pub(crate) unsafe fn read_into_mapping_async(
        &self,
        pos: u64,
        mapping: *mut bindings::address_space,
        start: u64,
        len: usize,
        grain: u64,
        on_done: OnDone,
    ) {
        let OnDone { done, ctx } = on_done;
        let (Ok(pos), Ok(start)) = (i64::try_from(pos), i64::try_from(start)) else {
            // SAFETY: `done` takes `ctx` (caller's guarantee); called once, here.
            unsafe { done(ctx, Err(EIO)) };
            return;
        };
        let new = AsyncRead {
            cres: ffi::CacheResources {
                ops: core::ptr::null(),
                cache_priv: core::ptr::null_mut(),
                cache_priv2: core::ptr::null_mut(),
                debug_id: 0,
                inval_counter: 0,
            },
            iter: Opaque::uninit(),
            pending: AtomicUsize::new(1),
            error: AtomicI32::new(0),
            on_done,
        };
        let mut a = match KBox::new(new, GFP_KERNEL) {
            Ok(a) => a,
            Err(_) => {
                // SAFETY: as above.
                unsafe { done(ctx, Err(ENOMEM)) };
                return;
            }
        };
        // SAFETY: `cres` is zeroed storage for a `netfs_cache_resources` and the cookie is in use.
        let ret = unsafe { ffi::erofs_rs_begin_read(&mut a.cres, self.ptr.as_ptr()) };
        if ret != 0 {
            drop(a);
            // SAFETY: as above.
            unsafe { done(ctx, Err(Error::from_errno(ret))) };
            return;
        }
        // SAFETY: `iter` is writable storage; the shim initialises it over the page cache range,
        // whose folios the caller keeps locked until `done`.
        unsafe { ffi::erofs_rs_iter_mapping(a.iter.get(), mapping, start, len) };
        // INVARIANT: on the heap, with the operation begun and the submitter's count.
        let a = KBox::into_raw(a);
        // SAFETY: we hold the submitter's count, so `a` lives; completions touch only `pending`
        // and `error`, so these two fields are ours alone until `put` below.
        let (cres, iter) = unsafe { (&mut (*a).cres as *mut ffi::CacheResources, (*a).iter.get()) };
        // SAFETY: the operation is begun; `iter` describes locked folios reserved for these reads
        // until `on_done` (caller's guarantee), which comes after every `end_io`; each read's
        // count keeps `a` alive until its `end_io`.
        let r = unsafe { self.issue_reads(cres, pos, iter, grain, &(*a).pending, AsyncRead::end_io, a.cast()) };
        if let Err(e) = r {
            // SAFETY: `a` lives (submitter's count).
            let error = unsafe { &(*a).error };
            let _ = error.compare_exchange(0, e.to_errno(), Ordering::AcqRel, Ordering::Acquire);
        }
        // SAFETY: drops the submitter's count, which we own.
        unsafe { AsyncRead::put(a) };
    }
}

impl Drop for Cookie {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the cookie is acquired and used; undone once, here.
        unsafe { ffi::erofs_rs_relinquish_cookie(self.ptr.as_ptr()) };
    }
}

/// The completion state of the reads issued for one `read_into_mapping()` call.
struct ReadOp {
    done: Opaque<bindings::completion>,
    /// Reads not yet ended, plus one held by the submitter until `finish()`.
    pending: AtomicUsize,
    /// First error reported by an `end_io`, as a negative errno, or 0.
    error: AtomicI32,
}

impl ReadOp {
    /// Creates the state; `init` must run once it is pinned, before any read is issued.
    fn new() -> Self {
        Self {
            done: Opaque::uninit(),
            pending: AtomicUsize::new(1),
            error: AtomicI32::new(0),
        }
    }

    /// Initialises the completion in place. A completion's wait queue points to itself, so
    /// it must not move after this: hence `Pin`.
    fn init(self: Pin<&Self>) {
        // SAFETY: `done` is storage for a completion, pinned from now on.
        unsafe { ffi::erofs_rs_init_completion(self.done.get()) };
    }

    /// `netfs_io_terminated_t`: called once per `fscache_read()`, possibly from another context.
    ///
    /// # Safety
    ///
    /// Only the kernel calls this, with the arguments its C contract describes.
    unsafe extern "C" fn end_io(priv_: *mut c_void, transferred_or_error: isize, _was_async: bool) {
        // SAFETY: `priv_` is the `ReadOp` passed to `fscache_read()`, kept alive by `finish()`
        // until this call has dropped its count.
        let op = unsafe { &*priv_.cast::<ReadOp>() };
        if transferred_or_error < 0 {
            // The value is a negative errno, so it fits in an i32.
            let _ = op.error.compare_exchange(
                0,
                transferred_or_error as i32,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        if op.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            // SAFETY: the completion was initialised in `new()`; after this store the waiter may
            // free `op`, and `complete()` is the last access.
            unsafe { bindings::complete(op.done.get()) };
        }
    }

    /// Drops the submitter's count, waits for every read to end, returns their result.
    fn finish(&self) -> Result {
        if self.pending.fetch_sub(1, Ordering::AcqRel) != 1 {
            // SAFETY: initialised in `new()`; the last `end_io` completes it. Not killable:
            // in-flight direct I/O writes into the page cache and must end before we return.
            unsafe { bindings::wait_for_completion(self.done.get()) };
        }
        match self.error.load(Ordering::Acquire) {
            0 => Ok(()),
            e => Err(Error::from_errno(e)),
        }
    }
}
