// SPDX-License-Identifier: GPL-2.0

//! Inodes: `iget` reads and validates an on-disk inode (format layer) and sets up the VFS inode;
//! `evict_inode` frees what `iget` attached.

use crate::super_::{format_errno, BStr, SbInfo, MetaSource};
use crate::{data, dir, erofs_err, ffi, format, xattr, Ops};
use core::ptr::NonNull;
use kernel::alloc::{flags::GFP_KERNEL, KBox};
use crate::efscorrupted;
use kernel::prelude::{pin_data, pin_init};
use kernel::new_mutex;
use kernel::sync::Mutex;
use kernel::init::InPlaceInit;
use kernel::bindings;
use kernel::error::{code::*, Result};

/// What erofs_rs keeps per inode, in `i_private`: the validated on-disk inode and, for a
/// compressed inode once it was first read, its map header (`format::ZInode`, C's
/// `EROFS_I_Z_INITED` state).
#[pin_data]
pub(crate) struct InodeInfo {
    pub(crate) raw: format::Inode,
    #[pin]
    z: Mutex<Option<format::ZInode>>,
}

impl InodeInfo {
    /// The map header of a compressed inode, read on first use (`z_erofs_fill_inode_lazy`).
    ///
    /// The header is read without the lock held (a read may wait for the daemon, and a second
    /// reader must stay killable meanwhile); two first readers may both read it, and the
    /// first to finish stores it. Errors are not cached: the next read tries again, as in C.
    pub(crate) fn zinode(&self, info: &SbInfo) -> Result<format::ZInode> {
        if let Some(z) = *self.z.lock() {
            return Ok(z);
        }
        let meta = info.meta()?;
        let z = format::ZInode::read(&MetaSource(meta), &info.fs, &info.compr, &self.raw).map_err(|e| {
            erofs_err!(
                "{}: nid {}: bad compressed inode header: {:?}",
                BStr(info.opts.fsid.as_bytes()),
                self.raw.nid,
                e
            );
            format_errno(e)
        })?;
        let mut guard = self.z.lock();
        Ok(*guard.get_or_insert(z))
    }
}

/// A referenced inode, released (`iput`) on drop.
///
/// # Invariants
///
/// `self.0` is an inode we own a reference to.
pub(crate) struct InodeRef(NonNull<bindings::inode>);

impl InodeRef {
    /// The inode.
    pub(crate) fn as_ptr(&self) -> *mut bindings::inode {
        self.0.as_ptr()
    }
}

impl Drop for InodeRef {
    fn drop(&mut self) {
        // SAFETY: we own one reference (type invariant), dropped once, here.
        unsafe { bindings::iput(self.0.as_ptr()) };
    }
}

/// [`iget`] with the reference in an [`InodeRef`].
pub(crate) fn iget_ref(sb: *mut bindings::super_block, nid: u64) -> Result<InodeRef> {
    // INVARIANT: `iget` returns a referenced inode.
    iget(sb, nid).map(InodeRef)
}

/// The `InodeInfo` of an erofs_rs file, directory or symlink inode.
///
/// # Safety
///
/// `inode` is a live inode of an erofs_rs super block set up by `iget`.
pub(crate) unsafe fn info<'a>(inode: *const bindings::inode) -> Result<&'a InodeInfo> {
    // SAFETY: `iget` stored a `KBox<InodeInfo>` in `i_private`, freed only at eviction.
    let p = unsafe { (*inode).i_private }.cast::<InodeInfo>();
    // SAFETY: see above; NULL only for internal inodes, which never get here.
    unsafe { p.as_ref() }.ok_or(EIO)
}

const S_IFMT: u32 = bindings::S_IFMT;

/// Decodes an on-disk `new_encode_dev()` value into a kernel `dev_t` (`new_decode_dev()`).
fn new_decode_dev(dev: u32) -> u32 {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    (major << 20) | minor
}

fn fill(inode: *mut bindings::inode, info: &SbInfo, nid: u64) -> Result {
    let meta = info.meta()?;
    let raw = format::Inode::read(&MetaSource(meta), &info.fs, nid).map_err(|e| {
        erofs_err!("{}: bad inode nid {}: {:?}", BStr(info.opts.fsid.as_bytes()), nid, e);
        format_errno(e)
    })?;
    let mode = u32::from(raw.mode);
    let blksz = info.fs.block_size() as u64;
    let size = i64::try_from(raw.size).map_err(|_| efscorrupted())?;
    // As C: a compressed inode counts its compressed blocks (`i_u.compressed_blocks`), every
    // other inode (and a compressed one that says 0) its size in blocks.
    let nblks = if raw.datalayout.is_compressed() { u64::from(raw.raw_blkaddr) } else { 0 };
    let blocks = if nblks != 0 { nblks } else { raw.size.div_ceil(blksz) };
    let blocks = blocks.checked_mul(blksz / 512).ok_or(efscorrupted())?;
    let mtime = i64::try_from(raw.mtime).map_err(|_| efscorrupted())?;

    // SAFETY: `inode` is a new (I_NEW) inode that only we see until `unlock_new_inode`.
    unsafe {
        (*inode).i_mode = raw.mode;
        ffi::erofs_rs_inode_set_owner(inode, raw.uid, raw.gid);
        bindings::set_nlink(inode, raw.nlink);
        (*inode).i_size = size;
        (*inode).i_blocks = blocks;
        (*inode).i_mtime_sec = mtime;
        (*inode).i_mtime_nsec = raw.mtime_nsec;
        (*inode).i_atime_sec = mtime;
        (*inode).i_atime_nsec = raw.mtime_nsec;
        (*inode).i_ctime_sec = mtime;
        (*inode).i_ctime_nsec = raw.mtime_nsec;
        (*(*inode).i_mapping).a_ops = &data::DATA_AOPS.0;
        // Only ever taken shared: see the shim for why lockdep must not order it.
        ffi::erofs_rs_mapping_lockdep_shared_only((*inode).i_mapping);
        (*inode).i_op = &GENERIC_IOPS.0;
    }
    match mode & S_IFMT {
        bindings::S_IFREG => {
            // SAFETY: as above; `generic_ro_fops` is a static of the kernel.
            unsafe { ffi::erofs_rs_inode_set_fop(inode, &bindings::generic_ro_fops) };
        }
        bindings::S_IFDIR => {
            // SAFETY: as above.
            unsafe {
                (*inode).i_op = &dir::DIR_IOPS.0;
                ffi::erofs_rs_inode_set_fop(inode, &dir::DIR_FOPS.0);
            }
        }
        bindings::S_IFLNK => {
            if raw.size == 0 || raw.size >= bindings::PAGE_SIZE as u64 {
                erofs_err!(
                    "{}: nid {}: bad symlink size {}",
                    BStr(info.opts.fsid.as_bytes()),
                    nid,
                    raw.size
                );
                return Err(efscorrupted());
            }
            // SAFETY: as above; `page_get_link` reads the target through our `read_folio`.
            unsafe {
                (*inode).i_op = &SYMLINK_IOPS.0;
                bindings::inode_nohighmem(inode);
            }
        }
        bindings::S_IFCHR | bindings::S_IFBLK | bindings::S_IFIFO | bindings::S_IFSOCK => {
            // SAFETY: as above.
            unsafe { bindings::init_special_inode(inode, raw.mode, new_decode_dev(raw.rdev)) };
        }
        _ => {
            erofs_err!("{}: nid {}: bad file mode {:o}", BStr(info.opts.fsid.as_bytes()), nid, mode);
            return Err(efscorrupted());
        }
    }
    if matches!(mode & S_IFMT, bindings::S_IFREG | bindings::S_IFDIR | bindings::S_IFLNK) {
        // Large folios, as in-tree erofs sets them on every inode with data: readahead then
        // adds and reads fewer, larger folios. Every path that fills or reads our folios
        // works page by page within a folio (`LockedFolio`, `CachedFolio`, fscache's
        // iterators over the mapping).
        // SAFETY: as above, a new inode; its mapping has no folios yet.
        unsafe { ffi::erofs_rs_mapping_set_large_folios((*inode).i_mapping) };
    }
    let boxed = KBox::pin_init(pin_init!(InodeInfo { raw, z <- new_mutex!(None) }), GFP_KERNEL)?;
    // SAFETY: the box is never moved out of: `evict_inode` drops it in place (`KBox::from_raw`),
    // and only shared references are handed out meanwhile (`info`).
    let boxed = unsafe { core::pin::Pin::into_inner_unchecked(boxed) };
    // SAFETY: as above; `evict_inode` frees the box.
    unsafe { (*inode).i_private = KBox::into_raw(boxed).cast() };
    Ok(())
}

/// Returns a referenced inode for `nid`, reading it from the image on first use.
pub(crate) fn iget(sb: *mut bindings::super_block, nid: u64) -> Result<NonNull<bindings::inode>> {
    let ino = usize::try_from(nid).map_err(|_| efscorrupted())?;
    // SAFETY: `sb` is a live erofs_rs super block.
    let inode = NonNull::new(unsafe { bindings::iget_locked(sb, ino) }).ok_or(ENOMEM)?;
    let i = inode.as_ptr();
    // SAFETY: we hold a reference to `i`.
    if unsafe { (*i).i_state } & bindings::I_NEW == 0 {
        return Ok(inode);
    }
    // SAFETY: `s_fs_info` is set before any inode is read.
    let info = unsafe { SbInfo::from_sb(sb) };
    match fill(i, info, nid) {
        Ok(()) => {
            // SAFETY: a new inode we filled in.
            unsafe { bindings::unlock_new_inode(i) };
            Ok(inode)
        }
        Err(e) => {
            // SAFETY: a new inode we failed to fill: marks it bad, unlocks and drops it.
            unsafe { bindings::iget_failed(i) };
            Err(e)
        }
    }
}

/// `super_operations.evict_inode`.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
pub(crate) unsafe extern "C" fn evict_inode(inode: *mut bindings::inode) {
    // SAFETY: the VFS evicts a dying inode of ours.
    unsafe {
        bindings::truncate_inode_pages_final(&mut (*inode).i_data);
        bindings::clear_inode(inode);
        let p = (*inode).i_private.cast::<InodeInfo>();
        if !p.is_null() {
            (*inode).i_private = core::ptr::null_mut();
            drop(KBox::from_raw(p));
        }
    }
}

/// Inode operations of regular and special files.
pub(crate) static GENERIC_IOPS: Ops<bindings::inode_operations> = Ops(bindings::inode_operations {
    listxattr: Some(xattr::erofs_listxattr),
    get_inode_acl: Some(ffi::erofs_rs_get_acl),
    // SAFETY: all-zero is a valid `inode_operations` (every other hook unset).
    ..unsafe { core::mem::zeroed() }
});

/// Inode operations of symlinks: the target is read through the page cache.
pub(crate) static SYMLINK_IOPS: Ops<bindings::inode_operations> = Ops(bindings::inode_operations {
    get_link: Some(bindings::page_get_link),
    listxattr: Some(xattr::erofs_listxattr),
    get_inode_acl: Some(ffi::erofs_rs_get_acl),
    // SAFETY: all-zero is a valid `inode_operations` (every other hook unset).
    ..unsafe { core::mem::zeroed() }
});
