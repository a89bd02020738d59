// SPDX-License-Identifier: GPL-2.0

//! Directory blocks: `struct erofs_dirent` arrays followed by names.
//!
//! A directory's data is split in blocks; each block starts with `n` 12-byte dirents
//! (`n = nameoff0 / 12`), followed by the `n` names back to back (no NUL, except that
//! the last name in a block may be followed by NUL padding). Entries are sorted by name
//! (bytewise, then by length), both within a block and across blocks.

use core::cmp::Ordering;

use super::error::{Error, Result};
use super::le::{le16, le64, u8_at};
use super::superblock::EROFS_NAME_LEN;

/// Size of `struct erofs_dirent`.
pub(crate) const EROFS_DIRENT_SIZE: usize = 12;

/// EROFS file type: unknown.
pub(crate) const EROFS_FT_UNKNOWN: u8 = 0;
/// EROFS file type: regular file.
pub(crate) const EROFS_FT_REG_FILE: u8 = 1;
/// EROFS file type: directory.
pub(crate) const EROFS_FT_DIR: u8 = 2;
/// EROFS file type: character device.
pub(crate) const EROFS_FT_CHRDEV: u8 = 3;
/// EROFS file type: block device.
pub(crate) const EROFS_FT_BLKDEV: u8 = 4;
/// EROFS file type: FIFO.
pub(crate) const EROFS_FT_FIFO: u8 = 5;
/// EROFS file type: socket.
pub(crate) const EROFS_FT_SOCK: u8 = 6;
/// EROFS file type: symbolic link.
pub(crate) const EROFS_FT_SYMLINK: u8 = 7;

/// `DT_UNKNOWN`.
pub(crate) const DT_UNKNOWN: u8 = 0;
/// `DT_FIFO`.
pub(crate) const DT_FIFO: u8 = 1;
/// `DT_CHR`.
pub(crate) const DT_CHR: u8 = 2;
/// `DT_DIR`.
pub(crate) const DT_DIR: u8 = 4;
/// `DT_BLK`.
pub(crate) const DT_BLK: u8 = 6;
/// `DT_REG`.
pub(crate) const DT_REG: u8 = 8;
/// `DT_LNK`.
pub(crate) const DT_LNK: u8 = 10;
/// `DT_SOCK`.
pub(crate) const DT_SOCK: u8 = 12;

/// Converts an `EROFS_FT_*` value to a `DT_*` value (unknown values → `DT_UNKNOWN`).
pub(crate) fn file_type_to_dtype(ft: u8) -> u8 {
    match ft {
        EROFS_FT_REG_FILE => DT_REG,
        EROFS_FT_DIR => DT_DIR,
        EROFS_FT_CHRDEV => DT_CHR,
        EROFS_FT_BLKDEV => DT_BLK,
        EROFS_FT_FIFO => DT_FIFO,
        EROFS_FT_SOCK => DT_SOCK,
        EROFS_FT_SYMLINK => DT_LNK,
        _ => DT_UNKNOWN,
    }
}

/// Compares two names the way EROFS sorts dirents (bytewise, shorter prefix first).
pub(crate) fn name_cmp(a: &[u8], b: &[u8]) -> Ordering {
    a.cmp(b)
}

/// One directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dirent<'a> {
    /// Target inode nid.
    pub(crate) nid: u64,
    /// `EROFS_FT_*` file type.
    pub(crate) file_type: u8,
    /// Name (1..=255 bytes, no NUL terminator).
    pub(crate) name: &'a [u8],
}

/// A validated directory block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirBlock<'a> {
    block: &'a [u8],
    count: usize,
}

impl<'a> DirBlock<'a> {
    /// Validates a directory block. `block` is this block's directory data: the block
    /// size, or `i_size - block_start` for the final block.
    ///
    /// Checks that `nameoff0` is a non-zero multiple of 12 smaller than the block, that
    /// name offsets increase, that every name is 1..=255 bytes and inside the block.
    /// After this succeeds, [`DirBlock::get`], [`DirBlock::iter`] and
    /// [`DirBlock::lookup`] cannot fail.
    pub(crate) fn new(block: &'a [u8]) -> Result<DirBlock<'a>> {
        let db = DirBlock::header(block)?;
        for i in 0..db.count {
            db.entry(i)?;
        }
        Ok(db)
    }

    /// The block with only its header (`nameoff0`) checked: entries are checked when parsed.
    fn header(block: &'a [u8]) -> Result<DirBlock<'a>> {
        let nameoff0 = usize::from(le16(block, 8)?);
        if nameoff0 == 0 || nameoff0 % EROFS_DIRENT_SIZE != 0 || nameoff0 >= block.len() {
            return Err(Error::Corrupted);
        }
        Ok(DirBlock { block, count: nameoff0 / EROFS_DIRENT_SIZE })
    }

    /// Parses entry `i` with full bounds checks.
    fn entry(&self, i: usize) -> Result<Dirent<'a>> {
        if i >= self.count {
            return Err(Error::Corrupted);
        }
        // i < count <= len / 12, so these cannot overflow.
        let de = i * EROFS_DIRENT_SIZE;
        let nid = le64(self.block, de)?;
        let nameoff = usize::from(le16(self.block, de + 8)?);
        let file_type = u8_at(self.block, de + 10)?;
        if nameoff < self.count * EROFS_DIRENT_SIZE || nameoff >= self.block.len() {
            return Err(Error::Corrupted);
        }
        let tail = self.block.get(nameoff..).ok_or(Error::Corrupted)?;
        let name = if i + 1 < self.count {
            let next = usize::from(le16(self.block, de + EROFS_DIRENT_SIZE + 8)?);
            let len = next.checked_sub(nameoff).ok_or(Error::Corrupted)?;
            tail.get(..len).ok_or(Error::Corrupted)?
        } else {
            let len = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
            tail.get(..len).ok_or(Error::Corrupted)?
        };
        if name.is_empty() || name.len() > EROFS_NAME_LEN {
            return Err(Error::Corrupted);
        }
        Ok(Dirent {
            nid,
            file_type,
            name,
        })
    }

    /// Number of entries in this block.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Always false: a valid block has at least one entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entry `i`, or `None` if `i >= len()`.
    pub(crate) fn get(&self, i: usize) -> Option<Dirent<'a>> {
        self.entry(i).ok()
    }

    /// Iterates over the entries in on-disk (sorted) order.
    pub(crate) fn iter(&self) -> DirIter<'a> {
        DirIter {
            block: *self,
            next: 0,
        }
    }

    /// Binary search for `name` (names sorted bytewise, then by length).
    ///
    /// Returns `Ok(Ok(dirent))` if found, `Ok(Err(i))` with the insertion index if not
    /// (0: `name` sorts before this block's first entry; `len()`: after its last one,
    /// which lets callers binary-search over blocks like `namei.c`).
    pub(crate) fn lookup(&self, name: &[u8]) -> Result<core::result::Result<Dirent<'a>, usize>> {
        let mut lo = 0usize;
        let mut hi = self.count;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let de = self.entry(mid)?;
            match name_cmp(de.name, name) {
                Ordering::Equal => return Ok(Ok(de)),
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
            }
        }
        Ok(Err(lo))
    }
}

/// A directory block for name lookups, read as `namei.c` reads one: only the header is
/// checked up front, and each entry when a lookup reaches it. A lookup then parses O(log n)
/// entries instead of validating all of them first ([`DirBlock::new`]); a corrupted entry it
/// reaches is [`Error::Corrupted`], one it does not reach goes unnoticed, as in C.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirLookupBlock<'a>(DirBlock<'a>);

impl<'a> DirLookupBlock<'a> {
    /// Checks the block's header (see [`DirBlock::new`] for the block and the checks).
    pub(crate) fn new(block: &'a [u8]) -> Result<DirLookupBlock<'a>> {
        DirBlock::header(block).map(DirLookupBlock)
    }

    /// Number of entries in this block.
    pub(crate) fn len(&self) -> usize {
        self.0.count
    }

    /// Always false: a block with a valid header has at least one entry.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.count == 0
    }

    /// [`DirBlock::lookup`], with [`Error::Corrupted`] for a bad entry on the way.
    pub(crate) fn lookup(&self, name: &[u8]) -> Result<core::result::Result<Dirent<'a>, usize>> {
        self.0.lookup(name)
    }
}

/// Iterator over the entries of a [`DirBlock`].
#[derive(Debug, Clone)]
pub(crate) struct DirIter<'a> {
    block: DirBlock<'a>,
    next: usize,
}

impl<'a> Iterator for DirIter<'a> {
    type Item = Dirent<'a>;

    fn next(&mut self) -> Option<Dirent<'a>> {
        let de = self.block.get(self.next)?;
        self.next += 1;
        Some(de)
    }
}
