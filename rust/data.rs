// SPDX-License-Identifier: GPL-2.0

//! The read path: `read_folio` of blob page caches (metadata) and of files and directories.
//!
//! A run of locked folios (one for `read_folio`, the whole window for `readahead`) is filled
//! piece by piece from the format layer's mappings: each mapped extent piece is read from the blob
//! of its device with one fscache read (`Cookie::read_into_mapping`; on a cache miss, one READ
//! request for the whole piece), holes and the space past EOF are zeroed, and inline tails are
//! copied from the metadata blob. Compressed files go through `read_run_compressed`: the run's
//! extents mapped, their pclusters read (adjacent ones with one fscache read into a buffer) and
//! decoded from each extent's start (see Documentation/design.md, "Compressed files"). Folios
//! are marked up to date only if the whole run succeeded, and each is unlocked exactly once
//! (`LockedFolio`). `read_folio` waits for its reads; `readahead` returns once its cache reads
//! are issued and the last one to end finishes the window's folios ([`Window`]).

use crate::folio::{LockedFolio, RamMap};
use crate::fscache::{Cookie, OnDone};
use crate::super_::{format_errno, BStr, MetaSource, SbInfo};
use crate::{erofs_err, ffi, format, inode, Ops};
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use kernel::alloc::{flags::GFP_KERNEL, KBox, KVVec, KVec};
use kernel::ffi::{c_int, c_void};
use crate::{efscorrupted};
use kernel::bindings;
use kernel::error::{code::*, Result};

fn meta_read(folio: &mut LockedFolio) -> Result {
    let mapping = folio.mapping();
    // SAFETY: a blob page cache's host inode keeps a pointer to its cookie in `i_private`, valid
    // for the inode's life (see `BlobCache`).
    let cookie = unsafe { (*(*mapping).host).i_private.cast::<Cookie>().as_ref() }.ok_or(EIO)?;
    let pos = folio.pos();
    // SAFETY: the blob inode belongs to an erofs_rs super block (`BlobCache::new`) whose
    // `s_fs_info` is NULL while `fill_super` reads the on-disk super block, then a live `SbInfo`
    // until `kill_sb` has dropped the blob caches (and with them this page cache).
    let grain = unsafe { SbInfo::try_from_sb((*(*mapping).host).i_sb) }.map_or(0, SbInfo::fetch_bytes);
    // SAFETY: the whole folio is ours to fill: it is locked.
    unsafe { cookie.read_into_mapping(pos, mapping, pos, folio.size(), grain)? };
    folio.set_uptodate();
    Ok(())
}

/// `address_space_operations.read_folio` of blob page caches.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn meta_read_folio(_file: *mut bindings::file, folio: *mut bindings::folio) -> c_int {
    // SAFETY: `read_folio` gets a locked folio and must unlock it: `LockedFolio` does, on drop.
    let Some(mut folio) = (unsafe { LockedFolio::from_raw(folio) }) else {
        return EINVAL.to_errno();
    };
    match meta_read(&mut folio) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// A contiguous run of locked folios of one mapping: what `read_folio` (one folio) and
/// `readahead` (the whole window) fill. Offsets are relative to the first folio.
///
/// # Invariants
///
/// `folios` are adjacent in the file, in order, all of `mapping`, starting at file offset `start`,
/// and together `len` bytes long.
struct FolioRun {
    mapping: *mut bindings::address_space,
    start: u64,
    len: u64,
    folios: KVec<LockedFolio>,
    /// Offset in the run from which to zero once the window's reads have ended (the bytes
    /// past EOF in the last folio, which a read of the file's last block also fills).
    zero_after_io: Option<u64>,
}

impl FolioRun {
    /// A run of `first`, with room for `cap` folios (at least one) before it must grow.
    fn new(first: LockedFolio, cap: usize) -> Result<Self> {
        let (mapping, start, len) = (first.mapping(), first.pos(), first.size() as u64);
        // On failure `first` is dropped, which unlocks it: the caller reports the error.
        let mut folios = KVec::with_capacity(cap.max(1), GFP_KERNEL)?;
        folios.push(first, GFP_KERNEL)?;
        Ok(Self { mapping, start, len, folios, zero_after_io: None })
    }

    /// Appends the next folio of the file; false (and the folio unlocked) if it does not fit.
    fn push(&mut self, folio: LockedFolio) -> bool {
        if folio.mapping() != self.mapping || folio.pos() != self.start + self.len {
            return false;
        }
        let size = folio.size() as u64;
        if self.folios.push(folio, GFP_KERNEL).is_err() {
            return false;
        }
        self.len += size;
        true
    }

    /// Calls `f(folio, offset_in_folio, length, offset_in_range)` for each folio piece of
    /// `[off, off + n)` of the run.
    fn for_each(
        &mut self,
        off: u64,
        n: u64,
        mut f: impl FnMut(&mut LockedFolio, usize, usize, u64) -> Result,
    ) -> Result {
        let end = off.checked_add(n).filter(|&e| e <= self.len).ok_or(EINVAL)?;
        let mut fstart = 0u64;
        for folio in self.folios.iter_mut() {
            let fsize = folio.size() as u64;
            let (lo, hi) = (off.max(fstart), end.min(fstart + fsize));
            if lo < hi {
                f(folio, (lo - fstart) as usize, (hi - lo) as usize, lo - off)?;
            }
            fstart += fsize;
        }
        Ok(())
    }

    fn zero(&mut self, off: u64, n: u64) -> Result {
        self.for_each(off, n, |folio, foff, len, _| folio.zero(foff, len))
    }

    /// The run's pages mapped contiguously (see [`RamMap`]), or `None` if they cannot be.
    ///
    /// # Safety
    ///
    /// The map is dropped before the run (the folios stay locked while it lives), and the run's
    /// other methods are not called while a slice of the map is borrowed.
    unsafe fn ram_map(&self) -> Option<RamMap> {
        let count = usize::try_from(self.len).ok()? / bindings::PAGE_SIZE;
        let mut pages = KVec::with_capacity(count, GFP_KERNEL).ok()?;
        for folio in self.folios.iter() {
            folio.push_pages(&mut pages).ok()?;
        }
        // SAFETY: the pages of the run's locked folios, which its owner fills; the caller keeps
        // them so (and does not write them otherwise while a slice is borrowed) for the map's life.
        unsafe { RamMap::new(&mut pages) }
    }

    /// Marks every folio up to date: the whole run was filled.
    fn set_uptodate(&mut self) {
        for folio in self.folios.iter_mut() {
            folio.set_uptodate();
        }
    }
}

/// How [`read_run`] reads the extents that live on a device.
#[derive(Clone, Copy)]
enum Issue {
    /// Each read is waited for (`read_folio`).
    Wait,
    /// Reads are started and counted in the window, which finishes the folios when the last one
    /// ends (`readahead`).
    Async(*mut Window),
}

/// Fills a run of folios of a file, directory or symlink from the image. The caller marks the
/// folios up to date on success (with [`Issue::Async`], the window does, once every read has
/// ended without error).
fn read_run(run: &mut FolioRun, issue: Issue) -> Result {
    // SAFETY: the mapping of locked folios has a live host inode.
    let inode = unsafe { (*run.mapping).host };
    // SAFETY: a file, directory or symlink inode of a mounted erofs_rs super block.
    let (info, ii) = unsafe { (SbInfo::from_sb((*inode).i_sb), inode::info(inode)?) };
    let raw = &ii.raw;
    if raw.datalayout.is_compressed() {
        // SAFETY: as above, `inode` is live and belongs to a mounted erofs_rs super block.
        let sb = unsafe { (*inode).i_sb };
        return read_run_compressed(run, sb, info, ii);
    }
    let meta = info.meta()?;
    let src = MetaSource(meta);
    let mut off = 0u64;
    while off < run.len {
        let lpos = run.start + off;
        if lpos >= raw.size {
            run.zero(off, run.len - off)?;
            break;
        }
        let m = format::map(&src, &info.fs, raw, lpos).map_err(|e| {
            erofs_err!(
                "{}: nid {}: cannot map offset {}: {:?}",
                BStr(info.opts.fsid.as_bytes()),
                raw.nid,
                lpos,
                e
            );
            format_errno(e)
        })?;
        // The format layer guarantees `m.logical <= lpos < m.logical + m.length`.
        let skip = lpos.checked_sub(m.logical).ok_or(efscorrupted())?;
        let avail = m.length.checked_sub(skip).filter(|&a| a > 0).ok_or(efscorrupted())?;
        let n = avail.min(run.len - off);
        // Device routing as `erofs_map_dev` does in fscache mode (extra devices are never
        // flattened into the primary): an extent on device 0 inside a device slot's
        // `mapped_blkaddr` range is read from that device, relative to the range's start.
        let dev = if m.mapped && !m.meta {
            format::map_device(&info.fs, &info.slots, false, m.device, m.physical).map_err(|e| {
                erofs_err!(
                    "{}: nid {}: extent on device {} at {}: no such device",
                    BStr(info.opts.fsid.as_bytes()),
                    raw.nid,
                    m.device,
                    m.physical
                );
                format_errno(e)
            })?
        } else {
            format::DeviceMapping { device: 0, physical: m.physical }
        };
        let phys = dev.physical.checked_add(skip).ok_or(efscorrupted())?;
        if !m.mapped {
            run.zero(off, n)?;
        } else if m.meta {
            // The tail lives in the metadata blob right after the inode: copy it.
            let want = n.min(raw.size - lpos);
            run.for_each(off, want, |folio, foff, len, done| {
                folio.fill_with(foff, len, |dst, d2| {
                    src.read_exact(phys + done + d2 as u64, dst).map_err(format_errno)
                })
            })?;
            run.zero(off + want, n - want)?;
        } else {
            // An extent past the end of its device is corrupt metadata: refuse it before
            // reading anything (the cache would fail only at the blob's end, after garbage).
            let limit = info.device_bytes.get(usize::from(dev.device)).copied().unwrap_or(0);
            if limit != 0 && dev.physical.checked_add(m.length).map_or(true, |end| end > limit) {
                erofs_err!(
                    "{}: nid {}: extent at {} (+{}) past the end of device {} ({} bytes)",
                    BStr(info.opts.fsid.as_bytes()),
                    raw.nid,
                    dev.physical,
                    m.length,
                    dev.device,
                    limit
                );
                return Err(efscorrupted());
            }
            let cookie = info.cookie(dev.device)?;
            let len = usize::try_from(n).map_err(|_| efscorrupted())?;
            let grain = info.fetch_bytes();
            if let Issue::Async(w) = issue {
                // SAFETY: the submitter's count keeps the window alive; completions touch
                // only its counters.
                let (pending, failed) = unsafe { (&(*w).pending, &(*w).failed) };
                if failed.load(Ordering::Acquire) {
                    // An earlier read failed: read_folio retries the rest and reports.
                    return Err(EIO);
                }
                pending.fetch_add(1, Ordering::AcqRel);
                // One fscache read for the whole extent piece: on a cache miss, one READ
                // request; the cache I/O completes in the background.
                // SAFETY: `[lpos, lpos + n)` lies in folios of this run, which stay locked until
                // the window's last count is dropped, after `window_read_done` for this read;
                // the count taken above is that call's.
                unsafe {
                    cookie.read_into_mapping_async(
                        phys,
                        run.mapping,
                        lpos,
                        len,
                        grain,
                        OnDone { done: window_read_done, ctx: w.cast_const().cast() },
                    )
                };
                off += n;
                continue;
            }
            // One fscache read for the whole extent piece: on a cache miss, one READ request.
            // SAFETY: `[lpos, lpos + n)` lies in folios of this run, which we hold locked.
            unsafe { cookie.read_into_mapping(phys, run.mapping, lpos, len, grain) }.inspect_err(|e| {
                erofs_err!(
                    "{}: nid {}: reading device {} at {} failed: {:?}",
                    BStr(info.opts.fsid.as_bytes()),
                    raw.nid,
                    dev.device,
                    phys,
                    e
                );
            })?;
        }
        off += n;
    }
    // Bytes past EOF in the last folio read as zeros (mmap shows them). A read in flight may
    // still be filling them (the file's last block, from the blob): then the window zeroes
    // them once every read has ended.
    let end = raw.size.saturating_sub(run.start);
    if end < run.len {
        if matches!(issue, Issue::Async(_)) {
            run.zero_after_io = Some(end);
        } else {
            run.zero(end, run.len - end)?;
        }
    }
    Ok(())
}

/// A readahead window whose reads are in flight (`struct erofs_fscache_rq`): its folios stay
/// locked until the last read has ended, then, from that read's completion, the bytes past EOF
/// are zeroed and the folios marked up to date (if no read failed) and unlocked. So
/// `readahead` returns once the cache I/O is issued, and the reader copies the window before
/// this one while it runs, as with C's asynchronous readahead.
///
/// # Invariants
///
/// Lives on the heap (from `KBox::into_raw`) until `pending` drops to zero; whoever drops it to
/// zero owns the window and frees it, which unlocks the folios. The submitter holds one count
/// until it has issued every read: until then only it touches `run`; completions touch only
/// `pending` and `failed`.
struct Window {
    run: FolioRun,
    pending: AtomicUsize,
    failed: AtomicBool,
}

/// Drops one count of a window; the last one finishes its folios.
///
/// # Safety
///
/// `w` is a live window (type invariant) and the caller owns one of its counts.
unsafe fn window_put(w: *mut Window) {
    // SAFETY: live while the caller's count is held; only the counter is borrowed.
    if unsafe { &(*w).pending }.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // SAFETY: that was the last count: the window is ours alone and came from `KBox::into_raw`.
    let mut w = unsafe { KBox::from_raw(w) };
    if !w.failed.load(Ordering::Acquire) {
        let run = &mut w.run;
        let zeroed = match run.zero_after_io {
            Some(from) => run.len.checked_sub(from).map_or(Err(EINVAL), |n| run.zero(from, n)),
            None => Ok(()),
        };
        if zeroed.is_ok() {
            run.set_uptodate();
        }
    }
    // Unlocks every folio (marked up to date first if the window succeeded). Nothing of the
    // super block is touched after this: each read ended its cache operation before its
    // `done` call, so umount, which waits for these folio locks, may proceed.
    drop(w);
}

/// [`crate::fscache::ReadDone`] of a window's reads: may run in interrupt context.
///
/// # Safety
///
/// `ctx` is a live window and the call owns the count taken for its read.
unsafe fn window_read_done(ctx: *const kernel::ffi::c_void, result: Result) {
    let w = ctx.cast::<Window>().cast_mut();
    if result.is_err() {
        // SAFETY: live while this call's count is held.
        unsafe { &(*w).failed }.store(true, Ordering::Release);
    }
    // SAFETY: this call owns one count (caller's guarantee).
    unsafe { window_put(w) };
}

use format::Source as _;

/// Where the data of one piece of a compressed run comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PieceSource {
    /// The packed inode (a fragment).
    Fragment,
    /// An inline pcluster (ztailpacking), in the metadata page cache.
    Meta,
    /// A pcluster on device `device` at byte `physical` (after `mapped_blkaddr` routing).
    Device { device: u16, physical: u64 },
}

/// One piece of a run over a compressed file: the run's bytes `[off, off + n)` come from
/// the extent `ext`, whose data comes from `source`.
struct Piece {
    ext: format::ZExtent,
    off: u64,
    n: u64,
    source: PieceSource,
}

/// At most this many bytes of adjacent pclusters are read in one fscache read (a single
/// pcluster may be larger: up to 1 MiB).
const MAX_BATCH: u64 = 1 << 20;

/// The first `n` bytes of `buf`, grown (with its old contents dropped) if it is shorter. With
/// `whole_pages`, a new buffer is a whole number of pages long, so that it is page aligned
/// (kmalloc'ed power-of-two sizes are naturally aligned, larger ones come from the page
/// allocator or vmalloc) as direct I/O from the cache file needs.
fn grow(buf: &mut KVVec<u8>, n: usize, whole_pages: bool) -> Result<&mut [u8]> {
    if buf.len() < n {
        let cap = if whole_pages {
            n.checked_next_multiple_of(bindings::PAGE_SIZE).ok_or(EINVAL)?
        } else {
            n
        };
        // Free the old buffer before allocating the new one.
        *buf = KVVec::new();
        *buf = KVVec::from_elem(0u8, cap, GFP_KERNEL)?;
    }
    buf.get_mut(..n).ok_or(EINVAL)
}

/// Where the pcluster of `ext` lives (routed by `mapped_blkaddr` as `erofs_map_dev` does),
/// refused as corrupt if it ends past its device.
fn pcluster_source(info: &SbInfo, nid: u64, ext: &format::ZExtent) -> Result<PieceSource> {
    if ext.fragment {
        return Ok(PieceSource::Fragment);
    }
    if ext.meta {
        return Ok(PieceSource::Meta);
    }
    let fsid = BStr(info.opts.fsid.as_bytes());
    let dev = format::map_device(&info.fs, &info.slots, false, 0, ext.physical).map_err(|e| {
        erofs_err!("{}: nid {}: pcluster at {}: no such device", fsid, nid, ext.physical);
        format_errno(e)
    })?;
    let limit = info.device_bytes.get(usize::from(dev.device)).copied().unwrap_or(0);
    if limit != 0 && dev.physical.checked_add(ext.plength).map_or(true, |end| end > limit) {
        erofs_err!(
            "{}: nid {}: pcluster at {} (+{}) past the end of device {} ({} bytes)",
            fsid,
            nid,
            dev.physical,
            ext.plength,
            dev.device,
            limit
        );
        return Err(efscorrupted());
    }
    Ok(PieceSource::Device { device: dev.device, physical: dev.physical })
}

/// The pclusters read for a run: `buf` holds `len` bytes of device `device` from byte
/// `start` (adjacent pclusters of the run, read with one fscache read), or an inline pcluster
/// (`meta`).
struct Batch {
    buf: KVVec<u8>,
    meta: bool,
    device: u16,
    start: u64,
    len: u64,
}

impl Batch {
    /// The bytes `[physical, physical + len)` of device `device` (or of the metadata with
    /// `meta`) if the batch holds them.
    fn get(&self, meta: bool, device: u16, physical: u64, len: u64) -> Option<&[u8]> {
        if self.meta != meta || self.device != device || physical < self.start {
            return None;
        }
        let at = physical - self.start;
        if at.checked_add(len)? > self.len {
            return None;
        }
        let at = usize::try_from(at).ok()?;
        self.buf.get(at..)?.get(..usize::try_from(len).ok()?)
    }
}

/// The pcluster of `pieces[i]` (not a fragment): from `batch` if it holds it, else read into
/// it: an inline pcluster from the metadata page cache, else the pcluster together with the
/// pclusters of the next pieces that follow it on its device without a gap (at most
/// [`MAX_BATCH`] bytes), in one fscache read, so that on a cache miss a readahead window
/// costs one on-demand request per run of adjacent pclusters, not one per pcluster.
fn load_pcluster<'a>(batch: &'a mut Batch, info: &SbInfo, nid: u64, pieces: &[Piece], i: usize) -> Result<&'a [u8]> {
    let piece = pieces.get(i).ok_or(EINVAL)?;
    let plen = piece.ext.plength;
    let (meta, device, physical) = match piece.source {
        PieceSource::Fragment => return Err(EINVAL),
        PieceSource::Meta => (true, 0, piece.ext.physical),
        PieceSource::Device { device, physical } => (false, device, physical),
    };
    if batch.get(meta, device, physical, plen).is_none() {
        let mut end = physical.checked_add(plen).ok_or(efscorrupted())?;
        if !meta {
            for next in pieces.iter().skip(i + 1) {
                let PieceSource::Device { device: d, physical: p } = next.source else { break };
                let Some(e) = p.checked_add(next.ext.plength) else { break };
                // Adjacent, or the same pcluster again (partial references, lclusters).
                if d != device || p < physical || p > end || e - physical > MAX_BATCH {
                    break;
                }
                end = end.max(e);
            }
        }
        let len = end - physical;
        batch.len = 0;
        let n = usize::try_from(len).map_err(|_| efscorrupted())?;
        let dst = grow(&mut batch.buf, n, true)?;
        if meta {
            MetaSource(info.meta()?).read_exact_kernel(physical, dst)
        } else {
            info.cookie(device)?.read_into_buf(physical, dst, info.fetch_bytes())
        }
        .inspect_err(|e| {
            erofs_err!(
                "{}: nid {}: reading pclusters at {} (+{}) of device {} failed: {:?}",
                BStr(info.opts.fsid.as_bytes()),
                nid,
                physical,
                len,
                device,
                e
            );
        })?;
        (batch.meta, batch.device, batch.start, batch.len) = (meta, device, physical, len);
    }
    batch.get(meta, device, physical, plen).ok_or(EINVAL)
}

/// Copies `n` bytes of the packed inode's data at `pos` into the run at `off`
/// (`z_erofs_read_fragment`): a fragment, the tail (or all) of a compressed file.
fn read_fragment(
    run: &mut FolioRun,
    off: u64,
    n: u64,
    sb: *mut bindings::super_block,
    info: &SbInfo,
    nid: u64,
    pos: u64,
) -> Result {
    let fsid = BStr(info.opts.fsid.as_bytes());
    let packed = inode::iget_ref(sb, info.fs.packed_nid).inspect_err(|e| {
        erofs_err!("{}: nid {}: cannot read the packed inode {}: {:?}", fsid, nid, info.fs.packed_nid, e);
    })?;
    // SAFETY: a live inode of this super block (we hold a reference), set up by `iget`.
    let pinfo = unsafe { inode::info(packed.as_ptr()) }?;
    if pos.checked_add(n).map_or(true, |end| end > pinfo.raw.size) {
        erofs_err!(
            "{}: nid {}: fragment at {} (+{}) past the end of the packed inode ({} bytes)",
            fsid,
            nid,
            pos,
            n,
            pinfo.raw.size
        );
        return Err(efscorrupted());
    }
    // SAFETY: as above.
    let mapping = unsafe { (*packed.as_ptr()).i_mapping };
    run.for_each(off, n, |folio, foff, len, done| {
        folio.fill_with(foff, len, |dst, d2| {
            // In range: `pos + n` does not overflow and `done + d2 + dst.len() <= n`.
            let at = pos + done + d2 as u64;
            // SAFETY: the packed inode, and so its mapping, lives while we hold `packed`.
            unsafe { crate::folio::read_mapping_bytes(mapping, at, dst) }
        })
    })
}

/// The kernel's decoders, which in-tree erofs uses too, behind the format layer's
/// [`format::Decoder`] contract: `lib/lz4` (`LZ4_decompress_safe[_partial]`, the "safe"
/// variants: they never read past `src` or write past `dst` whatever the input), and through
/// the C shim `lib/zlib_inflate`, `lib/zstd` and `lib/xz`'s MicroLZMA decoder (which are
/// bounded by their buffers too).
///
/// DEFLATE and Zstandard need a workspace, MicroLZMA a decoder state: each is taken at the
/// first extent that needs it from the super block's [`DecoderSlots`] (or allocated), used for
/// the rest of the read, and given back when the read ends, so that a file's reads do not
/// allocate (C keeps a pool of streams). Two concurrent readers: the second allocates its own,
/// and one of the two is freed at the end.
pub(crate) struct KernelDecoders<'a> {
    /// The workspace, once taken or allocated. Only its capacity is used (C fills it).
    ws: Option<KBox<KVVec<u8>>>,
    /// The MicroLZMA state, once taken or allocated.
    lzma: Option<LzmaState>,
    /// Where they come from and go back to.
    slots: &'a DecoderSlots,
}

/// The algorithms [`KernelDecoders`] decodes (a bitmap of algorithm ids, for
/// [`format::ComprConfig::read_with`]): all four of the format.
pub(crate) const KERNEL_DECODERS: u16 = (1 << format::Z_EROFS_COMPRESSION_LZ4)
    | (1 << format::Z_EROFS_COMPRESSION_LZMA)
    | (1 << format::Z_EROFS_COMPRESSION_DEFLATE)
    | (1 << format::Z_EROFS_COMPRESSION_ZSTD);

impl<'a> KernelDecoders<'a> {
    fn new(slots: &'a DecoderSlots) -> Self {
        KernelDecoders { ws: None, lzma: None, slots }
    }

    /// A workspace of at least `n` bytes (uninitialized memory, for C to use).
    fn workspace(&mut self, n: usize) -> format::Result<*mut c_void> {
        let mut ws = match self.ws.take().or_else(|| self.slots.ws.take()) {
            Some(ws) => ws,
            None => KBox::new(KVVec::new(), GFP_KERNEL).map_err(|_| format::Error::Io)?,
        };
        if ws.capacity() < n {
            // Free the old one before allocating the new one.
            *ws = KVVec::new();
            *ws = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| format::Error::Io)?;
        }
        let p = ws.as_mut_ptr().cast();
        self.ws = Some(ws);
        Ok(p)
    }

    /// The MicroLZMA state for dictionaries of `dict_size` bytes (the super block's, so a
    /// parked state always has it).
    fn lzma_state(&mut self, dict_size: u32) -> format::Result<&LzmaState> {
        let state = match self.lzma.take().or_else(|| self.slots.lzma.take()) {
            Some(st) => st,
            None => LzmaState::new(dict_size).ok_or(format::Error::Io)?,
        };
        Ok(self.lzma.insert(state))
    }
}

impl Drop for KernelDecoders<'_> {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            self.slots.ws.put(ws);
        }
        if let Some(st) = self.lzma.take() {
            self.slots.lzma.put(st);
        }
    }
}

/// The decoder resources a super block keeps between reads (see [`KernelDecoders`]).
pub(crate) struct DecoderSlots {
    /// A DEFLATE or Zstandard workspace.
    ws: Slot<KBox<KVVec<u8>>>,
    /// A MicroLZMA decoder state for the image's dictionary size.
    lzma: Slot<LzmaState>,
}

impl DecoderSlots {
    pub(crate) fn new() -> Self {
        DecoderSlots { ws: Slot::new(), lzma: Slot::new() }
    }
}

/// An owned object that can be parked in a [`Slot`] as a raw pointer.
pub(crate) trait Parkable: Sized {
    /// What the raw pointer points to.
    type Target;
    /// Gives up ownership as a non-null pointer.
    fn into_raw(self) -> *mut Self::Target;
    /// Takes ownership back.
    ///
    /// # Safety
    ///
    /// `p` comes from [`Parkable::into_raw`] of this type and nothing else owns it.
    unsafe fn from_raw(p: *mut Self::Target) -> Self;
}

impl Parkable for KBox<KVVec<u8>> {
    type Target = KVVec<u8>;
    fn into_raw(self) -> *mut KVVec<u8> {
        KBox::into_raw(self)
    }
    unsafe fn from_raw(p: *mut KVVec<u8>) -> Self {
        // SAFETY: `p` came from `KBox::into_raw` and is ours (the caller's contract).
        unsafe { KBox::from_raw(p) }
    }
}

/// One object parked in the super block between reads: a single slot, taken and given back
/// with atomic swaps (no lock: a reader that finds it empty allocates its own).
///
/// Invariant: the pointer is null or comes from [`Parkable::into_raw`] of a `T` that nothing
/// else owns.
pub(crate) struct Slot<T: Parkable>(AtomicPtr<T::Target>, core::marker::PhantomData<T>);

impl<T: Parkable> Slot<T> {
    fn new() -> Self {
        Self(AtomicPtr::new(core::ptr::null_mut()), core::marker::PhantomData)
    }

    fn take(&self) -> Option<T> {
        let p = self.0.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer in the slot came from `T::into_raw` and the swap made us
        // its only owner (type invariant).
        Some(unsafe { T::from_raw(p) })
    }

    fn put(&self, v: T) {
        let p = v.into_raw();
        if let Err(p) = self.0.compare_exchange(core::ptr::null_mut(), p, Ordering::AcqRel, Ordering::Acquire) {
            // The slot is taken: free ours.
            // SAFETY: `p` came from `T::into_raw` just above and was not stored.
            drop(unsafe { T::from_raw(p) });
        }
    }
}

impl<T: Parkable> Drop for Slot<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

/// An `xz_dec_microlzma` decoder state in single-call mode (`XZ_SINGLE`: the output buffer is
/// the dictionary, so the state is all there is, about 30 KiB), for one dictionary size.
///
/// Invariant: the pointer comes from `erofs_rs_microlzma_alloc` and is owned by this value
/// (freed on drop with `xz_dec_microlzma_end`).
pub(crate) struct LzmaState(core::ptr::NonNull<c_void>);

impl LzmaState {
    fn new(dict_size: u32) -> Option<Self> {
        // SAFETY: no pointers in; returns a new state or null.
        core::ptr::NonNull::new(unsafe { ffi::erofs_rs_microlzma_alloc(dict_size) }).map(LzmaState)
    }
}

impl Drop for LzmaState {
    fn drop(&mut self) {
        // SAFETY: the state is ours and not used after this (type invariant).
        unsafe { ffi::xz_dec_microlzma_end(self.0.as_ptr()) }
    }
}

impl Parkable for LzmaState {
    type Target = c_void;
    fn into_raw(self) -> *mut c_void {
        let p = self.0.as_ptr();
        core::mem::forget(self);
        p
    }
    unsafe fn from_raw(p: *mut c_void) -> Self {
        // SAFETY: `p` came from `into_raw` of an `LzmaState`, so it is non-null and owned
        // (the caller's contract); the new value owns it.
        LzmaState(unsafe { core::ptr::NonNull::new_unchecked(p) })
    }
}

impl format::Decoder for KernelDecoders<'_> {
    fn lz4(&mut self, src: &[u8], dst: &mut [u8], mode: format::Lz4Mode) -> format::Result<usize> {
        // The same answers as the format layer's decoder for the edge cases lib/lz4 does not
        // define the same way: an empty output or input.
        if dst.is_empty() {
            return match (mode, src) {
                (format::Lz4Mode::Partial, _) | (format::Lz4Mode::Full, [0]) => Ok(0),
                _ => Err(format::Error::Corrupted),
            };
        }
        if src.is_empty() {
            return Err(format::Error::Corrupted);
        }
        let (Ok(n_src), Ok(n_dst)) = (c_int::try_from(src.len()), c_int::try_from(dst.len())) else {
            return Err(format::Error::Corrupted);
        };
        let (s, d) = (src.as_ptr().cast(), dst.as_mut_ptr().cast());
        let ret = match mode {
            // SAFETY: `s` is valid for reads of `n_src` bytes and `d` for writes of `n_dst`
            // bytes (they are the slices); the safe decoders stay inside both.
            format::Lz4Mode::Full => unsafe { ffi::LZ4_decompress_safe(s, d, n_src, n_dst) },
            // SAFETY: as above; the target is the whole output.
            format::Lz4Mode::Partial => unsafe { ffi::LZ4_decompress_safe_partial(s, d, n_src, n_dst, n_dst) },
        };
        // A negative result is a malformed block; never more than `dst.len()` otherwise.
        usize::try_from(ret).ok().filter(|&n| n <= dst.len()).ok_or(format::Error::Corrupted)
    }

    fn deflate(&mut self, src: &[u8], dst: &mut [u8]) -> format::Result<format::Inflated> {
        // SAFETY: no arguments; returns a constant.
        let ws = self.workspace(unsafe { ffi::erofs_rs_inflate_workspace_size() })?;
        let mut end = false;
        // SAFETY: `ws` points to a workspace of the size zlib asked for, `src` and `dst` are
        // valid for their lengths (the slices) and `end` for a write; zlib stays inside them.
        let ret = unsafe {
            ffi::erofs_rs_inflate(ws, src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len(), &mut end)
        };
        let produced = usize::try_from(ret).ok().filter(|&n| n <= dst.len()).ok_or(format::Error::Corrupted)?;
        Ok(format::Inflated { produced, stream_end: end })
    }

    fn zstd(&mut self, src: &[u8], dst: &mut [u8], max_window: u32) -> format::Result<usize> {
        let window = usize::try_from(max_window).map_err(|_| format::Error::Corrupted)?;
        // SAFETY: no pointers; returns a size.
        let n = unsafe { ffi::erofs_rs_zstd_workspace_size(window) };
        let ws = self.workspace(n)?;
        // SAFETY: `ws` points to at least `n` bytes, the workspace size for `window`; `src` and
        // `dst` are valid for their lengths (the slices); zstd stays inside them.
        let ret = unsafe {
            ffi::erofs_rs_zstd(ws, n, window, src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len())
        };
        usize::try_from(ret).ok().filter(|&n| n <= dst.len()).ok_or(format::Error::Corrupted)
    }

    fn lzma(&mut self, src: &[u8], dst: &mut [u8], exact: bool, dict_size: u32) -> format::Result<usize> {
        // 0 is "no MicroLZMA configured"; the rest of the range was checked at mount.
        if !(format::Z_EROFS_LZMA_MIN_DICT_SIZE..=format::Z_EROFS_LZMA_MAX_DICT_SIZE).contains(&dict_size) {
            return Err(format::Error::Corrupted);
        }
        let state = self.lzma_state(dict_size)?.0.as_ptr();
        // SAFETY: `state` is a MicroLZMA state we own for this read (nothing else uses it);
        // `src` and `dst` are valid for their lengths (the slices); the decoder reads and
        // writes only inside them.
        let ret = unsafe {
            ffi::erofs_rs_microlzma(state, src.as_ptr(), src.len(), dst.as_mut_ptr(), dst.len(), exact)
        };
        usize::try_from(ret).ok().filter(|&n| n <= dst.len()).ok_or(format::Error::Corrupted)
    }
}

/// `map_compressed` with a log line naming the inode on failure.
fn zmap(info: &SbInfo, zi: &format::ZInode, offset: u64, mode: format::ZMapMode) -> Result<format::ZExtent> {
    let src = MetaSource(info.meta()?);
    format::map_compressed(&src, &info.fs, &info.compr, zi, offset, mode).map_err(|e| {
        erofs_err!(
            "{}: nid {}: cannot map compressed offset {}: {:?}",
            BStr(info.opts.fsid.as_bytes()),
            zi.inode.nid,
            offset,
            e
        );
        format_errno(e)
    })
}

/// Decodes the start of extent `ext` from its `pcluster` into `out` (all of it: see
/// [`format::decompress_extent_with`]), with a log line on failure.
fn decode(
    decoders: &mut KernelDecoders<'_>,
    info: &SbInfo,
    nid: u64,
    ext: &format::ZExtent,
    pcluster: &[u8],
    out: &mut [u8],
) -> Result {
    format::decompress_extent_with(decoders, &info.fs, &info.compr, ext, pcluster, out).map_err(|e| {
        erofs_err!(
            "{}: nid {}: cannot decompress the extent at {} (+{}) from the pcluster at {} (+{}): {:?}",
            BStr(info.opts.fsid.as_bytes()),
            nid,
            ext.logical,
            out.len(),
            ext.physical,
            ext.plength,
            e
        );
        format_errno(e)
    })
}

/// Fills a run of folios of a compressed file (`z_erofs_read_folio`, `z_erofs_readahead`).
///
/// First the run is mapped extent by extent (`ZMapMode::Read`, as C's read path; when the run
/// reaches past the lcluster that mapping stops at, the whole extent is mapped once more in
/// `ZMapMode::Full` so that the run's part of it is decoded in one go). Then the pclusters are
/// read, adjacent ones together (see [`load_pcluster`]), and each extent is decoded from its
/// start up to the end of the run (or of the extent, or EOF): straight into the run's pages
/// when it starts inside the run, else into a buffer whose part in the run is copied.
/// Fragments come from the packed inode.
fn read_run_compressed(
    run: &mut FolioRun,
    sb: *mut bindings::super_block,
    info: &SbInfo,
    ii: &inode::InodeInfo,
) -> Result {
    let raw = &ii.raw;
    let nid = raw.nid;
    let zi = ii.zinode(info)?;
    let size = raw.size;
    let want_end = run.start.checked_add(run.len).ok_or(EINVAL)?.min(size);
    let mut pieces: KVec<Piece> = KVec::new();
    let mut off = 0u64;
    while off < run.len {
        let lpos = run.start + off;
        if lpos >= size {
            break; // zeroed below
        }
        let mut ext = zmap(info, &zi, lpos, format::ZMapMode::Read)?;
        // The format layer guarantees a mapped extent holding `lpos`.
        let ext_end = ext.logical.checked_add(ext.length).ok_or(efscorrupted())?;
        if !ext.mapped || ext.logical > lpos || ext_end <= lpos {
            return Err(efscorrupted());
        }
        if ext_end < want_end && !ext.full_mapped && !ext.fragment {
            // The same extent, to its end. If the full mapping fails (an extent too long to
            // map at once) or disagrees, keep the read mapping: it is what C decodes.
            if let Ok(full) = format::map_compressed(
                &MetaSource(info.meta()?),
                &info.fs,
                &info.compr,
                &zi,
                lpos,
                format::ZMapMode::Full,
            ) {
                let same = (full.logical, full.physical, full.plength, full.algorithm, full.meta, full.fragment)
                    == (ext.logical, ext.physical, ext.plength, ext.algorithm, ext.meta, ext.fragment);
                if same && full.mapped && full.length >= ext.length {
                    ext = full;
                }
            }
        }
        let ext_end = ext.logical.checked_add(ext.length).ok_or(efscorrupted())?;
        // `lpos < ext_end`, `lpos < size` and `lpos` is inside the run: `n > 0`.
        let n = ext_end.min(want_end) - lpos;
        let source = pcluster_source(info, nid, &ext)?;
        pieces.push(Piece { ext, off, n, source }, GFP_KERNEL)?;
        off += n;
    }

    let mut batch = Batch { buf: KVVec::new(), meta: false, device: 0, start: 0, len: 0 };
    let mut out_buf = KVVec::new();
    let mut decoders = KernelDecoders::new(&info.decoders);
    // An extent that starts inside the run is decoded straight into the run's pages, mapped
    // together once (C's LZ4 decompressor maps its output pages the same way). One that began
    // before the run must have its head decoded too: it goes through `out_buf`, and the run's
    // part is copied. Readahead grows its window to the end of an extent
    // (`expand_compressed`), so in a sequential read nearly every extent is decoded in place.
    let direct = pieces.iter().any(|p| p.source != PieceSource::Fragment && p.ext.logical == run.start + p.off);
    let mut map = if direct {
        // SAFETY: `map` is a local of this function, so it is dropped before `run` (a
        // parameter), and slices of it are used only within one iteration below, where nothing
        // else writes the run.
        unsafe { run.ram_map() }
    } else {
        None
    };
    for i in 0..pieces.len() {
        let Some(&Piece { ext, off, n, source }) = pieces.get(i) else { break };
        let lpos = run.start + off;
        let skip = lpos - ext.logical;
        if source == PieceSource::Fragment {
            let pos = ext.physical.checked_add(skip).ok_or(efscorrupted())?;
            read_fragment(run, off, n, sb, info, nid, pos)?;
            continue;
        }
        let pcluster = load_pcluster(&mut batch, info, nid, &pieces, i)?;
        if let (0, Some(map)) = (skip, map.as_mut()) {
            decode(&mut decoders, info, nid, &ext, pcluster, map.bytes_mut(off, n)?)?;
            continue;
        }
        // At most the extent's length, which `map_compressed` limits to 12 MiB.
        let out_len = usize::try_from(skip + n).map_err(|_| efscorrupted())?;
        let out = grow(&mut out_buf, out_len, false)?;
        decode(&mut decoders, info, nid, &ext, pcluster, out)?;
        let skip = usize::try_from(skip).map_err(|_| efscorrupted())?;
        let part = out.get(skip..).ok_or(efscorrupted())?;
        run.for_each(off, n, |folio, foff, len, done| {
            let done = usize::try_from(done).map_err(|_| EINVAL)?;
            let src = part.get(done..).and_then(|p| p.get(..len)).ok_or(EINVAL)?;
            folio.fill_with(foff, len, |dst, d2| {
                let s = src.get(d2..).and_then(|p| p.get(..dst.len())).ok_or(EINVAL)?;
                dst.copy_from_slice(s);
                Ok(())
            })
        })?;
    }
    drop(map);
    // The bytes past EOF read as zeros.
    let end = size.saturating_sub(run.start);
    if end < run.len {
        run.zero(end, run.len - end)?;
    }
    Ok(())
}

/// `address_space_operations.read_folio` of files, directories and symlinks.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn data_read_folio(_file: *mut bindings::file, folio: *mut bindings::folio) -> c_int {
    // SAFETY: `read_folio` gets a locked folio and must unlock it: `LockedFolio` does, on drop.
    let Some(folio) = (unsafe { LockedFolio::from_raw(folio) }) else {
        return EINVAL.to_errno();
    };
    let r = FolioRun::new(folio, 1).and_then(|mut run| {
        read_run(&mut run, Issue::Wait)?;
        run.set_uptodate();
        Ok(())
    });
    match r {
        Ok(()) => 0,
        Err(e) => reader_errno(e),
    }
}

/// The errno a reader of file data gets for a failed read.
///
/// fscache fails a read with `ENOBUFS` when the object has no cache behind it: the daemon
/// refused its OPEN, or closed `/dev/cachefiles` (it died without failover). In-tree erofs
/// passes that on to read(2), where `ENOBUFS` ("No buffer space available") is no documented
/// error and misleads; for the reader the daemon failed, so it is an I/O error (`EIO`).
/// Metadata reads keep `ENOBUFS`, as in C: the mount without a daemon is explained by it.
fn reader_errno(e: kernel::error::Error) -> c_int {
    // kernel::error::code has no ENOBUFS in 6.12.
    if e.to_errno() == -(bindings::ENOBUFS as c_int) {
        EIO.to_errno()
    } else {
        e.to_errno()
    }
}

/// `address_space_operations.readahead` of files and directories: the whole window in as few
/// fscache reads (so on-demand requests) as its extents allow, completed asynchronously (see
/// [`Window`]). Compressed files and inline tails are filled before this returns.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn data_readahead(rac: *mut bindings::readahead_control) {
    // SAFETY: the kernel's readahead request, before any of its folios is taken.
    unsafe { expand_compressed(rac) };
    // Room for the window's folios if they are single pages (fewer when large): one
    // allocation instead of a growing vector.
    // SAFETY: `rac` is the readahead request.
    let cap = (unsafe { ffi::erofs_rs_readahead_length(rac) } / bindings::PAGE_SIZE).clamp(1, 256);
    let mut run: Option<FolioRun> = None;
    loop {
        // SAFETY: `rac` is the readahead request; each folio comes locked, its reference
        // dropped, and must be unlocked by us (LockedFolio's drop).
        let f = unsafe { ffi::erofs_rs_readahead_folio(rac) };
        // SAFETY: a locked folio handed over by readahead.
        let Some(folio) = (unsafe { LockedFolio::from_raw(f) }) else { break };
        match run.as_mut() {
            None => match FolioRun::new(folio, cap) {
                Ok(r) => run = Some(r),
                Err(_) => break,
            },
            Some(r) => {
                if !r.push(folio) {
                    // Not contiguous or no memory: leave the rest to read_folio later
                    // (the VM unlocks and drops folios readahead did not consume).
                    break;
                }
            }
        }
    }
    let Some(run) = run else { return };
    // On error the folios are unlocked without being up to date: read_folio retries and
    // reports the error to the reader. (Without memory for the window, `run` is dropped here,
    // which unlocks them the same way.)
    let Ok(w) = KBox::new(Window { run, pending: AtomicUsize::new(1), failed: AtomicBool::new(false) }, GFP_KERNEL)
    else {
        return;
    };
    // INVARIANT: on the heap, with the submitter's count.
    let w = KBox::into_raw(w);
    // SAFETY: we hold the submitter's count: the window lives and `run` is ours alone.
    let r = read_run(unsafe { &mut (*w).run }, Issue::Async(w));
    if r.is_err() {
        // SAFETY: as above.
        unsafe { &(*w).failed }.store(true, Ordering::Release);
    }
    // SAFETY: drops the submitter's count, which we own.
    unsafe { window_put(w) };
}

/// At most this many bytes are added to a readahead window by [`expand_compressed`].
const MAX_EXPAND: u64 = 4 << 20;

/// Grows the readahead window of a compressed file to the end of the extent its last byte
/// falls in (`z_erofs_pcluster_readmore`), so that the whole extent is decoded once, in place,
/// and the next window starts at an extent boundary instead of reading and decoding this
/// extent again from its start. Best effort: if the extent cannot be mapped, ends more than
/// [`MAX_EXPAND`] bytes further, or the pages after the window are cached already, the window
/// stays (or grows only) as it can, and the read copes as before.
///
/// # Safety
///
/// `rac` is a readahead request handed to `readahead`, before any folio of it is taken.
unsafe fn expand_compressed(rac: *mut bindings::readahead_control) {
    // SAFETY: the request's mapping is a live file, directory or symlink of a mounted
    // erofs_rs super block (its folios are being read).
    let (pos, len, inode) = unsafe {
        let mapping = ffi::erofs_rs_readahead_mapping(rac);
        (ffi::erofs_rs_readahead_pos(rac), ffi::erofs_rs_readahead_length(rac), (*mapping).host)
    };
    // SAFETY: as above.
    let (info, Ok(ii)) = (unsafe { (SbInfo::from_sb((*inode).i_sb), inode::info(inode)) }) else {
        return;
    };
    let (Ok(pos), Ok(len)) = (u64::try_from(pos), u64::try_from(len)) else { return };
    if !ii.raw.datalayout.is_compressed() || len == 0 {
        return;
    }
    let Some(end) = pos.checked_add(len).filter(|&e| e < ii.raw.size) else { return };
    let (Ok(zi), Ok(meta)) = (ii.zinode(info), info.meta()) else { return };
    let Ok(ext) =
        format::map_compressed(&MetaSource(meta), &info.fs, &info.compr, &zi, end - 1, format::ZMapMode::Full)
    else {
        return;
    };
    // Page granular, and no further than EOF.
    let Some(ext_end) = ext.logical.checked_add(ext.length) else { return };
    let Some(want) = ext_end.min(ii.raw.size).checked_next_multiple_of(bindings::PAGE_SIZE as u64) else {
        return;
    };
    if !ext.mapped || want <= end || want - end > MAX_EXPAND {
        return;
    }
    let (Ok(start), Ok(new_len)) = (i64::try_from(pos), usize::try_from(want - pos)) else { return };
    // SAFETY: the request, as the caller guarantees; the range starts where it does.
    unsafe { ffi::readahead_expand(rac, start, new_len) };
}

/// Address space operations of blob page caches (metadata).
pub(crate) static META_AOPS: Ops<bindings::address_space_operations> =
    Ops(bindings::address_space_operations {
        read_folio: Some(meta_read_folio),
        // SAFETY: all-zero is a valid `address_space_operations` (every other hook unset).
        ..unsafe { core::mem::zeroed() }
    });

/// Address space operations of files, directories and symlinks.
pub(crate) static DATA_AOPS: Ops<bindings::address_space_operations> =
    Ops(bindings::address_space_operations {
        read_folio: Some(data_read_folio),
        readahead: Some(data_readahead),
        // SAFETY: all-zero is a valid `address_space_operations` (every other hook unset).
        ..unsafe { core::mem::zeroed() }
    });
