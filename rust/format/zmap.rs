// SPDX-License-Identifier: GPL-2.0

//! Compressed inodes (`fs/erofs/zmap.c`): the compression configuration after the superblock,
//! the per-inode map header and the logical-to-physical mapping of compressed extents.
//!
//! A compressed file is cut into logical clusters (lclusters) of `1 << lclusterbits` bytes, one
//! index per lcluster: full 8-byte indexes (`struct z_erofs_lcluster_index`,
//! [`Layout::CompressedFull`]) or compacted 2-byte and 4-byte ones
//! ([`Layout::CompressedCompact`]). A HEAD index starts an extent at `clusterofs` inside its
//! lcluster and names the physical cluster (pcluster) holding its compressed data; NONHEAD
//! indexes give the distance back to their HEAD (`delta[0]`) and forward to the next one
//! (`delta[1]`); the first NONHEAD after a HEAD may hold the pcluster's block count instead
//! (big pclusters, `CBLKCNT`). The decompressed data of an extent starts at its logical start.
//! The last extent may be stored inline after the index (ztailpacking, [`ZExtent::meta`]) or in
//! the packed inode (fragments, [`ZExtent::fragment`]).
//!
//! [`map_compressed`] is `z_erofs_map_blocks_iter`; [`decompress_extent`](super::decompress_extent)
//! decodes what it returns. Every loop over indexes is bounded: lookbacks and lookaheads stop
//! once the extent would be longer than [`Z_EROFS_PCLUSTER_MAX_DSIZE`], which C refuses anyway.

use super::error::{Error, Result};
use super::inode::{Inode, Layout};
use super::le::{self, le16, le32, le64};
use super::superblock::{
    SuperBlock, EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER, EROFS_FEATURE_INCOMPAT_COMPR_CFGS,
    EROFS_FEATURE_INCOMPAT_FRAGMENTS, EROFS_SUPER_OFFSET,
};
use super::Source;

/// Algorithm id of LZ4 (`h_algorithmtype`, bit of `available_compr_algs`).
pub(crate) const Z_EROFS_COMPRESSION_LZ4: u8 = 0;
/// Algorithm id of MicroLZMA.
pub(crate) const Z_EROFS_COMPRESSION_LZMA: u8 = 1;
/// Algorithm id of DEFLATE.
pub(crate) const Z_EROFS_COMPRESSION_DEFLATE: u8 = 2;
/// Algorithm id of Zstandard.
pub(crate) const Z_EROFS_COMPRESSION_ZSTD: u8 = 3;
/// Number of algorithm ids known to Linux 6.12.
pub(crate) const Z_EROFS_COMPRESSION_MAX: u8 = 4;
/// Bitmap of every algorithm known to Linux 6.12.
pub(crate) const Z_EROFS_ALL_COMPR_ALGS: u16 = (1 << Z_EROFS_COMPRESSION_MAX) - 1;

/// Largest pcluster (compressed size) Linux 6.12 reads; larger is `EOPNOTSUPP`.
pub(crate) const Z_EROFS_PCLUSTER_MAX_SIZE: u64 = 1024 * 1024;
/// Largest extent (decompressed size) Linux 6.12 reads; larger is `EOPNOTSUPP`.
pub(crate) const Z_EROFS_PCLUSTER_MAX_DSIZE: u64 = 12 * 1024 * 1024;

/// Size of `struct z_erofs_lz4_cfgs` (without its 2-byte length field).
pub(crate) const Z_EROFS_LZ4_CFGS_SIZE: usize = 14;
/// Size of `struct z_erofs_map_header`.
pub(crate) const Z_EROFS_MAP_HEADER_SIZE: u64 = 8;
/// Size of `struct z_erofs_lcluster_index` (full indexes).
pub(crate) const Z_EROFS_LCLUSTER_INDEX_SIZE: u64 = 8;

/// `h_advise`: compacted indexes use 2-byte packs in the middle (compact layout).
pub(crate) const Z_EROFS_ADVISE_COMPACTED_2B: u16 = 0x0001;
/// `h_advise`: HEAD1 pclusters may be bigger than one block.
pub(crate) const Z_EROFS_ADVISE_BIG_PCLUSTER_1: u16 = 0x0002;
/// `h_advise`: HEAD2 (and PLAIN) pclusters may be bigger than one block.
pub(crate) const Z_EROFS_ADVISE_BIG_PCLUSTER_2: u16 = 0x0004;
/// `h_advise`: the last pcluster is inline after the indexes (ztailpacking).
pub(crate) const Z_EROFS_ADVISE_INLINE_PCLUSTER: u16 = 0x0008;
/// `h_advise`: uncompressed pclusters are stored rotated (interlaced).
pub(crate) const Z_EROFS_ADVISE_INTERLACED_PCLUSTER: u16 = 0x0010;
/// `h_advise`: the last extent is a fragment in the packed inode.
pub(crate) const Z_EROFS_ADVISE_FRAGMENT_PCLUSTER: u16 = 0x0020;
/// Bit of `h_clusterbits` meaning the whole file is a fragment of the packed inode.
pub(crate) const Z_EROFS_FRAGMENT_INODE_BIT: u32 = 7;

/// Lcluster type: HEAD of an uncompressed pcluster.
pub(crate) const Z_EROFS_LCLUSTER_TYPE_PLAIN: u8 = 0;
/// Lcluster type: HEAD of a pcluster of the first algorithm.
pub(crate) const Z_EROFS_LCLUSTER_TYPE_HEAD1: u8 = 1;
/// Lcluster type: inside an extent.
pub(crate) const Z_EROFS_LCLUSTER_TYPE_NONHEAD: u8 = 2;
/// Lcluster type: HEAD of a pcluster of the second algorithm.
pub(crate) const Z_EROFS_LCLUSTER_TYPE_HEAD2: u8 = 3;
/// Full index `di_advise`: the pcluster is referenced partially (HEAD only).
pub(crate) const Z_EROFS_LI_PARTIAL_REF: u16 = 1 << 15;
/// NONHEAD `delta[0]` flag: the rest is the pcluster's block count (first NONHEAD only).
pub(crate) const Z_EROFS_LI_D0_CBLKCNT: u16 = 1 << 11;

/// Why the compression configuration cannot be used (see [`ComprConfig::read`]). Each variant
/// is something the kernel refuses at mount; [`ComprError::to_error`] gives the format
/// [`Error`] for the errno (`EOPNOTSUPP` for both algorithm cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ComprError {
    /// `available_compr_algs` has bits of algorithms Linux 6.12 does not know: those bits
    /// ("unidentified algorithms %x, please upgrade kernel").
    UnknownAlgorithms(u16),
    /// An algorithm Linux knows but this implementation cannot decode: its id, the first one in
    /// the bitmap (C: "algorithm %d isn't enabled on this kernel").
    UnsupportedAlgorithm(u8),
    /// The record of algorithm `.0` is refused: [`Error::Corrupted`] where C says `EINVAL`,
    /// [`Error::Unsupported`] where it says `EOPNOTSUPP`.
    Config(u8, Error),
    /// A failed read of the configuration.
    Format(Error),
}

impl ComprError {
    /// The format [`Error`] for the errno: [`Error::Unsupported`] for both algorithm cases,
    /// the inner error otherwise. (No `From` impls: they would make `?` ambiguous in callers
    /// that rely on inference.)
    pub(crate) fn to_error(self) -> Error {
        match self {
            ComprError::UnknownAlgorithms(_) | ComprError::UnsupportedAlgorithm(_) => {
                Error::Unsupported
            }
            ComprError::Config(_, e) | ComprError::Format(e) => e,
        }
    }
}

/// The filesystem's compression configuration (`z_erofs_parse_cfgs`).
///
/// Invariants (from [`ComprConfig::read_with`]): `algorithms` has only bits of algorithms the
/// caller said it decodes (it may be empty, which C mounts too: then only uncompressed
/// pclusters can be read); `1 <= lz4_max_pclusterblks <= Z_EROFS_PCLUSTER_MAX_SIZE >> blkszbits`;
/// `deflate_windowbits <= 15`; `zstd_windowlog <= Z_EROFS_ZSTD_MAX_WINDOWLOG`;
/// `lzma_dict_size` is 0 (no MicroLZMA) or within
/// `Z_EROFS_LZMA_MIN_DICT_SIZE..=Z_EROFS_LZMA_MAX_DICT_SIZE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ComprConfig {
    /// Bitmap of the algorithms extents may use (`available_compr_algs`; LZ4 only without
    /// [`EROFS_FEATURE_INCOMPAT_COMPR_CFGS`]).
    pub(crate) algorithms: u16,
    /// LZ4 sliding window in bytes as written (`lz4_max_distance`; 0 means 64 KiB). Linux 6.12
    /// does not use it; LZ4 offsets cannot exceed 65535 anyway.
    pub(crate) lz4_max_distance: u16,
    /// Largest LZ4 pcluster in blocks, as mkfs promised (1 without COMPR_CFGS). Informational:
    /// mappings are not checked against it (C sizes buffers with it; the hard limit is
    /// [`Z_EROFS_PCLUSTER_MAX_SIZE`]).
    pub(crate) lz4_max_pclusterblks: u16,
    /// DEFLATE window bits as written (`struct z_erofs_deflate_cfgs`, 0 without DEFLATE).
    /// Informational: like C, the decoder always accepts a 32 KiB window.
    pub(crate) deflate_windowbits: u8,
    /// Zstandard window log minus 10 (`struct z_erofs_zstd_cfgs`, 0 without Zstandard): frames
    /// may use a window of up to [`ComprConfig::zstd_window`] bytes.
    pub(crate) zstd_windowlog: u8,
    /// MicroLZMA dictionary size in bytes (`struct z_erofs_lzma_cfgs`, 0 without MicroLZMA):
    /// no match may reach farther back.
    pub(crate) lzma_dict_size: u32,
}

/// Size of `struct z_erofs_deflate_cfgs` (without its 2-byte length field).
pub(crate) const Z_EROFS_DEFLATE_CFGS_SIZE: usize = 6;
/// Size of `struct z_erofs_zstd_cfgs` (without its 2-byte length field).
pub(crate) const Z_EROFS_ZSTD_CFGS_SIZE: usize = 6;
/// Size of `struct z_erofs_lzma_cfgs` (without its 2-byte length field): `__le32 dict_size`,
/// `__le16 format`, 8 reserved bytes.
pub(crate) const Z_EROFS_LZMA_CFGS_SIZE: usize = 14;
/// Smallest MicroLZMA dictionary C accepts (and `xz_dec_microlzma_alloc`).
pub(crate) const Z_EROFS_LZMA_MIN_DICT_SIZE: u32 = 4096;
/// Largest MicroLZMA dictionary C accepts: `8 * Z_EROFS_PCLUSTER_MAX_SIZE`.
pub(crate) const Z_EROFS_LZMA_MAX_DICT_SIZE: u32 = 8 << 20;
/// Largest DEFLATE window bits (zlib's `MAX_WBITS`); more is `EOPNOTSUPP` in C.
pub(crate) const Z_EROFS_DEFLATE_MAX_WINDOWBITS: u8 = 15;
/// Largest Zstandard `windowlog` field: a window of `Z_EROFS_ZSTD_MAX_DICT_SIZE` (1 MiB);
/// more is `EINVAL` in C.
pub(crate) const Z_EROFS_ZSTD_MAX_WINDOWLOG: u8 = 20 - 10;

impl ComprConfig {
    /// [`ComprConfig::read_with`] for a reader that decodes LZ4 only (the format layer's own
    /// decoder, [`RustLz4`](super::RustLz4)).
    pub(crate) fn read(
        src: &impl Source,
        sb: &SuperBlock,
    ) -> core::result::Result<ComprConfig, ComprError> {
        Self::read_with(src, sb, 1 << Z_EROFS_COMPRESSION_LZ4)
    }

    /// Reads the compression configuration: with [`EROFS_FEATURE_INCOMPAT_COMPR_CFGS`], the
    /// algorithm bitmap of the superblock and the records after the superblock (for each
    /// algorithm in the bitmap, in id order: at the next 4-byte boundary a `__le16` length, 0
    /// meaning 65536, then the algorithm's config: `struct z_erofs_lz4_cfgs`,
    /// `z_erofs_deflate_cfgs`, `z_erofs_zstd_cfgs`,
    /// `z_erofs_lzma_cfgs`), else LZ4 with the superblock's `lz4_max_distance`. `supported` is
    /// the bitmap of the algorithms the caller decodes.
    ///
    /// Call it at mount for images with any compression feature or compressed inodes (it does
    /// not check whether the image has compressed inodes). Errors, in C's order:
    /// [`ComprError::UnknownAlgorithms`]; then for each algorithm of the bitmap in turn, a
    /// failed read of its record ([`Error::Io`]), [`ComprError::UnsupportedAlgorithm`] if it
    /// is not in `supported`, and [`ComprError::Config`] for a record C refuses: a short
    /// record, an LZ4 `max_pclusterblks` above 1 MiB, a Zstandard format other than 0 or a
    /// window above 1 MiB, a MicroLZMA format other than 0 or a dictionary outside 4 KiB to
    /// 8 MiB ([`Error::Corrupted`], C's `EINVAL`), DEFLATE window bits above 15
    /// ([`Error::Unsupported`], C's `EOPNOTSUPP`).
    pub(crate) fn read_with(
        src: &impl Source,
        sb: &SuperBlock,
        supported: u16,
    ) -> core::result::Result<ComprConfig, ComprError> {
        if !sb.has_incompat(EROFS_FEATURE_INCOMPAT_COMPR_CFGS) {
            return Ok(ComprConfig::lz4_only(sb.available_compr_algs));
        }
        let algorithms = sb.available_compr_algs;
        let unknown = algorithms & !Z_EROFS_ALL_COMPR_ALGS;
        if unknown != 0 {
            return Err(ComprError::UnknownAlgorithms(unknown));
        }
        let mut cfg = ComprConfig {
            algorithms,
            ..ComprConfig::lz4_only(0)
        };
        let mut pos = le::add(EROFS_SUPER_OFFSET, u64::from(sb.sb_size())).map_err(ComprError::Format)?;
        for id in 0..Z_EROFS_COMPRESSION_MAX {
            if algorithms & (1 << id) == 0 {
                continue;
            }
            let mut rec = [0u8; Z_EROFS_LZ4_CFGS_SIZE];
            let len = read_cfg_record(src, &mut pos, &mut rec).map_err(ComprError::Format)?;
            if supported & (1 << id) == 0 {
                return Err(ComprError::UnsupportedAlgorithm(id));
            }
            let bad = |e| ComprError::Config(id, e);
            match id {
                Z_EROFS_COMPRESSION_LZ4 => {
                    if len < Z_EROFS_LZ4_CFGS_SIZE {
                        return Err(bad(Error::Corrupted));
                    }
                    let blks = match le16(&rec, 2).map_err(bad)? {
                        0 => 1,
                        n if u64::from(n) > Z_EROFS_PCLUSTER_MAX_SIZE >> sb.blkszbits => {
                            return Err(bad(Error::Corrupted))
                        }
                        n => n,
                    };
                    cfg.lz4_max_distance = le16(&rec, 0).map_err(bad)?;
                    cfg.lz4_max_pclusterblks = blks;
                }
                Z_EROFS_COMPRESSION_DEFLATE => {
                    if len < Z_EROFS_DEFLATE_CFGS_SIZE {
                        return Err(bad(Error::Corrupted));
                    }
                    if rec[0] > Z_EROFS_DEFLATE_MAX_WINDOWBITS {
                        return Err(bad(Error::Unsupported));
                    }
                    cfg.deflate_windowbits = rec[0];
                }
                Z_EROFS_COMPRESSION_ZSTD => {
                    if len < Z_EROFS_ZSTD_CFGS_SIZE || rec[0] != 0 || rec[1] > Z_EROFS_ZSTD_MAX_WINDOWLOG {
                        return Err(bad(Error::Corrupted));
                    }
                    cfg.zstd_windowlog = rec[1];
                }
                Z_EROFS_COMPRESSION_LZMA => {
                    // `z_erofs_load_lzma_config`
                    if len < Z_EROFS_LZMA_CFGS_SIZE || le16(&rec, 4).map_err(bad)? != 0 {
                        return Err(bad(Error::Corrupted));
                    }
                    let dict = le32(&rec, 0).map_err(bad)?;
                    if !(Z_EROFS_LZMA_MIN_DICT_SIZE..=Z_EROFS_LZMA_MAX_DICT_SIZE).contains(&dict) {
                        return Err(bad(Error::Corrupted));
                    }
                    cfg.lzma_dict_size = dict;
                }
                _ => return Err(ComprError::UnsupportedAlgorithm(id)),
            }
        }
        Ok(cfg)
    }

    /// The configuration of an image without `COMPR_CFGS`: LZ4 alone, one-block pclusters, the
    /// superblock's `lz4_max_distance`.
    pub(crate) const fn lz4_only(lz4_max_distance: u16) -> ComprConfig {
        ComprConfig {
            algorithms: 1 << Z_EROFS_COMPRESSION_LZ4,
            lz4_max_distance,
            lz4_max_pclusterblks: 1,
            deflate_windowbits: 0,
            zstd_windowlog: 0,
            lzma_dict_size: 0,
        }
    }

    /// The largest Zstandard window a frame may use, in bytes (1 KiB to 1 MiB).
    pub(crate) fn zstd_window(&self) -> u32 {
        1u32 << (u32::from(self.zstd_windowlog.min(Z_EROFS_ZSTD_MAX_WINDOWLOG)) + 10)
    }
}

/// `erofs_read_metadata` for one configuration record: at `*pos` rounded up to 4, its `__le16`
/// length (0 meaning 65536), then that many bytes, of which the first `rec.len()` (or fewer)
/// are copied into `rec` (the rest of `rec` stays zero). Every byte of the record must be
/// readable, as in C. Moves `*pos` past the record; returns its length.
fn read_cfg_record(src: &impl Source, pos: &mut u64, rec: &mut [u8]) -> Result<usize> {
    let at = pos.checked_add(3).ok_or(Error::Corrupted)? & !3;
    let mut len = [0u8; 2];
    src.read_exact(at, &mut len)?;
    let len = match u16::from_le_bytes(len) {
        0 => 65536,
        n => usize::from(n),
    };
    let data = le::add(at, 2)?;
    let head = rec.get_mut(..len.min(rec.len())).ok_or(Error::Corrupted)?;
    src.read_exact(data, head)?;
    // The record's last byte: a record running off the image fails as in C.
    let len64 = u64::try_from(len).map_err(|_| Error::Corrupted)?;
    let mut last = [0u8; 1];
    src.read_exact(le::add(data, len64 - 1)?, &mut last)?;
    *pos = le::add(data, len64)?;
    Ok(len)
}

/// The algorithm (or copy) that turns a pcluster into its extent's data
/// (`m_algorithmformat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    /// LZ4 block ([`lz4_decompress`](super::lz4_decompress)).
    Lz4,
    /// MicroLZMA stream (decoded by the caller's [`Decoder`](super::Decoder)).
    Lzma,
    /// Raw DEFLATE stream (decoded by the caller's [`Decoder`](super::Decoder)).
    Deflate,
    /// Zstandard frame (decoded by the caller's [`Decoder`](super::Decoder)).
    Zstd,
    /// Uncompressed pcluster: the extent's bytes from the pcluster's start
    /// (`Z_EROFS_COMPRESSION_SHIFTED`).
    Shifted,
    /// Uncompressed pcluster stored rotated by the extent's offset in its block
    /// (`Z_EROFS_COMPRESSION_INTERLACED`).
    Interlaced,
}

impl Algorithm {
    /// The algorithm of id `id` (`h_algorithmtype` nibble), `None` if unknown.
    pub(crate) fn from_id(id: u8) -> Option<Algorithm> {
        match id {
            Z_EROFS_COMPRESSION_LZ4 => Some(Algorithm::Lz4),
            Z_EROFS_COMPRESSION_LZMA => Some(Algorithm::Lzma),
            Z_EROFS_COMPRESSION_DEFLATE => Some(Algorithm::Deflate),
            Z_EROFS_COMPRESSION_ZSTD => Some(Algorithm::Zstd),
            _ => None,
        }
    }

    /// Whether the pcluster holds compressed data (not a plain copy).
    pub(crate) fn is_compressed(self) -> bool {
        !matches!(self, Algorithm::Shifted | Algorithm::Interlaced)
    }
}

/// The lazily read part of a compressed inode (`z_erofs_fill_inode_lazy`): its map header and
/// where its tail extent is.
///
/// Invariants (from [`ZInode::read`]): `inode` is compressed; `algorithmtype` are known ids
/// (`< Z_EROFS_COMPRESSION_MAX`); `lclusterbits` is `blkszbits + 0..=15`; big pcluster advice
/// only with [`EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER`], and consistent for compact indexes;
/// fragment advice only with [`EROFS_FEATURE_INCOMPAT_FRAGMENTS`] and a packed inode, not on it
/// (no fragment chains); with an inline pcluster and a non-empty file, the inline pcluster lies
/// inside one block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZInode {
    /// The inode itself.
    pub(crate) inode: Inode,
    /// `h_advise` (`Z_EROFS_ADVISE_*`); just [`Z_EROFS_ADVISE_FRAGMENT_PCLUSTER`] when the
    /// whole file is a fragment.
    pub(crate) advise: u16,
    /// Algorithm ids of HEAD1 and HEAD2 lclusters.
    pub(crate) algorithmtype: [u8; 2],
    /// Log2 of the lcluster size.
    pub(crate) lclusterbits: u32,
    /// Size of the inline (ztailpacking) pcluster, 0 if none.
    pub(crate) idata_size: u16,
    /// Byte position of the inline pcluster (right after the index pack of the last lcluster;
    /// C keeps it in `z_fragmentoff`). Valid when `idata_size != 0`.
    pub(crate) idata_pos: u64,
    /// Offset of the fragment in the packed inode's data (with
    /// [`Z_EROFS_ADVISE_FRAGMENT_PCLUSTER`]).
    pub(crate) fragmentoff: u64,
    /// The lcluster of the HEAD of the tail extent (the inline pcluster or the fragment); 0
    /// when the whole file is a fragment or there is no special tail.
    pub(crate) tailextent_headlcn: u64,
}

/// One extent of a compressed file (`struct erofs_map_blocks` after
/// `z_erofs_map_blocks_iter`).
///
/// The decompressed data of `[logical, logical + length)` comes from the pcluster of
/// `plength` bytes at byte `physical` of the primary device (decoded from its start by
/// [`decompress_extent`](super::decompress_extent)); for a fragment, from the packed inode's
/// data at `physical`. `length` may reach past `i_size` on the last extent (it ends at an
/// lcluster boundary); the bytes past EOF cannot be decoded. `length == 0` (with `!mapped`)
/// means the offset was at or beyond EOF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZExtent {
    /// File offset where the extent starts (`m_la`, <= the requested offset).
    pub(crate) logical: u64,
    /// Decompressed length from `logical` (`m_llen`). With [`ZMapMode::Read`] it only reaches
    /// the end of the requested offset's lcluster unless `full_mapped`; with
    /// [`ZMapMode::Full`] it is the whole extent.
    pub(crate) length: u64,
    /// Byte position of the pcluster on the primary device (`m_pa`); for a fragment, the
    /// offset in the packed inode's data of the byte at `logical`; 0 if not mapped.
    pub(crate) physical: u64,
    /// Length of the pcluster in bytes (`m_plen`): a multiple of the block size, or the inline
    /// size for `meta`; 0 for fragments and holes.
    pub(crate) plength: u64,
    /// How the pcluster becomes data. Only meaningful for mapped extents.
    pub(crate) algorithm: Algorithm,
    /// `false` only past EOF (compressed files have no holes).
    pub(crate) mapped: bool,
    /// The pcluster is inline in the metadata (ztailpacking, `EROFS_MAP_META`): inside one
    /// block of the primary device, not block aligned.
    pub(crate) meta: bool,
    /// The data is in the packed inode (`EROFS_MAP_FRAGMENT`).
    pub(crate) fragment: bool,
    /// `length` is the whole extent (`EROFS_MAP_FULL_MAPPED`).
    pub(crate) full_mapped: bool,
    /// The pcluster holds more than this extent (`EROFS_MAP_PARTIAL_REF`): never decode it
    /// in full mode.
    pub(crate) partial_ref: bool,
}

impl ZExtent {
    /// The zero-length unmapped extent returned at and past EOF.
    fn past_eof(offset: u64) -> ZExtent {
        ZExtent {
            logical: offset,
            length: 0,
            physical: 0,
            plength: 0,
            algorithm: Algorithm::Shifted,
            mapped: false,
            meta: false,
            fragment: false,
            full_mapped: false,
            partial_ref: false,
        }
    }
}

/// How much of an extent [`map_compressed`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ZMapMode {
    /// As C's read path (flags 0): the extent up to the end of the requested lcluster, unless
    /// its end is known without reading further indexes.
    Read,
    /// As C's FIEMAP (`EROFS_GET_BLOCKS_FIEMAP`): follow the indexes to the extent's end
    /// (`z_erofs_get_extent_decompressedlen`); the result is always `full_mapped`.
    Full,
}

/// The state of one mapping (`struct z_erofs_maprecorder`): the last lcluster index loaded.
/// Like C, fields a load does not set keep their previous values (`compressedblks`,
/// `partialref`, `delta`).
#[derive(Debug, Clone, Copy, Default)]
struct Recorder {
    /// Lcluster number of the last index loaded.
    lcn: u64,
    /// Its type (`Z_EROFS_LCLUSTER_TYPE_*`, 0..=3).
    typ: u8,
    /// Type of the extent's HEAD.
    headtype: u8,
    /// HEAD: where the extent starts in the lcluster; NONHEAD: the lcluster size.
    clusterofs: u32,
    /// NONHEAD: distance back to the HEAD, and forward to the next HEAD (lookahead).
    delta: [u32; 2],
    /// HEAD: block address of the pcluster.
    pblk: u32,
    /// Block count of a big pcluster (from a CBLKCNT index), 0 if not known.
    compressedblks: u32,
    /// Byte position after the index (pack) loaded: the inline pcluster follows the last one.
    nextpackoff: u64,
    /// HEAD (full indexes): the pcluster is partially referenced.
    partialref: bool,
}

impl ZInode {
    /// Byte position right after the inode and its inline xattrs.
    fn iend(&self, sb: &SuperBlock) -> Result<u64> {
        self.inode.inline_data_pos(sb)
    }

    /// Whether HEAD1 big pclusters are allowed.
    fn big1(&self) -> bool {
        self.advise & Z_EROFS_ADVISE_BIG_PCLUSTER_1 != 0
    }

    /// Whether HEAD2/PLAIN big pclusters are allowed.
    fn big2(&self) -> bool {
        self.advise & Z_EROFS_ADVISE_BIG_PCLUSTER_2 != 0
    }

    /// Whether the tail extent is a fragment.
    fn has_fragment(&self) -> bool {
        self.advise & Z_EROFS_ADVISE_FRAGMENT_PCLUSTER != 0
    }

    /// Reads the map header of the compressed inode `inode` and, for an inline or fragment tail,
    /// finds the tail extent (`z_erofs_fill_inode_lazy`). The kernel calls it once per inode,
    /// on the first mapping.
    ///
    /// Errors: [`Error::Unsupported`] for an inode that is not compressed or an unknown
    /// algorithm id in `h_algorithmtype`; [`Error::Corrupted`] for big pcluster advice without
    /// the superblock feature, or inconsistent between HEAD1 and HEAD2 with compact indexes,
    /// fragments without [`EROFS_FEATURE_INCOMPAT_FRAGMENTS`] and a packed inode, or in the
    /// packed inode itself (C would recurse into its page cache), and whatever mapping the last
    /// byte finds wrong; [`Error::Io`] from `src`.
    pub(crate) fn read(
        src: &impl Source,
        sb: &SuperBlock,
        cfg: &ComprConfig,
        inode: &Inode,
    ) -> Result<ZInode> {
        if !inode.datalayout.is_compressed() {
            return Err(Error::Unsupported);
        }
        let pos = le::round_up(inode.inline_data_pos(sb)?, 8)?;
        let mut h = [0u8; Z_EROFS_MAP_HEADER_SIZE as usize];
        src.read_exact(pos, &mut h)?;
        // Fragments live in the packed inode (nid 0 means none), which cannot have one itself.
        let fragments = sb.has_incompat(EROFS_FEATURE_INCOMPAT_FRAGMENTS)
            && sb.packed_nid != 0
            && inode.nid != sb.packed_nid;
        let clusterbits = le::u8_at(&h, 7)?;
        let mut zi = ZInode {
            inode: *inode,
            advise: 0,
            algorithmtype: [0, 0],
            lclusterbits: u32::from(sb.blkszbits),
            idata_size: 0,
            idata_pos: 0,
            fragmentoff: 0,
            tailextent_headlcn: 0,
        };
        if u32::from(clusterbits) >> Z_EROFS_FRAGMENT_INODE_BIT != 0 {
            // The whole file is in the packed inode; the rest of the 8 bytes is the offset.
            if !fragments {
                return Err(Error::Corrupted);
            }
            zi.advise = Z_EROFS_ADVISE_FRAGMENT_PCLUSTER;
            zi.fragmentoff = le64(&h, 0)? ^ (1u64 << 63);
            return Ok(zi);
        }
        zi.advise = le16(&h, 4)?;
        zi.lclusterbits = u32::from(sb.blkszbits) + u32::from(clusterbits & 15);
        let algs = le::u8_at(&h, 6)?;
        zi.algorithmtype = [algs & 15, algs >> 4];
        if zi.has_fragment() {
            zi.fragmentoff = u64::from(le32(&h, 0)?);
        } else if zi.advise & Z_EROFS_ADVISE_INLINE_PCLUSTER != 0 {
            zi.idata_size = le16(&h, 2)?;
        }
        if zi
            .algorithmtype
            .iter()
            .any(|&a| a >= Z_EROFS_COMPRESSION_MAX)
        {
            return Err(Error::Unsupported);
        }
        if !sb.has_incompat(EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER) && (zi.big1() || zi.big2()) {
            return Err(Error::Corrupted);
        }
        if inode.datalayout == Layout::CompressedCompact && zi.big1() != zi.big2() {
            return Err(Error::Corrupted);
        }
        if zi.has_fragment() && !fragments {
            return Err(Error::Corrupted);
        }
        if (zi.idata_size != 0 || zi.has_fragment()) && inode.size != 0 {
            // EROFS_GET_BLOCKS_FINDTAIL: map the last byte, which records the tail extent.
            do_map(src, sb, cfg, &mut zi, inode.size - 1, true, ZMapMode::Read)?;
        }
        Ok(zi)
    }

    /// `z_erofs_load_full_lcluster`: loads the 8-byte index of lcluster `lcn`.
    fn load_full(
        &self,
        src: &impl Source,
        sb: &SuperBlock,
        m: &mut Recorder,
        lcn: u64,
    ) -> Result<()> {
        let start = le::add(
            le::round_up(self.iend(sb)?, 8)?,
            Z_EROFS_MAP_HEADER_SIZE + 8,
        )?;
        let pos = le::add(start, le::mul(lcn, Z_EROFS_LCLUSTER_INDEX_SIZE)?)?;
        let mut di = [0u8; Z_EROFS_LCLUSTER_INDEX_SIZE as usize];
        src.read_exact(pos, &mut di)?;
        m.lcn = lcn;
        m.nextpackoff = le::add(pos, Z_EROFS_LCLUSTER_INDEX_SIZE)?;
        let advise = le16(&di, 0)?;
        m.typ = (advise & 3) as u8;
        if m.typ == Z_EROFS_LCLUSTER_TYPE_NONHEAD {
            m.clusterofs = 1u32 << self.lclusterbits;
            let mut d0 = le16(&di, 4)?;
            if d0 & Z_EROFS_LI_D0_CBLKCNT != 0 {
                if !(self.big1() || self.big2()) {
                    return Err(Error::Corrupted);
                }
                m.compressedblks = u32::from(d0 & !Z_EROFS_LI_D0_CBLKCNT);
                d0 = 1;
            }
            m.delta = [u32::from(d0), u32::from(le16(&di, 6)?)];
        } else {
            m.partialref = advise & Z_EROFS_LI_PARTIAL_REF != 0;
            m.clusterofs = u32::from(le16(&di, 2)?);
            m.pblk = le32(&di, 4)?;
        }
        Ok(())
    }

    /// `z_erofs_load_compact_lcluster`: loads the compacted index of lcluster `lcn` (decoding
    /// its pack), with the lookahead distance `delta[1]` if asked.
    fn load_compact(
        &self,
        src: &impl Source,
        sb: &SuperBlock,
        m: &mut Recorder,
        lcn: u64,
        lookahead: bool,
    ) -> Result<()> {
        let ebase = le::add(le::round_up(self.iend(sb)?, 8)?, Z_EROFS_MAP_HEADER_SIZE)?;
        let lclusterbits = self.lclusterbits;
        let totalidx = self.inode.nblocks(sb);
        if lcn >= totalidx || lclusterbits > 14 {
            return Err(Error::Corrupted);
        }
        m.lcn = lcn;
        // 4-byte entries up to a 32-byte boundary, then 2-byte packs of 16, then 4-byte again.
        let initial_4b = ((32 - ebase % 32) / 4) & 7;
        let compacted_2b =
            if self.advise & Z_EROFS_ADVISE_COMPACTED_2B != 0 && initial_4b < totalidx {
                (totalidx - initial_4b) / 16 * 16
            } else {
                0
            };
        let mut pos = ebase;
        let mut rel = lcn;
        let mut amortizedshift = 2u32;
        if rel >= initial_4b {
            pos = le::add(pos, initial_4b * 4)?;
            rel -= initial_4b;
            if rel < compacted_2b {
                amortizedshift = 1;
            } else {
                pos = le::add(pos, le::mul(compacted_2b, 2)?)?;
                rel -= compacted_2b;
            }
        }
        pos = le::add(pos, le::shl(rel, amortizedshift)?)?;
        let vcnt: u32 = match amortizedshift {
            2 => 2,
            _ if lclusterbits <= 12 => 16,
            _ => return Err(Error::Unsupported),
        };
        let packsize = vcnt << amortizedshift; // 8 or 32
        let packstart = pos & !u64::from(packsize - 1);
        let mut buf = [0u8; 32];
        let pack = buf.get_mut(..packsize as usize).ok_or(Error::Corrupted)?;
        src.read_exact(packstart, pack)?;
        m.nextpackoff = le::add(packstart, u64::from(packsize))?;
        let pack = &buf;
        let lobits = core::cmp::max(lclusterbits, Z_EROFS_LI_D0_CBLKCNT.trailing_zeros() + 1);
        let encodebits = (packsize - 4) * 8 / vcnt;
        // `pos - packstart < packsize`, so `i < vcnt`.
        let mut i = i64::from(((pos - packstart) >> amortizedshift) as u32);
        let decode = |i: i64| -> Result<(u32, u8)> {
            let bit = u32::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(encodebits))
                .ok_or(Error::Corrupted)?;
            let v = le32(pack, (bit / 8) as usize)? >> (bit & 7);
            Ok((v & ((1u32 << lobits) - 1), ((v >> lobits) & 3) as u8))
        };
        let cblkcnt = u32::from(Z_EROFS_LI_D0_CBLKCNT);
        let big = self.big1();

        let (lo, typ) = decode(i)?;
        m.typ = typ;
        if typ == Z_EROFS_LCLUSTER_TYPE_NONHEAD {
            m.clusterofs = 1u32 << lclusterbits;
            if lookahead {
                // get_compacted_la_distance: NONHEADs to the next HEAD in this pack; the
                // last entry of a pack holds delta[1] itself.
                let mut d1 = 0u32;
                let mut j = i;
                let mut last_lo = lo;
                let mut found = false;
                while j < i64::from(vcnt) {
                    let (l, t) = decode(j)?;
                    last_lo = l;
                    if t != Z_EROFS_LCLUSTER_TYPE_NONHEAD {
                        found = true;
                        break;
                    }
                    d1 += 1;
                    j += 1;
                }
                if !found && last_lo & cblkcnt == 0 {
                    // d1 >= 1 here: entry `i` is a NONHEAD.
                    d1 = (d1 + last_lo).saturating_sub(1);
                }
                m.delta[1] = d1;
            }
            if lo & cblkcnt != 0 {
                if !big {
                    return Err(Error::Corrupted);
                }
                m.compressedblks = lo & !cblkcnt;
                m.delta[0] = 1;
                return Ok(());
            } else if i + 1 != i64::from(vcnt) {
                m.delta[0] = lo;
                return Ok(());
            }
            // The last entry of a pack stores delta[1]: derive delta[0] from the previous one.
            let (plo, ptyp) = decode(i - 1)?;
            let plo = if ptyp != Z_EROFS_LCLUSTER_TYPE_NONHEAD {
                0
            } else if plo & cblkcnt != 0 {
                1
            } else {
                plo
            };
            m.delta[0] = plo + 1;
            return Ok(());
        }
        m.clusterofs = lo;
        m.delta[0] = 0;
        // The pack stores the block address of its first pcluster: count the pclusters (or
        // their blocks) that start before entry `i` in this pack (at most 16 entries of at most
        // 2047 blocks: no overflow).
        let mut nblk: u32 = if big { 0 } else { 1 };
        while i > 0 {
            i -= 1;
            let (l, t) = decode(i)?;
            if !big {
                if t == Z_EROFS_LCLUSTER_TYPE_NONHEAD {
                    i -= i64::from(l);
                }
                if i >= 0 {
                    nblk += 1;
                }
            } else if t == Z_EROFS_LCLUSTER_TYPE_NONHEAD {
                if l & cblkcnt != 0 {
                    i -= 1;
                    nblk = nblk.saturating_add(l & !cblkcnt);
                    continue;
                }
                // A big pcluster's first NONHEAD is CBLKCNT, so a plain delta[0] is >= 2.
                if l <= 1 {
                    return Err(Error::Corrupted);
                }
                i -= i64::from(l) - 2;
            } else {
                nblk += 1;
            }
        }
        let base = le32(pack, (packsize - 4) as usize)?;
        m.pblk = base.checked_add(nblk).ok_or(Error::Corrupted)?;
        Ok(())
    }

    /// `z_erofs_load_lcluster_from_disk`.
    fn load(
        &self,
        src: &impl Source,
        sb: &SuperBlock,
        m: &mut Recorder,
        lcn: u64,
        lookahead: bool,
    ) -> Result<()> {
        match self.inode.datalayout {
            Layout::CompressedCompact => self.load_compact(src, sb, m, lcn, lookahead)?,
            Layout::CompressedFull => self.load_full(src, sb, m, lcn)?,
            _ => return Err(Error::Unsupported),
        }
        if m.typ != Z_EROFS_LCLUSTER_TYPE_NONHEAD && m.clusterofs >= 1u32 << self.lclusterbits {
            return Err(Error::Corrupted);
        }
        Ok(())
    }

    /// Most lclusters an extent can span before it is longer than
    /// [`Z_EROFS_PCLUSTER_MAX_DSIZE`] (plus one for a partial first lcluster).
    fn max_span(&self) -> u64 {
        (Z_EROFS_PCLUSTER_MAX_DSIZE >> self.lclusterbits) + 1
    }

    /// `z_erofs_extent_lookback`: walks back from `m.lcn` by `distance` (then by each
    /// NONHEAD's `delta[0]`) to the HEAD of the extent; returns the extent's logical start.
    /// Gives up with [`Error::Unsupported`] once the extent would exceed the size C accepts.
    fn lookback(
        &self,
        src: &impl Source,
        sb: &SuperBlock,
        m: &mut Recorder,
        initial_lcn: u64,
        mut distance: u64,
    ) -> Result<u64> {
        while m.lcn >= distance {
            let lcn = m.lcn - distance;
            if initial_lcn - lcn > self.max_span() {
                return Err(Error::Unsupported);
            }
            self.load(src, sb, m, lcn, false)?;
            if m.typ == Z_EROFS_LCLUSTER_TYPE_NONHEAD {
                distance = u64::from(m.delta[0]);
                if distance == 0 {
                    break;
                }
                continue;
            }
            m.headtype = m.typ;
            return Ok((lcn << self.lclusterbits) | u64::from(m.clusterofs));
        }
        Err(Error::Corrupted)
    }

    /// `z_erofs_get_extent_compressedlen`: the pcluster's size in blocks (1 unless a big
    /// pcluster's CBLKCNT says otherwise).
    fn compressed_blocks(
        &self,
        src: &impl Source,
        sb: &SuperBlock,
        m: &mut Recorder,
    ) -> Result<u32> {
        let lcn = le::add(m.lcn, 1)?;
        let past_eof = !matches!(le::shl(lcn, self.lclusterbits), Ok(p) if p < self.inode.size);
        let small = match m.headtype {
            Z_EROFS_LCLUSTER_TYPE_HEAD1 => !self.big1(),
            _ => !self.big2(),
        };
        if small || past_eof {
            m.compressedblks = 1;
        }
        if m.compressedblks != 0 {
            return Ok(m.compressedblks);
        }
        self.load(src, sb, m, lcn, false)?;
        if m.typ == Z_EROFS_LCLUSTER_TYPE_NONHEAD && m.delta[0] != 1 {
            return Err(Error::Corrupted);
        }
        if m.typ != Z_EROFS_LCLUSTER_TYPE_NONHEAD || m.compressedblks == 0 {
            m.compressedblks = 1;
        }
        Ok(m.compressedblks)
    }

    /// `z_erofs_get_extent_decompressedlen`: follows the lookahead distances from `m.lcn` to
    /// the next HEAD (or EOF); returns the extent's length from `la`.
    fn decompressed_len(
        &self,
        src: &impl Source,
        sb: &SuperBlock,
        m: &mut Recorder,
        la: u64,
    ) -> Result<u64> {
        let bits = self.lclusterbits;
        let headlcn = la >> bits;
        let mut lcn = m.lcn;
        loop {
            if !matches!(le::shl(lcn, bits), Ok(p) if p < self.inode.size) {
                return self.inode.size.checked_sub(la).ok_or(Error::Corrupted);
            }
            if lcn.saturating_sub(headlcn) > self.max_span() {
                return Err(Error::Unsupported);
            }
            self.load(src, sb, m, lcn, true)?;
            if m.typ == Z_EROFS_LCLUSTER_TYPE_NONHEAD {
                // C works around a zero delta[1] written by pre-1.0 mkfs.
                if m.delta[1] == 0 {
                    m.delta[1] = 1;
                }
            } else {
                if lcn != headlcn {
                    break;
                }
                m.delta[1] = 1;
            }
            lcn = le::add(lcn, u64::from(m.delta[1]))?;
        }
        le::add(le::shl(lcn, bits)?, u64::from(m.clusterofs))?
            .checked_sub(la)
            .ok_or(Error::Corrupted)
    }
}

/// `z_erofs_do_map_blocks`. With `findtail`, maps the last byte and records the tail extent in
/// `zi` (`EROFS_GET_BLOCKS_FINDTAIL`); otherwise `zi` is not changed.
fn do_map(
    src: &impl Source,
    sb: &SuperBlock,
    cfg: &ComprConfig,
    zi: &mut ZInode,
    offset: u64,
    findtail: bool,
    mode: ZMapMode,
) -> Result<ZExtent> {
    let bits = zi.lclusterbits;
    let size = zi.inode.size;
    let ztailpacking = zi.idata_size != 0;
    let fragment = zi.has_fragment();
    let mut m = Recorder::default();
    let initial_lcn = offset >> bits;
    let endoff = offset & ((1u64 << bits) - 1);
    zi.load(src, sb, &mut m, initial_lcn, false)?;
    if findtail && ztailpacking {
        zi.idata_pos = m.nextpackoff;
    }
    let mut ext = ZExtent::past_eof(offset);
    ext.mapped = true;
    let mut end = le::shl(le::add(m.lcn, 1)?, bits)?;
    if m.typ != Z_EROFS_LCLUSTER_TYPE_NONHEAD && endoff >= u64::from(m.clusterofs) {
        m.headtype = m.typ;
        ext.logical = (m.lcn << bits) | u64::from(m.clusterofs);
        // Inline tails may end inside their lcluster.
        if ztailpacking && end > size {
            end = size;
        }
    } else {
        let mut distance = u64::from(m.delta[0]);
        if m.typ != Z_EROFS_LCLUSTER_TYPE_NONHEAD {
            // The offset is before this HEAD's start: it belongs to the previous extent,
            // which ends here.
            if m.lcn == 0 {
                return Err(Error::Corrupted);
            }
            end = (m.lcn << bits) | u64::from(m.clusterofs);
            ext.full_mapped = true;
            distance = 1;
        }
        ext.logical = zi.lookback(src, sb, &mut m, initial_lcn, distance)?;
    }
    ext.partial_ref = m.partialref;
    ext.length = end.checked_sub(ext.logical).ok_or(Error::Corrupted)?;
    if findtail {
        zi.tailextent_headlcn = m.lcn;
        // Full indexes keep the high 32 bits of the fragment offset in the HEAD's blkaddr.
        if fragment && zi.inode.datalayout == Layout::CompressedFull {
            zi.fragmentoff |= u64::from(m.pblk) << 32;
        }
    }
    if ztailpacking && m.lcn == zi.tailextent_headlcn {
        ext.meta = true;
        ext.physical = zi.idata_pos;
        ext.plength = u64::from(zi.idata_size);
        let blksz = u64::from(sb.block_size());
        if le::add(ext.physical & (blksz - 1), ext.plength)? > blksz {
            return Err(Error::Corrupted);
        }
    } else if fragment && m.lcn == zi.tailextent_headlcn {
        // C replaces all flags here (EROFS_MAP_FRAGMENT).
        ext.fragment = true;
        ext.full_mapped = false;
        ext.partial_ref = false;
        ext.physical = zi.fragmentoff;
    } else {
        ext.physical = sb.blkpos(u64::from(m.pblk))?;
        let blocks = zi.compressed_blocks(src, sb, &mut m)?;
        ext.plength = sb.blkpos(u64::from(blocks))?;
    }
    if m.headtype == Z_EROFS_LCLUSTER_TYPE_PLAIN {
        // An uncompressed pcluster holds at least its extent. (C compares with a stale m_plen
        // for fragments; their data is not in a pcluster, so they are not checked.)
        if !ext.fragment && ext.length > ext.plength {
            return Err(Error::Corrupted);
        }
        ext.algorithm = if zi.advise & Z_EROFS_ADVISE_INTERLACED_PCLUSTER != 0 && !ext.meta {
            Algorithm::Interlaced
        } else {
            Algorithm::Shifted
        };
    } else {
        let id = if m.headtype == Z_EROFS_LCLUSTER_TYPE_HEAD2 {
            zi.algorithmtype[1]
        } else {
            zi.algorithmtype[0]
        };
        let available = 1u16.checked_shl(u32::from(id)).unwrap_or(0) & cfg.algorithms != 0;
        ext.algorithm = match Algorithm::from_id(id) {
            Some(a) if available => a,
            _ => return Err(Error::Corrupted),
        };
    }
    if mode == ZMapMode::Full {
        ext.length = zi.decompressed_len(src, sb, &mut m, ext.logical)?;
        ext.full_mapped = true;
        // Bad lookahead distances can end the extent before the offset (C's FIEMAP would
        // report it so); the extent must contain it.
        if le::add(ext.logical, ext.length)? <= offset {
            return Err(Error::Corrupted);
        }
        // C's FIEMAP does not check this again; a reader must.
        if !ext.algorithm.is_compressed() && !ext.fragment && ext.length > ext.plength {
            return Err(Error::Corrupted);
        }
    }
    Ok(ext)
}

/// Maps file offset `offset` of the compressed inode `zi` (`z_erofs_map_blocks_iter`): the
/// extent containing it, see [`ZExtent`] and [`ZMapMode`].
///
/// `offset >= i_size` yields the unmapped zero-length extent at `offset` (as
/// [`map`](super::map)). Reads index entries through `src` (a few per call in
/// [`ZMapMode::Read`]; up to the extent's lcluster count, at most about 12 MiB worth, in
/// [`ZMapMode::Full`] or when looking back).
///
/// Errors: [`Error::Corrupted`] for inconsistent indexes (a NONHEAD chain that does not lead to
/// a HEAD, a CBLKCNT without big pclusters, a `clusterofs` outside its lcluster, an extent
/// starting before lcluster 0, an uncompressed pcluster shorter than its extent, an inline
/// pcluster crossing its block, an algorithm the superblock does not list);
/// [`Error::Unsupported`] for a pcluster over 1 MiB or an extent over 12 MiB (C's
/// `EOPNOTSUPP`, here also for fragment extents and for lookbacks that would exceed it) and for
/// 2-byte compacted indexes with lclusters over 4 KiB; [`Error::Io`] from `src`.
pub(crate) fn map_compressed(
    src: &impl Source,
    sb: &SuperBlock,
    cfg: &ComprConfig,
    zi: &ZInode,
    offset: u64,
    mode: ZMapMode,
) -> Result<ZExtent> {
    let size = zi.inode.size;
    if offset >= size {
        return Ok(ZExtent::past_eof(offset));
    }
    if zi.has_fragment() && zi.tailextent_headlcn == 0 {
        // The whole file is one fragment.
        let mut ext = ZExtent::past_eof(0);
        ext.length = size;
        ext.physical = zi.fragmentoff;
        ext.mapped = true;
        ext.fragment = true;
        ext.full_mapped = mode == ZMapMode::Full;
        return Ok(ext);
    }
    let mut z = *zi;
    let ext = do_map(src, sb, cfg, &mut z, offset, false, mode)?;
    if !ext.fragment
        && (ext.plength > Z_EROFS_PCLUSTER_MAX_SIZE || ext.length > Z_EROFS_PCLUSTER_MAX_DSIZE)
    {
        return Err(Error::Unsupported);
    }
    Ok(ext)
}
