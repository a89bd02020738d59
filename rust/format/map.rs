// SPDX-License-Identifier: GPL-2.0

//! Logical-to-physical block mapping of uncompressed inodes (`erofs_map_blocks`):
//! flat (plain and tail-inline) and chunk-based layouts.

use super::error::{Error, Result};
use super::inode::{Inode, Layout, EROFS_CHUNK_FORMAT_INDEXES};
use super::le::{self, le16, le32};
use super::superblock::{SuperBlock, EROFS_NULL_ADDR};
use super::Source;

/// Size of a block map entry (`__le32` block address).
pub(crate) const EROFS_BLOCK_MAP_ENTRY_SIZE: u64 = 4;
/// Size of `struct erofs_inode_chunk_index`.
pub(crate) const EROFS_CHUNK_INDEX_SIZE: u64 = 8;

/// One extent of a file.
///
/// The extent covers file bytes `[logical, logical + length)`; it always contains the
/// requested offset unless `length == 0`, which means the offset is at or beyond EOF
/// (nothing to read; treat as a hole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// File offset where the extent starts (<= the requested offset).
    pub(crate) logical: u64,
    /// Byte offset on `device` corresponding to `logical` (0 for holes).
    pub(crate) physical: u64,
    /// Extent length in bytes. Mirrors the kernel: for block-mapped extents it is
    /// rounded up to the block size at EOF (bytes past `i_size` must be zeroed by the
    /// reader); for the inline tail (`meta`) it is exact (`size - logical`).
    pub(crate) length: u64,
    /// Device id: 0 = primary, `n` = extra device `n` (already masked with the
    /// superblock's device id mask and checked against `extra_devices`). Pass to
    /// [`map_device`](super::map_device) to resolve flat multi-device mappings.
    pub(crate) device: u16,
    /// `false` means a hole: reads as zeros.
    pub(crate) mapped: bool,
    /// `true` if the extent is tail-packed data inside the metadata area
    /// (`EROFS_MAP_META`): not block aligned, always on device 0.
    pub(crate) meta: bool,
}

/// Maps file offset `offset` of `inode` (`erofs_map_blocks`).
///
/// Returns [`Error::Unsupported`] for compressed inodes. `offset >= inode.size` yields
/// an unmapped zero-length mapping at `offset`. Chunk-based inodes read one block map
/// entry / chunk index through `src`.
pub(crate) fn map(
    src: &impl Source,
    sb: &SuperBlock,
    inode: &Inode,
    offset: u64,
) -> Result<Mapping> {
    if offset >= inode.size {
        return Ok(Mapping {
            logical: offset,
            physical: 0,
            length: 0,
            device: 0,
            mapped: false,
            meta: false,
        });
    }
    match inode.datalayout {
        Layout::FlatPlain | Layout::FlatInline => map_flat(sb, inode, offset),
        Layout::ChunkBased => map_chunk(src, sb, inode, offset),
        Layout::CompressedFull | Layout::CompressedCompact => Err(Error::Unsupported),
    }
}

fn map_flat(sb: &SuperBlock, inode: &Inode, offset: u64) -> Result<Mapping> {
    let tailpacking = inode.datalayout == Layout::FlatInline;
    let nblocks = inode.nblocks(sb);
    // offset < size, so nblocks >= 1.
    let lastblk = if tailpacking { nblocks - 1 } else { nblocks };
    let tail_start = sb.blkpos(lastblk)?;
    if offset < tail_start {
        return Ok(Mapping {
            logical: 0,
            physical: sb.blkpos(u64::from(inode.raw_blkaddr))?,
            length: tail_start,
            device: 0,
            mapped: true,
            meta: false,
        });
    }
    if !tailpacking {
        return Err(Error::Corrupted);
    }
    let physical = inode.inline_data_pos(sb)?;
    let length = inode.size - tail_start;
    let blksz = u64::from(sb.block_size());
    let blkoff = physical & (blksz - 1);
    if le::add(blkoff, length)? > blksz {
        return Err(Error::Corrupted);
    }
    Ok(Mapping {
        logical: tail_start,
        physical,
        length,
        device: 0,
        mapped: true,
        meta: true,
    })
}

fn map_chunk(src: &impl Source, sb: &SuperBlock, inode: &Inode, offset: u64) -> Result<Mapping> {
    let indexes = inode.chunk_format & EROFS_CHUNK_FORMAT_INDEXES != 0;
    let unit = if indexes {
        EROFS_CHUNK_INDEX_SIZE
    } else {
        EROFS_BLOCK_MAP_ENTRY_SIZE
    };
    let chunkbits = inode.chunkbits;
    if chunkbits >= 63 {
        return Err(Error::Corrupted);
    }
    let chunknr = offset >> chunkbits;
    let table = le::round_up(inode.inline_data_pos(sb)?, unit)?;
    let pos = le::add(table, le::mul(unit, chunknr)?)?;
    let logical = chunknr << chunkbits;
    let blksz = u64::from(sb.block_size());
    // logical <= offset < size <= i64::MAX.
    let length = core::cmp::min(
        1u64 << chunkbits,
        le::round_up(inode.size - logical, blksz)?,
    );

    let (blkaddr, device) = if indexes {
        let mut b = [0u8; EROFS_CHUNK_INDEX_SIZE as usize];
        src.read_exact(pos, &mut b)?;
        // 6.12: __le16 advise (ignored), __le16 device_id, __le32 blkaddr.
        (le32(&b, 4)?, le16(&b, 2)?)
    } else {
        let mut b = [0u8; EROFS_BLOCK_MAP_ENTRY_SIZE as usize];
        src.read_exact(pos, &mut b)?;
        (le32(&b, 0)?, 0)
    };
    if blkaddr == EROFS_NULL_ADDR {
        return Ok(Mapping {
            logical,
            physical: 0,
            length,
            device: 0,
            mapped: false,
            meta: false,
        });
    }
    let device = device & sb.device_id_mask();
    if device > sb.extra_devices {
        return Err(Error::Corrupted);
    }
    Ok(Mapping {
        logical,
        physical: sb.blkpos(u64::from(blkaddr))?,
        length,
        device,
        mapped: true,
        meta: false,
    })
}
