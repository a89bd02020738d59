// SPDX-License-Identifier: GPL-2.0

//! The fuzz targets of the on-disk format layer (`rust/format`).
//!
//! Each target takes a whole image (the primary device, i.e. the metadata blob) and drives the
//! format layer the way the kernel module does: `fill_super` (superblock, checksum, device table,
//! root inode), then directory walks through `readdir` and `lookup`, `iget` of every inode found,
//! the read path of files, directories and symlinks (`read_run`: `map` extent by extent, the
//! inline tail, the device of each extent and its size limit), and `listxattr`/`getxattr`/ACLs.
//! The glue here mirrors `rust/super.rs`, `inode.rs`, `dir.rs`, `data.rs` and `xattr.rs` step by
//! step, with the same checks, so the code paths are the module's.
//!
//! Besides "no panic, no overflow" (the crates that use this build with overflow checks), the
//! targets assert the contracts the format layer documents and the module relies on (a
//! validated directory block cannot fail afterwards, a mapping contains the offset it was asked
//! for, ...). Every loop is bounded, so a hang can only come from the format layer.
//!
//! Compressed files: the `zmap` target mounts with compression allowed, as the module does, and
//! reads them through `map_compressed` and `decompress_extent` much as the module does
//! (`read_folio` of a compressed file: map each piece of the page, fetch the pcluster, decode
//! from the extent's start; one page at a time, without the module's batching of adjacent
//! pclusters), and the `lz4` target feeds raw input to the LZ4 decoder. The other targets'
//! `mount` still refuses compressed images, as the module did before it read them.
//!
//! This file is compiled into `tools/fuzz` (the libFuzzer targets and the stable driver) and into
//! `tools/format-tests` (the regression tests): it only uses `crate::format` and `std`.

use crate::format::*;
use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};

/// The kernel's page size on the test machines; blocks are at most this big.
pub(crate) const PAGE_SIZE: usize = 4096;
/// Largest `listxattr` buffer the VFS passes (`XATTR_LIST_MAX`).
const XATTR_LIST_MAX: usize = 65536;

// Bounds on the work done for one input. The kernel is bounded by what user space asks; a fuzz
// input must be bounded here (a 2^62-byte directory of one repeated block is a valid input).
/// Inodes visited per input.
const MAX_INODES: usize = 160;
/// Directory blocks read per `readdir` call.
const MAX_DIR_BLOCKS: u64 = 16;
/// Entries emitted per `readdir` call (the "user buffer").
const MAX_DIRENTS: usize = 512;
/// Names looked up per directory.
const MAX_LOOKUPS: usize = 12;
/// Pages read per file.
const MAX_FILE_PAGES: u64 = 12;
/// Largest decoded prefix of an extent per page read (the kernel decodes up to 12 MiB; a fuzz
/// input should stay fast).
const MAX_DECODE: u64 = 1 << 20;
/// Largest LZ4 output buffer of the `lz4` target.
const MAX_LZ4_OUT: usize = 1 << 17;
/// Xattr entries visited per `listxattr`/`getxattr` walk.
const MAX_XATTR_ENTRIES: usize = 256;
/// `getxattr` calls per inode.
const MAX_GETXATTRS: usize = 16;

/// What one run reached, to show that inputs get past the superblock (driver output, tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Inputs that mounted (superblock, devices, root directory).
    pub mounts: u64,
    /// Inodes read successfully by `iget`.
    pub inodes: u64,
    /// Directory blocks validated.
    pub dir_blocks: u64,
    /// Directory entries emitted by `readdir`.
    pub dirents: u64,
    /// Xattr entries visited (inline and shared).
    pub xattrs: u64,
    /// Shared xattr entries visited.
    pub shared_xattrs: u64,
    /// Long-prefix xattr entries resolved.
    pub long_prefixes: u64,
    /// Successful `map` calls inside a file.
    pub maps: u64,
    /// ... of which on chunk-based inodes.
    pub chunk_maps: u64,
    /// ... of which the inline tail in the metadata.
    pub tail_maps: u64,
    /// Extra devices in the device table of mounted inputs.
    pub devices: u64,
    /// Compressed inodes whose map header was read (`ZInode::read`).
    pub zinodes: u64,
    /// Successful `map_compressed` calls inside a file.
    pub zmaps: u64,
    /// ... of which inline (ztailpacking) extents.
    pub zmeta: u64,
    /// ... of which big pclusters (more than one block).
    pub zbig: u64,
    /// Extents decoded by `decompress_extent` (LZ4 or plain).
    pub zdecoded: u64,
    /// LZ4 blocks the `lz4` target decoded completely.
    pub lz4_blocks: u64,
    /// Errors returned by the format layer (expected on corrupt inputs).
    pub errors: u64,
}

impl Stats {
    /// Adds `o` to `self`.
    pub fn add(&mut self, o: &Stats) {
        self.mounts += o.mounts;
        self.inodes += o.inodes;
        self.dir_blocks += o.dir_blocks;
        self.dirents += o.dirents;
        self.xattrs += o.xattrs;
        self.shared_xattrs += o.shared_xattrs;
        self.long_prefixes += o.long_prefixes;
        self.maps += o.maps;
        self.chunk_maps += o.chunk_maps;
        self.tail_maps += o.tail_maps;
        self.devices += o.devices;
        self.zinodes += o.zinodes;
        self.zmaps += o.zmaps;
        self.zmeta += o.zmeta;
        self.zbig += o.zbig;
        self.zdecoded += o.zdecoded;
        self.lz4_blocks += o.lz4_blocks;
        self.errors += o.errors;
    }
}

/// The fuzz targets, one per parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `SuperBlock::parse`, checksum, accessors; then the whole mount.
    Superblock,
    /// The device table (`DeviceSlot`) and device routing (`map_device`).
    DeviceTable,
    /// `Inode::read` and the module's `iget` checks, symlinks.
    Inode,
    /// Directory blocks (`DirBlock`): `readdir` from several positions and `lookup`.
    Dirent,
    /// Inline and shared xattrs, long prefixes, the name filter: `listxattr`, `getxattr`, ACLs.
    Xattr,
    /// Block mapping (`map`): flat, inline tail, block maps and chunk indexes; the read path.
    ChunkMap,
    /// Compressed files (`ComprConfig`, `ZInode`, `map_compressed`, `decompress_extent`) on an
    /// image mounted with compression allowed.
    Zmap,
    /// The LZ4 block decoder (`lz4_decompress`, `strip_zero_padding`, `decompress_extent`) on
    /// raw input: not an image.
    Lz4,
}

/// All targets, in a fixed order.
pub const TARGETS: [Target; 8] = [
    Target::Superblock,
    Target::DeviceTable,
    Target::Inode,
    Target::Dirent,
    Target::Xattr,
    Target::ChunkMap,
    Target::Zmap,
    Target::Lz4,
];

impl Target {
    /// The target's name (that of its cargo-fuzz binary).
    pub fn name(self) -> &'static str {
        match self {
            Target::Superblock => "superblock",
            Target::DeviceTable => "device_table",
            Target::Inode => "inode",
            Target::Dirent => "dirent",
            Target::Xattr => "xattr",
            Target::ChunkMap => "chunk_map",
            Target::Zmap => "zmap",
            Target::Lz4 => "lz4",
        }
    }

    /// Whether the target takes an image (all but `lz4`, whose input is an LZ4 block).
    pub fn takes_image(self) -> bool {
        self != Target::Lz4
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Target> {
        TARGETS.iter().copied().find(|t| t.name() == name)
    }

    /// Runs the target on one input. Panics on a bug.
    pub fn run(self, data: &[u8]) -> Stats {
        let mut st = Stats::default();
        match self {
            Target::Superblock => superblock(data, &mut st),
            Target::DeviceTable => device_table(data, &mut st),
            Target::Inode => inode(data, &mut st),
            Target::Dirent => dirent(data, &mut st),
            Target::Xattr => xattr(data, &mut st),
            Target::ChunkMap => chunk_map(data, &mut st),
            Target::Zmap => zmap(data, &mut st),
            Target::Lz4 => lz4(data, &mut st),
        }
        st
    }
}

// ---------------------------------------------------------------------------------------------
// The image and the mount (rust/super.rs)
// ---------------------------------------------------------------------------------------------

/// The metadata blob as seen through its page cache. Reads past its end fail (`EIO`), as a
/// cachefiles read past the end of the blob does.
pub(crate) struct Blob<'a>(&'a [u8]);

impl Source for Blob<'_> {
    fn read_exact(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        let start = usize::try_from(pos).map_err(|_| Error::Io)?;
        let end = start.checked_add(buf.len()).ok_or(Error::Io)?;
        buf.copy_from_slice(self.0.get(start..end).ok_or(Error::Io)?);
        Ok(())
    }
}

/// A mounted image: what `fill_super` leaves in `SbInfo`.
pub(crate) struct Mount {
    pub(crate) img: Vec<u8>,
    pub(crate) sb: SuperBlock,
    pub(crate) devices: Vec<DeviceSlot>,
    /// Size in bytes of device 0 (the primary) and of each extra device; 0 = unknown.
    pub(crate) device_bytes: Vec<u64>,
    pub(crate) root: Inode,
    /// The compression configuration when mounted with compression allowed
    /// ([`mount_compressed`]); `None` for [`mount`], which refuses compressed images and
    /// inodes (the module's mount before it read compressed files).
    pub(crate) cfg: Option<ComprConfig>,
    /// Directory blocks `(nid, block)` whose [`check_dirblock`] already ran (it is O(n log n)).
    checked: RefCell<HashSet<(u64, u64)>>,
}

impl Mount {
    pub(crate) fn src(&self) -> Blob<'_> {
        Blob(&self.img)
    }

    pub(crate) fn blksz(&self) -> u64 {
        u64::from(self.sb.block_size())
    }
}

/// The first page of the blob (zero-filled past its end, as the page cache does).
fn page0(data: &[u8]) -> [u8; PAGE_SIZE] {
    let mut p = [0u8; PAGE_SIZE];
    let n = data.len().min(PAGE_SIZE);
    p[..n].copy_from_slice(&data[..n]);
    p
}

/// Checks what `SuperBlock::parse` promises.
fn check_superblock(sb: &SuperBlock) {
    assert!(
        (9..=12).contains(&sb.blkszbits),
        "blkszbits {}",
        sb.blkszbits
    );
    assert_eq!(sb.dirblkbits, 0);
    assert_eq!(sb.feature_incompat & !EROFS_ALL_FEATURE_INCOMPAT, 0);
    assert!(sb.sb_size() <= 4096 - 1024);
    assert!(sb.volume_label().len() < 16);
    if !sb.has_incompat(EROFS_FEATURE_INCOMPAT_DEVICE_TABLE) {
        assert_eq!(sb.extra_devices, 0);
    }
    assert!(u32::from(sb.device_id_mask()) >= u32::from(sb.extra_devices));
    let cl = sb.checksum_len();
    assert!((512..=3072).contains(&cl), "checksum_len {cl}");
    assert_eq!(sb.block_size(), 1 << sb.blkszbits);
}

/// Recomputes the superblock checksum of a copy of `data` (padded to a page).
///
/// Anyone can compute a crc32c, so the checksum is no barrier to a hostile image; forging it
/// lets mutations of the superblock and of the first block reach the parsers behind it.
fn forge_checksum(data: &[u8], sb: &SuperBlock) -> Vec<u8> {
    let mut d = data.to_vec();
    if d.len() < PAGE_SIZE {
        d.resize(PAGE_SIZE, 0);
    }
    if sb.has_compat(EROFS_FEATURE_COMPAT_SB_CHKSUM) {
        let region = &mut d[1024..1024 + sb.checksum_len()];
        region[4..8].fill(0);
        let crc = crc32c(!0, region);
        region[4..8].copy_from_slice(&crc.to_le_bytes());
    }
    d
}

/// `fill_super`: superblock (with `read_superblock`'s checks), devices (`acquire_devices`), root.
pub(crate) fn mount(data: &[u8], st: &mut Stats) -> Option<Mount> {
    mount_with(data, st, false)
}

/// Incompat bits of compressed images, which [`mount_compressed`] accepts on top of the
/// module's [`SUPPORTED_INCOMPAT`].
const COMPRESSION_INCOMPAT: u32 = EROFS_FEATURE_INCOMPAT_COMPR_CFGS
    | EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER
    | EROFS_FEATURE_INCOMPAT_ZTAILPACKING
    | EROFS_FEATURE_INCOMPAT_FRAGMENTS;

/// `fill_super` as it will be once the module reads compressed files: compression features
/// accepted, the compression configuration read (`z_erofs_parse_cfgs`) and kept in the mount.
pub(crate) fn mount_compressed(data: &[u8], st: &mut Stats) -> Option<Mount> {
    mount_with(data, st, true)
}

fn mount_with(data: &[u8], st: &mut Stats, compressed: bool) -> Option<Mount> {
    let p = page0(data);
    let sb = match p
        .get(1024..)
        .ok_or(Error::Corrupted)
        .and_then(SuperBlock::parse)
    {
        Ok(sb) => sb,
        Err(_) => {
            st.errors += 1;
            return None;
        }
    };
    check_superblock(&sb);
    let img = if sb.verify_checksum(&p).is_ok() && data.len() >= PAGE_SIZE {
        data.to_vec()
    } else {
        let d = forge_checksum(data, &sb);
        assert_eq!(
            sb.verify_checksum(&d),
            Ok(()),
            "forged checksum must verify"
        );
        d
    };
    let allowed = if compressed { COMPRESSION_INCOMPAT } else { 0 };
    if sb.unsupported_incompat() & !allowed != 0 {
        return None;
    }
    let src = Blob(&img);
    let cfg = if compressed {
        // The module's set (all four algorithms), so that every record parser is fuzzed;
        // MicroLZMA, DEFLATE and Zstandard extents then fail to decode with `Unsupported` (the
        // format layer's own decoder is LZ4 only).
        match ComprConfig::read_with(&src, &sb, FUZZ_ALGS) {
            Ok(cfg) => {
                check_compr_config(&sb, &cfg);
                Some(cfg)
            }
            Err(e) => {
                // A distinct error for algorithms, which is EOPNOTSUPP like C's.
                if matches!(
                    e,
                    ComprError::UnknownAlgorithms(_) | ComprError::UnsupportedAlgorithm(_)
                ) {
                    assert_eq!(e.to_error(), Error::Unsupported);
                }
                st.errors += 1;
                return None;
            }
        }
    } else {
        None
    };
    // acquire_devices(): every slot of the table, device= options given for all of them.
    let mut devices = Vec::new();
    let mut device_bytes = vec![sb.blocks << sb.blkszbits];
    let mut total = sb.blocks;
    for i in 0..sb.extra_devices {
        let slot = sb.device_slot_pos(i).and_then(|pos| {
            let mut raw = [0u8; EROFS_DEVT_SLOT_SIZE];
            src.read_exact(pos, &mut raw)?;
            DeviceSlot::parse(&raw)
        });
        let Ok(slot) = slot else {
            st.errors += 1;
            return None;
        };
        assert_eq!(DeviceSlot::read(&src, &sb, i), Ok(slot));
        assert!(slot.tag().len() <= 64 && !slot.tag().contains(&0));
        total = total.checked_add(u64::from(slot.blocks))?;
        device_bytes.push(u64::from(slot.blocks) << sb.blkszbits);
        devices.push(slot);
    }
    assert!(sb.device_slot_pos(sb.extra_devices).is_err());
    st.devices += devices.len() as u64;
    let mut m = Mount {
        img,
        sb,
        devices,
        device_bytes,
        root: NO_INODE,
        cfg,
        checked: RefCell::new(HashSet::new()),
    };
    let root = match iget(&m, sb.root_nid, st) {
        Ok(r) if r.is_dir() => r,
        _ => return None,
    };
    m.root = root;
    st.mounts += 1;
    Some(m)
}

/// Placeholder before the root is read.
const NO_INODE: Inode = Inode {
    nid: 0,
    extended: false,
    datalayout: Layout::FlatPlain,
    xattr_icount: 0,
    mode: 0,
    nlink: 0,
    size: 0,
    uid: 0,
    gid: 0,
    mtime: 0,
    mtime_nsec: 0,
    ino: 0,
    rdev: 0,
    raw_blkaddr: 0,
    chunk_format: 0,
    chunkbits: 0,
    inode_isize: 0,
    xattr_isize: 0,
};

// ---------------------------------------------------------------------------------------------
// Inodes (rust/inode.rs)
// ---------------------------------------------------------------------------------------------

/// Checks what `Inode::read` promises.
fn check_inode(sb: &SuperBlock, nid: u64, i: &Inode) {
    assert_eq!(i.nid, nid);
    assert!(i.size <= i64::MAX as u64);
    assert_eq!(
        i.inode_isize,
        if i.extended {
            EROFS_INODE_EXTENDED_SIZE
        } else {
            EROFS_INODE_COMPACT_SIZE
        }
    );
    assert_eq!(i.xattr_isize, xattr_ibody_size(i.xattr_icount));
    assert!(matches!(
        i.file_type(),
        S_IFREG | S_IFDIR | S_IFLNK | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK
    ));
    if i.datalayout == Layout::ChunkBased {
        assert_eq!(i.chunk_format & !EROFS_CHUNK_FORMAT_ALL, 0);
        assert_eq!(
            i.chunkbits,
            u32::from(sb.blkszbits) + u32::from(i.chunk_format & EROFS_CHUNK_FORMAT_BLKBITS_MASK)
        );
    } else {
        assert_eq!((i.chunk_format, i.chunkbits), (0, 0));
    }
    if !matches!(i.file_type(), S_IFCHR | S_IFBLK) {
        assert_eq!(i.rdev, 0);
    }
    assert_eq!(i.nblocks(sb), i.size.div_ceil(u64::from(sb.block_size())));
    assert_eq!(i.pos(sb), sb.nid_pos(nid));
    if let Ok(Some((pos, len))) = i.fast_symlink(sb) {
        assert!(i.is_symlink() && i.datalayout == Layout::FlatInline);
        assert_eq!(len, i.size);
        assert_eq!(Ok(pos), i.inline_data_pos(sb));
        assert!(pos % u64::from(sb.block_size()) + len <= u64::from(sb.block_size()));
    }
}

/// `new_decode_dev()` as `rust/inode.rs`.
fn new_decode_dev(dev: u32) -> u32 {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    (major << 20) | minor
}

/// `iget`/`fill`: reads and validates inode `nid` with the module's checks.
fn iget(m: &Mount, nid: u64, st: &mut Stats) -> Result<Inode> {
    let r = iget_inner(m, nid);
    match r {
        Ok(_) => st.inodes += 1,
        Err(_) => st.errors += 1,
    }
    r
}

fn iget_inner(m: &Mount, nid: u64) -> Result<Inode> {
    usize::try_from(nid).map_err(|_| Error::Corrupted)?;
    let raw = Inode::read(&m.src(), &m.sb, nid)?;
    check_inode(&m.sb, nid, &raw);
    if raw.datalayout.is_compressed() && m.cfg.is_none() {
        return Err(Error::Unsupported);
    }
    let blksz = m.blksz();
    i64::try_from(raw.size).map_err(|_| Error::Corrupted)?;
    raw.size
        .div_ceil(blksz)
        .checked_mul(blksz / 512)
        .ok_or(Error::Corrupted)?;
    i64::try_from(raw.mtime).map_err(|_| Error::Corrupted)?;
    match raw.file_type() {
        S_IFLNK if raw.size == 0 || raw.size >= PAGE_SIZE as u64 => return Err(Error::Corrupted),
        S_IFCHR | S_IFBLK => {
            let (major, minor) = raw.rdev_major_minor();
            assert_eq!(new_decode_dev(raw.rdev), (major << 20) | minor);
        }
        _ => {}
    }
    Ok(raw)
}

// ---------------------------------------------------------------------------------------------
// The read path (rust/data.rs)
// ---------------------------------------------------------------------------------------------

/// Checks what `map` promises for `offset` of `inode`.
fn check_mapping(m: &Mount, inode: &Inode, offset: u64, mp: &Mapping) {
    let blksz = m.blksz();
    if offset >= inode.size {
        assert_eq!((mp.logical, mp.length, mp.mapped), (offset, 0, false));
        return;
    }
    assert!(mp.length > 0, "zero-length mapping inside the file: {mp:?}");
    assert!(
        mp.logical <= offset && offset - mp.logical < mp.length,
        "offset {offset} outside {mp:?}"
    );
    assert!(mp.device <= m.sb.extra_devices);
    if !mp.mapped {
        assert!(!mp.meta && mp.device == 0);
    }
    if mp.meta {
        assert!(mp.mapped && mp.device == 0);
        assert_eq!(inode.datalayout, Layout::FlatInline);
        assert_eq!(mp.logical + mp.length, inode.size);
        assert!(mp.physical % blksz + mp.length <= blksz);
    } else {
        assert_eq!(mp.logical % blksz, 0);
        assert_eq!(mp.length % blksz, 0);
        assert_eq!(mp.physical % blksz, 0);
        assert!(mp.logical + mp.length <= inode.size.div_ceil(blksz) * blksz);
        match inode.datalayout {
            // Flat: one extent from block `raw_blkaddr` up to the tail.
            Layout::FlatPlain | Layout::FlatInline => {
                assert_eq!(mp.logical, 0);
                assert_eq!(Ok(mp.physical), m.sb.blkpos(u64::from(inode.raw_blkaddr)));
            }
            // Chunks: the chunk containing the offset, at most a chunk long.
            _ => {
                assert_eq!(mp.logical, offset >> inode.chunkbits << inode.chunkbits);
                assert!(mp.length <= 1 << inode.chunkbits);
            }
        }
    }
}

/// `map` with the contract checked.
fn map_checked(m: &Mount, inode: &Inode, offset: u64, st: &mut Stats) -> Result<Mapping> {
    let r = map(&m.src(), &m.sb, inode, offset);
    match &r {
        Ok(mp) => {
            check_mapping(m, inode, offset, mp);
            if offset < inode.size {
                st.maps += 1;
                if inode.datalayout == Layout::ChunkBased {
                    st.chunk_maps += 1;
                }
                if mp.meta {
                    st.tail_maps += 1;
                }
            }
        }
        Err(_) => st.errors += 1,
    }
    r
}

/// `read_run` for one page of a file, directory or symlink: what `read_folio` fills.
/// Extra devices read as zeros (their content is not parsed).
fn read_page(m: &Mount, inode: &Inode, index: u64, st: &mut Stats) -> Result<Vec<u8>> {
    if inode.datalayout.is_compressed() {
        let cfg = m.cfg.as_ref().ok_or(Error::Unsupported)?;
        return zread_page(m, cfg, inode, index, st);
    }
    let run_len = PAGE_SIZE as u64;
    let start = index.checked_mul(run_len).ok_or(Error::Corrupted)?;
    let mut page = vec![0u8; PAGE_SIZE];
    let src = m.src();
    let mut off = 0u64;
    while off < run_len {
        let lpos = start.checked_add(off).ok_or(Error::Corrupted)?;
        if lpos >= inode.size {
            break; // zeroed
        }
        let mp = map_checked(m, inode, lpos, st)?;
        let skip = lpos.checked_sub(mp.logical).ok_or(Error::Corrupted)?;
        let avail = mp
            .length
            .checked_sub(skip)
            .filter(|&a| a > 0)
            .ok_or(Error::Corrupted)?;
        let n = avail.min(run_len - off);
        let phys = mp.physical.checked_add(skip).ok_or(Error::Corrupted)?;
        let dst = &mut page[off as usize..(off + n) as usize];
        if !mp.mapped {
            dst.fill(0);
        } else if mp.meta {
            let want = n.min(inode.size - lpos) as usize;
            src.read_exact(phys, &mut dst[..want])?;
        } else {
            let limit = m
                .device_bytes
                .get(usize::from(mp.device))
                .copied()
                .unwrap_or(0);
            if limit != 0
                && mp
                    .physical
                    .checked_add(mp.length)
                    .is_none_or(|end| end > limit)
            {
                return Err(Error::Corrupted);
            }
            match mp.device {
                0 => src.read_exact(phys, dst)?,
                d => {
                    // The cookie of the device must exist (`SbInfo::cookie`).
                    m.devices.get(usize::from(d) - 1).ok_or(Error::Corrupted)?;
                    dst.fill(0);
                }
            }
        }
        off += n;
    }
    Ok(page)
}

// ---------------------------------------------------------------------------------------------
// Compressed files (rust/format/zmap.rs, lz4.rs): what the module's read path will do
// ---------------------------------------------------------------------------------------------

/// The algorithms the harness reads configurations for: the module's.
const FUZZ_ALGS: u16 = (1 << Z_EROFS_COMPRESSION_LZ4)
    | (1 << Z_EROFS_COMPRESSION_LZMA)
    | (1 << Z_EROFS_COMPRESSION_DEFLATE)
    | (1 << Z_EROFS_COMPRESSION_ZSTD);

/// Checks what `ComprConfig::read_with` promises.
fn check_compr_config(sb: &SuperBlock, cfg: &ComprConfig) {
    // Supported algorithms or nothing (COMPR_CFGS with an empty bitmap mounts in C too).
    assert_eq!(cfg.algorithms & !FUZZ_ALGS, 0);
    assert!(cfg.deflate_windowbits <= Z_EROFS_DEFLATE_MAX_WINDOWBITS);
    assert!(cfg.zstd_windowlog <= Z_EROFS_ZSTD_MAX_WINDOWLOG);
    assert!(
        cfg.lzma_dict_size == 0
            || (Z_EROFS_LZMA_MIN_DICT_SIZE..=Z_EROFS_LZMA_MAX_DICT_SIZE).contains(&cfg.lzma_dict_size)
    );
    assert_eq!(cfg.lzma_dict_size != 0, cfg.algorithms & (1 << Z_EROFS_COMPRESSION_LZMA) != 0);
    assert!((1024..=1 << 20).contains(&cfg.zstd_window()));
    assert!(cfg.lz4_max_pclusterblks >= 1);
    assert!(u64::from(cfg.lz4_max_pclusterblks) <= Z_EROFS_PCLUSTER_MAX_SIZE >> sb.blkszbits);
}

/// Checks what `ZInode::read` promises.
fn check_zinode(sb: &SuperBlock, inode: &Inode, zi: &ZInode) {
    assert_eq!(&zi.inode, inode);
    assert!(inode.datalayout.is_compressed());
    assert!(zi
        .algorithmtype
        .iter()
        .all(|&a| a < Z_EROFS_COMPRESSION_MAX));
    let bits = u32::from(sb.blkszbits);
    assert!((bits..=bits + 15).contains(&zi.lclusterbits));
    let big = Z_EROFS_ADVISE_BIG_PCLUSTER_1 | Z_EROFS_ADVISE_BIG_PCLUSTER_2;
    if zi.advise & big != 0 {
        assert!(sb.has_incompat(EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER));
    }
    if inode.datalayout == Layout::CompressedCompact {
        assert!(zi.advise & big == 0 || zi.advise & big == big);
    }
    if zi.advise & Z_EROFS_ADVISE_FRAGMENT_PCLUSTER != 0 {
        assert!(sb.has_incompat(EROFS_FEATURE_INCOMPAT_FRAGMENTS));
        assert!(sb.packed_nid != 0 && inode.nid != sb.packed_nid);
        assert_eq!(zi.idata_size, 0);
    }
    if zi.idata_size != 0 && inode.size != 0 {
        let blksz = u64::from(sb.block_size());
        assert!(zi.idata_pos % blksz + u64::from(zi.idata_size) <= blksz);
    }
}

/// Checks what `map_compressed` promises for `offset` of `zi`.
fn check_zextent(m: &Mount, zi: &ZInode, offset: u64, mode: ZMapMode, e: &ZExtent) {
    let size = zi.inode.size;
    if offset >= size {
        assert_eq!((e.logical, e.length, e.mapped), (offset, 0, false));
        return;
    }
    assert!(
        e.mapped && e.length > 0,
        "unmapped or empty extent inside the file: {e:?}"
    );
    assert!(
        e.logical <= offset && offset - e.logical < e.length,
        "offset {offset} outside {e:?}"
    );
    if mode == ZMapMode::Full {
        assert!(e.full_mapped);
    }
    if e.fragment {
        assert!(!e.meta && zi.advise & Z_EROFS_ADVISE_FRAGMENT_PCLUSTER != 0);
        return;
    }
    assert!(e.plength <= Z_EROFS_PCLUSTER_MAX_SIZE && e.length <= Z_EROFS_PCLUSTER_MAX_DSIZE);
    let blksz = m.blksz();
    if e.meta {
        assert!(zi.idata_size != 0);
        assert_eq!(
            (e.physical, e.plength),
            (zi.idata_pos, u64::from(zi.idata_size))
        );
        assert!(e.physical % blksz + e.plength <= blksz);
        assert_ne!(e.algorithm, Algorithm::Interlaced);
    } else {
        assert_eq!(e.physical % blksz, 0);
        assert!(
            e.plength >= blksz && e.plength.is_multiple_of(blksz),
            "{e:?}"
        );
    }
    match e.algorithm {
        Algorithm::Shifted | Algorithm::Interlaced => assert!(e.length <= e.plength, "{e:?}"),
        a => assert_eq!(
            a,
            Algorithm::Lz4,
            "an algorithm the configuration does not list"
        ),
    }
}

/// `map_compressed` with the contract checked; in `Read` mode also compared with `Full`.
fn zmap_checked(
    m: &Mount,
    cfg: &ComprConfig,
    zi: &ZInode,
    offset: u64,
    mode: ZMapMode,
    st: &mut Stats,
) -> Result<ZExtent> {
    let r = map_compressed(&m.src(), &m.sb, cfg, zi, offset, mode);
    match &r {
        Ok(e) => {
            check_zextent(m, zi, offset, mode, e);
            if offset < zi.inode.size {
                st.zmaps += 1;
                st.zmeta += u64::from(e.meta);
                st.zbig += u64::from(e.plength > m.blksz());
            }
            if mode == ZMapMode::Read && offset < zi.inode.size {
                // Both modes find the same extent head and pcluster.
                if let Ok(f) = map_compressed(&m.src(), &m.sb, cfg, zi, offset, ZMapMode::Full) {
                    check_zextent(m, zi, offset, ZMapMode::Full, &f);
                    assert_eq!(
                        (
                            f.logical,
                            f.physical,
                            f.plength,
                            f.algorithm,
                            f.meta,
                            f.fragment
                        ),
                        (
                            e.logical,
                            e.physical,
                            e.plength,
                            e.algorithm,
                            e.meta,
                            e.fragment
                        )
                    );
                }
            }
        }
        Err(_) => st.errors += 1,
    }
    r
}

/// `ZInode::read` with the contract checked. The packed inode cannot have fragments itself.
fn zinode(m: &Mount, cfg: &ComprConfig, inode: &Inode, st: &mut Stats) -> Result<ZInode> {
    match ZInode::read(&m.src(), &m.sb, cfg, inode) {
        Ok(zi) => {
            check_zinode(&m.sb, inode, &zi);
            st.zinodes += 1;
            Ok(zi)
        }
        Err(e) => {
            st.errors += 1;
            Err(e)
        }
    }
}

/// `read_folio` of one page of a compressed file: each piece of the page is mapped (`Read`
/// mode, as C's read path), its pcluster read from the primary device (after the device size
/// check) and decoded from the extent's start up to the end of the piece; fragments are read
/// from the packed inode through its own page cache.
fn zread_page(
    m: &Mount,
    cfg: &ComprConfig,
    inode: &Inode,
    index: u64,
    st: &mut Stats,
) -> Result<Vec<u8>> {
    let zi = zinode(m, cfg, inode, st)?;
    let run_len = PAGE_SIZE as u64;
    let start = index.checked_mul(run_len).ok_or(Error::Corrupted)?;
    let mut page = vec![0u8; PAGE_SIZE];
    let size = inode.size;
    let mut off = 0u64;
    while off < run_len {
        let lpos = start.checked_add(off).ok_or(Error::Corrupted)?;
        if lpos >= size {
            break; // zeroed
        }
        let e = zmap_checked(m, cfg, &zi, lpos, ZMapMode::Read, st)?;
        let end = (e.logical + e.length).min(size).min(start + run_len);
        let n = end - lpos;
        let dst = &mut page[off as usize..(off + n) as usize];
        if e.fragment {
            // z_erofs_read_fragment: the packed inode's bytes, page by page.
            let packed = iget(m, m.sb.packed_nid, st)?;
            let mut pos = e
                .physical
                .checked_add(lpos - e.logical)
                .ok_or(Error::Corrupted)?;
            let mut done = 0usize;
            while done < dst.len() {
                let idx = pos / run_len;
                let p = read_page(m, &packed, idx, st)?;
                let at = (pos % run_len) as usize;
                let k = (PAGE_SIZE - at).min(dst.len() - done);
                dst[done..done + k].copy_from_slice(&p[at..at + k]);
                done += k;
                pos += k as u64;
            }
        } else {
            let limit = m.device_bytes.first().copied().unwrap_or(0);
            let pend = e.physical.checked_add(e.plength).ok_or(Error::Corrupted)?;
            if limit != 0 && pend > limit {
                return Err(Error::Corrupted);
            }
            let want = end - e.logical;
            if want > MAX_DECODE {
                return Err(Error::Unsupported); // the fuzz bound, not the format's
            }
            let mut pcl = vec![0u8; e.plength as usize];
            m.src().read_exact(e.physical, &mut pcl)?;
            let mut buf = vec![0u8; want as usize];
            match decompress_extent(&m.sb, &e, &pcl, &mut buf) {
                Ok(()) => st.zdecoded += 1,
                Err(err) => {
                    st.errors += 1;
                    return Err(err);
                }
            }
            dst.copy_from_slice(&buf[(lpos - e.logical) as usize..]);
        }
        off += n;
    }
    Ok(page)
}

// ---------------------------------------------------------------------------------------------
// Directories (rust/dir.rs)
// ---------------------------------------------------------------------------------------------

/// Checks what `DirBlock::new` promises: names inside the block after the dirent table,
/// in on-disk order, and nothing after it can fail.
fn check_dirblock(block: &[u8], db: &DirBlock<'_>) {
    assert!(!db.is_empty());
    let table_end = db.len() * EROFS_DIRENT_SIZE;
    let mut prev_end = table_end;
    let mut n = 0;
    for (i, de) in db.iter().enumerate() {
        assert_eq!(db.get(i), Some(de));
        assert!((1..=EROFS_NAME_LEN).contains(&de.name.len()));
        // Where the name lies in the block.
        let start = (de.name.as_ptr() as usize).wrapping_sub(block.as_ptr() as usize);
        assert!(
            start >= prev_end && start + de.name.len() <= block.len(),
            "dirent {i}: name at {start}+{} overlaps the table ({table_end}) or the \
             previous name (ending at {prev_end}), or leaves the block ({})",
            de.name.len(),
            block.len()
        );
        prev_end = start + de.name.len();
        let _ = file_type_to_dtype(de.file_type);
        n += 1;
    }
    assert_eq!(n, db.len());
    assert_eq!(db.get(n), None);
    let last = db.get(n - 1).map(|d| d.name).unwrap_or_default();
    let first = db.get(0).map(|d| d.name).unwrap_or_default();
    for probe in [first, last, &b"\x01"[..], &b"\xff\xff"[..]] {
        assert!(
            db.lookup(probe).is_ok(),
            "lookup failed on a validated block"
        );
    }
    // The lookup view parses lazily and answers as the validated block does.
    let lazy = DirLookupBlock::new(block).expect("a validated block has a valid header");
    assert_eq!(lazy.len(), db.len());
    for probe in db.iter().map(|d| d.name).chain([&b"\x01"[..], &b"\xff\xff"[..]]) {
        assert_eq!(lazy.lookup(probe), db.lookup(probe), "DirLookupBlock disagrees");
    }
    // In a block sorted as mkfs.erofs sorts, the binary search agrees with a linear one.
    let sorted = db
        .iter()
        .zip(db.iter().skip(1))
        .all(|(a, b)| a.name < b.name);
    if sorted {
        for (i, de) in db.iter().enumerate() {
            assert_eq!(db.lookup(de.name), Ok(Ok(de)), "entry {i} not found");
            let mut after = de.name.to_vec();
            after.push(0);
            // Sorted: `name\0` goes right after entry i, unless it is entry i + 1.
            if db.get(i + 1).map(|d| d.name) != Some(after.as_slice()) {
                assert_eq!(db.lookup(&after), Ok(Err(i + 1)), "insertion point");
            }
        }
    }
}

/// `with_block`: runs `f` on the bytes of directory block `blk` of `dir`, read through its
/// page cache.
fn with_block_bytes<R>(
    m: &Mount,
    dir: &Inode,
    blk: u64,
    st: &mut Stats,
    f: impl FnOnce(&[u8], &mut Stats) -> R,
) -> Result<R> {
    let blksz = m.blksz();
    let start = blk.checked_mul(blksz).ok_or(Error::Corrupted)?;
    let len = dir
        .size
        .checked_sub(start)
        .ok_or(Error::Corrupted)?
        .min(blksz) as usize;
    let index = start >> PAGE_SIZE.trailing_zeros();
    let page = read_page(m, dir, index, st)?;
    let off = (start - index * PAGE_SIZE as u64) as usize;
    let block = page
        .get(off..)
        .and_then(|b| b.get(..len))
        .ok_or(Error::Corrupted)?;
    Ok(f(block, st))
}

/// Runs `f` on directory block `blk` of `dir` validated by `DirBlock::new` (readdir's view).
fn with_block<R>(
    m: &Mount,
    dir: &Inode,
    blk: u64,
    st: &mut Stats,
    f: impl FnOnce(DirBlock<'_>, &mut Stats) -> R,
) -> Result<R> {
    with_block_bytes(m, dir, blk, st, |block, st| match DirBlock::new(block) {
        Ok(db) => {
            if m.checked.borrow_mut().insert((dir.nid, blk)) {
                check_dirblock(block, &db);
            }
            st.dir_blocks += 1;
            Ok(f(db, st))
        }
        Err(e) => {
            st.errors += 1;
            Err(e)
        }
    })?
}

/// `readdir` from position `pos`, emitting at most `budget` entries (then stopping as a full
/// user buffer does). Returns the position to continue from.
fn readdir(
    m: &Mount,
    dir: &Inode,
    mut pos: u64,
    mut budget: usize,
    st: &mut Stats,
    emit: &mut dyn FnMut(&[u8], u64, u8),
) -> Result<u64> {
    let blksz = m.blksz();
    let size = dir.size;
    for _ in 0..MAX_DIR_BLOCKS {
        if pos >= size {
            return Ok(pos);
        }
        let blk = pos / blksz;
        let dbstart = blk * blksz;
        let first = (pos - dbstart).div_ceil(EROFS_DIRENT_SIZE as u64);
        let blk_len = (size - dbstart).min(blksz);
        let stopped = with_block(m, dir, blk, st, |db, st| {
            for i in first..db.len() as u64 {
                let d = db.get(i as usize).ok_or(Error::Corrupted)?;
                pos = dbstart + i * EROFS_DIRENT_SIZE as u64;
                if budget == 0 {
                    return Ok(true);
                }
                budget -= 1;
                st.dirents += 1;
                emit(d.name, d.nid, file_type_to_dtype(d.file_type));
            }
            Ok(false)
        })??;
        if stopped {
            return Ok(pos);
        }
        pos = dbstart + blk_len;
    }
    Ok(pos)
}

/// `find`: binary search over the blocks by their first name, then within the block.
fn find(m: &Mount, dir: &Inode, name: &[u8], st: &mut Stats) -> Result<Option<u64>> {
    if name.len() > EROFS_NAME_LEN {
        return Ok(None); // ENAMETOOLONG before any read
    }
    // As rust/dir.rs: a binary search over blocks, each probed block searched lazily
    // (`DirLookupBlock`); a name within a block's range is there or nowhere.
    let blksz = m.blksz();
    let (mut lo, mut hi) = (0u64, dir.size.div_ceil(blksz));
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let probe = with_block_bytes(m, dir, mid, st, |block, st| {
            let r = DirLookupBlock::new(block).and_then(|db| {
                let found = db.lookup(name)?.map(|d| {
                    assert_eq!(d.name, name);
                    d.nid
                });
                Ok((found, db.len()))
            });
            if r.is_err() {
                st.errors += 1;
            }
            r
        })??;
        match probe {
            (Ok(nid), _) => return Ok(Some(nid)),
            (Err(0), _) => hi = mid,
            (Err(i), n) if i >= n => lo = mid + 1,
            (Err(_), _) => return Ok(None),
        }
    }
    Ok(None)
}

/// Walks the tree from the root breadth first (`readdir`, then `iget` of each new nid, as a
/// lookup does), calling `visit` on every inode. Bounded by [`MAX_INODES`].
pub(crate) fn walk(m: &Mount, st: &mut Stats, visit: &mut dyn FnMut(&Mount, &Inode, &mut Stats)) {
    let mut seen = HashSet::new();
    let mut queue = VecDeque::new();
    seen.insert(m.root.nid);
    queue.push_back(m.root);
    while let Some(inode) = queue.pop_front() {
        visit(m, &inode, st);
        if !inode.is_dir() {
            continue;
        }
        let mut children = Vec::new();
        let r = readdir(m, &inode, 0, MAX_DIRENTS, st, &mut |_, nid, _| {
            children.push(nid)
        });
        if r.is_err() {
            st.errors += 1;
        }
        for nid in children {
            if seen.len() >= MAX_INODES {
                return;
            }
            if seen.insert(nid) {
                if let Ok(child) = iget(m, nid, st) {
                    queue.push_back(child);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Xattrs (rust/xattr.rs)
// ---------------------------------------------------------------------------------------------

/// `for_each_entry`: inline entries, then shared ones, until `f` returns true.
fn for_each_xattr(
    m: &Mount,
    inode: &Inode,
    st: &mut Stats,
    f: &mut dyn FnMut(&XattrEntry, &mut Stats) -> Result<bool>,
) -> Result<()> {
    let src = m.src();
    let Some(ix) = InodeXattrs::read(&src, &m.sb, inode)? else {
        return Ok(());
    };
    assert!(u64::from(ix.shared_count) * 4 + ix.inline_len + 12 == u64::from(inode.xattr_isize));
    let mut n = 0;
    let mut inline_total = 0u64;
    for e in ix.inline_entries(&src) {
        let e = e?;
        inline_total += e.size();
        assert!(inline_total <= ix.inline_len);
        st.xattrs += 1;
        n += 1;
        if n > MAX_XATTR_ENTRIES || f(&e, st)? {
            return Ok(());
        }
    }
    for i in 0..ix.shared_count {
        let id = ix.shared_id(&src, i)?;
        let e = shared_entry(&src, &m.sb, id)?;
        st.xattrs += 1;
        st.shared_xattrs += 1;
        n += 1;
        if n > MAX_XATTR_ENTRIES || f(&e, st)? {
            return Ok(());
        }
    }
    assert!(ix.shared_id(&src, ix.shared_count).is_err());
    Ok(())
}

/// The long prefix of an entry that uses one.
fn entry_long_prefix(m: &Mount, e: &XattrEntry, st: &mut Stats) -> Result<Option<LongPrefix>> {
    if !e.is_long_prefix() {
        return Ok(None);
    }
    let pf = long_prefix(&m.src(), &m.sb, e.long_prefix_index())?;
    st.long_prefixes += 1;
    Ok(Some(pf))
}

/// `getxattr`: the value of `(index, name)`, copied into `buf` if given.
fn getxattr(
    m: &Mount,
    inode: &Inode,
    index: u8,
    name: &[u8],
    buf: Option<&mut [u8]>,
    st: &mut Stats,
) -> Result<Option<usize>> {
    let src = m.src();
    let mut found = None;
    for_each_xattr(m, inode, st, &mut |e, st| {
        let long = entry_long_prefix(m, e, st)?;
        if e.matches(&src, long.as_ref(), index, name)? {
            found = Some((e.value_pos()?, usize::from(e.value_size)));
            return Ok(true);
        }
        Ok(false)
    })?;
    let Some((pos, size)) = found else {
        return Ok(None); // ENODATA
    };
    if let Some(buf) = buf {
        let Some(dst) = buf.get_mut(..size) else {
            return Ok(None); // ERANGE
        };
        src.read_exact(pos, dst)?;
    }
    Ok(Some(size))
}

/// `listxattr`: the NUL-separated full names (`trusted.` included, as for CAP_SYS_ADMIN).
/// Also returns each listed name without a NUL in it (those that the list can express).
fn listxattr(m: &Mount, inode: &Inode, st: &mut Stats) -> Result<(Vec<u8>, Vec<Vec<u8>>)> {
    let src = m.src();
    let mut list = Vec::new();
    let mut names = Vec::new();
    for_each_xattr(m, inode, st, &mut |e, st| {
        let long = entry_long_prefix(m, e, st)?;
        let base = long.as_ref().map(|l| l.base_index).unwrap_or(e.name_index);
        let Some(prefix) = prefix_name(base) else {
            return Ok(false);
        };
        let mut infix_buf = [0u8; EROFS_NAME_LEN];
        let infix = match &long {
            Some(l) => l.read_infix(&src, &mut infix_buf)?,
            None => &[],
        };
        assert_eq!(infix.len(), long.map_or(0, |l| usize::from(l.infix_len)));
        let mut name_buf = [0u8; EROFS_NAME_LEN];
        let name = e.read_name(&src, &mut name_buf)?;
        assert_eq!(name.len(), usize::from(e.name_len));
        let mut vbuf = vec![0u8; usize::from(e.value_size)];
        let _ = e.read_value(&src, &mut vbuf);
        if list.len() < XATTR_LIST_MAX {
            let start = list.len();
            list.extend_from_slice(prefix);
            list.extend_from_slice(infix);
            list.extend_from_slice(name);
            if !list[start..].contains(&0) {
                names.push(list[start..].to_vec());
            }
            list.push(0);
        }
        Ok(false)
    })?;
    Ok((list, names))
}

/// Splits a full xattr name the way the VFS picks a handler: `(index, name after the prefix)`.
fn handler_of(full: &[u8]) -> Option<(u8, &[u8])> {
    for (prefix, index) in [
        (&b"user."[..], EROFS_XATTR_INDEX_USER),
        (b"trusted.", EROFS_XATTR_INDEX_TRUSTED),
        (b"security.", EROFS_XATTR_INDEX_SECURITY),
    ] {
        if let Some(rest) = full.strip_prefix(prefix) {
            return Some((index, rest));
        }
    }
    match full {
        b"system.posix_acl_access" => Some((EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, b"")),
        b"system.posix_acl_default" => Some((EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT, b"")),
        _ => None,
    }
}

/// Everything the VFS can ask of an inode's xattrs.
fn visit_xattrs(m: &Mount, inode: &Inode, st: &mut Stats) {
    let listed = match listxattr(m, inode, st) {
        Ok((_, names)) => names,
        Err(_) => {
            st.errors += 1;
            return;
        }
    };
    let ix = InodeXattrs::read(&m.src(), &m.sb, inode).ok().flatten();
    // Every name listxattr gives must be found by getxattr (same walk, same entry).
    for full in listed.iter().take(MAX_GETXATTRS) {
        if let Some((index, name)) = handler_of(full) {
            let r = getxattr(m, inode, index, name, None, st);
            assert!(
                matches!(r, Ok(Some(_))),
                "listed {:?} not found: {r:?}",
                String::from_utf8_lossy(full)
            );
        }
    }
    let mut names: Vec<(u8, Vec<u8>)> = listed
        .iter()
        .filter_map(|n| handler_of(n))
        .map(|(i, n)| (i, n.to_vec()))
        .take(MAX_GETXATTRS)
        .collect();
    // ACLs (get_inode_acl) and names that are absent.
    names.push((EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, Vec::new()));
    names.push((EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT, Vec::new()));
    names.push((EROFS_XATTR_INDEX_USER, b"shared".to_vec()));
    names.push((EROFS_XATTR_INDEX_TRUSTED, b"absent".to_vec()));
    let mut buf = vec![0u8; 65536];
    for (index, name) in names {
        if let Some(ix) = &ix {
            let _ = ix.filter_excludes(&m.sb, index, &name);
        }
        match getxattr(m, inode, index, &name, None, st) {
            Ok(Some(size)) => {
                let r = getxattr(m, inode, index, &name, Some(&mut buf), st);
                assert!(matches!(r, Ok(Some(s)) if s == size) || r.is_err());
            }
            Ok(None) => {}
            Err(_) => st.errors += 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The targets
// ---------------------------------------------------------------------------------------------

fn superblock(data: &[u8], st: &mut Stats) {
    let p = page0(data);
    if let Ok(sb) = SuperBlock::parse(&p[1024..]) {
        check_superblock(&sb);
        let _ = sb.verify_checksum(&p);
        if sb.has_compat(EROFS_FEATURE_COMPAT_SB_CHKSUM) {
            let short = &p[..1024 + sb.checksum_len() - 1];
            assert_eq!(sb.verify_checksum(short), Err(Error::Corrupted));
        }
        let _ = sb.unsupported_incompat();
        for blk in [0, 1, u64::from(u32::MAX), u64::MAX >> 12, u64::MAX] {
            if let Ok(pos) = sb.blkpos(blk) {
                assert_eq!(pos >> sb.blkszbits, blk);
            }
        }
        for nid in [0, sb.root_nid, sb.packed_nid, u64::MAX] {
            let _ = sb.nid_pos(nid);
        }
        let _ = long_prefix_table_pos(&sb);
    }
    mount(data, st);
}

fn device_table(data: &[u8], st: &mut Stats) {
    let Some(m) = mount(data, st) else {
        return;
    };
    let blksz = m.blksz();
    let n = m.sb.extra_devices;
    for flatdev in [false, true] {
        for device in 0..=n.saturating_add(1).min(64) {
            let mut probes = vec![0, blksz, u64::MAX - 1];
            for s in m.devices.iter().take(8) {
                let start = u64::from(s.mapped_blkaddr) * blksz;
                let end = start + u64::from(s.blocks) * blksz;
                probes.extend([start, end.saturating_sub(1), end]);
            }
            for phys in probes {
                match map_device(&m.sb, &m.devices, flatdev, device, phys) {
                    Ok(dm) => {
                        if flatdev {
                            assert_eq!(dm.device, 0);
                        } else if device != 0 {
                            assert_eq!((dm.device, dm.physical), (device, phys));
                        } else if dm.device != 0 {
                            let s = m.devices[usize::from(dm.device) - 1];
                            assert!(s.mapped_blkaddr != 0);
                            assert!(dm.physical < u64::from(s.blocks) * blksz);
                        }
                        if device > n {
                            panic!("device {device} of {n} routed: {dm:?}");
                        }
                    }
                    Err(_) => st.errors += 1,
                }
            }
        }
    }
    // The extents of chunk-indexed files name devices: route them.
    walk(&m, st, &mut |m, inode, st| {
        if inode.datalayout != Layout::ChunkBased {
            return;
        }
        let mut off = 0;
        for _ in 0..MAX_FILE_PAGES {
            let Ok(mp) = map_checked(m, inode, off, st) else {
                return;
            };
            if mp.length == 0 {
                return;
            }
            if mp.mapped {
                let _ = map_device(&m.sb, &m.devices, false, mp.device, mp.physical);
                let _ = map_device(&m.sb, &m.devices, true, mp.device, mp.physical);
            }
            off = mp.logical + mp.length;
        }
    });
}

fn inode(data: &[u8], st: &mut Stats) {
    let Some(m) = mount(data, st) else {
        return;
    };
    walk(&m, st, &mut |m, inode, st| {
        let _ = inode.xattr_pos(&m.sb);
        let _ = inode.inline_data_pos(&m.sb);
        if inode.is_symlink() {
            // page_get_link: page 0 through read_folio, then the target up to i_size.
            match read_page(m, inode, 0, st) {
                Ok(p) => assert!(p.len() > inode.size as usize),
                Err(_) => st.errors += 1,
            }
        }
    });
    // Inodes no directory names: neighbours of the root, the packed inode.
    for nid in [
        m.sb.packed_nid,
        m.sb.root_nid + 1,
        m.sb.root_nid.wrapping_sub(1),
    ] {
        let _ = iget(&m, nid, st);
    }
}

fn dirent(data: &[u8], st: &mut Stats) {
    let Some(m) = mount(data, st) else {
        return;
    };
    walk(&m, st, &mut |m, dir, st| {
        if !dir.is_dir() {
            return;
        }
        // getdents with a small buffer: continue from where the last call stopped.
        let mut names = Vec::new();
        let mut pos = 0;
        for _ in 0..4 {
            match readdir(m, dir, pos, 7, st, &mut |name, nid, _| {
                names.push((name.to_vec(), nid))
            }) {
                Ok(p) if p > pos => pos = p,
                Ok(_) => break,
                Err(_) => {
                    st.errors += 1;
                    break;
                }
            }
        }
        // seekdir to arbitrary positions.
        for pos in [1, 11, 13, dir.size / 2, dir.size.saturating_sub(1)] {
            let _ = readdir(m, dir, pos, 3, st, &mut |_, _, _| {});
        }
        // lookup of names that exist, and of some that do not.
        names.truncate(MAX_LOOKUPS);
        let mut probes: Vec<Vec<u8>> = names.iter().map(|(n, _)| n.clone()).collect();
        probes.extend([
            b"\x01".to_vec(),
            b"zzzz".to_vec(),
            vec![b'n'; 255],
            vec![b'n'; 256],
        ]);
        if let Some((n, _)) = names.first() {
            let mut n = n.clone();
            n.push(0);
            probes.push(n);
        }
        for name in probes {
            if find(m, dir, &name, st).is_err() {
                st.errors += 1;
            }
        }
        // A directory sorted across its blocks, as mkfs.erofs writes them: lookup finds every
        // name readdir gives (entries spread over the whole directory).
        let mut all = Vec::new();
        let complete = readdir(m, dir, 0, MAX_DIRENTS, st, &mut |name, nid, _| {
            all.push((name.to_vec(), nid))
        })
        .is_ok_and(|end| end >= dir.size);
        if complete && all.windows(2).all(|w| w[0].0 < w[1].0) {
            let step = all.len().div_ceil(MAX_LOOKUPS).max(1);
            for (name, nid) in all.iter().step_by(step) {
                let r = find(m, dir, name, st);
                assert_eq!(
                    r,
                    Ok(Some(*nid)),
                    "lookup of {:?} in a sorted directory",
                    String::from_utf8_lossy(name)
                );
            }
        }
    });
}

fn xattr(data: &[u8], st: &mut Stats) {
    let Some(m) = mount(data, st) else {
        return;
    };
    walk(&m, st, &mut |m, inode, st| visit_xattrs(m, inode, st));
    // The long prefix table, entry by entry.
    for i in 0..m
        .sb
        .xattr_prefix_count
        .min(EROFS_XATTR_LONG_PREFIX_MASK + 1)
    {
        if let Ok(pf) = long_prefix(&m.src(), &m.sb, i) {
            let mut b = [0u8; EROFS_NAME_LEN];
            let _ = pf.read_infix(&m.src(), &mut b);
        }
    }
    assert!(
        long_prefix(&m.src(), &m.sb, m.sb.xattr_prefix_count).is_err()
            || m.sb.xattr_prefix_count > EROFS_XATTR_LONG_PREFIX_MASK
    );
}

fn chunk_map(data: &[u8], st: &mut Stats) {
    let Some(m) = mount(data, st) else {
        return;
    };
    walk(&m, st, &mut |m, inode, st| {
        if !(inode.is_reg() || inode.is_dir() || inode.is_symlink()) {
            return;
        }
        // read_folio of the first pages and of the last one.
        let pages = inode.size.div_ceil(PAGE_SIZE as u64);
        let last = pages.saturating_sub(1);
        for index in (0..pages.min(MAX_FILE_PAGES)).chain([last]) {
            if read_page(m, inode, index, st).is_err() {
                st.errors += 1;
                break;
            }
        }
        // map at the edges: each chunk boundary the first pages cross, the end, past the end.
        let size = inode.size;
        let mut probes = vec![
            0,
            size.saturating_sub(1),
            size,
            size.saturating_add(1),
            u64::MAX,
        ];
        if inode.datalayout == Layout::ChunkBased && inode.chunkbits < 63 {
            let c = 1u64 << inode.chunkbits;
            probes.extend([
                c - 1,
                c,
                c + 1,
                size / c * c,
                (size / c * c).saturating_sub(1),
            ]);
        }
        for off in probes {
            let _ = map_checked(m, inode, off, st);
        }
    });
}

fn zmap(data: &[u8], st: &mut Stats) {
    let Some(m) = mount_compressed(data, st) else {
        return;
    };
    let Some(cfg) = m.cfg else {
        return;
    };
    walk(&m, st, &mut |m, inode, st| {
        if !inode.datalayout.is_compressed() {
            return;
        }
        let Ok(zi) = zinode(m, &cfg, inode, st) else {
            return;
        };
        // read_folio of the first pages and of the last one.
        let size = inode.size;
        let pages = size.div_ceil(PAGE_SIZE as u64);
        let last = pages.saturating_sub(1);
        for index in (0..pages.min(MAX_FILE_PAGES)).chain([last]) {
            if zread_page(m, &cfg, inode, index, st).is_err() {
                break;
            }
        }
        // The extents from the start, as FIEMAP walks them: each starts where the last ended.
        let mut off = 0;
        for _ in 0..MAX_FILE_PAGES {
            let Ok(e) = zmap_checked(m, &cfg, &zi, off, ZMapMode::Full, st) else {
                break;
            };
            if e.length == 0 {
                break;
            }
            let next = e.logical + e.length;
            assert!(next > off);
            off = next;
        }
        // Lcluster edges, EOF and past it.
        let l = 1u64 << zi.lclusterbits.min(63);
        for off in [
            0,
            l - 1,
            l,
            l + 1,
            size.saturating_sub(1),
            size,
            size.saturating_add(1),
            u64::MAX,
        ] {
            for mode in [ZMapMode::Read, ZMapMode::Full] {
                let _ = zmap_checked(m, &cfg, &zi, off, mode, st);
            }
        }
    });
    // The packed inode, whose fragments it must not have.
    if m.sb.packed_nid != 0 {
        if let Ok(p) = Inode::read(&m.src(), &m.sb, m.sb.packed_nid) {
            if p.datalayout.is_compressed() {
                let _ = zinode(&m, &cfg, &p, st);
            }
        }
    }
}

fn lz4(data: &[u8], st: &mut Stats) {
    // An image (a seed or its mutant): its blocks as pclusters, zero padded or not, so that the
    // stable driver's mutations of real LZ4 data reach the decoder.
    let magic = EROFS_SUPER_MAGIC_V1.to_le_bytes();
    if data.len() >= 2 * PAGE_SIZE && data.get(1024..1028) == Some(&magic[..]) {
        for block in data.chunks(PAGE_SIZE).skip(1).take(16) {
            if let Ok(stream) = strip_zero_padding(block, PAGE_SIZE) {
                lz4_block(stream, 1 << 16, st);
                if stream.len() < block.len() {
                    continue;
                }
            }
            // No zero padding: the block at the start, zeros after it (partial decoding).
            lz4_block(block, 1 << 16, st);
        }
        return;
    }
    // Raw input: two bytes of output capacity, then the block.
    let (cap, block) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    lz4_block(block, cap, st);
    lz4_block(block, MAX_LZ4_OUT, st);
}

/// The LZ4 decoder on one block with an output buffer of `cap` bytes, both modes, and the extent
/// decoder on the same bytes: what each promises, and that they agree.
fn lz4_block(block: &[u8], cap: usize, st: &mut Stats) {
    let mut full = vec![0xA5u8; cap];
    let r = lz4_decompress(block, &mut full, Lz4Mode::Full);
    if let Ok(n) = r {
        assert!(n <= cap);
        assert!(
            full[n..].iter().all(|&b| b == 0xA5),
            "wrote past the result"
        );
        st.lz4_blocks += 1;
        // A block that decodes fully decodes the same partially, to any length.
        for k in [n, n / 2, n.saturating_sub(1), 1.min(n)] {
            let mut part = vec![0x5Au8; k];
            assert_eq!(lz4_decompress(block, &mut part, Lz4Mode::Partial), Ok(k));
            assert_eq!(part[..], full[..k]);
        }
        // The same block zero padded in a pcluster, as a whole extent (full decoding).
        if block.first().is_some_and(|&b| b != 0) && n > 0 && block.len() <= PAGE_SIZE {
            let sb = lz4_sb();
            let mut pcl = vec![0u8; PAGE_SIZE - block.len()];
            pcl.extend_from_slice(block);
            let e = lz4_extent(n as u64, pcl.len() as u64, Algorithm::Lz4);
            let mut out = vec![0u8; n];
            // The end-of-block rules now apply to exactly `n` bytes: it may fail.
            if decompress_extent(&sb, &e, &pcl, &mut out).is_ok() {
                assert_eq!(out[..], full[..n]);
                st.zdecoded += 1;
            }
        }
    }
    let mut part = vec![0xA5u8; cap];
    if let Ok(n) = lz4_decompress(block, &mut part, Lz4Mode::Partial) {
        assert!(n <= cap);
        assert!(
            part[n..].iter().all(|&b| b == 0xA5),
            "wrote past the result"
        );
        if let Ok(f) = r {
            assert_eq!(part[..n.min(f)], full[..n.min(f)]);
        }
    }
    // Zero padding.
    for window in [0, 1, 7, 4096] {
        if let Ok(rest) = strip_zero_padding(block, window) {
            let pad = block.len() - rest.len();
            assert!(pad < window && rest.first().is_some_and(|&b| b != 0));
            assert!(block[..pad].iter().all(|&b| b == 0));
        }
    }
    // Plain pclusters: the extent's bytes from the start, or rotated.
    let sb = lz4_sb();
    for (logical, alg) in [
        (0u64, Algorithm::Shifted),
        (cap as u64, Algorithm::Interlaced),
    ] {
        let plen = (block.len() / 4096 * 4096).max(4096) as u64;
        let mut pcl = block.to_vec();
        pcl.resize(plen as usize, 0);
        let len = (cap as u64).min(plen).max(1);
        let e = ZExtent {
            logical,
            ..lz4_extent(len, plen, alg)
        };
        let mut out = vec![0u8; len as usize];
        assert_eq!(decompress_extent(&sb, &e, &pcl, &mut out), Ok(()));
        if alg == Algorithm::Shifted {
            assert_eq!(out[..], pcl[..len as usize]);
        }
    }
}

/// A 4 KiB-block superblock with zero padding, for the `lz4` target's extents.
fn lz4_sb() -> SuperBlock {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&EROFS_SUPER_MAGIC_V1.to_le_bytes());
    b[12] = 12;
    b[80..84].copy_from_slice(&EROFS_FEATURE_INCOMPAT_ZERO_PADDING.to_le_bytes());
    match SuperBlock::parse(&b) {
        Ok(sb) => sb,
        Err(e) => panic!("test superblock: {e:?}"),
    }
}

/// A whole, fully mapped extent at 0 of `length` bytes from a pcluster of `plength` bytes.
fn lz4_extent(length: u64, plength: u64, algorithm: Algorithm) -> ZExtent {
    ZExtent {
        logical: 0,
        length,
        physical: 0,
        plength,
        algorithm,
        mapped: true,
        meta: false,
        fragment: false,
        full_mapped: true,
        partial_ref: false,
    }
}
