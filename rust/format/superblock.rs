// SPDX-License-Identifier: GPL-2.0

//! The EROFS superblock (`struct erofs_super_block`, 128 bytes at byte offset 1024).

use super::error::{Error, Result};
use super::le::{self, le16, le32, le64, u8_at};

/// Byte offset of the superblock on the primary device.
pub(crate) const EROFS_SUPER_OFFSET: u64 = 1024;
/// Size of the fixed part of the on-disk superblock.
pub(crate) const EROFS_SUPER_SIZE: usize = 128;
/// EROFS superblock magic.
pub(crate) const EROFS_SUPER_MAGIC_V1: u32 = 0xE0F5_E1E2;
/// Size of one superblock extension slot (`sb_extslots` unit).
pub(crate) const EROFS_SB_EXTSLOT_SIZE: u32 = 16;
/// Size of an inode slot: nids are counted in 32-byte units.
pub(crate) const EROFS_ISLOT_SIZE: u64 = 32;
/// Log2 of [`EROFS_ISLOT_SIZE`].
pub(crate) const EROFS_ISLOT_BITS: u32 = 5;
/// Maximum length of a file name.
pub(crate) const EROFS_NAME_LEN: usize = 255;
/// Block address meaning "no block" (a hole).
pub(crate) const EROFS_NULL_ADDR: u32 = u32::MAX;

/// Compat feature: superblock crc32c checksum is valid.
pub(crate) const EROFS_FEATURE_COMPAT_SB_CHKSUM: u32 = 0x0000_0001;
/// Compat feature: per-inode mtime (informational).
pub(crate) const EROFS_FEATURE_COMPAT_MTIME: u32 = 0x0000_0002;
/// Compat feature: xattr name bloom filter in `h_name_filter`.
pub(crate) const EROFS_FEATURE_COMPAT_XATTR_FILTER: u32 = 0x0000_0004;

/// Incompat feature: zero padding of compressed data (a.k.a. LZ4_0PADDING).
pub(crate) const EROFS_FEATURE_INCOMPAT_ZERO_PADDING: u32 = 0x0000_0001;
/// Alias of [`EROFS_FEATURE_INCOMPAT_ZERO_PADDING`].
pub(crate) const EROFS_FEATURE_INCOMPAT_LZ4_0PADDING: u32 = EROFS_FEATURE_INCOMPAT_ZERO_PADDING;
/// Incompat feature: compression configurations after the superblock.
pub(crate) const EROFS_FEATURE_INCOMPAT_COMPR_CFGS: u32 = 0x0000_0002;
/// Incompat feature: big physical clusters (shares the bit with COMPR_CFGS).
pub(crate) const EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER: u32 = 0x0000_0002;
/// Incompat feature: chunk-based files.
pub(crate) const EROFS_FEATURE_INCOMPAT_CHUNKED_FILE: u32 = 0x0000_0004;
/// Incompat feature: device table (multiple devices / blobs).
pub(crate) const EROFS_FEATURE_INCOMPAT_DEVICE_TABLE: u32 = 0x0000_0008;
/// Incompat feature: second compression head (shares the bit with DEVICE_TABLE).
pub(crate) const EROFS_FEATURE_INCOMPAT_COMPR_HEAD2: u32 = 0x0000_0008;
/// Incompat feature: tail-packing of compressed data.
pub(crate) const EROFS_FEATURE_INCOMPAT_ZTAILPACKING: u32 = 0x0000_0010;
/// Incompat feature: fragments (packed inode).
pub(crate) const EROFS_FEATURE_INCOMPAT_FRAGMENTS: u32 = 0x0000_0020;
/// Incompat feature: compressed data deduplication (shares the bit with FRAGMENTS).
pub(crate) const EROFS_FEATURE_INCOMPAT_DEDUPE: u32 = 0x0000_0020;
/// Incompat feature: long xattr name prefixes.
pub(crate) const EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES: u32 = 0x0000_0040;

/// All incompat bits known to Linux 6.12.
pub(crate) const EROFS_ALL_FEATURE_INCOMPAT: u32 = EROFS_FEATURE_INCOMPAT_ZERO_PADDING
    | EROFS_FEATURE_INCOMPAT_COMPR_CFGS
    | EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER
    | EROFS_FEATURE_INCOMPAT_CHUNKED_FILE
    | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE
    | EROFS_FEATURE_INCOMPAT_COMPR_HEAD2
    | EROFS_FEATURE_INCOMPAT_ZTAILPACKING
    | EROFS_FEATURE_INCOMPAT_FRAGMENTS
    | EROFS_FEATURE_INCOMPAT_DEDUPE
    | EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES;

/// Incompat bits this implementation can mount today (uncompressed images only).
///
/// ZERO_PADDING only changes the layout of compressed data, so an image carrying it
/// without any compressed inode is readable; compressed inodes are refused per inode
/// (see [`Layout::is_compressed`](super::Layout::is_compressed)).
pub(crate) const SUPPORTED_INCOMPAT: u32 = EROFS_FEATURE_INCOMPAT_CHUNKED_FILE
    | EROFS_FEATURE_INCOMPAT_DEVICE_TABLE
    | EROFS_FEATURE_INCOMPAT_XATTR_PREFIXES
    | EROFS_FEATURE_INCOMPAT_ZERO_PADDING;

/// Parsed EROFS superblock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SuperBlock {
    /// crc32c of the superblock block (valid if [`EROFS_FEATURE_COMPAT_SB_CHKSUM`]).
    pub(crate) checksum: u32,
    /// Compatible feature bits.
    pub(crate) feature_compat: u32,
    /// Log2 of the block size (9..=12).
    pub(crate) blkszbits: u8,
    /// Superblock size is `128 + sb_extslots * 16`.
    pub(crate) sb_extslots: u8,
    /// Nid of the root directory.
    pub(crate) root_nid: u64,
    /// Total number of valid inodes.
    pub(crate) inos: u64,
    /// Timestamp (seconds) used for compact inodes.
    pub(crate) build_time: u64,
    /// Nanoseconds part of `build_time`.
    pub(crate) build_time_nsec: u32,
    /// Total blocks of the primary device (statfs).
    pub(crate) blocks: u64,
    /// Start block of the metadata (inode) area.
    pub(crate) meta_blkaddr: u32,
    /// Start block of the shared xattr area.
    pub(crate) xattr_blkaddr: u32,
    /// Volume UUID.
    pub(crate) uuid: [u8; 16],
    /// Volume name (NUL-padded; [`SuperBlock::parse`] requires a NUL terminator).
    pub(crate) volume_name: [u8; 16],
    /// Incompatible feature bits.
    pub(crate) feature_incompat: u32,
    /// `u1` union: available compression algorithms / lz4 max distance.
    pub(crate) available_compr_algs: u16,
    /// Number of extra devices (only meaningful with DEVICE_TABLE; 0 otherwise).
    pub(crate) extra_devices: u16,
    /// Device table offset in 128-byte units.
    pub(crate) devt_slotoff: u16,
    /// Directory block size bits above the block size (must be 0).
    pub(crate) dirblkbits: u8,
    /// Number of long xattr name prefixes.
    pub(crate) xattr_prefix_count: u8,
    /// Start of the long xattr prefix table, in 4-byte units.
    pub(crate) xattr_prefix_start: u32,
    /// Nid of the packed inode (0 if none).
    pub(crate) packed_nid: u64,
    /// Reserved byte for the xattr name filter; non-zero disables the filter.
    pub(crate) xattr_filter_reserved: u8,
}

impl SuperBlock {
    /// Parses the superblock from `buf`, which holds the bytes starting at
    /// [`EROFS_SUPER_OFFSET`] (at least 128 bytes).
    ///
    /// Checks, in order: length, magic, block size, `dirblkbits`, unknown incompat bits,
    /// `sb_extslots`, NUL-terminated volume name (the kernel's order, minus the checksum). Does not verify the checksum (see [`SuperBlock::verify_checksum`]).
    /// Known-but-unsupported incompat bits (compression) are not rejected here; use
    /// [`SuperBlock::unsupported_incompat`].
    pub(crate) fn parse(buf: &[u8]) -> Result<SuperBlock> {
        let buf = buf.get(..EROFS_SUPER_SIZE).ok_or(Error::Corrupted)?;
        let magic = le32(buf, 0)?;
        if magic != EROFS_SUPER_MAGIC_V1 {
            return Err(Error::BadMagic(magic));
        }
        let blkszbits = u8_at(buf, 12)?;
        if !(9..=12).contains(&blkszbits) {
            return Err(Error::Unsupported);
        }
        let dirblkbits = u8_at(buf, 90)?;
        if dirblkbits != 0 {
            return Err(Error::Unsupported);
        }
        let feature_incompat = le32(buf, 80)?;
        let unknown = feature_incompat & !EROFS_ALL_FEATURE_INCOMPAT;
        if unknown != 0 {
            return Err(Error::UnknownIncompat(unknown));
        }
        let sb_extslots = u8_at(buf, 13)?;
        let sb_size = 128 + u32::from(sb_extslots) * EROFS_SB_EXTSLOT_SIZE;
        // Same limit as the kernel (PAGE_SIZE - EROFS_SUPER_OFFSET with 4 KiB pages).
        if sb_size > 4096 - 1024 {
            return Err(Error::Corrupted);
        }
        let volume_name: [u8; 16] = le::arr(buf, 64)?;
        // Like the kernel's strscpy() check: the name must be NUL-terminated.
        if !volume_name.contains(&0) {
            return Err(Error::Corrupted);
        }
        let has_devt = feature_incompat & EROFS_FEATURE_INCOMPAT_DEVICE_TABLE != 0;
        Ok(SuperBlock {
            checksum: le32(buf, 4)?,
            feature_compat: le32(buf, 8)?,
            blkszbits,
            sb_extslots,
            root_nid: u64::from(le16(buf, 14)?),
            inos: le64(buf, 16)?,
            build_time: le64(buf, 24)?,
            build_time_nsec: le32(buf, 32)?,
            blocks: u64::from(le32(buf, 36)?),
            meta_blkaddr: le32(buf, 40)?,
            xattr_blkaddr: le32(buf, 44)?,
            uuid: le::arr(buf, 48)?,
            volume_name,
            feature_incompat,
            available_compr_algs: le16(buf, 84)?,
            extra_devices: if has_devt { le16(buf, 86)? } else { 0 },
            devt_slotoff: le16(buf, 88)?,
            dirblkbits,
            xattr_prefix_count: u8_at(buf, 91)?,
            xattr_prefix_start: le32(buf, 92)?,
            packed_nid: le64(buf, 96)?,
            xattr_filter_reserved: u8_at(buf, 104)?,
        })
    }

    /// Incompat bits that are known but not supported by this implementation
    /// (`feature_incompat & !SUPPORTED_INCOMPAT`); 0 if the image is fully supported.
    pub(crate) fn unsupported_incompat(&self) -> u32 {
        self.feature_incompat & !SUPPORTED_INCOMPAT
    }

    /// Whether a compat feature bit is set.
    pub(crate) fn has_compat(&self, bit: u32) -> bool {
        self.feature_compat & bit != 0
    }

    /// Whether an incompat feature bit is set.
    pub(crate) fn has_incompat(&self, bit: u32) -> bool {
        self.feature_incompat & bit != 0
    }

    /// Block size in bytes (512..=4096).
    pub(crate) fn block_size(&self) -> u32 {
        1u32 << self.blkszbits
    }

    /// Byte position of block `blkaddr` (checked).
    pub(crate) fn blkpos(&self, blkaddr: u64) -> Result<u64> {
        le::shl(blkaddr, u32::from(self.blkszbits))
    }

    /// Byte position of the on-disk inode `nid`: `meta_blkaddr * blksz + nid * 32` (checked).
    pub(crate) fn nid_pos(&self, nid: u64) -> Result<u64> {
        let base = self.blkpos(u64::from(self.meta_blkaddr))?;
        le::add(base, le::shl(nid, EROFS_ISLOT_BITS)?)
    }

    /// Size of the superblock including extension slots.
    pub(crate) fn sb_size(&self) -> u32 {
        128 + u32::from(self.sb_extslots) * EROFS_SB_EXTSLOT_SIZE
    }

    /// Number of bytes covered by the superblock checksum, counted from
    /// [`EROFS_SUPER_OFFSET`] (same as the kernel: the block size minus 1024 when the
    /// block size is larger than 1024, else the block size).
    pub(crate) fn checksum_len(&self) -> usize {
        let len: usize = 1usize << self.blkszbits;
        if len > 1024 {
            len - 1024
        } else {
            len
        }
    }

    /// Verifies the superblock checksum if [`EROFS_FEATURE_COMPAT_SB_CHKSUM`] is set
    /// (otherwise returns `Ok`).
    ///
    /// `block0` holds the bytes of the primary device from offset 0; it must contain at
    /// least `1024 + checksum_len()` bytes (reading one page, 4096 bytes, is always
    /// enough). Mismatch or a short buffer gives [`Error::Corrupted`].
    pub(crate) fn verify_checksum(&self, block0: &[u8]) -> Result<()> {
        if !self.has_compat(EROFS_FEATURE_COMPAT_SB_CHKSUM) {
            return Ok(());
        }
        let data = block0
            .get(1024..)
            .and_then(|d| d.get(..self.checksum_len()))
            .ok_or(Error::Corrupted)?;
        let (head, rest) = le::split_at(data, 4).ok_or(Error::Corrupted)?;
        let (csum, rest) = le::split_at(rest, 4).ok_or(Error::Corrupted)?;
        let expected = u32::from_le_bytes(csum.try_into().map_err(|_| Error::Corrupted)?);
        let mut crc = crc32c(!0, head);
        crc = crc32c(crc, &[0u8; 4]);
        crc = crc32c(crc, rest);
        if crc != expected {
            return Err(Error::Corrupted);
        }
        Ok(())
    }

    /// Mask applied to chunk index `device_id`s, as the kernel's `device_id_mask`:
    /// `roundup_pow_of_two(extra_devices + 1) - 1`.
    pub(crate) fn device_id_mask(&self) -> u16 {
        let n = u32::from(self.extra_devices) + 1;
        let mask = n.next_power_of_two() - 1;
        u16::try_from(mask).unwrap_or(u16::MAX)
    }

    /// Volume name bytes up to the first NUL (at most 16 bytes).
    pub(crate) fn volume_label(&self) -> &[u8] {
        let end = self
            .volume_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.volume_name.len());
        self.volume_name.get(..end).unwrap_or(&[])
    }
}

/// The first checks of the kernel's `erofs_read_superblock`, in its order: magic, block size,
/// then the checksum when [`EROFS_FEATURE_COMPAT_SB_CHKSUM`] is set; everything else is
/// [`SuperBlock::parse`]'s. `block0` holds the primary device from offset 0 (one 4 KiB page is
/// enough). Returns `Ok(false)` on a checksum mismatch (the kernel's `EBADMSG`), else `Ok(true)`;
/// errors as [`SuperBlock::parse`] (a buffer too short for the checksummed range is Corrupted).
pub(crate) fn precheck(block0: &[u8]) -> Result<bool> {
    let buf = block0
        .get(EROFS_SUPER_OFFSET as usize..)
        .and_then(|b| b.get(..EROFS_SUPER_SIZE))
        .ok_or(Error::Corrupted)?;
    let magic = le32(buf, 0)?;
    if magic != EROFS_SUPER_MAGIC_V1 {
        return Err(Error::BadMagic(magic));
    }
    let blkszbits = u8_at(buf, 12)?;
    if !(9..=12).contains(&blkszbits) {
        return Err(Error::Unsupported);
    }
    if le32(buf, 8)? & EROFS_FEATURE_COMPAT_SB_CHKSUM == 0 {
        return Ok(true);
    }
    let len: usize = 1usize << blkszbits;
    let len = if len > 1024 { len - 1024 } else { len };
    let data = block0
        .get(EROFS_SUPER_OFFSET as usize..)
        .and_then(|d| d.get(..len))
        .ok_or(Error::Corrupted)?;
    let (head, rest) = le::split_at(data, 4).ok_or(Error::Corrupted)?;
    let (csum, rest) = le::split_at(rest, 4).ok_or(Error::Corrupted)?;
    let expected = u32::from_le_bytes(csum.try_into().map_err(|_| Error::Corrupted)?);
    let mut crc = crc32c(!0, head);
    crc = crc32c(crc, &[0u8; 4]);
    crc = crc32c(crc, rest);
    Ok(crc == expected)
}

/// crc32c lookup table (Castagnoli, reflected polynomial 0x82F63B78).
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut j = 0;
        while j < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            j += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Linux-style `crc32c(seed, data)`: no implicit pre/post inversion.
pub(crate) fn crc32c(seed: u32, data: &[u8]) -> u32 {
    let mut crc = seed;
    for &b in data {
        let [lo, ..] = crc.to_le_bytes();
        let idx = usize::from(lo ^ b);
        let t = CRC32C_TABLE.get(idx).copied().unwrap_or(0);
        crc = t ^ (crc >> 8);
    }
    crc
}
