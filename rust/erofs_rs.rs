// SPDX-License-Identifier: GPL-2.0

//! erofs_rs: EROFS over fscache on-demand mode, in Rust.
//!
//! A reimplementation of the fscache-backed read path of fs/erofs (`mount -t erofs -o fsid=...`):
//! every blob of an image is an fscache cookie whose cache file cachefiles fills on demand through
//! a user daemon. Registered as filesystem type `erofs_rs`, with the same mount options, volume and
//! cookie keys as in-tree erofs, so the same daemons serve it.
//!
//! Map of the crate: `format/` parses the on-disk format (no kernel types, shared with user-space
//! tests); `ffi`, `fscache` and `folio` are the only places that call C; `super`, `inode`, `dir`
//! and `data` are the filesystem.

use core::ptr::NonNull;
use kernel::bindings;
use kernel::prelude::*;
use kernel::types::Opaque;

mod data;
mod dir;
mod domain;
mod ffi;
mod folio;
// The format layer is shared with user-space tools, which use more of it than the module.
#[path = "format/mod.rs"]
mod format;
mod fscache;
mod inode;
mod options;
#[path = "super.rs"]
mod super_;
mod xattr;

module! {
    type: ErofsRs,
    name: "erofs_rs",
    author: "erofs_rs developers",
    description: "EROFS over fscache on-demand mode, in Rust",
    license: "GPL",
}

/// Logs an error caused by an image or a daemon, rate-limited so that bad input cannot flood the log.
#[macro_export]
macro_rules! erofs_err {
    ($($arg:tt)*) => {
        // SAFETY: `erofs_rs_ratelimit` only touches its own static ratelimit state.
        if unsafe { $crate::ffi::erofs_rs_ratelimit() } {
            kernel::pr_err!("{}\n", format_args!($($arg)*));
        }
    };
}

/// `EFSCORRUPTED` (`EUCLEAN`): corrupted on-disk data. 6.12's `kernel::error::code` lacks it.
pub(crate) fn efscorrupted() -> Error {
    Error::from_errno(-(bindings::EUCLEAN as i32))
}

/// `EOPNOTSUPP`, which 6.12's `kernel::error::code` lacks.
pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

/// `ENAMETOOLONG`, which 6.12's `kernel::error::code` lacks.
pub(crate) fn enametoolong() -> Error {
    Error::from_errno(-(bindings::ENAMETOOLONG as i32))
}

/// A C operations table (or other C struct) in a `static`.
///
/// The tables hold function pointers and pointers to other statics only, and the kernel never
/// writes them, so sharing them between threads is safe.
#[repr(transparent)]
pub(crate) struct Ops<T>(pub(crate) T);

// SAFETY: see the type's documentation: immutable C tables of code and static pointers.
unsafe impl<T> Sync for Ops<T> {}

/// The registered `file_system_type`. It must be a static: lockdep keys live inside it.
struct FsType(Opaque<bindings::file_system_type>);

// SAFETY: written only in `init` before registration and read by the VFS after it.
unsafe impl Sync for FsType {}

static FS_TYPE: FsType = FsType(Opaque::new(bindings::file_system_type {
    name: c"erofs_rs".as_ptr().cast(),
    mount: Some(super_::mount),
    kill_sb: Some(super_::kill_sb),
    // SAFETY: all-zero is a valid `file_system_type` for the remaining fields.
    ..unsafe { core::mem::zeroed() }
}));

struct ErofsRs {
    registered: NonNull<bindings::file_system_type>,
}

// SAFETY: the module state is only a pointer to a static.
unsafe impl Send for ErofsRs {}
// SAFETY: as above.
unsafe impl Sync for ErofsRs {}

impl kernel::Module for ErofsRs {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let fs = FS_TYPE.0.get();
        // SAFETY: not registered yet, so nobody else looks at `FS_TYPE`; the module outlives its
        // registration.
        unsafe { (*fs).owner = module.as_ptr() };
        // SAFETY: `fs` is a fully set-up, static `file_system_type`.
        let ret = unsafe { bindings::register_filesystem(fs) };
        if ret != 0 {
            return Err(Error::from_errno(ret));
        }
        pr_info!("registered filesystem type erofs_rs (fscache on-demand mode)\n");
        Ok(Self { registered: NonNull::new(fs).ok_or(EINVAL)? })
    }
}

impl Drop for ErofsRs {
    fn drop(&mut self) {
        // SAFETY: registered in `init`; a module with mounts cannot be unloaded (owner refcount).
        unsafe { bindings::unregister_filesystem(self.registered.as_ptr()) };
        domain::release_tables();
    }
}
