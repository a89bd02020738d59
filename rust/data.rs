// SPDX-License-Identifier: GPL-2.0

//! The read path: `read_folio` of blob page caches (metadata) and of files and directories.
//!
//! A file folio is filled piece by piece from the format layer's mappings: mapped blocks are read
//! from the blob of their device through fscache (`Cookie::read_into_mapping`), holes and the
//! space past EOF are zeroed, and inline tails are copied from the metadata blob. The folio is
//! marked up to date only if every piece succeeded, and unlocked exactly once (`LockedFolio`).

use crate::folio::LockedFolio;
use crate::fscache::Cookie;
use crate::super_::{format_errno, BStr, MetaSource, SbInfo};
use crate::{erofs_err, format, inode, Ops};
use kernel::ffi::c_int;
use crate::{efscorrupted};
use kernel::bindings;
use kernel::error::{code::*, Result};

fn meta_read(folio: &mut LockedFolio) -> Result {
    let mapping = folio.mapping();
    // SAFETY: a blob page cache's host inode keeps a pointer to its cookie in `i_private`, valid
    // for the inode's life (see `BlobCache`).
    let cookie = unsafe { (*(*mapping).host).i_private.cast::<Cookie>().as_ref() }.ok_or(EIO)?;
    let pos = folio.pos();
    // SAFETY: the whole folio is ours to fill: it is locked.
    unsafe { cookie.read_into_mapping(pos, mapping, pos, folio.size())? };
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

fn data_read(folio: &mut LockedFolio) -> Result {
    let mapping = folio.mapping();
    // SAFETY: the mapping of a locked folio has a live host inode.
    let inode = unsafe { (*mapping).host };
    // SAFETY: a file, directory or symlink inode of a mounted erofs_rs super block.
    let (info, ii) = unsafe { (SbInfo::from_sb((*inode).i_sb), inode::info(inode)?) };
    let raw = &ii.raw;
    let meta = info.meta()?;
    let src = MetaSource(meta);
    let fpos = folio.pos();
    let fsize = folio.size();
    let mut off = 0usize;
    while off < fsize {
        let lpos = fpos + off as u64;
        if lpos >= raw.size {
            folio.zero(off, fsize - off)?;
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
        let n = core::cmp::min(avail, (fsize - off) as u64) as usize;
        let phys = m.physical.checked_add(skip).ok_or(efscorrupted())?;
        if !m.mapped {
            folio.zero(off, n)?;
        } else if m.meta {
            // The tail lives in the metadata blob right after the inode: copy it.
            let want = core::cmp::min(n as u64, raw.size - lpos) as usize;
            folio.fill_with(off, want, |dst, done| {
                src.read_exact(phys + done as u64, dst).map_err(format_errno)
            })?;
            folio.zero(off + want, n - want)?;
        } else {
            let cookie = info.cookie(m.device)?;
            // SAFETY: `[lpos, lpos + n)` lies in this folio, which we hold locked.
            unsafe { cookie.read_into_mapping(phys, mapping, lpos, n)? };
        }
        off += n;
    }
    // Bytes past EOF in the last folio read as zeros (mmap shows them).
    let end = raw.size.saturating_sub(fpos);
    if end < fsize as u64 {
        folio.zero(end as usize, fsize - end as usize)?;
    }
    folio.set_uptodate();
    Ok(())
}

use format::Source as _;

/// `address_space_operations.read_folio` of files, directories and symlinks.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
unsafe extern "C" fn data_read_folio(_file: *mut bindings::file, folio: *mut bindings::folio) -> c_int {
    // SAFETY: `read_folio` gets a locked folio and must unlock it: `LockedFolio` does, on drop.
    let Some(mut folio) = (unsafe { LockedFolio::from_raw(folio) }) else {
        return EINVAL.to_errno();
    };
    match data_read(&mut folio) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
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
        // SAFETY: all-zero is a valid `address_space_operations` (every other hook unset).
        ..unsafe { core::mem::zeroed() }
    });
