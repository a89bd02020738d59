// SPDX-License-Identifier: GPL-2.0

//! Where the on-disk fields of a (clean) seed image are, for the driver's field-aware
//! mutations: superblock, device slots, inodes, xattr headers and entries, chunk tables,
//! dirents and long prefix records, map headers and lcluster indexes of compressed files, each
//! with a kind that says which values are interesting.

use crate::format::*;
use crate::harness::{mount, mount_compressed, walk, Mount, Stats};

/// What a field holds, which decides the values a mutation tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An inode number (root, packed, dirent target).
    Nid,
    /// A block address (metadata/xattr area, file data, chunk, device mapping).
    BlkAddr,
    /// A size in bytes or blocks.
    Size,
    /// A dirent name offset.
    NameOff,
    /// A chunk index device id.
    DeviceId,
    /// A count (xattr_icount, shared count, extra devices, nlink, ...).
    Count,
    /// Format bits (i_format, chunk format, feature bits, block size bits).
    Bits,
    /// An inode mode.
    Mode,
    /// A byte offset in some unit (device table, prefix table).
    Offset,
    /// A shared xattr id.
    XattrId,
    /// An xattr entry's name length.
    NameLen,
    /// An xattr entry's value size.
    ValueSize,
    /// An xattr name index.
    NameIndex,
    /// A dirent file type.
    FileType,
}

/// One field: `width` bytes (1, 2, 4 or 8, little endian) at `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Byte position in the image.
    pub pos: usize,
    /// Width in bytes.
    pub width: u8,
    /// What it holds.
    pub kind: Kind,
}

/// The fields of a seed, plus what the mutator needs to know about the image.
#[derive(Debug, Default, Clone)]
pub struct FieldMap {
    /// Every field found.
    pub fields: Vec<Field>,
    /// Byte ranges of metadata (superblock, inodes with their xattrs and chunk tables,
    /// directory blocks, compressed files' map headers and indexes, and their first pclusters
    /// too), for blind byte mutations.
    pub meta: Vec<(usize, usize)>,
    /// Block size of the image.
    pub blksz: u64,
}

struct Collector {
    l: FieldMap,
}

impl Collector {
    fn add(&mut self, pos: u64, width: u8, kind: Kind) {
        if let Ok(pos) = usize::try_from(pos) {
            self.l.fields.push(Field { pos, width, kind });
        }
    }

    fn range(&mut self, pos: u64, len: u64) {
        if let (Ok(p), Ok(n)) = (usize::try_from(pos), usize::try_from(len)) {
            self.l.meta.push((p, n));
        }
    }
}

/// Finds the fields of `data`, which should be a clean image: as the module mounts it, else as
/// the zmap target does (compressed images). Returns an empty layout (blind mutations only) if
/// it does not mount.
pub fn field_map(data: &[u8]) -> FieldMap {
    let mut c = Collector {
        l: FieldMap {
            blksz: 4096,
            ..FieldMap::default()
        },
    };
    c.range(1024, 128);
    let mounted = mount(data, &mut Stats::default())
        .or_else(|| mount_compressed(data, &mut Stats::default()));
    let Some(m) = mounted else {
        c.range(0, data.len().min(4096) as u64);
        return c.l;
    };
    c.l.blksz = m.blksz();
    let sbf: &[(u64, u8, Kind)] = &[
        (8, 4, Kind::Bits),
        (12, 1, Kind::Bits),
        (13, 1, Kind::Count),
        (14, 2, Kind::Nid),
        (36, 4, Kind::Size),
        (40, 4, Kind::BlkAddr),
        (44, 4, Kind::BlkAddr),
        (80, 4, Kind::Bits),
        (86, 2, Kind::Count),
        (88, 2, Kind::Offset),
        (90, 1, Kind::Bits),
        (91, 1, Kind::Count),
        (92, 4, Kind::Offset),
        (96, 8, Kind::Nid),
        (104, 1, Kind::Bits),
    ];
    for &(off, w, k) in sbf {
        c.add(1024 + off, w, k);
    }
    for i in 0..m.sb.extra_devices.min(16) {
        if let Ok(pos) = m.sb.device_slot_pos(i) {
            c.add(pos + 64, 4, Kind::Size);
            c.add(pos + 68, 4, Kind::BlkAddr);
            c.range(pos, 128);
        }
    }
    if let Ok(mut pos) = long_prefix_table_pos(&m.sb) {
        for _ in 0..m.sb.xattr_prefix_count {
            let Ok((_, next)) = LongPrefix::read_at(&m.src(), pos) else {
                break;
            };
            let at = pos.next_multiple_of(4);
            c.add(at, 2, Kind::Size);
            c.add(at + 2, 1, Kind::NameIndex);
            c.range(at, next - at);
            pos = next;
        }
    }
    // Compressed inodes are only visited by the compressed mount.
    let zm = mount_compressed(data, &mut Stats::default());
    walk(
        zm.as_ref().unwrap_or(&m),
        &mut Stats::default(),
        &mut |m, inode, _| {
            inode_fields(&mut c, m, inode);
        },
    );
    c.l
}

/// The map header and lcluster indexes of a compressed inode, and its first pclusters.
fn compressed_fields(c: &mut Collector, m: &Mount, inode: &Inode) {
    let sb = &m.sb;
    let Some(cfg) = m.cfg else {
        return;
    };
    let Ok(h) = inode.inline_data_pos(sb).map(|p| p.next_multiple_of(8)) else {
        return;
    };
    c.add(h, 4, Kind::Size); // h_fragmentoff, or h_idata_size in the high half
    c.add(h + 2, 2, Kind::Size);
    c.add(h + 4, 2, Kind::Bits); // h_advise
    c.add(h + 6, 1, Kind::Bits); // h_algorithmtype
    c.add(h + 7, 1, Kind::Bits); // h_clusterbits
    let nidx = inode.size.div_ceil(m.blksz()).min(256);
    if inode.datalayout == Layout::CompressedFull {
        let start = h + 16;
        c.range(h, 16 + 8 * nidx);
        for k in 0..nidx.min(64) {
            let e = start + 8 * k;
            c.add(e, 2, Kind::Bits);
            c.add(e + 2, 2, Kind::Offset);
            c.add(e + 4, 4, Kind::BlkAddr);
            c.add(e + 4, 2, Kind::Count);
            c.add(e + 6, 2, Kind::Count);
        }
    } else {
        // Packed 4B/2B entries: bytes only (plus the ztailpacking data after them).
        c.range(h, 8 + 4 * nidx + 32);
    }
    let Ok(zi) = ZInode::read(&m.src(), sb, &cfg, inode) else {
        return;
    };
    if zi.idata_size != 0 {
        c.range(zi.idata_pos, u64::from(zi.idata_size));
    }
    let mut off = 0;
    for _ in 0..4 {
        let Ok(e) = map_compressed(&m.src(), sb, &cfg, &zi, off, ZMapMode::Full) else {
            break;
        };
        if e.length == 0 {
            break;
        }
        if !e.fragment && !e.meta {
            c.range(e.physical, e.plength.min(4096));
        }
        off = e.logical + e.length;
    }
}

fn inode_fields(c: &mut Collector, m: &Mount, inode: &Inode) {
    let sb = &m.sb;
    let Ok(pos) = inode.pos(sb) else {
        return;
    };
    c.range(pos, u64::from(inode.inode_isize + inode.xattr_isize));
    c.add(pos, 2, Kind::Bits);
    c.add(pos + 2, 2, Kind::Count);
    c.add(pos + 4, 2, Kind::Mode);
    if inode.extended {
        c.add(pos + 8, 8, Kind::Size);
        c.add(pos + 44, 4, Kind::Count);
    } else {
        c.add(pos + 6, 2, Kind::Count);
        c.add(pos + 8, 4, Kind::Size);
    }
    if inode.datalayout == Layout::ChunkBased {
        c.add(pos + 16, 2, Kind::Bits);
    } else if inode.datalayout.is_compressed() {
        compressed_fields(c, m, inode);
    } else {
        c.add(pos + 16, 4, Kind::BlkAddr);
    }
    // Xattrs.
    if let Ok(Some(ix)) = InodeXattrs::read(&m.src(), sb, inode) {
        let h = ix.shared_pos - 12;
        c.add(h, 4, Kind::Bits);
        c.add(h + 4, 1, Kind::Count);
        for i in 0..u64::from(ix.shared_count) {
            c.add(ix.shared_pos + 4 * i, 4, Kind::XattrId);
            if let Ok(id) = ix.shared_id(&m.src(), i as u8) {
                if let Ok(e) = shared_entry(&m.src(), sb, id) {
                    entry_fields(c, &e);
                }
            }
        }
        for e in ix.inline_entries(&m.src()).take(64).flatten() {
            entry_fields(c, &e);
        }
    }
    // Chunk table.
    if inode.datalayout == Layout::ChunkBased && inode.chunkbits < 63 {
        let indexes = inode.chunk_format & EROFS_CHUNK_FORMAT_INDEXES != 0;
        let unit = if indexes { 8 } else { 4 };
        let n = inode.size.div_ceil(1 << inode.chunkbits).min(64);
        if let Ok(table) = inode.inline_data_pos(sb) {
            let table = table.next_multiple_of(unit);
            c.range(table, unit * n);
            for k in 0..n {
                let e = table + k * unit;
                if indexes {
                    c.add(e + 2, 2, Kind::DeviceId);
                    c.add(e + 4, 4, Kind::BlkAddr);
                } else {
                    c.add(e, 4, Kind::BlkAddr);
                }
            }
        }
    }
    // Directory blocks.
    if inode.is_dir() {
        let blksz = m.blksz();
        for blk in 0..inode.size.div_ceil(blksz).min(16) {
            let start = blk * blksz;
            let Ok(mp) = map(&m.src(), sb, inode, start) else {
                break;
            };
            if !mp.mapped || mp.device != 0 {
                continue;
            }
            let phys = mp.physical + (start - mp.logical);
            let len = (inode.size - start).min(blksz);
            c.range(phys, len);
            let Some(block) = m
                .img
                .get(phys as usize..)
                .and_then(|b| b.get(..len as usize))
            else {
                continue;
            };
            let Ok(db) = DirBlock::new(block) else {
                continue;
            };
            for i in 0..db.len() as u64 {
                let d = phys + i * EROFS_DIRENT_SIZE as u64;
                c.add(d, 8, Kind::Nid);
                c.add(d + 8, 2, Kind::NameOff);
                c.add(d + 10, 1, Kind::FileType);
            }
        }
    }
}

fn entry_fields(c: &mut Collector, e: &XattrEntry) {
    c.add(e.pos, 1, Kind::NameLen);
    c.add(e.pos + 1, 1, Kind::NameIndex);
    c.add(e.pos + 2, 2, Kind::ValueSize);
    c.range(e.pos, e.size());
}
