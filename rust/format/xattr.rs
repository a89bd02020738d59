// SPDX-License-Identifier: GPL-2.0

//! Extended attributes: the inline xattr body (`erofs_xattr_ibody_header`, shared
//! xattr ids, inline `erofs_xattr_entry`s), shared xattr entries, long name prefixes
//! and the optional name bloom filter.
//!
//! Nothing here allocates: entries are described by positions on the [`Source`], and
//! names/values are copied into caller buffers on demand.

use super::error::{Error, Result};
use super::inode::{Inode, EROFS_XATTR_IBODY_HEADER_SIZE};
use super::le::{self, le16, le32, u8_at};
use super::superblock::{SuperBlock, EROFS_FEATURE_COMPAT_XATTR_FILTER, EROFS_NAME_LEN};
use super::Source;

/// Name index: `user.`.
pub(crate) const EROFS_XATTR_INDEX_USER: u8 = 1;
/// Name index: `system.posix_acl_access`.
pub(crate) const EROFS_XATTR_INDEX_POSIX_ACL_ACCESS: u8 = 2;
/// Name index: `system.posix_acl_default`.
pub(crate) const EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT: u8 = 3;
/// Name index: `trusted.`.
pub(crate) const EROFS_XATTR_INDEX_TRUSTED: u8 = 4;
/// Name index: lustre (unused by Linux).
pub(crate) const EROFS_XATTR_INDEX_LUSTRE: u8 = 5;
/// Name index: `security.`.
pub(crate) const EROFS_XATTR_INDEX_SECURITY: u8 = 6;
/// `e_name_index` bit: the low 7 bits index the long prefix table.
pub(crate) const EROFS_XATTR_LONG_PREFIX: u8 = 0x80;
/// Mask of the long prefix table index.
pub(crate) const EROFS_XATTR_LONG_PREFIX_MASK: u8 = 0x7f;
/// Seed of the xattr name filter hash.
pub(crate) const EROFS_XATTR_FILTER_SEED: u32 = 0x25BB_E08F;
/// Number of bits of the xattr name filter.
pub(crate) const EROFS_XATTR_FILTER_BITS: u32 = 32;
/// Size of `struct erofs_xattr_entry`.
pub(crate) const EROFS_XATTR_ENTRY_SIZE: u64 = 4;

/// The name prefix of a short name index, as listed by `listxattr`
/// (`None` for unknown indexes and lustre, which Linux does not expose).
///
/// For the POSIX ACL indexes the "prefix" is the full attribute name (their
/// on-disk entry name is empty).
pub(crate) fn prefix_name(index: u8) -> Option<&'static [u8]> {
    match index {
        EROFS_XATTR_INDEX_USER => Some(b"user."),
        EROFS_XATTR_INDEX_POSIX_ACL_ACCESS => Some(b"system.posix_acl_access"),
        EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT => Some(b"system.posix_acl_default"),
        EROFS_XATTR_INDEX_TRUSTED => Some(b"trusted."),
        EROFS_XATTR_INDEX_SECURITY => Some(b"security."),
        _ => None,
    }
}

/// `EROFS_XATTR_ALIGN(4 + name_len + value_size)`: size of an entry on disk.
pub(crate) fn entry_size(name_len: u8, value_size: u16) -> u64 {
    // At most 4 + 255 + 65535 + 3: no overflow.
    (EROFS_XATTR_ENTRY_SIZE + u64::from(name_len) + u64::from(value_size) + 3) & !3
}

/// One xattr entry (inline or shared), located at `pos` on the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct XattrEntry {
    /// Byte position of the `erofs_xattr_entry` header.
    pub(crate) pos: u64,
    /// Length of the name suffix stored in the entry.
    pub(crate) name_len: u8,
    /// Name index (`EROFS_XATTR_INDEX_*`, or `0x80 | long prefix index`).
    pub(crate) name_index: u8,
    /// Value size in bytes.
    pub(crate) value_size: u16,
}

impl XattrEntry {
    /// Reads the 4-byte entry header at `pos`.
    pub(crate) fn read(src: &impl Source, pos: u64) -> Result<XattrEntry> {
        let mut b = [0u8; EROFS_XATTR_ENTRY_SIZE as usize];
        src.read_exact(pos, &mut b)?;
        Ok(XattrEntry {
            pos,
            name_len: u8_at(&b, 0)?,
            name_index: u8_at(&b, 1)?,
            value_size: le16(&b, 2)?,
        })
    }

    /// Whether the name uses a long prefix.
    pub(crate) fn is_long_prefix(&self) -> bool {
        self.name_index & EROFS_XATTR_LONG_PREFIX != 0
    }

    /// Long prefix table index (only meaningful if [`XattrEntry::is_long_prefix`]).
    pub(crate) fn long_prefix_index(&self) -> u8 {
        self.name_index & EROFS_XATTR_LONG_PREFIX_MASK
    }

    /// Size of the entry on disk, including alignment padding.
    pub(crate) fn size(&self) -> u64 {
        entry_size(self.name_len, self.value_size)
    }

    /// Position of the name suffix.
    pub(crate) fn name_pos(&self) -> Result<u64> {
        le::add(self.pos, EROFS_XATTR_ENTRY_SIZE)
    }

    /// Position of the value.
    pub(crate) fn value_pos(&self) -> Result<u64> {
        le::add(self.name_pos()?, u64::from(self.name_len))
    }

    /// Reads the name suffix into `buf` (must be at least `name_len` bytes, else
    /// Corrupted); returns the filled part.
    pub(crate) fn read_name<'b>(&self, src: &impl Source, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let out = buf
            .get_mut(..usize::from(self.name_len))
            .ok_or(Error::Corrupted)?;
        src.read_exact(self.name_pos()?, out)?;
        Ok(out)
    }

    /// Reads the value into `buf` (must be at least `value_size` bytes, else
    /// Corrupted); returns the filled part.
    pub(crate) fn read_value<'b>(&self, src: &impl Source, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let out = buf
            .get_mut(..usize::from(self.value_size))
            .ok_or(Error::Corrupted)?;
        src.read_exact(self.value_pos()?, out)?;
        Ok(out)
    }

    /// Whether this entry is the attribute `(index, name)`, where `index` is a short
    /// name index (`EROFS_XATTR_INDEX_*`) and `name` the rest of the name after that
    /// prefix (like the kernel's `erofs_getxattr`). For long-prefix entries pass the
    /// resolved prefix in `long` (if it is `None` the entry never matches).
    pub(crate) fn matches(
        &self,
        src: &impl Source,
        long: Option<&LongPrefix>,
        index: u8,
        name: &[u8],
    ) -> Result<bool> {
        let suffix = if self.is_long_prefix() {
            let Some(pf) = long else {
                return Ok(false);
            };
            let infix_len = usize::from(pf.infix_len);
            if pf.base_index != index || name.len() != infix_len + usize::from(self.name_len) {
                return Ok(false);
            }
            let (infix, suffix) = le::split_at(name, infix_len).ok_or(Error::Corrupted)?;
            let mut ib = [0u8; EROFS_NAME_LEN];
            if pf.read_infix(src, &mut ib)? != infix {
                return Ok(false);
            }
            suffix
        } else {
            if self.name_index != index || name.len() != usize::from(self.name_len) {
                return Ok(false);
            }
            name
        };
        let mut nb = [0u8; EROFS_NAME_LEN];
        Ok(self.read_name(src, &mut nb)? == suffix)
    }
}

/// The inline xattr area of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InodeXattrs {
    /// `h_name_filter`: bit set = a name hashing to it is definitely absent.
    pub(crate) name_filter: u32,
    /// Number of shared xattr ids.
    pub(crate) shared_count: u8,
    /// Position of the shared xattr id array.
    pub(crate) shared_pos: u64,
    /// Position of the first inline entry.
    pub(crate) inline_pos: u64,
    /// Total bytes of inline entries.
    pub(crate) inline_len: u64,
}

impl InodeXattrs {
    /// Reads the inline xattr header of `inode` (`erofs_init_inode_xattrs`).
    ///
    /// `Ok(None)` if the inode has no xattrs. [`Error::Unsupported`] if the area is
    /// exactly a header (undefined on disk), [`Error::Corrupted`] if the shared id array
    /// does not fit.
    pub(crate) fn read(
        src: &impl Source,
        sb: &SuperBlock,
        inode: &Inode,
    ) -> Result<Option<InodeXattrs>> {
        let isize = inode.xattr_isize;
        if isize == 0 {
            return Ok(None);
        }
        if isize == EROFS_XATTR_IBODY_HEADER_SIZE {
            return Err(Error::Unsupported);
        }
        if isize < EROFS_XATTR_IBODY_HEADER_SIZE {
            return Err(Error::Corrupted);
        }
        let pos = inode.xattr_pos(sb)?;
        let mut h = [0u8; EROFS_XATTR_IBODY_HEADER_SIZE as usize];
        src.read_exact(pos, &mut h)?;
        let name_filter = le32(&h, 0)?;
        let shared_count = u8_at(&h, 4)?;
        let header_sz = u64::from(EROFS_XATTR_IBODY_HEADER_SIZE) + 4 * u64::from(shared_count);
        let inline_len = u64::from(isize)
            .checked_sub(header_sz)
            .ok_or(Error::Corrupted)?;
        let shared_pos = le::add(pos, u64::from(EROFS_XATTR_IBODY_HEADER_SIZE))?;
        Ok(Some(InodeXattrs {
            name_filter,
            shared_count,
            shared_pos,
            inline_pos: le::add(pos, header_sz)?,
            inline_len,
        }))
    }

    /// Reads shared xattr id `i` (`i < shared_count`, else Corrupted).
    pub(crate) fn shared_id(&self, src: &impl Source, i: u8) -> Result<u32> {
        if i >= self.shared_count {
            return Err(Error::Corrupted);
        }
        let mut b = [0u8; 4];
        src.read_exact(le::add(self.shared_pos, 4 * u64::from(i))?, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Iterates over the inline entries. Each item is an entry or an error (after an
    /// error the iterator is fused).
    pub(crate) fn inline_entries<'s, S: Source>(&self, src: &'s S) -> InlineXattrIter<'s, S> {
        InlineXattrIter {
            src,
            pos: self.inline_pos,
            remaining: self.inline_len,
        }
    }

    /// Whether the name filter proves that `(index, name)` is absent (kernel semantics:
    /// only with [`EROFS_FEATURE_COMPAT_XATTR_FILTER`] and `xattr_filter_reserved == 0`).
    /// `index` is the short name index, `name` the name after its prefix.
    pub(crate) fn filter_excludes(&self, sb: &SuperBlock, index: u8, name: &[u8]) -> bool {
        if !sb.has_compat(EROFS_FEATURE_COMPAT_XATTR_FILTER) || sb.xattr_filter_reserved != 0 {
            return false;
        }
        let bit = xattr_filter_bit(index, name);
        self.name_filter & (1u32 << bit) != 0
    }
}

/// Iterator over inline xattr entries.
#[derive(Debug)]
pub(crate) struct InlineXattrIter<'s, S: Source> {
    src: &'s S,
    pos: u64,
    remaining: u64,
}

impl<S: Source> Iterator for InlineXattrIter<'_, S> {
    type Item = Result<XattrEntry>;

    fn next(&mut self) -> Option<Result<XattrEntry>> {
        if self.remaining == 0 {
            return None;
        }
        let r = XattrEntry::read(self.src, self.pos).and_then(|e| {
            let sz = e.size();
            if sz > self.remaining {
                return Err(Error::Corrupted);
            }
            self.pos = le::add(self.pos, sz)?;
            self.remaining -= sz;
            Ok(e)
        });
        if r.is_err() {
            self.remaining = 0;
        }
        Some(r)
    }
}

/// Byte position of shared xattr `id`: `xattr_blkaddr * blksz + id * 4`.
pub(crate) fn shared_entry_pos(sb: &SuperBlock, id: u32) -> Result<u64> {
    le::add(sb.blkpos(u64::from(sb.xattr_blkaddr))?, 4 * u64::from(id))
}

/// Reads the header of shared xattr entry `id`.
pub(crate) fn shared_entry(src: &impl Source, sb: &SuperBlock, id: u32) -> Result<XattrEntry> {
    XattrEntry::read(src, shared_entry_pos(sb, id)?)
}

/// A long xattr name prefix (`struct erofs_xattr_long_prefix`): the full prefix is
/// `prefix_name(base_index) + infix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LongPrefix {
    /// Short name index the infix extends.
    pub(crate) base_index: u8,
    /// Position of the infix bytes.
    pub(crate) infix_pos: u64,
    /// Infix length (0..=255).
    pub(crate) infix_len: u8,
}

impl LongPrefix {
    /// Reads one prefix table record at `pos` (rounded up to 4 like
    /// `erofs_read_metadata`: `__le16 len` then `len` bytes). Returns the prefix and the
    /// position right after the record (the next record starts at it rounded up to 4).
    pub(crate) fn read_at(src: &impl Source, pos: u64) -> Result<(LongPrefix, u64)> {
        let pos = le::round_up(pos, 4)?;
        let mut b = [0u8; 3];
        src.read_exact(pos, &mut b)?;
        let len = le16(&b, 0)?;
        // len == 0 encodes 65536 in erofs_read_metadata; either way too long.
        if len == 0 || usize::from(len) > EROFS_NAME_LEN + 1 {
            return Err(Error::Corrupted);
        }
        let infix_len = u8::try_from(len - 1).map_err(|_| Error::Corrupted)?;
        Ok((
            LongPrefix {
                base_index: u8_at(&b, 2)?,
                infix_pos: le::add(pos, 3)?,
                infix_len,
            },
            le::add(pos, 2 + u64::from(len))?,
        ))
    }

    /// Reads the infix into `buf` (at least `infix_len` bytes, else Corrupted).
    pub(crate) fn read_infix<'b>(&self, src: &impl Source, buf: &'b mut [u8]) -> Result<&'b [u8]> {
        let out = buf
            .get_mut(..usize::from(self.infix_len))
            .ok_or(Error::Corrupted)?;
        src.read_exact(self.infix_pos, out)?;
        Ok(out)
    }
}

/// Position of the long prefix table: `xattr_prefix_start * 4`.
///
/// With the (unsupported) FRAGMENTS feature and a packed inode the table is at this
/// offset inside the packed inode's data instead; pass a [`Source`] over that data then.
/// Without FRAGMENTS it is an absolute position on the primary device.
pub(crate) fn long_prefix_table_pos(sb: &SuperBlock) -> Result<u64> {
    le::mul(u64::from(sb.xattr_prefix_start), 4)
}

/// Finds long prefix `index` (the low 7 bits of `e_name_index`) by walking the table.
/// [`Error::Corrupted`] if `index >= xattr_prefix_count` (the kernel then ignores the
/// entry) or a record is invalid. O(index) reads: cache the result if needed.
pub(crate) fn long_prefix(src: &impl Source, sb: &SuperBlock, index: u8) -> Result<LongPrefix> {
    let index = index & EROFS_XATTR_LONG_PREFIX_MASK;
    if index >= sb.xattr_prefix_count {
        return Err(Error::Corrupted);
    }
    let mut pos = long_prefix_table_pos(sb)?;
    let mut i = 0u8;
    loop {
        let (pf, next) = LongPrefix::read_at(src, pos)?;
        if i == index {
            return Ok(pf);
        }
        pos = next;
        i += 1;
    }
}

/// Bit of the xattr name filter for `(index, name)`:
/// `xxh32(name, EROFS_XATTR_FILTER_SEED + index) & 31`.
pub(crate) fn xattr_filter_bit(index: u8, name: &[u8]) -> u32 {
    xxh32(name, EROFS_XATTR_FILTER_SEED.wrapping_add(u32::from(index)))
        & (EROFS_XATTR_FILTER_BITS - 1)
}

const P1: u32 = 2_654_435_761;
const P2: u32 = 2_246_822_519;
const P3: u32 = 3_266_489_917;
const P4: u32 = 668_265_263;
const P5: u32 = 374_761_393;

fn xxh32_round(acc: u32, input: u32) -> u32 {
    acc.wrapping_add(input.wrapping_mul(P2))
        .rotate_left(13)
        .wrapping_mul(P1)
}

fn read32(c: &[u8]) -> u32 {
    c.first_chunk::<4>().map_or(0, |a| u32::from_le_bytes(*a))
}

/// xxHash32 of `data` with `seed` (as the kernel's `xxh32`).
pub(crate) fn xxh32(data: &[u8], seed: u32) -> u32 {
    let mut h: u32;
    let mut rest = data;
    if data.len() >= 16 {
        let mut v1 = seed.wrapping_add(P1).wrapping_add(P2);
        let mut v2 = seed.wrapping_add(P2);
        let mut v3 = seed;
        let mut v4 = seed.wrapping_sub(P1);
        let mut stripes = data.chunks_exact(16);
        for s in &mut stripes {
            let (a, b) = s.split_at(8);
            let (a0, a1) = a.split_at(4);
            let (b0, b1) = b.split_at(4);
            v1 = xxh32_round(v1, read32(a0));
            v2 = xxh32_round(v2, read32(a1));
            v3 = xxh32_round(v3, read32(b0));
            v4 = xxh32_round(v4, read32(b1));
        }
        rest = stripes.remainder();
        h = v1
            .rotate_left(1)
            .wrapping_add(v2.rotate_left(7))
            .wrapping_add(v3.rotate_left(12))
            .wrapping_add(v4.rotate_left(18));
    } else {
        h = seed.wrapping_add(P5);
    }
    // xattr names are short; saturate instead of truncating for absurd lengths.
    h = h.wrapping_add(u32::try_from(data.len()).unwrap_or(u32::MAX));
    let mut words = rest.chunks_exact(4);
    for w in &mut words {
        h = h
            .wrapping_add(read32(w).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
    }
    for &b in words.remainder() {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^= h >> 16;
    h
}
