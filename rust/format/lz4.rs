// SPDX-License-Identifier: GPL-2.0

//! A safe LZ4 block decoder and the EROFS extent decoder built on it.
//!
//! [`lz4_decompress`] decodes one LZ4 block (the raw block format, no frame) as Linux's
//! `LZ4_decompress_safe` ([`Lz4Mode::Full`]) and `LZ4_decompress_safe_partial`
//! ([`Lz4Mode::Partial`]) do, with the same notion of a malformed block; it never reads or
//! writes outside its slices and does work linear in `src.len() + dst.len()`.
//!
//! [`decompress_extent`] is `z_erofs_lz4_decompress` and `z_erofs_transform_plain`
//! (`fs/erofs/decompressor.c`) for one extent returned by
//! [`map_compressed`](super::map_compressed): zero padding (`LZ4_0PADDING`), full or partial
//! decoding, and the uncompressed (shifted, interlaced) pclusters. The compressed bytes and the
//! output are separate slices, so the kernel's in-place and overlap handling is not needed: the
//! caller reads the pcluster into one buffer and decodes into another.
//!
//! The decoders are pluggable ([`Decoder`]): [`decompress_extent`] uses this module's LZ4
//! decoder ([`RustLz4`]), which user space tests and fuzzes; the kernel module passes the
//! kernel's `lib/lz4`, `lib/zlib_inflate` and `lib/zstd` to [`decompress_extent_with`], as
//! in-tree erofs decodes. DEFLATE and Zstandard extents follow `z_erofs_deflate_decompress` and
//! `z_erofs_zstd_decompress`: zero padding skipped, then what the decoder produced checked
//! here with C's rules (see [`decompress_extent_with`]).

use super::error::{Error, Result};
use super::le;
use super::superblock::{SuperBlock, EROFS_FEATURE_INCOMPAT_ZERO_PADDING};
use super::zmap::{Algorithm, ComprConfig, ZExtent};

/// Minimum match length.
const MINMATCH: usize = 4;
/// The last 5 bytes of a block are literals (LZ4 parsing restriction).
const LASTLITERALS: usize = 5;
/// The last match starts at least 12 bytes before the end of a block.
const MFLIMIT: usize = 12;
/// Token nibble value announcing extra length bytes.
const RUN_MASK: usize = 15;

/// How [`lz4_decompress`] treats the end of the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lz4Mode {
    /// `LZ4_decompress_safe`: decode the whole block. The input must end exactly after the
    /// literals of a sequence, every literal run and match must fit in `dst` (its capacity), and
    /// LZ4's end-of-block rules are enforced against `dst.len()` as Linux does: a sequence that
    /// is followed by a match has its literals end at least 12 bytes before the end of `dst`,
    /// and a match ends at least 5 bytes before it.
    Full,
    /// `LZ4_decompress_safe_partial`: stop as soon as `dst` is full (a literal run or match is
    /// cut there), or when the input ends after a literal run (as Linux does when fewer than
    /// three bytes follow the literals). Trailing input (erofs pclusters without zero padding
    /// carry zeros after the block) is ignored.
    Partial,
}

/// A cursor over the compressed input. Invariant: `pos <= buf.len()`.
struct Input<'a> {
    /// The compressed block.
    buf: &'a [u8],
    /// Next byte to read.
    pos: usize,
}

impl<'a> Input<'a> {
    /// Bytes not consumed yet.
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Reads one byte ([`Error::Corrupted`] at the end of the input).
    fn byte(&mut self) -> Result<u8> {
        let b = self.buf.get(self.pos).copied().ok_or(Error::Corrupted)?;
        self.pos += 1;
        Ok(b)
    }

    /// Consumes `n` bytes ([`Error::Corrupted`] if fewer remain).
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Corrupted)?;
        let s = self.buf.get(self.pos..end).ok_or(Error::Corrupted)?;
        self.pos = end;
        Ok(s)
    }
}

/// Adds the extra length bytes that follow a nibble of 15 (each byte adds its value; 255 means
/// another byte follows). With `min_left`, at least that many input bytes must remain after
/// each extra byte (Linux's check on match lengths).
fn extra_length(inp: &mut Input<'_>, mut len: usize, min_left: usize) -> Result<usize> {
    loop {
        let b = inp.byte()?;
        if inp.remaining() < min_left {
            return Err(Error::Corrupted);
        }
        len = len.checked_add(usize::from(b)).ok_or(Error::Corrupted)?;
        if b != 255 {
            return Ok(len);
        }
    }
}

/// Copies `lit` to `dst[op..]` ([`Error::Corrupted`] if it does not fit).
fn put(dst: &mut [u8], op: usize, lit: &[u8]) -> Result<()> {
    let end = op.checked_add(lit.len()).ok_or(Error::Corrupted)?;
    let d = dst.get_mut(op..end).ok_or(Error::Corrupted)?;
    d.copy_from_slice(lit);
    Ok(())
}

/// Copies a match: `len` bytes at `dst[op..]` from `offset` bytes back, byte by byte in effect
/// (overlapping matches repeat the last `offset` bytes). The caller checked
/// `1 <= offset <= op` and `op + len <= dst.len()`; [`Error::Corrupted`] otherwise.
fn copy_match(dst: &mut [u8], op: usize, offset: usize, len: usize) -> Result<()> {
    if offset == 0 {
        return Err(Error::Corrupted);
    }
    let start = op.checked_sub(offset).ok_or(Error::Corrupted)?;
    let mut done = 0usize;
    while done < len {
        // `dst[start..at]` is periodic with period `offset` and `dst[at..]` continues it, so
        // its bytes can be copied in one go; each round at least doubles what is available.
        let at = op.checked_add(done).ok_or(Error::Corrupted)?;
        let n = core::cmp::min(len - done, at - start);
        let (head, tail) = le::split_at_mut(dst, at).ok_or(Error::Corrupted)?;
        let s = head
            .get(start..)
            .and_then(|h| h.get(..n))
            .ok_or(Error::Corrupted)?;
        let d = tail.get_mut(..n).ok_or(Error::Corrupted)?;
        d.copy_from_slice(s);
        done += n;
    }
    Ok(())
}

/// Decodes the LZ4 block `src` into `dst` and returns the number of bytes written to `dst`
/// (the bytes after it are untouched).
///
/// See [`Lz4Mode`] for the two modes. A malformed block ([`Error::Corrupted`]): empty input,
/// a literal run or extra length bytes past the end of the input, a match offset of 0 or before
/// the start of the output, a literal run or match that does not fit (full mode) or breaks the
/// end-of-block rules (full mode), input left after the last literals (full mode). With an
/// empty `dst`, full mode accepts only the empty block (the single byte 0) and partial mode
/// returns 0 at once. A short result is not an error here: callers that need an exact size
/// compare it.
pub(crate) fn lz4_decompress(src: &[u8], dst: &mut [u8], mode: Lz4Mode) -> Result<usize> {
    let full = mode == Lz4Mode::Full;
    let cap = dst.len();
    if cap == 0 {
        return match (full, src) {
            (false, _) | (true, [0]) => Ok(0),
            _ => Err(Error::Corrupted),
        };
    }
    if src.is_empty() {
        return Err(Error::Corrupted);
    }
    let mut inp = Input { buf: src, pos: 0 };
    let mut op = 0usize;
    loop {
        let token = inp.byte()?;
        let mut lit = usize::from(token >> 4);
        if lit == RUN_MASK {
            lit = extra_length(&mut inp, lit, 0)?;
        }
        let lit_end = op.checked_add(lit).ok_or(Error::Corrupted)?;
        if full {
            let left = inp.remaining();
            if lit > left || lit_end > cap {
                return Err(Error::Corrupted);
            }
            put(dst, op, inp.take(lit)?)?;
            op = lit_end;
            if lit == left {
                // The last sequence: literals only, ending the input.
                return Ok(op);
            }
            if lit_end.saturating_add(MFLIMIT) > cap {
                return Err(Error::Corrupted);
            }
        } else {
            let n = core::cmp::min(lit, cap - op);
            put(dst, op, inp.take(n)?)?;
            op += n;
            if op == cap || inp.remaining() <= 2 {
                return Ok(op);
            }
        }

        let [lo, hi] = [inp.byte()?, inp.byte()?];
        let offset = usize::from(u16::from_le_bytes([lo, hi]));
        if offset == 0 || offset > op {
            return Err(Error::Corrupted);
        }
        let mut mlen = usize::from(token & 15);
        if mlen == RUN_MASK {
            mlen = extra_length(&mut inp, mlen, LASTLITERALS)?;
        }
        let mlen = mlen.checked_add(MINMATCH).ok_or(Error::Corrupted)?;
        if full {
            let end = op.checked_add(mlen).ok_or(Error::Corrupted)?;
            if end.saturating_add(LASTLITERALS) > cap {
                return Err(Error::Corrupted);
            }
            copy_match(dst, op, offset, mlen)?;
            op = end;
        } else {
            let n = core::cmp::min(mlen, cap - op);
            copy_match(dst, op, offset, n)?;
            op += n;
            if op == cap {
                return Ok(op);
            }
        }
    }
}

/// What [`Decoder::deflate`] produced: the bytes written to `dst` and whether the DEFLATE
/// stream ended (zlib's `Z_STREAM_END`; otherwise the decoder stopped because `dst` was full or
/// the input ran out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inflated {
    /// Bytes written to the start of `dst` (at most `dst.len()`).
    pub(crate) produced: usize,
    /// The final block's end was decoded.
    pub(crate) stream_end: bool,
}

/// The decoders of compressed extents. [`Decoder::lz4`] is required; an algorithm whose method
/// is not overridden is [`Error::Unsupported`] (the reader refuses it at mount through the
/// `supported` bitmap of [`ComprConfig::read_with`](super::ComprConfig::read_with)).
pub(crate) trait Decoder {
    /// Decodes the LZ4 block `src` into `dst` in `mode`, with the contract of
    /// [`lz4_decompress`]: the bytes decoded into `dst` (never more than `dst.len()`), or
    /// [`Error::Corrupted`] for a malformed block.
    fn lz4(&mut self, src: &[u8], dst: &mut [u8], mode: Lz4Mode) -> Result<usize>;

    /// Decodes the raw DEFLATE stream (no zlib header, 32 KiB window) at the start of `src`
    /// into `dst` until the stream ends, `dst` is full or `src` runs out; bytes after the
    /// stream's end are ignored. [`Error::Corrupted`] for malformed data.
    fn deflate(&mut self, _src: &[u8], _dst: &mut [u8]) -> Result<Inflated> {
        Err(Error::Unsupported)
    }

    /// Decodes the Zstandard frame at the start of `src` into `dst`, stopping once `dst` is
    /// full (the rest of the frame and anything after it are not looked at); a frame whose
    /// window is larger than `max_window` bytes is refused. Returns the bytes written: fewer
    /// than `dst.len()` if the frame ended or `src` ran out first. [`Error::Corrupted`] for
    /// malformed data or a too large window.
    fn zstd(&mut self, _src: &[u8], _dst: &mut [u8], _max_window: u32) -> Result<usize> {
        Err(Error::Unsupported)
    }

    /// Decodes the MicroLZMA stream that is exactly `src` (`src.len()` is its compressed size)
    /// into `dst`, whose matches reach back at most `dict_size` bytes. With `exact`, the stream
    /// must hold exactly `dst.len()` bytes and end with the input (`xz_dec_microlzma_reset`'s
    /// `uncomp_size_is_exact`); without it, decoding stops once `dst` is full. Returns the
    /// bytes written. [`Error::Corrupted`] for malformed data, and for a `dict_size` of 0 (a
    /// configuration without MicroLZMA: C has no stream to decode it with).
    fn lzma(&mut self, _src: &[u8], _dst: &mut [u8], _exact: bool, _dict_size: u32) -> Result<usize> {
        Err(Error::Unsupported)
    }
}

/// This module's safe LZ4 decoder, [`lz4_decompress`] (no DEFLATE nor Zstandard).
pub(crate) struct RustLz4;

impl Decoder for RustLz4 {
    fn lz4(&mut self, src: &[u8], dst: &mut [u8], mode: Lz4Mode) -> Result<usize> {
        lz4_decompress(src, dst, mode)
    }
}

/// `z_erofs_fixup_insize`: with zero padding, a pcluster's compressed data is at its end and
/// the leading zero bytes are padding. Returns `data` without them; the padding must end within
/// the first `window` bytes (the rest of the pcluster's first block), else the pcluster is all
/// padding there and [`Error::Corrupted`].
pub(crate) fn strip_zero_padding(data: &[u8], window: usize) -> Result<&[u8]> {
    let head = data
        .get(..core::cmp::min(window, data.len()))
        .unwrap_or(data);
    let pad = head.iter().position(|&b| b != 0).ok_or(Error::Corrupted)?;
    data.get(pad..).ok_or(Error::Corrupted)
}

/// Decodes the beginning of the extent `ext` of a compressed inode: fills `dst` with the file
/// bytes `[ext.logical, ext.logical + dst.len())` (`z_erofs_lz4_decompress`,
/// `z_erofs_transform_plain`).
///
/// `pcluster` holds the `ext.plength` bytes at `ext.physical` on the primary device (for an
/// inline pcluster, `ext.meta`, the bytes inside the metadata block). Decoding always starts at
/// the extent's start, so to read file bytes further in, decode up to them and skip the head.
/// `dst.len()` must be at most `ext.length` and the file bytes past `i_size` cannot be
/// decoded: callers clip `dst` to `i_size - ext.logical` (C's `pcl->length` never goes past
/// EOF either).
///
/// LZ4: with [`EROFS_FEATURE_INCOMPAT_ZERO_PADDING`] the leading zeros of the pcluster are
/// skipped ([`strip_zero_padding`]) and, when `dst` is the whole extent, the extent is fully
/// mapped and not a partial reference, the block must decode to exactly `dst.len()` bytes
/// ([`Lz4Mode::Full`]); otherwise (partial decoding, or images without zero padding, whose
/// pclusters may hold more data than the extent) it is decoded until `dst` is full
/// ([`Lz4Mode::Partial`]). Getting fewer bytes than `dst.len()` is [`Error::Corrupted`].
/// Uncompressed pclusters ([`Algorithm::Shifted`], [`Algorithm::Interlaced`]) are copied;
/// more output than the pcluster holds is [`Error::Unsupported`], as in C.
///
/// DEFLATE, Zstandard and MicroLZMA: the zero padding is always skipped (as in C, whatever the
/// feature bits say), then the decoder runs over the rest of the pcluster. DEFLATE
/// (`z_erofs_deflate_decompress`): the stream must end exactly when `dst` is full, except for
/// a partial decode (as for LZ4), where a full `dst` is enough; a stream that ends early is
/// [`Error::Corrupted`]. Zstandard (`z_erofs_zstd_decompress`): `dst` must be filled, from a
/// frame whose window is at most [`ComprConfig::zstd_window`](super::ComprConfig::zstd_window)
/// of `cfg`. MicroLZMA (`z_erofs_lzma_decompress`): the rest of the pcluster is the stream,
/// which must fill `dst` with matches within `cfg`'s dictionary size; a whole-extent decode
/// (as for LZ4) must end exactly with both the input and the output.
///
/// Errors: [`Error::Unsupported`] for an algorithm `dec` does not decode, and for
/// fragment extents (their data is in the packed inode, at `ext.physical` in its file data);
/// [`Error::Corrupted`] for a hole, a `pcluster` that is not `ext.plength` bytes long, a `dst`
/// longer than the extent, or bad compressed data. On error `dst` holds unspecified bytes.
pub(crate) fn decompress_extent(
    sb: &SuperBlock,
    ext: &ZExtent,
    pcluster: &[u8],
    dst: &mut [u8],
) -> Result<()> {
    decompress_extent_with(&mut RustLz4, sb, &ComprConfig::lz4_only(0), ext, pcluster, dst)
}

/// [`decompress_extent`] with the compressed data decoded by `dec`, for a filesystem whose
/// compression configuration is `cfg`.
pub(crate) fn decompress_extent_with(
    dec: &mut impl Decoder,
    sb: &SuperBlock,
    cfg: &ComprConfig,
    ext: &ZExtent,
    pcluster: &[u8],
    dst: &mut [u8],
) -> Result<()> {
    if !ext.mapped {
        return Err(Error::Corrupted);
    }
    if ext.fragment {
        return Err(Error::Unsupported);
    }
    let out_len = u64::try_from(dst.len()).map_err(|_| Error::Corrupted)?;
    if out_len > ext.length || u64::try_from(pcluster.len()).ok() != Some(ext.plength) {
        return Err(Error::Corrupted);
    }
    if dst.is_empty() {
        return Ok(());
    }
    let blksz = u64::from(sb.block_size());
    // Zero padding ends within the rest of the pcluster's first block (an inline pcluster lies
    // inside one block; others are block aligned).
    let pad_window =
        usize::try_from(blksz - (ext.physical & (blksz - 1))).map_err(|_| Error::Corrupted)?;
    // The whole extent is decoded (C's `!partial_decoding`).
    let whole = out_len == ext.length && ext.full_mapped && !ext.partial_ref;
    match ext.algorithm {
        Algorithm::Lz4 => {
            let zero_padding = sb.has_incompat(EROFS_FEATURE_INCOMPAT_ZERO_PADDING);
            let (input, partial) = if zero_padding {
                (strip_zero_padding(pcluster, pad_window)?, !whole)
            } else {
                (pcluster, true)
            };
            let mode = if partial {
                Lz4Mode::Partial
            } else {
                Lz4Mode::Full
            };
            if dec.lz4(input, dst, mode)? != dst.len() {
                return Err(Error::Corrupted);
            }
            Ok(())
        }
        Algorithm::Shifted => {
            let src = pcluster.get(..dst.len()).ok_or(Error::Unsupported)?;
            dst.copy_from_slice(src);
            Ok(())
        }
        Algorithm::Interlaced => {
            // The block holding file offset `x` of the extent stores it at `x % blksz`:
            // the pcluster is the data rotated by the extent's offset in its block. The first
            // `blksz - logical % blksz` output bytes are at the end of the pcluster, the rest
            // from its start.
            if dst.len() > pcluster.len() {
                return Err(Error::Unsupported);
            }
            let rot = usize::try_from(blksz - (ext.logical & (blksz - 1)))
                .map_err(|_| Error::Corrupted)?;
            let tail_start = pcluster.len().checked_sub(rot).ok_or(Error::Corrupted)?;
            let first = core::cmp::min(rot, dst.len());
            let (d1, d2) = le::split_at_mut(dst, first).ok_or(Error::Corrupted)?;
            let s1 = pcluster
                .get(tail_start..)
                .and_then(|s| s.get(..first))
                .ok_or(Error::Corrupted)?;
            d1.copy_from_slice(s1);
            let s2 = pcluster.get(..d2.len()).ok_or(Error::Corrupted)?;
            d2.copy_from_slice(s2);
            Ok(())
        }
        Algorithm::Deflate | Algorithm::Zstd | Algorithm::Lzma => {
            let input = strip_zero_padding(pcluster, pad_window)?;
            let got = match ext.algorithm {
                Algorithm::Deflate => {
                    let r = dec.deflate(input, dst)?;
                    // C: a full decode needs Z_STREAM_END with the output complete; a partial
                    // one stops at a full output, stream end or not.
                    if whole && !r.stream_end {
                        return Err(Error::Corrupted);
                    }
                    r.produced
                }
                Algorithm::Zstd => dec.zstd(input, dst, cfg.zstd_window())?,
                _ => dec.lzma(input, dst, whole, cfg.lzma_dict_size)?,
            };
            if got != dst.len() {
                return Err(Error::Corrupted);
            }
            Ok(())
        }
    }
}
