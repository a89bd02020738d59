// SPDX-License-Identifier: GPL-2.0

//! Extended attributes and POSIX ACLs, as fs/erofs/xattr.c.
//!
//! `listxattr` walks an inode's inline and shared xattr entries (format layer) and emits full
//! names. `getxattr` serves the `user.`, `trusted.` and `security.` handlers, whose C tables live
//! in `shim.c` (6.12's bindings have `struct xattr_handler` only as an opaque type) and call
//! `erofs_rs_getxattr` below; `get_inode_acl` (also in `shim.c`) uses it for
//! `system.posix_acl_access`/`default` and converts with `posix_acl_from_xattr()`.

use crate::super_::{format_errno, BStr, MetaSource, SbInfo, SB_POSIXACL};
use crate::{eopnotsupp, erofs_err, format, inode};
use kernel::bindings;
use kernel::error::{code::*, Error, Result};
use kernel::ffi::{c_char, c_int, c_void};

/// `CAP_SYS_ADMIN`: listing `trusted.` names needs it, as in C.
const CAP_SYS_ADMIN: c_int = 21;

/// Calls `f` on each xattr entry of the inode (inline first, then shared) until it returns true.
fn for_each_entry(
    info: &SbInfo,
    raw: &format::Inode,
    mut f: impl FnMut(&MetaSource<'_>, &format::XattrEntry) -> Result<bool>,
) -> Result {
    let src = MetaSource(info.meta()?);
    let Some(ix) = format::InodeXattrs::read(&src, &info.fs, raw).map_err(|e| bad(info, raw, e))? else {
        return Ok(());
    };
    for e in ix.inline_entries(&src) {
        let e = e.map_err(|e| bad(info, raw, e))?;
        if f(&src, &e)? {
            return Ok(());
        }
    }
    for i in 0..ix.shared_count {
        let id = ix.shared_id(&src, i).map_err(|e| bad(info, raw, e))?;
        let e = format::shared_entry(&src, &info.fs, id).map_err(|e| bad(info, raw, e))?;
        if f(&src, &e)? {
            return Ok(());
        }
    }
    Ok(())
}

fn bad(info: &SbInfo, raw: &format::Inode, e: format::Error) -> Error {
    erofs_err!("{}: nid {}: bad xattrs: {:?}", BStr(info.opts.fsid.as_bytes()), raw.nid, e);
    format_errno(e)
}

/// The long prefix of an entry that uses one.
fn long_prefix(src: &MetaSource<'_>, info: &SbInfo, e: &format::XattrEntry) -> Result<Option<format::LongPrefix>> {
    if !e.is_long_prefix() {
        return Ok(None);
    }
    format::long_prefix(src, &info.fs, e.long_prefix_index()).map(Some).map_err(format_errno)
}

fn getxattr(inode: *mut bindings::inode, index: u8, name: &[u8], buf: Option<&mut [u8]>) -> Result<usize> {
    // SAFETY: an inode of a mounted erofs_rs super block.
    let (info, ii) = unsafe { (SbInfo::from_sb((*inode).i_sb), inode::info(inode)?) };
    // `nouser_xattr`: the user. namespace is not there (C: erofs_xattr_generic_get).
    if index == format::EROFS_XATTR_INDEX_USER && !info.flags.get().user_xattr {
        return Err(eopnotsupp());
    }
    let mut found = None;
    for_each_entry(info, &ii.raw, |src, e| {
        let long = long_prefix(src, info, e)?;
        if e.matches(src, long.as_ref(), index, name).map_err(format_errno)? {
            found = Some((e.value_pos().map_err(format_errno)?, usize::from(e.value_size)));
            return Ok(true);
        }
        Ok(false)
    })?;
    let (pos, size) = found.ok_or(Error::from_errno(-(bindings::ENODATA as i32)))?;
    let Some(buf) = buf else { return Ok(size) };
    let dst = buf.get_mut(..size).ok_or(ERANGE)?;
    MetaSource(info.meta()?).read_exact_kernel(pos, dst)?;
    Ok(size)
}

/// The get side of the xattr handlers in `shim.c`: value of `<prefix of index><name>`.
///
/// # Safety
///
/// Called by `shim.c` with a live erofs_rs inode, a NUL-terminated `name`, and `buf` valid for
/// `size` bytes (or NULL to ask for the size).
#[no_mangle]
pub(crate) unsafe extern "C" fn erofs_rs_getxattr(
    inode: *mut bindings::inode,
    index: c_int,
    name: *const c_char,
    buf: *mut c_void,
    size: usize,
) -> c_int {
    // SAFETY: `name` is NUL-terminated (caller's guarantee).
    let name = unsafe { kernel::str::CStr::from_char_ptr(name) }.as_bytes();
    if name.len() > format::EROFS_NAME_LEN {
        return -(bindings::ERANGE as c_int);
    }
    let buf = if buf.is_null() || size == 0 {
        None
    } else {
        // SAFETY: `buf` is valid for `size` bytes (caller's guarantee).
        Some(unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) })
    };
    let Ok(index) = u8::try_from(index) else { return EINVAL.to_errno() };
    match getxattr(inode, index, name, buf) {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => e.to_errno(),
    }
}

/// Appends `parts` and a NUL to the listxattr buffer (or only counts when there is none).
struct NameList<'a> {
    buf: Option<&'a mut [u8]>,
    len: usize,
}

impl NameList<'_> {
    fn push(&mut self, parts: &[&[u8]]) -> Result {
        let n = parts.iter().map(|p| p.len()).sum::<usize>() + 1;
        if let Some(buf) = self.buf.as_deref_mut() {
            let dst = buf.get_mut(self.len..self.len + n).ok_or(ERANGE)?;
            let mut at = 0;
            for p in parts {
                dst[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
            dst[at] = 0;
        }
        self.len += n;
        Ok(())
    }
}

fn listxattr(dentry: *mut bindings::dentry, buf: Option<&mut [u8]>) -> Result<usize> {
    // SAFETY: a positive dentry of ours.
    let inode = unsafe { (*dentry).d_inode };
    // SAFETY: an inode of a mounted erofs_rs super block.
    let (info, ii) = unsafe { (SbInfo::from_sb((*inode).i_sb), inode::info(inode)?) };
    let mut list = NameList { buf, len: 0 };
    let flags = info.flags.get();
    // SAFETY: reading the flags of a live super block.
    let posixacl = unsafe { (*(*inode).i_sb).s_flags } & SB_POSIXACL != 0;
    for_each_entry(info, &ii.raw, |src, e| {
        let long = long_prefix(src, info, e)?;
        let base = long.as_ref().map(|l| l.base_index).unwrap_or(e.name_index);
        let Some(prefix) = format::prefix_name(base) else { return Ok(false) };
        // SAFETY: plain capability check of the current task.
        if base == format::EROFS_XATTR_INDEX_TRUSTED && !unsafe { bindings::capable(CAP_SYS_ADMIN) } {
            return Ok(false);
        }
        // As C's handler `list` callbacks: user. only with `user_xattr`, ACLs only with `acl`.
        if base == format::EROFS_XATTR_INDEX_USER && !flags.user_xattr {
            return Ok(false);
        }
        if (base == format::EROFS_XATTR_INDEX_POSIX_ACL_ACCESS
            || base == format::EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT)
            && !posixacl
        {
            return Ok(false);
        }
        let mut infix_buf = [0u8; format::EROFS_NAME_LEN];
        let infix = match &long {
            Some(l) => l.read_infix(src, &mut infix_buf).map_err(format_errno)?,
            None => &[],
        };
        let mut name_buf = [0u8; format::EROFS_NAME_LEN];
        let name = e.read_name(src, &mut name_buf).map_err(format_errno)?;
        list.push(&[prefix, infix, name])?;
        Ok(false)
    })?;
    Ok(list.len)
}

/// `inode_operations.listxattr`.
///
/// # Safety
///
/// Only the kernel calls this, with the arguments its C contract describes.
pub(crate) unsafe extern "C" fn erofs_listxattr(
    dentry: *mut bindings::dentry,
    buf: *mut c_char,
    size: usize,
) -> isize {
    let buf = if buf.is_null() || size == 0 {
        None
    } else {
        // SAFETY: the VFS passes a buffer of `size` bytes.
        Some(unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), size) })
    };
    match listxattr(dentry, buf) {
        Ok(n) => n as isize,
        Err(e) => e.to_errno() as isize,
    }
}
