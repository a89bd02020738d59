// SPDX-License-Identifier: GPL-2.0

//! On-disk inodes (`struct erofs_inode_compact`, 32 bytes, and
//! `struct erofs_inode_extended`, 64 bytes).

use super::error::{Error, Result};
use super::le::{self, le16, le32, le64};
use super::superblock::SuperBlock;
use super::Source;

/// Size of a compact on-disk inode.
pub(crate) const EROFS_INODE_COMPACT_SIZE: u32 = 32;
/// Size of an extended on-disk inode.
pub(crate) const EROFS_INODE_EXTENDED_SIZE: u32 = 64;
/// Size of `struct erofs_xattr_ibody_header`.
pub(crate) const EROFS_XATTR_IBODY_HEADER_SIZE: u32 = 12;

/// Chunk format: mask of the chunk size bits (`chunksize = blksz << bits`).
pub(crate) const EROFS_CHUNK_FORMAT_BLKBITS_MASK: u16 = 0x001F;
/// Chunk format: 8-byte chunk indexes instead of a 4-byte block address array.
pub(crate) const EROFS_CHUNK_FORMAT_INDEXES: u16 = 0x0020;
/// All valid chunk format bits.
pub(crate) const EROFS_CHUNK_FORMAT_ALL: u16 =
    EROFS_CHUNK_FORMAT_BLKBITS_MASK | EROFS_CHUNK_FORMAT_INDEXES;

/// `S_IFMT` mask.
pub(crate) const S_IFMT: u16 = 0o170000;
/// Socket.
pub(crate) const S_IFSOCK: u16 = 0o140000;
/// Symbolic link.
pub(crate) const S_IFLNK: u16 = 0o120000;
/// Regular file.
pub(crate) const S_IFREG: u16 = 0o100000;
/// Block device.
pub(crate) const S_IFBLK: u16 = 0o060000;
/// Directory.
pub(crate) const S_IFDIR: u16 = 0o040000;
/// Character device.
pub(crate) const S_IFCHR: u16 = 0o020000;
/// FIFO.
pub(crate) const S_IFIFO: u16 = 0o010000;

/// Inode data layout (`i_format` bits 1..=3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Uncompressed, contiguous blocks at `raw_blkaddr`, no tail packing.
    FlatPlain,
    /// Compressed with full (non-compact) indexes. Not supported yet.
    CompressedFull,
    /// Uncompressed, contiguous blocks plus the tail inline after the inode.
    FlatInline,
    /// Compressed with compact indexes. Not supported yet.
    CompressedCompact,
    /// Chunk-based, optionally multi-device.
    ChunkBased,
}

impl Layout {
    /// Decodes the datalayout value; `None` for reserved values 5..=7.
    pub(crate) fn from_raw(v: u16) -> Option<Layout> {
        match v {
            0 => Some(Layout::FlatPlain),
            1 => Some(Layout::CompressedFull),
            2 => Some(Layout::FlatInline),
            3 => Some(Layout::CompressedCompact),
            4 => Some(Layout::ChunkBased),
            _ => None,
        }
    }

    /// Whether the data is compressed (callers currently refuse such inodes).
    pub(crate) fn is_compressed(self) -> bool {
        matches!(self, Layout::CompressedFull | Layout::CompressedCompact)
    }
}

/// A parsed on-disk inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Inode {
    /// Node id (position in 32-byte slots from the metadata start).
    pub(crate) nid: u64,
    /// Whether the on-disk inode is the 64-byte extended form.
    pub(crate) extended: bool,
    /// Data layout.
    pub(crate) datalayout: Layout,
    /// Raw `i_xattr_icount`.
    pub(crate) xattr_icount: u16,
    /// File mode including type bits.
    pub(crate) mode: u16,
    /// Link count.
    pub(crate) nlink: u32,
    /// File size in bytes (always <= `i64::MAX`).
    pub(crate) size: u64,
    /// Owner uid.
    pub(crate) uid: u32,
    /// Owner gid.
    pub(crate) gid: u32,
    /// Modification time, seconds (the superblock build time for compact inodes).
    pub(crate) mtime: u64,
    /// Modification time, nanoseconds.
    pub(crate) mtime_nsec: u32,
    /// 32-bit inode number for stat compatibility.
    pub(crate) ino: u32,
    /// Raw device number (`new_encode_dev` format) for chr/blk devices, else 0.
    pub(crate) rdev: u32,
    /// Raw `i_u` union value (block address for flat layouts).
    pub(crate) raw_blkaddr: u32,
    /// Chunk format (only for [`Layout::ChunkBased`], else 0).
    pub(crate) chunk_format: u16,
    /// Log2 of the chunk size (only for [`Layout::ChunkBased`], else 0).
    pub(crate) chunkbits: u32,
    /// Size of the on-disk inode (32 or 64).
    pub(crate) inode_isize: u32,
    /// Size of the inline xattr area (see [`xattr_ibody_size`]).
    pub(crate) xattr_isize: u32,
}

/// `erofs_xattr_ibody_size`: 0 if `icount == 0`, else `12 + (icount - 1) * 4`.
pub(crate) fn xattr_ibody_size(icount: u16) -> u32 {
    if icount == 0 {
        0
    } else {
        EROFS_XATTR_IBODY_HEADER_SIZE + (u32::from(icount) - 1) * 4
    }
}

impl Inode {
    /// Reads and validates inode `nid`.
    ///
    /// Errors: [`Error::Unsupported`] for unknown `i_format` bits, reserved datalayouts
    /// or chunk formats; [`Error::Corrupted`] for a bad mode type, an absurd size or
    /// position overflow; [`Error::Io`] from the source. Compressed inodes are returned
    /// as is (check [`Layout::is_compressed`]).
    pub(crate) fn read(src: &impl Source, sb: &SuperBlock, nid: u64) -> Result<Inode> {
        let pos = sb.nid_pos(nid)?;
        let mut buf = [0u8; EROFS_INODE_EXTENDED_SIZE as usize];
        let (compact, ext_rest) = buf.split_at_mut(EROFS_INODE_COMPACT_SIZE as usize);
        src.read_exact(pos, compact)?;
        let ifmt = le16(compact, 0)?;
        if ifmt & !0x0F != 0 {
            return Err(Error::Unsupported);
        }
        let datalayout = Layout::from_raw((ifmt >> 1) & 0x7).ok_or(Error::Unsupported)?;
        let extended = ifmt & 1 != 0;
        let xattr_icount = le16(compact, 2)?;
        let mode = le16(compact, 4)?;

        let mut inode = Inode {
            nid,
            extended,
            datalayout,
            xattr_icount,
            mode,
            nlink: 0,
            size: 0,
            uid: 0,
            gid: 0,
            mtime: sb.build_time,
            mtime_nsec: sb.build_time_nsec,
            ino: 0,
            rdev: 0,
            raw_blkaddr: 0,
            chunk_format: 0,
            chunkbits: 0,
            inode_isize: EROFS_INODE_COMPACT_SIZE,
            xattr_isize: xattr_ibody_size(xattr_icount),
        };
        let iu;
        if extended {
            src.read_exact(le::add(pos, u64::from(EROFS_INODE_COMPACT_SIZE))?, ext_rest)?;
            let b = &buf;
            inode.inode_isize = EROFS_INODE_EXTENDED_SIZE;
            inode.size = le64(b, 8)?;
            iu = le32(b, 16)?;
            inode.ino = le32(b, 20)?;
            inode.uid = le32(b, 24)?;
            inode.gid = le32(b, 28)?;
            inode.mtime = le64(b, 32)?;
            inode.mtime_nsec = le32(b, 40)?;
            inode.nlink = le32(b, 44)?;
        } else {
            let b = &buf;
            inode.nlink = u32::from(le16(b, 6)?);
            inode.size = u64::from(le32(b, 8)?);
            iu = le32(b, 16)?;
            inode.ino = le32(b, 20)?;
            inode.uid = u32::from(le16(b, 24)?);
            inode.gid = u32::from(le16(b, 26)?);
        }
        if inode.size > i64::MAX as u64 {
            return Err(Error::Corrupted);
        }
        match mode & S_IFMT {
            S_IFREG | S_IFDIR | S_IFLNK => inode.raw_blkaddr = iu,
            S_IFCHR | S_IFBLK => inode.rdev = iu,
            S_IFIFO | S_IFSOCK => {}
            _ => return Err(Error::Corrupted),
        }
        if datalayout == Layout::ChunkBased {
            let [lo, hi, _, _] = iu.to_le_bytes();
            let fmt = u16::from_le_bytes([lo, hi]);
            if fmt & !EROFS_CHUNK_FORMAT_ALL != 0 {
                return Err(Error::Unsupported);
            }
            inode.chunk_format = fmt;
            inode.chunkbits =
                u32::from(sb.blkszbits) + u32::from(fmt & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
        }
        Ok(inode)
    }

    /// File type bits (`mode & S_IFMT`).
    pub(crate) fn file_type(&self) -> u16 {
        self.mode & S_IFMT
    }

    /// Whether this is a directory.
    pub(crate) fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }

    /// Whether this is a regular file.
    pub(crate) fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }

    /// Whether this is a symlink.
    pub(crate) fn is_symlink(&self) -> bool {
        self.file_type() == S_IFLNK
    }

    /// Byte position of the on-disk inode.
    pub(crate) fn pos(&self, sb: &SuperBlock) -> Result<u64> {
        sb.nid_pos(self.nid)
    }

    /// Byte position of the inline xattr area (right after the on-disk inode).
    pub(crate) fn xattr_pos(&self, sb: &SuperBlock) -> Result<u64> {
        le::add(self.pos(sb)?, u64::from(self.inode_isize))
    }

    /// Byte position right after the inode and its inline xattrs: the tail-packed data
    /// of [`Layout::FlatInline`] inodes, or the chunk table of chunk-based inodes.
    pub(crate) fn inline_data_pos(&self, sb: &SuperBlock) -> Result<u64> {
        le::add(
            self.pos(sb)?,
            u64::from(self.inode_isize) + u64::from(self.xattr_isize),
        )
    }

    /// Number of blocks covering `size` (`erofs_iblks`).
    pub(crate) fn nblocks(&self, sb: &SuperBlock) -> u64 {
        let bits = u32::from(sb.blkszbits);
        let full = self.size >> bits;
        // `full <= u64::MAX >> 9`: the increment cannot overflow.
        if self.size & ((1u64 << bits) - 1) != 0 {
            full + 1
        } else {
            full
        }
    }

    /// Minor/major of [`Inode::rdev`] decoded like the kernel's `new_decode_dev`:
    /// returns `(major, minor)`.
    pub(crate) fn rdev_major_minor(&self) -> (u32, u32) {
        let dev = self.rdev;
        let major = (dev & 0xfff00) >> 8;
        let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        (major, minor)
    }

    /// The symlink target if it can be read directly from the inode's metadata block
    /// (the kernel's fast-symlink condition: inline layout and the target does not
    /// cross the block). Returns its `(pos, len)`, or `None` if the target must be read
    /// through [`map`](super::map).
    pub(crate) fn fast_symlink(&self, sb: &SuperBlock) -> Result<Option<(u64, u64)>> {
        if !self.is_symlink() || self.datalayout != Layout::FlatInline {
            return Ok(None);
        }
        let pos = self.inline_data_pos(sb)?;
        let blkoff = pos & (u64::from(sb.block_size()) - 1);
        match blkoff.checked_add(self.size) {
            Some(end) if end <= u64::from(sb.block_size()) => Ok(Some((pos, self.size))),
            _ => Ok(None),
        }
    }
}
