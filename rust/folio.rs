// SPDX-License-Identifier: GPL-2.0

//! Folios: the locked folio handed to `read_folio` (unlocked exactly once, on drop),
//! up-to-date folios read through a mapping's page cache (put on drop), and locked folios'
//! pages mapped contiguously for a decoder (`RamMap`, unmapped on drop).

use crate::ffi;
use core::ptr::NonNull;
use kernel::alloc::{flags::GFP_KERNEL, KVec};
use kernel::bindings;
use kernel::error::{code::*, Error, Result};
use kernel::ffi::c_uint;

/// A locked page-cache folio that `read_folio` must fill and unlock.
///
/// # Invariants
///
/// `self.0` is locked by the caller of `read_folio` on our behalf, and stays locked until drop,
/// which unlocks it exactly once (marking it up to date first if `uptodate` was set).
pub(crate) struct LockedFolio {
    folio: NonNull<bindings::folio>,
    uptodate: bool,
}

impl LockedFolio {
    /// Takes ownership of the lock of the folio passed to `read_folio`.
    ///
    /// # Safety
    ///
    /// `folio` is a valid, locked folio whose lock the caller hands over.
    pub(crate) unsafe fn from_raw(folio: *mut bindings::folio) -> Option<Self> {
        NonNull::new(folio).map(|folio| Self { folio, uptodate: false })
    }

    /// File offset of the first byte of the folio.
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: the folio is valid (type invariant). Page-cache offsets are never negative.
        unsafe { ffi::erofs_rs_folio_pos(self.folio.as_ptr()) as u64 }
    }

    /// Size of the folio in bytes.
    pub(crate) fn size(&self) -> usize {
        // SAFETY: the folio is valid (type invariant).
        unsafe { ffi::erofs_rs_folio_size(self.folio.as_ptr()) }
    }

    /// The mapping the folio belongs to.
    pub(crate) fn mapping(&self) -> *mut bindings::address_space {
        // SAFETY: the folio is valid and locked, so its mapping cannot change (type invariant).
        unsafe { ffi::erofs_rs_folio_mapping(self.folio.as_ptr()) }
    }

    /// Runs `f` on the bytes `[off, off + len)` of the folio, page by page.
    fn for_each_page(
        &mut self,
        off: usize,
        len: usize,
        mut f: impl FnMut(&mut [u8], usize) -> Result,
    ) -> Result {
        let end = off.checked_add(len).filter(|&e| e <= self.size()).ok_or(EINVAL)?;
        let mut cur = off;
        while cur < end {
            let in_page = cur % bindings::PAGE_SIZE;
            let n = core::cmp::min(bindings::PAGE_SIZE - in_page, end - cur);
            // SAFETY: `cur` is inside the folio; kmap_local_folio maps the page holding it and
            // returns the address of byte `cur`, valid for the rest of that page.
            let addr = unsafe { ffi::erofs_rs_kmap_local_folio(self.folio.as_ptr(), cur) };
            // SAFETY: `addr` maps `n` bytes within one page of a folio we hold locked.
            let bytes = unsafe { core::slice::from_raw_parts_mut(addr.cast::<u8>(), n) };
            let r = f(bytes, cur - off);
            // SAFETY: `addr` came from kmap_local_folio above and is unmapped once.
            unsafe { ffi::erofs_rs_kunmap_local(addr) };
            r?;
            cur += n;
        }
        Ok(())
    }

    /// Zeroes `[off, off + len)` of the folio.
    pub(crate) fn zero(&mut self, off: usize, len: usize) -> Result {
        self.for_each_page(off, len, |b, _| {
            b.fill(0);
            Ok(())
        })
    }

    /// Fills `[off, off + len)` of the folio with `fill(dst, offset_within_range)`.
    pub(crate) fn fill_with(
        &mut self,
        off: usize,
        len: usize,
        fill: impl FnMut(&mut [u8], usize) -> Result,
    ) -> Result {
        self.for_each_page(off, len, fill)
    }

    /// Appends the folio's pages to `pages`, in order (for [`RamMap`]).
    pub(crate) fn push_pages(&self, pages: &mut KVec<*mut bindings::page>) -> Result {
        for i in 0..self.size() / bindings::PAGE_SIZE {
            // SAFETY: the folio is valid (type invariant) and `i` is below its number of pages.
            pages.push(unsafe { ffi::erofs_rs_folio_page(self.folio.as_ptr(), i) }, GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Marks the folio up to date when it is unlocked: all of it has been filled.
    pub(crate) fn set_uptodate(&mut self) {
        self.uptodate = true;
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        if self.uptodate {
            // SAFETY: the folio is valid and locked (type invariant).
            unsafe { ffi::erofs_rs_folio_mark_uptodate(self.folio.as_ptr()) };
        }
        // SAFETY: the folio is locked and we own the lock (type invariant); unlocked once, here.
        unsafe { ffi::folio_unlock(self.folio.as_ptr()) };
    }
}

/// Pages mapped contiguously into the kernel's address space with `vm_map_ram` (as C's LZ4
/// decompressor maps its output pages), so that a decoder that wants one contiguous buffer
/// writes straight into the page cache. Unmapped on drop.
///
/// # Invariants
///
/// `addr` is what `vm_map_ram` returned for `count` pages, which the owner of this map holds
/// (locked page-cache folios) and may write, for as long as it lives.
pub(crate) struct RamMap {
    addr: NonNull<u8>,
    count: c_uint,
}

impl RamMap {
    /// Maps `pages`; `None` if `vm_map_ram` cannot (no address space left, no memory): the
    /// caller then fills the pages some other way.
    ///
    /// # Safety
    ///
    /// Every entry of `pages` is a page of a locked folio the caller fills, and stays so until
    /// the returned map is dropped; while it lives, nothing else writes those pages at the same
    /// time as a slice returned by [`RamMap::bytes_mut`].
    pub(crate) unsafe fn new(pages: &mut [*mut bindings::page]) -> Option<Self> {
        let count = c_uint::try_from(pages.len()).ok().filter(|&c| c > 0)?;
        // SAFETY: `pages` holds `count` valid pages (the caller's guarantee); NUMA_NO_NODE (-1)
        // lets the allocator pick the node.
        let addr = unsafe { ffi::vm_map_ram(pages.as_mut_ptr(), count, -1) };
        // INVARIANT: what vm_map_ram returned for these `count` pages.
        NonNull::new(addr.cast::<u8>()).map(|addr| Self { addr, count })
    }

    /// The mapped bytes `[off, off + n)`.
    pub(crate) fn bytes_mut(&mut self, off: u64, n: u64) -> Result<&mut [u8]> {
        let total = (self.count as usize).checked_mul(bindings::PAGE_SIZE).ok_or(EINVAL)?;
        let off = usize::try_from(off).map_err(|_| EINVAL)?;
        let n = usize::try_from(n).map_err(|_| EINVAL)?;
        if off.checked_add(n).map_or(true, |end| end > total) {
            return Err(EINVAL);
        }
        // SAFETY: `[off, off + n)` lies inside the `count` mapped pages, which we may write
        // (type invariant); the `&mut self` borrow keeps this the only slice of the map.
        Ok(unsafe { core::slice::from_raw_parts_mut(self.addr.as_ptr().add(off), n) })
    }
}

impl Drop for RamMap {
    fn drop(&mut self) {
        // SAFETY: the address and count vm_map_ram gave us (type invariant), unmapped once.
        unsafe { ffi::vm_unmap_ram(self.addr.as_ptr().cast(), self.count) };
    }
}

/// An up-to-date folio read through a page cache, with a reference dropped on drop.
///
/// # Invariants
///
/// `self.0` is a folio returned by `read_mapping_folio()`, whose reference we own.
pub(crate) struct CachedFolio(NonNull<bindings::folio>);

impl CachedFolio {
    /// Reads page `index` of `mapping` (through its `read_folio`) and returns it up to date.
    ///
    /// # Safety
    ///
    /// `mapping` is a valid address space that outlives the returned folio.
    pub(crate) unsafe fn read(mapping: *mut bindings::address_space, index: usize) -> Result<Self> {
        // SAFETY: `mapping` is valid (caller's guarantee).
        let f = unsafe { ffi::erofs_rs_read_mapping_folio(mapping, index) };
        if let Some(err) = ffi::ptr_err(f) {
            return Err(Error::from_errno(err));
        }
        // INVARIANT: a folio returned by read_mapping_folio, with a reference.
        NonNull::new(f).map(Self).ok_or(EIO)
    }

    /// File offset of the first byte of the folio.
    pub(crate) fn pos(&self) -> u64 {
        // SAFETY: we hold a reference to the folio (type invariant).
        unsafe { ffi::erofs_rs_folio_pos(self.0.as_ptr()) as u64 }
    }

    /// Size of the folio in bytes.
    pub(crate) fn size(&self) -> usize {
        // SAFETY: we hold a reference to the folio (type invariant).
        unsafe { ffi::erofs_rs_folio_size(self.0.as_ptr()) }
    }

    /// Calls `f` with the bytes of the page of this folio that contains folio offset `off`,
    /// starting at `off`.
    pub(crate) fn with_page<R>(&self, off: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        if off >= self.size() {
            return Err(EINVAL);
        }
        let n = bindings::PAGE_SIZE - off % bindings::PAGE_SIZE;
        // SAFETY: `off` is inside the folio, which we hold a reference to; the mapping is valid
        // until the matching kunmap below.
        let addr = unsafe { ffi::erofs_rs_kmap_local_folio(self.0.as_ptr(), off) };
        // SAFETY: `addr` maps `n` bytes up to the end of its page. The folio is up to date and
        // the page cache of a read-only filesystem does not change under us.
        let r = f(unsafe { core::slice::from_raw_parts(addr.cast::<u8>(), n) });
        // SAFETY: unmapping what was mapped above, once.
        unsafe { ffi::erofs_rs_kunmap_local(addr) };
        Ok(r)
    }
}

impl Drop for CachedFolio {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant), dropped once, here.
        unsafe { ffi::erofs_rs_folio_put(self.0.as_ptr()) };
    }
}

/// Copies `buf.len()` bytes at offset `pos` of `mapping`'s page cache into `buf`.
///
/// # Safety
///
/// `mapping` is a valid address space for the duration of the call.
pub(crate) unsafe fn read_mapping_bytes(
    mapping: *mut bindings::address_space,
    mut pos: u64,
    buf: &mut [u8],
) -> Result {
    let mut done = 0;
    while done < buf.len() {
        let index = usize::try_from(pos >> bindings::PAGE_SHIFT).map_err(|_| EIO)?;
        // SAFETY: `mapping` is valid (caller's guarantee).
        let folio = unsafe { CachedFolio::read(mapping, index)? };
        let off = usize::try_from(pos - folio.pos()).map_err(|_| EIO)?;
        let n = folio.with_page(off, |src| {
            let n = core::cmp::min(src.len(), buf.len() - done);
            buf[done..done + n].copy_from_slice(&src[..n]);
            n
        })?;
        done += n;
        pos = pos.checked_add(n as u64).ok_or(EIO)?;
    }
    Ok(())
}
