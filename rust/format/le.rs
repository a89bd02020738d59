// SPDX-License-Identifier: GPL-2.0

//! Bounds-checked little-endian field readers and checked arithmetic helpers.

use super::error::{Error, Result};

/// Returns the `N` bytes at `off` in `buf`, or [`Error::Corrupted`] if out of bounds.
pub(crate) fn arr<const N: usize>(buf: &[u8], off: usize) -> Result<[u8; N]> {
    buf.get(off..)
        .and_then(|s| s.first_chunk::<N>())
        .copied()
        .ok_or(Error::Corrupted)
}

/// Reads the byte at `off`.
pub(crate) fn u8_at(buf: &[u8], off: usize) -> Result<u8> {
    buf.get(off).copied().ok_or(Error::Corrupted)
}

/// Reads a little-endian `u16` at `off`.
pub(crate) fn le16(buf: &[u8], off: usize) -> Result<u16> {
    Ok(u16::from_le_bytes(arr(buf, off)?))
}

/// Reads a little-endian `u32` at `off`.
pub(crate) fn le32(buf: &[u8], off: usize) -> Result<u32> {
    Ok(u32::from_le_bytes(arr(buf, off)?))
}

/// Reads a little-endian `u64` at `off`.
pub(crate) fn le64(buf: &[u8], off: usize) -> Result<u64> {
    Ok(u64::from_le_bytes(arr(buf, off)?))
}

/// Checked `a + b`, [`Error::Corrupted`] on overflow.
pub(crate) fn add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b).ok_or(Error::Corrupted)
}

/// Checked `a * b`, [`Error::Corrupted`] on overflow.
pub(crate) fn mul(a: u64, b: u64) -> Result<u64> {
    a.checked_mul(b).ok_or(Error::Corrupted)
}

/// Checked `a << bits` that also fails if bits are shifted out.
pub(crate) fn shl(a: u64, bits: u32) -> Result<u64> {
    let r = a.checked_shl(bits).ok_or(Error::Corrupted)?;
    if r >> bits != a {
        return Err(Error::Corrupted);
    }
    Ok(r)
}

/// Rounds `a` up to a multiple of the power of two `align` (checked).
pub(crate) fn round_up(a: u64, align: u64) -> Result<u64> {
    if align == 0 || !align.is_power_of_two() {
        return Err(Error::Corrupted);
    }
    Ok(add(a, align - 1)? & !(align - 1))
}

/// `slice::split_at_checked`, which the kernel's minimum Rust version (1.78) does not have.
pub(crate) fn split_at(data: &[u8], mid: usize) -> Option<(&[u8], &[u8])> {
    Some((data.get(..mid)?, data.get(mid..)?))
}

/// `slice::split_at_mut` that returns `None` instead of panicking when `mid > data.len()`.
pub(crate) fn split_at_mut(data: &mut [u8], mid: usize) -> Option<(&mut [u8], &mut [u8])> {
    if mid > data.len() {
        return None;
    }
    Some(data.split_at_mut(mid))
}
