// SPDX-License-Identifier: GPL-2.0

//! Error type shared by the on-disk format layer.

/// Errors produced while parsing EROFS on-disk structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Error {
    /// The on-disk data is inconsistent (EFSCORRUPTED).
    Corrupted,
    /// The data is valid but uses something this implementation does not support (EOPNOTSUPP).
    Unsupported,
    /// The superblock has incompatible feature bits we do not know; holds those bits.
    UnknownIncompat(u32),
    /// The superblock magic does not match; holds the value found.
    BadMagic(u32),
    /// A [`Source`](super::Source) read failed (EIO).
    Io,
}

/// Result type of the on-disk format layer.
pub(crate) type Result<T> = core::result::Result<T, Error>;
