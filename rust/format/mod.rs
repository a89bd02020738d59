// SPDX-License-Identifier: GPL-2.0

//! EROFS on-disk format layer: parsing of the superblock, device table, inodes,
//! directories, block mapping, xattrs, and compressed files (mapping and LZ4 decoding; not
//! used by the kernel module yet).
//!
//! This module only depends on `core`: no allocation, no `unsafe`, no panics on
//! disk-derived data. All I/O goes through the [`Source`] trait, which the kernel
//! implements over the page cache and the user-space tests over a byte vector.

// This is a library-like layer for the rest of the module: not every helper or constant
// is used by every build (kernel module, user-space tests).
#![allow(dead_code)]

mod devices;
mod dir;
mod error;
mod inode;
mod le;
mod lz4;
mod map;
mod superblock;
mod xattr;
mod zmap;

#[allow(unused_imports)]
pub(crate) use devices::*;
#[allow(unused_imports)]
pub(crate) use dir::*;
#[allow(unused_imports)]
pub(crate) use error::{Error, Result};
#[allow(unused_imports)]
pub(crate) use inode::*;
#[allow(unused_imports)]
pub(crate) use lz4::*;
#[allow(unused_imports)]
pub(crate) use map::*;
#[allow(unused_imports)]
pub(crate) use superblock::*;
#[allow(unused_imports)]
pub(crate) use xattr::*;
#[allow(unused_imports)]
pub(crate) use zmap::*;

/// Random-access reader of the primary (metadata) device.
pub(crate) trait Source {
    /// Fills `buf` with the bytes at absolute byte offset `pos`. Must return
    /// [`Error::Io`] (or another error) if the range cannot be read completely,
    /// e.g. past the end of the device.
    fn read_exact(&self, pos: u64, buf: &mut [u8]) -> Result<()>;
}

impl<T: Source + ?Sized> Source for &T {
    fn read_exact(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        (**self).read_exact(pos, buf)
    }
}
