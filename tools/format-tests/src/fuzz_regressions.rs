// SPDX-License-Identifier: GPL-2.0

//! Regression tests of the fuzzing (tools/fuzz, Documentation/testing.md "Fuzzing"): the seed
//! corpus reaches every parser, and every input that once crashed a target (checked in under
//! `fuzz-regressions/`) now runs through all targets.

use crate::format::*;
use crate::harness::{Stats, Target, TARGETS};
use std::fs;
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn here() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every target on every seed: no panic, and together the seeds reach every parser, so the
/// fuzzers start from inputs that get deep.
#[test]
fn fuzz_corpus_reaches_every_parser() {
    let seeds = files(&here().join("../fuzz/corpus"));
    assert!(seeds.len() >= 8, "seed corpus missing");
    let mut total = Stats::default();
    for p in &seeds {
        let data = fs::read(p).expect("read seed");
        assert!(
            data.len() < 128 << 10,
            "{}: seeds must stay small",
            p.display()
        );
        // The module's mount refuses the compression features of some compressed seeds;
        // the zmap target mounts every seed; the lz4 target takes raw input, not an image.
        let sb = SuperBlock::parse(&data[1024..1152]).expect("seed superblock");
        for t in TARGETS {
            let st = t.run(&data);
            let mounts = match t {
                Target::Lz4 => 0,
                Target::Zmap => 1,
                _ => u64::from(sb.unsupported_incompat() == 0),
            };
            assert!(t.takes_image() || t == Target::Lz4);
            assert_eq!(st.mounts, mounts, "{}: {} mounts", p.display(), t.name());
            if t == Target::Zmap {
                // Clean images read without a single format error.
                assert_eq!(st.errors, 0, "{}: zmap: {st:?}", p.display());
            }
            total.add(&st);
        }
    }
    println!("{total:?}");
    assert!(total.inodes > 0 && total.dir_blocks > 0 && total.dirents > 0);
    assert!(total.xattrs > 0 && total.shared_xattrs > 0 && total.long_prefixes > 0);
    assert!(total.maps > 0 && total.chunk_maps > 0 && total.tail_maps > 0);
    assert!(total.devices > 0);
    assert!(total.zinodes > 0 && total.zmaps > 0 && total.zdecoded > 0);
    assert!(total.zmeta > 0 && total.zbig > 0);
}

/// Inputs that crashed a target once, named `<target>-<what>.img`: all targets must now run
/// through them (a panic fails the test).
#[test]
fn fuzz_regressions_do_not_crash() {
    let inputs = files(&here().join("fuzz-regressions"));
    for p in inputs
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "img"))
    {
        let data = fs::read(p).expect("read regression input");
        for t in TARGETS {
            println!("{}: {}", p.display(), t.name());
            t.run(&data);
        }
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let target = name.split('-').next().unwrap_or_default();
        assert!(
            Target::from_name(target).is_some(),
            "{name}: regression inputs are named <target>-<what>.img"
        );
    }
}

/// With two extra devices the device id mask is 3, so a chunk index naming device 3 passes the
/// mask and only the bounds check refuses it (what the `devices2` seed is for: with the layouts
/// mkfs.erofs 1.5 writes, 0 or 1 extra device, the mask alone keeps ids in range).
#[test]
fn chunk_device_id_past_the_device_table() {
    let data = fs::read(here().join("../fuzz/corpus/devices2.img")).expect("read seed");
    let m = crate::harness::mount(&data, &mut Stats::default()).expect("devices2 mounts");
    assert_eq!((m.sb.extra_devices, m.sb.device_id_mask()), (2, 3));
    // The chunk on device 2.
    let mut found = None;
    crate::harness::walk(&m, &mut Stats::default(), &mut |m, inode, _| {
        if inode.datalayout != Layout::ChunkBased {
            return;
        }
        let chunk = 1u64 << inode.chunkbits;
        if let Ok(mp) = map(&m.src(), &m.sb, inode, chunk) {
            if mp.device == 2 {
                found = Some((*inode, chunk));
            }
        }
    });
    let (inode, chunk) = found.expect("a chunk on device 2");
    let table = inode
        .inline_data_pos(&m.sb)
        .expect("pos")
        .next_multiple_of(8);
    let id_pos = (table + EROFS_CHUNK_INDEX_SIZE + 2) as usize;
    assert_eq!(&data[id_pos..id_pos + 2], &[2, 0]);
    for (id, want) in [
        (3u16, Err(Error::Corrupted)),
        (7, Err(Error::Corrupted)),
        (1, Ok(1)),
    ] {
        let mut d = data.clone();
        d[id_pos..id_pos + 2].copy_from_slice(&id.to_le_bytes());
        let m2 = crate::harness::mount(&d, &mut Stats::default()).expect("still mounts");
        let got = map(&m2.src(), &m2.sb, &inode, chunk).map(|mp| mp.device);
        assert_eq!(got, want, "device id {id}");
        for t in TARGETS {
            t.run(&d);
        }
    }
}

/// `zmap-empty-algorithm-bitmap.img`: COMPR_CFGS with an empty algorithm bitmap. C mounts it
/// (no configuration record is read); so does `ComprConfig::read`, and the harness had assumed
/// LZ4 was always listed. Compressed extents of such an image are corrupted.
#[test]
fn zmap_empty_algorithm_bitmap() {
    let data = fs::read(here().join("fuzz-regressions/zmap-empty-algorithm-bitmap.img"))
        .expect("regression input");
    let sb = SuperBlock::parse(&data[1024..1152]).expect("superblock");
    assert!(sb.has_incompat(EROFS_FEATURE_INCOMPAT_COMPR_CFGS));
    assert_eq!(sb.available_compr_algs, 0);
    let m = crate::harness::mount_compressed(&data, &mut Stats::default()).expect("mounts");
    assert_eq!(m.cfg.expect("compressed mount").algorithms, 0);
    // The same on a seed with LZ4 extents: those are refused, plain ones still read.
    let mut data = fs::read(here().join("../fuzz/corpus/lz4hc-ztail-big.img")).expect("seed");
    data[1024 + 84..1024 + 86].fill(0);
    let m = crate::harness::mount_compressed(&data, &mut Stats::default()).expect("mounts");
    let cfg = m.cfg.expect("compressed mount");
    assert_eq!(cfg.algorithms, 0);
    let (mut refused, mut plain) = (0, 0);
    crate::harness::walk(&m, &mut Stats::default(), &mut |m, inode, _| {
        let Ok(zi) = ZInode::read(&m.src(), &m.sb, &cfg, inode) else {
            return;
        };
        for off in (0..inode.size).step_by(4096) {
            match map_compressed(&m.src(), &m.sb, &cfg, &zi, off, ZMapMode::Read) {
                Ok(e) => {
                    assert!(!e.algorithm.is_compressed(), "{e:?}");
                    plain += 1;
                }
                Err(e) => {
                    assert_eq!(e, Error::Corrupted);
                    refused += 1;
                }
            }
        }
    });
    assert!(refused > 0, "{plain} plain");
}

/// `zmap-fiemap-extent-before-offset.img`: bad lookahead distances (delta[1]) ended a
/// `ZMapMode::Full` extent before the offset asked for. Now such a mapping is corrupted.
#[test]
fn zmap_full_extent_contains_offset() {
    let data = fs::read(here().join("fuzz-regressions/zmap-fiemap-extent-before-offset.img"))
        .expect("regression input");
    let m = crate::harness::mount_compressed(&data, &mut Stats::default()).expect("mounts");
    let cfg = m.cfg.expect("compressed mount");
    let mut corrupted = 0;
    crate::harness::walk(&m, &mut Stats::default(), &mut |m, inode, _| {
        let Ok(zi) = ZInode::read(&m.src(), &m.sb, &cfg, inode) else {
            return;
        };
        for off in (0..inode.size).step_by(4096) {
            match map_compressed(&m.src(), &m.sb, &cfg, &zi, off, ZMapMode::Full) {
                Ok(e) => assert!(e.logical <= off && off - e.logical < e.length, "{e:?}"),
                Err(Error::Corrupted) => corrupted += 1,
                Err(_) => {}
            }
        }
    });
    assert!(corrupted > 0);
}
