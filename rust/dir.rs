// SPDX-License-Identifier: GPL-2.0

//! Directories: readdir (`iterate_shared`) and lookup, as fs/erofs/dir.c and namei.c do.
//!
//! Directory blocks are read through the directory's own page cache (so through `read_folio` and
//! fscache). A position (`ctx->pos`) is the byte offset of a dirent in the directory, which keeps
//! telldir/seekdir stable.

use crate::folio::CachedFolio;
use crate::super_::{format_errno, BStr, SbInfo, EROFS_NAME_LEN};
use crate::{erofs_err, ffi, format, inode, Ops};
use kernel::ffi::c_int;
use crate::{efscorrupted, enametoolong};
use kernel::bindings;
use kernel::error::{code::*, Error, Result};

/// Size of an on-disk `struct erofs_dirent`.
const DIRENT_SIZE: u64 = 12;

/// Runs `f` on the bytes of directory block `blk` of `dir` (shorter than a block at the end
/// of the directory).
fn with_block<R>(
    dir: *mut bindings::inode,
    info: &SbInfo,
    blk: u64,
    f: impl FnOnce(&[u8]) -> Result<R>,
) -> Result<R> {
    let blksz = u64::from(info.fs.block_size());
    // SAFETY: `dir` is a live directory inode.
    let size = unsafe { (*dir).i_size } as u64;
    let start = blk.checked_mul(blksz).ok_or(efscorrupted())?;
    let len = core::cmp::min(size.checked_sub(start).ok_or(efscorrupted())?, blksz) as usize;
    let index = usize::try_from(start >> bindings::PAGE_SHIFT).map_err(|_| efscorrupted())?;
    // SAFETY: the mapping of a live inode.
    let folio = unsafe { CachedFolio::read((*dir).i_mapping, index)? };
    let off = usize::try_from(start - folio.pos()).map_err(|_| efscorrupted())?;
    folio.with_page(off, |bytes| {
        // A block never crosses a page: block size <= PAGE_SIZE and blocks are aligned.
        f(bytes.get(..len).ok_or(efscorrupted())?)
    })?
}

/// Logs a corrupted directory block and returns its errno.
fn bad_block(dir: *mut bindings::inode, info: &SbInfo, blk: u64, e: format::Error) -> Error {
    // SAFETY: `dir` is live.
    let ino = unsafe { (*dir).i_ino };
    erofs_err!("{}: dir nid {}: bad block {}: {:?}", BStr(info.opts.fsid.as_bytes()), ino, blk, e);
    format_errno(e)
}

fn readdir(file: *mut bindings::file, ctx: *mut bindings::dir_context) -> Result {
    // SAFETY: the VFS passes an open file of one of our directories.
    let dir = unsafe { (*file).f_inode };
    // SAFETY: `dir` belongs to a mounted erofs_rs super block.
    let info = unsafe { SbInfo::from_sb((*dir).i_sb) };
    let blksz = u64::from(info.fs.block_size());
    // SAFETY: as above.
    let size = unsafe { (*dir).i_size } as u64;
    loop {
        // SAFETY: `ctx` is the VFS's dir_context for this call.
        let pos = unsafe { (*ctx).pos };
        let pos = u64::try_from(pos).map_err(|_| EINVAL)?;
        if pos >= size {
            return Ok(());
        }
        let blk = pos / blksz;
        let dbstart = blk * blksz;
        let first = (pos - dbstart).div_ceil(DIRENT_SIZE);
        let blk_len = core::cmp::min(size - dbstart, blksz);
        let stopped = with_block(dir, info, blk, |block| {
            let db = format::DirBlock::new(block).map_err(|e| bad_block(dir, info, blk, e))?;
            for i in first..db.len() as u64 {
                let d = db.get(i as usize).ok_or(efscorrupted())?;
                let epos = dbstart + i * DIRENT_SIZE;
                // SAFETY: as above.
                unsafe { (*ctx).pos = epos as i64 };
                let name = d.name;
                // SAFETY: `name` is valid for its length during the call; dir_emit copies it.
                let more = unsafe {
                    ffi::erofs_rs_dir_emit(
                        ctx,
                        name.as_ptr().cast(),
                        name.len() as c_int,
                        d.nid,
                        u32::from(format::file_type_to_dtype(d.file_type)),
                    )
                };
                if !more {
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        if stopped {
            return Ok(());
        }
        // SAFETY: as above.
        unsafe { (*ctx).pos = (dbstart + blk_len) as i64 };
    }
}

/// `file_operations.iterate_shared` of directories.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn iterate_shared(file: *mut bindings::file, ctx: *mut bindings::dir_context) -> c_int {
    match readdir(file, ctx) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Where one block of a directory puts a name, for [`find`].
enum Probe {
    Found(u64),
    /// Before the block's first entry.
    Before,
    /// After its last entry.
    After,
    /// Within its range but not there: not in the directory.
    Absent,
}

/// Finds `name` in `dir`, as `erofs_namei` does: a binary search over the blocks (names are
/// sorted across the whole directory), each probed block searched by binary search too
/// ([`format::DirLookupBlock`]: only the entries it reaches are parsed). A name within a
/// block's range is there or nowhere.
fn find(dir: *mut bindings::inode, info: &SbInfo, name: &[u8]) -> Result<Option<u64>> {
    let blksz = u64::from(info.fs.block_size());
    // SAFETY: `dir` is live.
    let size = unsafe { (*dir).i_size } as u64;
    let (mut lo, mut hi) = (0u64, size.div_ceil(blksz));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let probe = with_block(dir, info, mid, |block| {
            let bad = |e| bad_block(dir, info, mid, e);
            let db = format::DirLookupBlock::new(block).map_err(bad)?;
            Ok(match db.lookup(name).map_err(bad)? {
                Ok(d) => Probe::Found(d.nid),
                Err(0) => Probe::Before,
                Err(i) if i >= db.len() => Probe::After,
                Err(_) => Probe::Absent,
            })
        })?;
        match probe {
            Probe::Found(nid) => return Ok(Some(nid)),
            Probe::Absent => return Ok(None),
            Probe::Before => hi = mid,
            Probe::After => lo = mid + 1,
        }
    }
    Ok(None)
}

fn lookup_inner(dir: *mut bindings::inode, dentry: *mut bindings::dentry) -> Result<*mut bindings::dentry> {
    let mut len = 0u32;
    // SAFETY: `dentry` is the negative dentry being looked up; its name is stable during lookup.
    let p = unsafe { ffi::erofs_rs_dentry_name(dentry, &mut len) };
    if u64::from(len) > EROFS_NAME_LEN {
        return Err(enametoolong());
    }
    // SAFETY: `p` points to `len` bytes of the dentry name, stable during lookup.
    let name = unsafe { core::slice::from_raw_parts(p, len as usize) };
    // SAFETY: `dir` belongs to a mounted erofs_rs super block.
    let sb = unsafe { (*dir).i_sb };
    // SAFETY: as above.
    let info = unsafe { SbInfo::from_sb(sb) };
    let inode = match find(dir, info, name)? {
        Some(nid) => inode::iget(sb, nid)?.as_ptr(),
        None => core::ptr::null_mut(),
    };
    // SAFETY: `d_splice_alias` takes our inode reference (or NULL for a negative dentry).
    Ok(unsafe { bindings::d_splice_alias(inode, dentry) })
}

/// `inode_operations.lookup` of directories.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn lookup(
    dir: *mut bindings::inode,
    dentry: *mut bindings::dentry,
    _flags: u32,
) -> *mut bindings::dentry {
    match lookup_inner(dir, dentry) {
        Ok(d) => d,
        Err(e) => err_ptr(e),
    }
}

fn err_ptr<T>(e: Error) -> *mut T {
    e.to_errno() as isize as *mut T
}

pub(crate) static DIR_IOPS: Ops<bindings::inode_operations> = Ops(bindings::inode_operations {
    lookup: Some(lookup),
    listxattr: Some(crate::xattr::erofs_listxattr),
    get_inode_acl: Some(ffi::erofs_rs_get_acl),
    // SAFETY: all-zero is a valid `inode_operations` (every other hook unset).
    ..unsafe { core::mem::zeroed() }
});

pub(crate) static DIR_FOPS: Ops<bindings::file_operations> = Ops(bindings::file_operations {
    llseek: Some(bindings::generic_file_llseek),
    read: Some(bindings::generic_read_dir),
    iterate_shared: Some(iterate_shared),
    // SAFETY: all-zero is a valid `file_operations` (every other hook unset).
    ..unsafe { core::mem::zeroed() }
});
