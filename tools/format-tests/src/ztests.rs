// SPDX-License-Identifier: GPL-2.0

//! Tests of compressed files: the LZ4 block decoder (`rust/format/lz4.rs`) on its own, then the
//! compressed mapping (`rust/format/zmap.rs`) and the extent decoder on real `mkfs.erofs` images
//! (lz4 and lz4hc; compact 2B/4B and full indexes; big pclusters; ztailpacking; legacy images
//! without zero padding), on synthetic inodes for what mkfs.erofs 1.5 cannot write (fragments,
//! interlaced pclusters, hostile index chains), and on corrupted images.

use crate::format::*;
use crate::tests::{have, mkfs, mkfs_available, prng_bytes, TempDir, VecSource};
use std::cell::Cell;
use std::fs;
use std::path::Path;
use std::process::Command;

// ---------------------------------------------------------------------------------------------
// LZ4 helpers: a small compressor and a naive reference decoder
// ---------------------------------------------------------------------------------------------

/// Appends an LZ4 length continuation (`rest` after the nibble's 15).
fn push_len(out: &mut Vec<u8>, mut rest: usize) {
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

/// Appends one sequence: literals, then an optional match `(offset, length)`.
fn emit(out: &mut Vec<u8>, lits: &[u8], m: Option<(usize, usize)>) {
    let ll = lits.len();
    let ml = m.map_or(0, |(_, l)| l - 4);
    let token = ((ll.min(15) as u8) << 4) | if m.is_some() { ml.min(15) as u8 } else { 0 };
    out.push(token);
    if ll >= 15 {
        push_len(out, ll - 15);
    }
    out.extend_from_slice(lits);
    if let Some((off, _)) = m {
        out.extend_from_slice(&(off as u16).to_le_bytes());
        if ml >= 15 {
            push_len(out, ml - 15);
        }
    }
}

/// A greedy LZ4 block compressor producing valid blocks (the last 5 bytes are literals, the
/// last match starts at least 12 bytes before the end), with overlapping matches.
fn lz4_compress(input: &[u8]) -> Vec<u8> {
    let n = input.len();
    let mut out = Vec::new();
    let mut table = vec![usize::MAX; 1 << 12];
    let (mut anchor, mut i) = (0, 0);
    let end_limit = n.saturating_sub(5);
    while i + 12 < n {
        let seq = u32::from_le_bytes(input[i..i + 4].try_into().unwrap());
        let h = (seq.wrapping_mul(2_654_435_761) >> 20) as usize;
        let cand = table[h];
        table[h] = i;
        if cand != usize::MAX && i - cand <= 65535 && input[cand..cand + 4] == input[i..i + 4] {
            let mut len = 4;
            while i + len < end_limit && input[cand + len] == input[i + len] {
                len += 1;
            }
            emit(&mut out, &input[anchor..i], Some((i - cand, len)));
            i += len;
            anchor = i;
        } else {
            i += 1;
        }
    }
    emit(&mut out, &input[anchor..], None);
    out
}

/// The LZ4 block format read naively, byte by byte; `None` if malformed (no end-of-block rules).
fn naive_decode(src: &[u8]) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    let len = |i: &mut usize, mut l: usize| -> Option<usize> {
        loop {
            let b = *src.get(*i)?;
            *i += 1;
            l += b as usize;
            if b != 255 {
                return Some(l);
            }
        }
    };
    loop {
        let token = *src.get(i)?;
        i += 1;
        let mut ll = (token >> 4) as usize;
        if ll == 15 {
            ll = len(&mut i, ll)?;
        }
        out.extend_from_slice(src.get(i..i + ll)?);
        i += ll;
        if i == src.len() {
            return Some(out);
        }
        let off = u16::from_le_bytes([*src.get(i)?, *src.get(i + 1)?]) as usize;
        i += 2;
        let mut ml = (token & 15) as usize;
        if ml == 15 {
            ml = len(&mut i, ml)?;
        }
        if off == 0 || off > out.len() {
            return None;
        }
        for _ in 0..ml + 4 {
            out.push(out[out.len() - off]);
        }
    }
}

/// Text-like compressible bytes: words of a small vocabulary, spaces and newlines.
fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "erofs",
        "the",
        "cluster",
        "of",
        "compressed",
        "data",
        "and",
        "inode",
        "block",
        "index",
        "page",
        "cache",
        "read",
        "lz4",
        "extent",
        "tail",
    ];
    let r = prng_bytes(seed, len);
    let mut out = Vec::with_capacity(len + 16);
    let mut k = 0;
    while out.len() < len {
        let w = WORDS[(r[k % len] & 15) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(if r[(k + 1) % len].is_multiple_of(11) {
            b'\n'
        } else {
            b' '
        });
        k += 2;
    }
    out.truncate(len);
    out
}

fn lz4(src: &[u8], cap: usize, mode: Lz4Mode) -> Result<Vec<u8>> {
    let mut dst = vec![0xAAu8; cap];
    let n = lz4_decompress(src, &mut dst, mode)?;
    assert!(n <= cap);
    dst.truncate(n);
    Ok(dst)
}

// ---------------------------------------------------------------------------------------------
// LZ4 decoder unit tests
// ---------------------------------------------------------------------------------------------

#[test]
fn lz4_literals_only() {
    let block = [0x50, b'h', b'e', b'l', b'l', b'o'];
    assert_eq!(lz4(&block, 5, Lz4Mode::Full).unwrap(), b"hello");
    // A larger capacity: still 5 bytes (callers compare the size).
    assert_eq!(lz4(&block, 100, Lz4Mode::Full).unwrap(), b"hello");
    // Too small: full mode fails, partial mode stops.
    assert_eq!(lz4(&block, 4, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&block, 3, Lz4Mode::Partial).unwrap(), b"hel");
    // Long literal runs (15 + 255 + 255 + 30 = 555 bytes).
    let data = prng_bytes(1, 555);
    let mut b = vec![0xF0];
    push_len(&mut b, 555 - 15);
    b.extend_from_slice(&data);
    assert_eq!(b[1..3], [255, 255]);
    assert_eq!(lz4(&b, 555, Lz4Mode::Full).unwrap(), data);
    assert_eq!(lz4(&b, 300, Lz4Mode::Partial).unwrap(), data[..300]);
    // The empty block.
    assert_eq!(lz4(&[0], 0, Lz4Mode::Full).unwrap(), b"");
    assert_eq!(lz4(&[0], 10, Lz4Mode::Full).unwrap(), b"");
    assert_eq!(lz4(&[0x10, 1], 0, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&[0x10, 1], 0, Lz4Mode::Partial).unwrap(), b"");
    assert_eq!(lz4(&[], 10, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&[], 10, Lz4Mode::Partial), Err(Error::Corrupted));
}

#[test]
fn lz4_overlapping_matches() {
    for off in 1..=8usize {
        for mlen in [4usize, 5, 7, 8, 9, 15, 18, 19, 64, 300, 4096] {
            let lits: Vec<u8> = (1..=off as u8).collect();
            let last = b"TAIL!";
            let mut b = Vec::new();
            emit(&mut b, &lits, Some((off, mlen)));
            emit(&mut b, last, None);
            let mut want = lits.clone();
            for k in 0..mlen {
                want.push(lits[k % off]);
            }
            want.extend_from_slice(last);
            assert_eq!(naive_decode(&b).unwrap(), want);
            // Full mode checks LZ4's end-of-block rules against the buffer: small blocks like
            // these only pass with room to spare.
            assert_eq!(
                lz4(&b, want.len() + 32, Lz4Mode::Full).unwrap(),
                want,
                "off {off} len {mlen}"
            );
            for cut in [1, off, off + 1, off + mlen - 1, off + mlen, want.len()] {
                assert_eq!(
                    lz4(&b, cut, Lz4Mode::Partial).unwrap(),
                    want[..cut],
                    "partial {cut}: off {off} len {mlen}"
                );
            }
        }
    }
}

#[test]
fn lz4_match_at_the_end() {
    // A match ending exactly at the end of the output buffer, more input after it.
    let mut b = Vec::new();
    emit(&mut b, b"abcdefgh", Some((8, 8)));
    emit(&mut b, b"12345", None);
    let want = b"abcdefghabcdefgh";
    assert_eq!(lz4(&b, 16, Lz4Mode::Partial).unwrap(), want);
    assert_eq!(lz4(&b, 12, Lz4Mode::Partial).unwrap(), want[..12]);
    assert_eq!(
        lz4(&b, 21, Lz4Mode::Partial).unwrap(),
        b"abcdefghabcdefgh12345"
    );
    // A block whose last sequence is a match (no final literals): Linux's partial decoder stops
    // after the literals when two bytes or less follow them, so only they come out (an erofs
    // caller then sees a short result); full decoding refuses it.
    let mut b = Vec::new();
    emit(&mut b, b"abcdefgh", Some((8, 8)));
    assert_eq!(lz4(&b, 16, Lz4Mode::Partial).unwrap(), want[..8]);
    assert_eq!(lz4(&b, 16, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&b, 64, Lz4Mode::Full), Err(Error::Corrupted));
    // With a longer match length (one extra byte after the offset) it is decoded.
    let mut b = Vec::new();
    emit(&mut b, b"abcdefgh", Some((8, 20)));
    assert_eq!(b.len(), 12);
    assert_eq!(lz4(&b, 28, Lz4Mode::Partial), Err(Error::Corrupted));
    // A match ending 4 bytes before the end of the output: refused in full mode.
    let mut b = Vec::new();
    emit(&mut b, b"abcdefghijkl", Some((12, 12)));
    emit(&mut b, b"wxyz", None);
    assert_eq!(naive_decode(&b).unwrap().len(), 28);
    assert_eq!(lz4(&b, 28, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&b, 28, Lz4Mode::Partial).unwrap().len(), 28);
    // Literals followed by a match that start less than 12 bytes before the end: refused in
    // full mode (LZ4's MFLIMIT rule), fine when partial.
    let mut b = Vec::new();
    emit(&mut b, b"abcd", Some((4, 4)));
    emit(&mut b, b"12345", None);
    assert_eq!(lz4(&b, 13, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&b, 13, Lz4Mode::Partial).unwrap(), b"abcdabcd12345");
    // With room to spare the same block is fine in full mode (the rule is about the buffer).
    assert_eq!(lz4(&b, 32, Lz4Mode::Full).unwrap(), b"abcdabcd12345");
    // A valid block of the minimum shape (match 12 bytes before the end).
    let mut b = Vec::new();
    emit(&mut b, b"ab", Some((2, 10)));
    emit(&mut b, b"12345", None);
    assert_eq!(lz4(&b, 17, Lz4Mode::Full).unwrap(), b"abababababab12345");
}

#[test]
fn lz4_malformed() {
    // Offset 0.
    let mut z = vec![0x84];
    z.extend_from_slice(b"abcdefgh");
    z.extend_from_slice(&[0, 0]);
    emit(&mut z, b"12345", None);
    for mode in [Lz4Mode::Full, Lz4Mode::Partial] {
        assert_eq!(lz4(&z, 100, mode), Err(Error::Corrupted), "offset 0");
    }
    // Offset before the start of the output (9 > 8 bytes written), and far before.
    for off in [9usize, 65535] {
        let mut b = Vec::new();
        emit(&mut b, b"abcdefgh", Some((off, 4)));
        emit(&mut b, b"12345", None);
        for mode in [Lz4Mode::Full, Lz4Mode::Partial] {
            assert_eq!(lz4(&b, 100, mode), Err(Error::Corrupted), "offset {off}");
        }
    }
    // A first sequence that is a match (nothing to copy from).
    let b = [0x00, 1, 0, 0x50, 1, 2, 3, 4, 5];
    assert_eq!(lz4(&b, 100, Lz4Mode::Full), Err(Error::Corrupted));
    // Literal length past the input.
    assert_eq!(
        lz4(&[0x50, 1, 2], 100, Lz4Mode::Full),
        Err(Error::Corrupted)
    );
    assert_eq!(
        lz4(&[0x50, 1, 2], 100, Lz4Mode::Partial),
        Err(Error::Corrupted)
    );
    // Length bytes running off the end: 255s forever.
    let mut b = vec![0xF0];
    b.extend(std::iter::repeat_n(255, 1000));
    for mode in [Lz4Mode::Full, Lz4Mode::Partial] {
        assert_eq!(lz4(&b, 1 << 20, mode), Err(Error::Corrupted));
    }
    // Match length continuation ending the input.
    let mut b = Vec::new();
    emit(&mut b, b"abcdefgh", Some((8, 19)));
    b.truncate(b.len() - 1);
    b.push(255);
    assert_eq!(lz4(&b, 100, Lz4Mode::Full), Err(Error::Corrupted));
    // Output overflow in full mode: the match does not fit.
    let mut b = Vec::new();
    emit(&mut b, b"abcdefgh", Some((8, 100)));
    emit(&mut b, b"12345", None);
    assert_eq!(lz4(&b, 50, Lz4Mode::Full), Err(Error::Corrupted));
    assert_eq!(lz4(&b, 50, Lz4Mode::Partial).unwrap().len(), 50);
    // Missing offset after non-final literals in full mode (input ends after 1 byte).
    assert_eq!(
        lz4(&[0x14, b'a', 1], 100, Lz4Mode::Full),
        Err(Error::Corrupted)
    );
}

#[test]
fn lz4_truncated_input() {
    let data = text_bytes(7, 20000);
    let c = lz4_compress(&data);
    assert!(
        c.len() < data.len() / 2,
        "test compressor too weak: {}",
        c.len()
    );
    assert_eq!(naive_decode(&c).unwrap(), data);
    assert_eq!(lz4(&c, data.len(), Lz4Mode::Full).unwrap(), data);
    for cut in (0..c.len()).step_by(7).chain(c.len() - 20..c.len()) {
        let t = &c[..cut];
        for mode in [Lz4Mode::Full, Lz4Mode::Partial] {
            match lz4(t, data.len(), mode) {
                Ok(out) => {
                    // Whatever decodes is a prefix of the data, and never all of it in full mode.
                    assert_eq!(out, data[..out.len()]);
                    assert!(mode == Lz4Mode::Partial || out.len() < data.len());
                }
                Err(e) => assert_eq!(e, Error::Corrupted),
            }
        }
    }
}

#[test]
fn lz4_partial_decode_every_prefix() {
    let mut data = text_bytes(3, 3000);
    data.extend_from_slice(&prng_bytes(3, 700));
    data.extend(std::iter::repeat_n(0u8, 2000));
    data.extend_from_slice(&text_bytes(4, 1500));
    let c = lz4_compress(&data);
    for k in 0..=data.len() {
        assert_eq!(
            lz4(&c, k, Lz4Mode::Partial).unwrap(),
            data[..k],
            "prefix {k}"
        );
    }
    // Bytes after the block are ignored by partial decoding (erofs without zero padding).
    let mut padded = c.clone();
    padded.extend_from_slice(&[0u8; 100]);
    assert_eq!(lz4(&padded, data.len(), Lz4Mode::Partial).unwrap(), data);
    assert_eq!(
        lz4(&padded, data.len(), Lz4Mode::Full),
        Err(Error::Corrupted)
    );
}

#[test]
fn lz4_round_trips_and_mutations() {
    let mut seed = 11u64;
    for len in [
        0usize, 1, 5, 12, 13, 17, 100, 4095, 4096, 4097, 65536, 70000,
    ] {
        for kind in 0..4 {
            seed += 1;
            let data = match kind {
                0 => prng_bytes(seed, len),
                1 => text_bytes(seed, len),
                2 => vec![b'z'; len],
                _ => (0..len).map(|i| (i % 7) as u8).collect(),
            };
            let c = lz4_compress(&data);
            assert_eq!(naive_decode(&c).unwrap(), data);
            assert_eq!(
                lz4(&c, len, Lz4Mode::Full).unwrap(),
                data,
                "len {len} kind {kind}"
            );
            assert_eq!(lz4(&c, len, Lz4Mode::Partial).unwrap(), data);
            // Mutated blocks: never a panic; whatever is produced within the buffer.
            let r = prng_bytes(seed, 64);
            for k in 0..16 {
                if c.is_empty() {
                    break;
                }
                let mut m = c.clone();
                let p = (usize::from(r[2 * k]) * 257 + usize::from(r[2 * k + 1])) % m.len();
                m[p] ^= 1 << (k % 8);
                for cap in [0, len / 2, len, len + 64] {
                    for mode in [Lz4Mode::Full, Lz4Mode::Partial] {
                        if let Ok(out) = lz4(&m, cap, mode) {
                            assert!(out.len() <= cap);
                            if let Some(naive) = naive_decode(&m) {
                                if mode == Lz4Mode::Full {
                                    assert_eq!(out, naive);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    // Random garbage.
    for s in 0..300 {
        let g = prng_bytes(1000 + s, (s as usize * 13) % 300 + 1);
        for mode in [Lz4Mode::Full, Lz4Mode::Partial] {
            let _ = lz4(&g, 4096, mode);
        }
    }
}

#[test]
fn zero_padding() {
    assert_eq!(strip_zero_padding(&[0, 0, 0, 5, 6], 4096).unwrap(), [5, 6]);
    assert_eq!(strip_zero_padding(&[7, 0], 4096).unwrap(), [7, 0]);
    assert_eq!(strip_zero_padding(&[0, 0, 0], 4096), Err(Error::Corrupted));
    assert_eq!(strip_zero_padding(&[], 4096), Err(Error::Corrupted));
    // The padding must end within the window (the first block).
    assert_eq!(strip_zero_padding(&[0, 0, 0, 5], 3), Err(Error::Corrupted));
    assert_eq!(strip_zero_padding(&[0, 0, 0, 5], 4).unwrap(), [5]);
}

// ---------------------------------------------------------------------------------------------
// The extent decoder on hand-made extents
// ---------------------------------------------------------------------------------------------

fn sb_with(incompat: u32, algs: u16) -> SuperBlock {
    let mut b = [0u8; 128];
    b[0..4].copy_from_slice(&EROFS_SUPER_MAGIC_V1.to_le_bytes());
    b[12] = 12;
    b[80..84].copy_from_slice(&incompat.to_le_bytes());
    b[84..86].copy_from_slice(&algs.to_le_bytes());
    SuperBlock::parse(&b).unwrap()
}

fn extent(logical: u64, length: u64, physical: u64, plength: u64, algorithm: Algorithm) -> ZExtent {
    ZExtent {
        logical,
        length,
        physical,
        plength,
        algorithm,
        mapped: true,
        meta: false,
        fragment: false,
        full_mapped: true,
        partial_ref: false,
    }
}

#[test]
fn decompress_extent_synthetic() {
    let sb0 = sb_with(EROFS_FEATURE_INCOMPAT_ZERO_PADDING, 0);
    let sb_legacy = sb_with(0, 0);
    let data = text_bytes(5, 2000).repeat(5);
    let c = lz4_compress(&data);
    assert!(c.len() < 4096);
    // Zero padding: the block at the end of the pcluster.
    let mut pcl = vec![0u8; 4096 - c.len()];
    pcl.extend_from_slice(&c);
    let e = extent(8192, 10000, 40960, 4096, Algorithm::Lz4);
    let mut out = vec![0u8; 10000];
    decompress_extent(&sb0, &e, &pcl, &mut out).unwrap();
    assert_eq!(out, data);
    // Partial: the first 5000 bytes.
    let mut out = vec![0u8; 5000];
    decompress_extent(&sb0, &e, &pcl, &mut out).unwrap();
    assert_eq!(out, data[..5000]);
    // Partial references and extents not known to be whole are decoded partially: a block
    // longer than the extent is fine then, not in full mode.
    let short = extent(8192, 9000, 40960, 4096, Algorithm::Lz4);
    let mut out = vec![0u8; 9000];
    assert_eq!(
        decompress_extent(&sb0, &short, &pcl, &mut out),
        Err(Error::Corrupted)
    );
    for e in [
        ZExtent {
            partial_ref: true,
            ..short
        },
        ZExtent {
            full_mapped: false,
            ..short
        },
    ] {
        decompress_extent(&sb0, &e, &pcl, &mut out).unwrap();
        assert_eq!(out, data[..9000]);
    }
    // An extent longer than the block: full mode fails, partial too (short output).
    let long = extent(8192, 10001, 40960, 4096, Algorithm::Lz4);
    let mut out = vec![0u8; 10001];
    assert_eq!(
        decompress_extent(&sb0, &long, &pcl, &mut out),
        Err(Error::Corrupted)
    );
    // Without zero padding (legacy): the block at the start, zeros after it.
    let mut legacy = c.clone();
    legacy.resize(4096, 0);
    let mut out = vec![0u8; 10000];
    decompress_extent(&sb_legacy, &e, &legacy, &mut out).unwrap();
    assert_eq!(out, data);
    // ... which a zero-padding image would take as padding up to the end of the first block.
    assert_eq!(
        decompress_extent(&sb0, &e, &vec![0u8; 4096], &mut out),
        Err(Error::Corrupted)
    );
    // Wrong pcluster length, output longer than the extent, holes, fragments, other algorithms.
    assert_eq!(
        decompress_extent(&sb0, &e, &pcl[1..], &mut out),
        Err(Error::Corrupted)
    );
    let mut big = vec![0u8; 10001];
    assert_eq!(
        decompress_extent(&sb0, &e, &pcl, &mut big),
        Err(Error::Corrupted)
    );
    let hole = ZExtent { mapped: false, ..e };
    assert_eq!(
        decompress_extent(&sb0, &hole, &pcl, &mut out),
        Err(Error::Corrupted)
    );
    let frag = ZExtent {
        fragment: true,
        ..e
    };
    assert_eq!(
        decompress_extent(&sb0, &frag, &pcl, &mut out),
        Err(Error::Unsupported)
    );
    for a in [Algorithm::Lzma, Algorithm::Deflate, Algorithm::Zstd] {
        let x = ZExtent { algorithm: a, ..e };
        assert_eq!(
            decompress_extent(&sb0, &x, &pcl, &mut out),
            Err(Error::Unsupported)
        );
    }
    // Empty output: nothing to do.
    decompress_extent(&sb0, &e, &pcl, &mut []).unwrap();

    // Shifted (plain) pclusters: the extent's bytes from the pcluster's start.
    let raw = prng_bytes(9, 8192);
    let e = extent(4096 + 100, 8000, 4096 * 7, 8192, Algorithm::Shifted);
    let mut out = vec![0u8; 8000];
    decompress_extent(&sb0, &e, &raw, &mut out).unwrap();
    assert_eq!(out, raw[..8000]);
    // An inline (meta) plain tail.
    let e = ZExtent {
        meta: true,
        ..extent(3 * 4096, 300, 5000, 300, Algorithm::Shifted)
    };
    let mut out = vec![0u8; 300];
    decompress_extent(&sb0, &e, &raw[..300], &mut out).unwrap();
    assert_eq!(out, raw[..300]);
    // More output than the plain pcluster holds: EOPNOTSUPP as in C.
    let e = ZExtent {
        length: 9000,
        ..extent(0, 9000, 0, 8192, Algorithm::Shifted)
    };
    let mut out = vec![0u8; 9000];
    assert_eq!(
        decompress_extent(&sb0, &e, &raw, &mut out),
        Err(Error::Unsupported)
    );

    // Interlaced: the byte at file offset x of the extent is at x % 4096 of the pcluster.
    // C's formula: the first `blksz - logical % blksz` output bytes come from the end of the
    // pcluster, the rest from its start; for one-block pclusters, the byte at file offset x is
    // at x % blksz.
    for (logical, len, plen) in [
        (4096u64, 4096usize, 4096usize),
        (4096 + 1000, 3096, 4096),
        (8192 + 4095, 1, 4096),
        (100, 3000, 4096),
        (100, 8000, 8192),
        (8192, 8192, 8192),
    ] {
        let file: Vec<u8> = (0..len)
            .map(|i| ((logical as usize + i) % 251) as u8)
            .collect();
        let cur = 4096 - (logical % 4096) as usize;
        let mut pcl = vec![0xEEu8; plen];
        for (i, &b) in file.iter().enumerate() {
            pcl[(i + plen - cur) % plen] = b;
        }
        if plen == 4096 {
            for (i, &b) in file.iter().enumerate() {
                assert_eq!(pcl[(logical as usize + i) % 4096], b);
            }
        }
        let e = extent(logical, len as u64, 0, plen as u64, Algorithm::Interlaced);
        let mut out = vec![0u8; len];
        decompress_extent(&sb0, &e, &pcl, &mut out).unwrap();
        assert_eq!(out, file, "interlaced {logical} {len} {plen}");
        let mut out = vec![0u8; len / 2];
        decompress_extent(&sb0, &e, &pcl, &mut out).unwrap();
        assert_eq!(out, file[..len / 2]);
    }
    let e = extent(0, 4096, 0, 4096, Algorithm::Interlaced);
    let mut out = vec![0u8; 4097];
    assert_eq!(
        decompress_extent(&sb0, &ZExtent { length: 8192, ..e }, &[0; 4096], &mut out),
        Err(Error::Unsupported)
    );
}

// ---------------------------------------------------------------------------------------------
// Real images
// ---------------------------------------------------------------------------------------------

/// What a read of compressed files went through, to check each layout covers what it should.
#[derive(Default, Debug)]
struct ZStats {
    compact_inodes: Cell<usize>,
    compact_2b_inodes: Cell<usize>,
    full_inodes: Cell<usize>,
    lz4_extents: Cell<usize>,
    plain_extents: Cell<usize>,
    big_extents: Cell<usize>,
    meta_extents: Cell<usize>,
    fragment_extents: Cell<usize>,
    full_decodes: Cell<usize>,
    bytes: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

/// An image opened with its compression configuration.
struct ZImage {
    src: VecSource,
    sb: SuperBlock,
    cfg: ComprConfig,
    st: ZStats,
}

impl ZImage {
    fn open(data: Vec<u8>) -> std::result::Result<ZImage, ComprError> {
        let sb = SuperBlock::parse(&data[1024..1152]).map_err(ComprError::Format)?;
        sb.verify_checksum(&data).map_err(ComprError::Format)?;
        ZImage::open_unchecked(data)
    }

    /// Without the superblock checksum (corruption tests change blocks it covers).
    fn open_unchecked(data: Vec<u8>) -> std::result::Result<ZImage, ComprError> {
        let sb = SuperBlock::parse(&data[1024..1152]).map_err(ComprError::Format)?;
        let src = VecSource(data);
        let cfg = ComprConfig::read(&src, &sb)?;
        Ok(ZImage {
            src,
            sb,
            cfg,
            st: ZStats::default(),
        })
    }

    fn inode(&self, nid: u64) -> Result<Inode> {
        Inode::read(&self.src, &self.sb, nid)
    }

    /// The pcluster of `ext` from the image bytes (Io past the end, as a device read).
    fn pcluster(&self, ext: &ZExtent) -> Result<&[u8]> {
        let start = usize::try_from(ext.physical).map_err(|_| Error::Io)?;
        let len = usize::try_from(ext.plength).map_err(|_| Error::Io)?;
        self.src
            .0
            .get(start..)
            .and_then(|s| s.get(..len))
            .ok_or(Error::Io)
    }

    fn zinode(&self, inode: &Inode) -> Result<ZInode> {
        let zi = ZInode::read(&self.src, &self.sb, &self.cfg, inode)?;
        match inode.datalayout {
            Layout::CompressedFull => bump(&self.st.full_inodes),
            _ => {
                bump(&self.st.compact_inodes);
                if zi.advise & Z_EROFS_ADVISE_COMPACTED_2B != 0 {
                    bump(&self.st.compact_2b_inodes);
                }
            }
        }
        Ok(zi)
    }

    fn map(&self, zi: &ZInode, off: u64, mode: ZMapMode) -> Result<ZExtent> {
        let ext = map_compressed(&self.src, &self.sb, &self.cfg, zi, off, mode)?;
        check_extent(&self.sb, zi, off, mode, &ext);
        Ok(ext)
    }

    /// Bytes `[start, start + len)` of `inode`, whatever its layout.
    fn read_range(&self, inode: &Inode, start: u64, len: u64, mode: ZMapMode) -> Result<Vec<u8>> {
        let end = inode.size.min(start + len);
        let mut out = Vec::new();
        let mut off = start;
        if !inode.datalayout.is_compressed() {
            while off < end {
                let m = map(&self.src, &self.sb, inode, off)?;
                let n = (m.logical + m.length).min(end) - off;
                if m.mapped {
                    let p = (m.physical + off - m.logical) as usize;
                    out.extend_from_slice(self.src.0.get(p..p + n as usize).ok_or(Error::Io)?);
                } else {
                    out.resize(out.len() + n as usize, 0);
                }
                off += n;
            }
            return Ok(out);
        }
        let zi = self.zinode(inode)?;
        let mut rounds = 0u64;
        while off < end {
            rounds += 1;
            assert!(rounds <= inode.size + 2, "no progress");
            let ext = self.map(&zi, off, mode)?;
            let ext_end = inode.size.min(ext.logical + ext.length);
            let n = ext_end.min(end) - off;
            if ext.fragment {
                bump(&self.st.fragment_extents);
                let packed = self.inode(self.sb.packed_nid)?;
                let pos = ext.physical + (off - ext.logical);
                out.extend_from_slice(&self.read_range(&packed, pos, n, mode)?);
            } else {
                let want = (off + n - ext.logical) as usize;
                let mut buf = vec![0u8; want];
                decompress_extent(&self.sb, &ext, self.pcluster(&ext)?, &mut buf)?;
                if ext.algorithm == Algorithm::Lz4
                    && ext.full_mapped
                    && want as u64 == ext.length
                    && self.sb.has_incompat(EROFS_FEATURE_INCOMPAT_ZERO_PADDING)
                {
                    bump(&self.st.full_decodes);
                }
                out.extend_from_slice(&buf[(off - ext.logical) as usize..]);
            }
            off += n;
        }
        self.st.bytes.set(self.st.bytes.get() + out.len());
        Ok(out)
    }

    /// The extents of a whole compressed file, in `Full` mode, checked to tile `[0, size)`.
    fn extents(&self, zi: &ZInode) -> Result<Vec<ZExtent>> {
        let size = zi.inode.size;
        let mut v: Vec<ZExtent> = Vec::new();
        let mut off = 0;
        while off < size {
            let e = self.map(zi, off, ZMapMode::Full)?;
            assert_eq!(e.logical, off, "extents must tile the file: {e:?}");
            if e.fragment {
                bump(&self.st.fragment_extents);
            } else if e.meta {
                bump(&self.st.meta_extents);
            }
            match e.algorithm {
                Algorithm::Lz4 => bump(&self.st.lz4_extents),
                Algorithm::Shifted | Algorithm::Interlaced => bump(&self.st.plain_extents),
                _ => {}
            }
            if e.plength > u64::from(self.sb.block_size()) {
                bump(&self.st.big_extents);
            }
            off = (e.logical + e.length).min(size);
            v.push(e);
        }
        Ok(v)
    }
}

/// What `map_compressed` promises.
fn check_extent(sb: &SuperBlock, zi: &ZInode, off: u64, mode: ZMapMode, e: &ZExtent) {
    let size = zi.inode.size;
    if off >= size {
        assert_eq!((e.logical, e.length, e.mapped), (off, 0, false));
        return;
    }
    assert!(e.mapped && e.length > 0, "{e:?}");
    assert!(
        e.logical <= off && off - e.logical < e.length,
        "{off} not in {e:?}"
    );
    if mode == ZMapMode::Full {
        assert!(e.full_mapped);
    }
    if e.fragment {
        assert!(!e.meta);
        return;
    }
    assert!(e.plength <= Z_EROFS_PCLUSTER_MAX_SIZE && e.length <= Z_EROFS_PCLUSTER_MAX_DSIZE);
    let blksz = u64::from(sb.block_size());
    if e.meta {
        assert!(e.physical % blksz + e.plength <= blksz);
        assert!(e.plength > 0);
    } else {
        assert_eq!(e.physical % blksz, 0);
        assert!(e.plength >= blksz && e.plength.is_multiple_of(blksz));
    }
    if !e.algorithm.is_compressed() && (e.full_mapped || e.logical + e.length <= size) {
        assert!(e.length <= e.plength, "{e:?}");
    }
}

/// A tree of compressible and incompressible files of many sizes (about 9 MB), or with
/// `small`, a few files of up to 200 KB (images to mutate many times).
fn build_ztree(root: &Path, small: bool) -> bool {
    let w = |p: &str, data: &[u8]| fs::write(root.join(p), data).expect("write");
    if small {
        w("t102400", &text_bytes(106, 102400));
        w("t4097", &text_bytes(102, 4097));
        w("r8191", &prng_bytes(203, 8191));
        let mut m = text_bytes(900, 60000);
        m.extend_from_slice(&prng_bytes(901, 20000));
        m.extend_from_slice(&text_bytes(902, 120000));
        w("mixed", &m);
        return true;
    }
    w("empty", b"");
    w("one", b"x");
    for (i, len) in [4095usize, 4096, 4097, 8191, 12288, 65536, 102400]
        .iter()
        .enumerate()
    {
        w(&format!("t{len}"), &text_bytes(100 + i as u64, *len));
        w(&format!("r{len}"), &prng_bytes(200 + i as u64, *len));
    }
    w("zeros1m", &vec![0u8; 1 << 20]);
    w("text3m", &text_bytes(300, 3 << 20));
    w("rand2m", &prng_bytes(301, (2 << 20) + 5));
    let mut mixed = Vec::new();
    let mut k = 0;
    while mixed.len() < 1_500_000 {
        match k % 3 {
            0 => mixed.extend_from_slice(&prng_bytes(400 + k, 10_000 + (k as usize * 977) % 9000)),
            1 => mixed.extend_from_slice(&text_bytes(500 + k, 30_000)),
            _ => mixed.extend(std::iter::repeat_n((k % 256) as u8, 5000)),
        }
        k += 1;
    }
    w("mixed", &mixed);
    fs::create_dir_all(root.join("a/b")).expect("mkdir");
    w("a/b/deep", &text_bytes(600, 12345));
    for i in 0..24u64 {
        let len = (i as usize * 7919) % 20000 + 1;
        let data = if i % 2 == 0 {
            text_bytes(700 + i, len)
        } else {
            prng_bytes(700 + i, len)
        };
        w(&format!("a/small{i:02}"), &data);
    }
    std::os::unix::fs::symlink("t4097", root.join("link")).expect("symlink");
    // Inline xattrs of several sizes move where the map header and the indexes start
    // (their alignment decides the compacted 4B/2B split).
    let mut xattrs = false;
    if have("setfattr") {
        xattrs = true;
        for (i, f) in ["t65536", "t102400", "r102400", "mixed", "text3m", "t12288"]
            .iter()
            .enumerate()
        {
            let v = "v".repeat(3 + 9 * i);
            xattrs &= Command::new("setfattr")
                .args(["-n", &format!("user.z{i}"), "-v", &v])
                .arg(root.join(f))
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
        }
    }
    xattrs
}

/// Compressed layouts that Debian's mkfs.erofs 1.5 can write.
const ZLAYOUTS: &[(&str, &[&str])] = &[
    ("lz4", &["-zlz4"]),
    ("lz4hc9", &["-zlz4hc,9"]),
    ("lz4-extended", &["-zlz4", "-Eforce-inode-extended"]),
    ("lz4-big64k", &["-zlz4", "-C65536"]),
    (
        "lz4hc-big16k-ztail",
        &["-zlz4hc", "-C16384", "-Eztailpacking"],
    ),
    ("lz4-ztail", &["-zlz4", "-Eztailpacking"]),
    (
        "lz4hc12-big1m-ztail",
        &["-zlz4hc,12", "-C1048576", "-Eztailpacking"],
    ),
    ("lz4-legacy", &["-zlz4", "-Elegacy-compress"]),
    (
        "lz4hc-legacy-big64k",
        &["-zlz4hc", "-Elegacy-compress", "-C65536"],
    ),
    ("lz4-maxextent16k", &["-zlz4", "--max-extent-bytes=16384"]),
    ("lz4-hints", &["-zlz4", "-C65536", "--compress-hints=HINTS"]),
];

/// Walks the tree of `img`, comparing every file with `src`; returns the files compared.
fn zwalk(img: &ZImage, nid: u64, path: &Path, depth: u32) -> usize {
    assert!(depth < 16);
    let inode = img.inode(nid).expect("inode");
    let what = path.display();
    let md = fs::symlink_metadata(path).expect("source");
    if inode.is_dir() {
        let data = img
            .read_range(&inode, 0, inode.size, ZMapMode::Full)
            .unwrap_or_else(|e| panic!("{what}: dir {e:?}"));
        let mut n = 0;
        for block in data.chunks(img.sb.block_size() as usize) {
            let db = DirBlock::new(block).expect("dir block");
            for de in db.iter() {
                if de.name == b"." || de.name == b".." {
                    continue;
                }
                let name = std::str::from_utf8(de.name).expect("utf8");
                n += zwalk(img, de.nid, &path.join(name), depth + 1);
            }
        }
        return n;
    }
    if inode.is_symlink() {
        let t = img
            .read_range(&inode, 0, inode.size, ZMapMode::Full)
            .expect("symlink");
        let want = fs::read_link(path).expect("readlink");
        assert_eq!(t, want.as_os_str().as_encoded_bytes(), "{what}");
        return 1;
    }
    assert!(inode.is_reg(), "{what}");
    assert_eq!(inode.size, md.len(), "size of {what}");
    let want = fs::read(path).expect("read source");
    check_file(img, &inode, &want, &what.to_string());
    1
}

/// Reads a file through zmap + lz4 in both modes and at random offsets.
fn check_file(img: &ZImage, inode: &Inode, want: &[u8], what: &str) {
    let size = inode.size;
    let got = img
        .read_range(inode, 0, size, ZMapMode::Full)
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert!(got == want, "{what}: content differs (full mode)");
    if !inode.datalayout.is_compressed() {
        return;
    }
    let zi = img.zinode(inode).expect("zinode");
    let exts = img.extents(&zi).expect("extents");
    // Read mode: the whole file when small, else its start and end.
    if size <= 256 << 10 {
        let got = img
            .read_range(inode, 0, size, ZMapMode::Read)
            .expect("read mode");
        assert!(got == want, "{what}: content differs (read mode)");
    } else {
        for (s, l) in [(0, 64 << 10), (size - (64 << 10), 64 << 10)] {
            let got = img
                .read_range(inode, s, l, ZMapMode::Read)
                .expect("read mode");
            assert!(
                got == want[s as usize..(s + l) as usize],
                "{what}: read mode at {s}"
            );
        }
    }
    // Random offsets: the Read-mode extent agrees with the Full-mode one and decodes the byte.
    let r = prng_bytes(size ^ 0x5eed, 64 * 8);
    let lclustersz = 1u64 << zi.lclusterbits;
    let mut probes: Vec<u64> = r
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()) % size.max(1))
        .collect();
    probes.extend([0, size.saturating_sub(1), size, size + 1, u64::MAX]);
    for e in exts.iter().take(8) {
        probes.extend([e.logical, e.logical + e.length - 1]);
    }
    probes.extend((1..4).map(|k| (k * lclustersz).min(size.saturating_sub(1))));
    for off in probes {
        let e = img.map(&zi, off, ZMapMode::Read).expect("map");
        if off >= size {
            continue;
        }
        let full = exts
            .iter()
            .find(|x| x.logical <= off && off < x.logical + x.length)
            .expect("containing extent");
        assert_eq!(
            (
                e.logical,
                e.physical,
                e.plength,
                e.algorithm,
                e.meta,
                e.fragment
            ),
            (
                full.logical,
                full.physical,
                full.plength,
                full.algorithm,
                full.meta,
                full.fragment
            ),
            "{what} at {off}"
        );
        assert!(e.length <= full.length || e.logical + e.length >= size);
        if e.full_mapped {
            assert_eq!(e.length, full.length, "{what} at {off}");
        }
        // Read-mode lengths end at the lcluster end of the offset (or a known extent end).
        assert!(e.logical + e.length <= ((off / lclustersz) + 1) * lclustersz || e.full_mapped);
        if !e.fragment {
            let n = (off + 1 - e.logical) as usize;
            let mut buf = vec![0u8; n];
            decompress_extent(&img.sb, &e, img.pcluster(&e).unwrap(), &mut buf)
                .unwrap_or_else(|err| panic!("{what} at {off}: {err:?} {e:?}"));
            assert!(
                buf[..] == want[e.logical as usize..=off as usize],
                "{what} at {off}"
            );
        }
    }
}

struct ZFixture {
    _tmp: TempDir,
    src: std::path::PathBuf,
    images: Vec<(&'static str, Vec<u8>)>,
}

fn zfixture(tag: &str, only: &[&str], small: bool) -> ZFixture {
    let tmp = TempDir::new(tag);
    let src = tmp.0.join("src");
    fs::create_dir(&src).expect("mkdir");
    if !build_ztree(&src, small) {
        println!("NOTE: setfattr failed or missing: index alignments are less varied");
    }
    let hints = tmp.0.join("hints");
    fs::write(&hints, "4096 .*/?r[0-9]+$\n16384 text3m\n65536 mixed\n").expect("hints");
    let mut images = Vec::new();
    for (name, args) in ZLAYOUTS {
        if !only.is_empty() && !only.contains(name) {
            continue;
        }
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("HINTS", hints.to_str().unwrap()))
            .collect();
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let (img, _) = mkfs(&tmp.0, &src, &args, false);
        images.push((*name, img));
    }
    ZFixture {
        _tmp: tmp,
        src,
        images,
    }
}

#[test]
fn compressed_layouts_read_back() {
    if !mkfs_available() {
        return;
    }
    let fx = zfixture("zwalk", &[], false);
    for (name, data) in &fx.images {
        let img = ZImage::open(data.clone()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let files = zwalk(&img, img.sb.root_nid, &fx.src, 0);
        let st = &img.st;
        println!("layout {name}: {files} files, cfg {:?}, {st:?}", img.cfg);
        assert!(files > 40);
        assert!(st.lz4_extents.get() > 0, "{name}");
        // Incompressible data: plain pclusters, except that mkfs.erofs 1.5 stores a file whose
        // compressed form saves nothing flat (the big pcluster layouts do that with `r*`).
        if !name.contains("big") && *name != "lz4-hints" {
            assert!(st.plain_extents.get() > 0, "{name}");
        }
        let legacy = name.contains("legacy");
        // Legacy images have no zero padding, unless big pclusters force it.
        assert_eq!(
            img.sb.has_incompat(EROFS_FEATURE_INCOMPAT_ZERO_PADDING),
            *name != "lz4-legacy",
            "{name}"
        );
        if legacy {
            assert!(
                st.full_inodes.get() > 0 && st.compact_inodes.get() == 0,
                "{name}"
            );
        } else {
            assert!(
                st.compact_inodes.get() > 0 && st.full_inodes.get() == 0,
                "{name}"
            );
            assert!(st.compact_2b_inodes.get() > 0, "{name}");
        }
        if img.sb.has_incompat(EROFS_FEATURE_INCOMPAT_ZERO_PADDING) {
            assert!(st.full_decodes.get() > 0, "{name}: no full-mode LZ4 decode");
        }
        if name.contains("big") || name.contains("hints") {
            assert!(st.big_extents.get() > 0, "{name}: no big pcluster");
            assert!(img.sb.has_incompat(EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER));
            assert!(img.cfg.lz4_max_pclusterblks > 1, "{name}");
        } else {
            assert_eq!(st.big_extents.get(), 0, "{name}");
            assert_eq!(img.cfg.lz4_max_pclusterblks, 1, "{name}");
        }
        assert_eq!(st.meta_extents.get() > 0, name.contains("ztail"), "{name}");
        assert_eq!(img.cfg.algorithms, 1 << Z_EROFS_COMPRESSION_LZ4);
    }
}

// ---------------------------------------------------------------------------------------------
// Compression configuration
// ---------------------------------------------------------------------------------------------

/// The image bytes with the superblock patched by `f` (checksum not updated: the tests here
/// parse without verifying it).
fn patch_sb(data: &[u8], f: impl FnOnce(&mut [u8])) -> (VecSource, SuperBlock) {
    let mut d = data.to_vec();
    f(&mut d[1024..1152]);
    let sb = SuperBlock::parse(&d[1024..1152]).unwrap();
    (VecSource(d), sb)
}

#[test]
fn compression_config() {
    if !mkfs_available() {
        return;
    }
    let fx = zfixture("zcfg", &["lz4", "lz4-big64k"], true);
    let plain = &fx.images[0].1;
    let cfgs = &fx.images[1].1;
    // Without COMPR_CFGS: LZ4, lz4_max_distance from the superblock.
    let (src, sb) = patch_sb(plain, |_| {});
    let c = ComprConfig::read(&src, &sb).unwrap();
    assert_eq!(c.algorithms, 1);
    assert_eq!(c.lz4_max_pclusterblks, 1);
    assert_eq!(c.lz4_max_distance, sb.available_compr_algs);
    // With COMPR_CFGS: the LZ4 record.
    let (src, sb) = patch_sb(cfgs, |_| {});
    assert!(sb.has_incompat(EROFS_FEATURE_INCOMPAT_COMPR_CFGS));
    let c = ComprConfig::read(&src, &sb).unwrap();
    assert_eq!((c.algorithms, c.lz4_max_pclusterblks), (1, 16));
    // Unknown algorithm bits: a distinct error naming them.
    let (src, sb) = patch_sb(cfgs, |b| {
        b[84..86].copy_from_slice(&0x0031u16.to_le_bytes())
    });
    assert_eq!(
        ComprConfig::read(&src, &sb),
        Err(ComprError::UnknownAlgorithms(0x30))
    );
    assert_eq!(
        ComprError::UnknownAlgorithms(0x30).to_error(),
        Error::Unsupported
    );
    assert_eq!(
        ComprError::UnsupportedAlgorithm(1).to_error(),
        Error::Unsupported
    );
    assert_eq!(ComprError::Format(Error::Io).to_error(), Error::Io);
    // Known algorithms this implementation does not decode.
    for (bits, id) in [(0x3u16, 1u8), (0x5, 2), (0x9, 3), (0xC, 2)] {
        // With the LZ4 bit the LZ4 record is read first; without, nothing is read.
        let (src, sb) = patch_sb(cfgs, |b| b[84..86].copy_from_slice(&bits.to_le_bytes()));
        assert_eq!(
            ComprConfig::read(&src, &sb),
            Err(ComprError::UnsupportedAlgorithm(id)),
            "{bits:#x}"
        );
    }
    // A short LZ4 record, a too large max_pclusterblks (1 MiB = 256 blocks is the limit).
    let pos = 1024 + 128;
    for (len, blks, ok) in [
        (13u16, 16u16, false),
        (14, 256, true),
        (14, 257, false),
        (0, 0, true),
    ] {
        let mut d = cfgs.clone();
        d[pos..pos + 2].copy_from_slice(&len.to_le_bytes());
        d[pos + 4..pos + 6].copy_from_slice(&blks.to_le_bytes());
        let sb = SuperBlock::parse(&d[1024..1152]).unwrap();
        let r = ComprConfig::read(&VecSource(d), &sb);
        if ok {
            assert_eq!(r.unwrap().lz4_max_pclusterblks, blks.max(1));
        } else {
            assert_eq!(r, Err(ComprError::Config(Z_EROFS_COMPRESSION_LZ4, Error::Corrupted)), "{len} {blks}");
        }
    }
    // A record past the end of the device.
    let d = cfgs[..1024 + 129].to_vec();
    let sb = SuperBlock::parse(&d[1024..1152]).unwrap();
    assert_eq!(
        ComprConfig::read(&VecSource(d), &sb),
        Err(ComprError::Format(Error::Io))
    );
}

// ---------------------------------------------------------------------------------------------
// Synthetic compressed inodes
// ---------------------------------------------------------------------------------------------

/// Where the synthetic inode is: nid 64, byte 2048, an extended inode (64 bytes) without
/// xattrs, so the map header is at 2112 and full indexes start at 2128.
const ZNID: u64 = 64;
const ZHDR: usize = 2112;
const ZIDX: usize = 2128;
/// The packed inode's nid in the superblock of synthetic images (nothing is there).
const ZPACKED: u64 = 100;

/// A synthetic image: superblock with `incompat`, one extended compressed inode of `size`
/// bytes and `layout` (1 = full indexes, 3 = compact), map header `hdr`, full `indexes`.
fn zsynth(incompat: u32, layout: u16, size: u64, hdr: [u8; 8], indexes: &[[u8; 8]]) -> Vec<u8> {
    let mut d = vec![0u8; 64 << 10];
    let mut sb = [0u8; 128];
    sb[0..4].copy_from_slice(&EROFS_SUPER_MAGIC_V1.to_le_bytes());
    sb[12] = 12;
    sb[80..84].copy_from_slice(&incompat.to_le_bytes());
    sb[96..104].copy_from_slice(&ZPACKED.to_le_bytes());
    d[1024..1152].copy_from_slice(&sb);
    let p = (ZNID * 32) as usize;
    d[p..p + 2].copy_from_slice(&(1 | (layout << 1)).to_le_bytes());
    d[p + 4..p + 6].copy_from_slice(&(S_IFREG | 0o644).to_le_bytes());
    d[p + 8..p + 16].copy_from_slice(&size.to_le_bytes());
    d[p + 44..p + 48].copy_from_slice(&1u32.to_le_bytes());
    d[ZHDR..ZHDR + 8].copy_from_slice(&hdr);
    for (i, x) in indexes.iter().enumerate() {
        d[ZIDX + 8 * i..ZIDX + 8 * i + 8].copy_from_slice(x);
    }
    d
}

fn hdr(fragoff_or_idata: u32, advise: u16, algs: u8, clusterbits: u8) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[0..4].copy_from_slice(&fragoff_or_idata.to_le_bytes());
    h[4..6].copy_from_slice(&advise.to_le_bytes());
    h[6] = algs;
    h[7] = clusterbits;
    h
}

fn head(typ: u16, clusterofs: u16, blkaddr: u32) -> [u8; 8] {
    let mut x = [0u8; 8];
    x[0..2].copy_from_slice(&typ.to_le_bytes());
    x[2..4].copy_from_slice(&clusterofs.to_le_bytes());
    x[4..8].copy_from_slice(&blkaddr.to_le_bytes());
    x
}

fn nonhead(d0: u16, d1: u16) -> [u8; 8] {
    let mut x = [0u8; 8];
    x[0..2].copy_from_slice(&2u16.to_le_bytes());
    x[4..6].copy_from_slice(&d0.to_le_bytes());
    x[6..8].copy_from_slice(&d1.to_le_bytes());
    x
}

/// A source counting its reads.
struct Counting(VecSource, Cell<usize>);

impl Source for Counting {
    fn read_exact(&self, pos: u64, buf: &mut [u8]) -> Result<()> {
        self.1.set(self.1.get() + 1);
        self.0.read_exact(pos, buf)
    }
}

/// Maps `offset` of a synthetic compressed inode of three 4 KiB lclusters (plain map header)
/// with lcluster indexes `indexes`.
fn map_synth3(indexes: &[[u8; 8]], offset: u64, mode: ZMapMode) -> Result<ZExtent> {
    let (src, sb, cfg, inode) = zopen(zsynth(ZP, 1, 3 * 4096, hdr(0, 0, 0, 0), indexes));
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    map_compressed(&src, &sb, &cfg, &zi, offset, mode)
}

fn zopen(d: Vec<u8>) -> (Counting, SuperBlock, ComprConfig, Inode) {
    let sb = SuperBlock::parse(&d[1024..1152]).unwrap();
    let src = Counting(VecSource(d), Cell::new(0));
    let cfg = ComprConfig::read(&src, &sb).unwrap();
    let inode = Inode::read(&src, &sb, ZNID).unwrap();
    (src, sb, cfg, inode)
}

const FRAG: u32 = EROFS_FEATURE_INCOMPAT_FRAGMENTS;
const ZP: u32 = EROFS_FEATURE_INCOMPAT_ZERO_PADDING;

#[test]
fn synthetic_full_indexes_and_fragments() {
    // File of 4 lclusters + 100 bytes: extent A = lcn 0..1 (LZ4 at block 10), extent B from
    // lcn 2 to EOF is a fragment (tail) at 0x1_0000_0123 in the packed inode.
    let data = text_bytes(42, 8192);
    let c = lz4_compress(&data);
    let size = 4 * 4096 + 100;
    let fragoff: u64 = 0x1_0000_0123;
    let idx = [
        head(1, 0, 10),
        nonhead(1, 1),
        head(0, 0, (fragoff >> 32) as u32),
        nonhead(1, 0),
        nonhead(2, 0),
    ];
    let mut d = zsynth(
        ZP | FRAG,
        1,
        size,
        hdr(fragoff as u32, Z_EROFS_ADVISE_FRAGMENT_PCLUSTER, 0, 0),
        &idx,
    );
    let b10 = 10 * 4096;
    d[b10 + 4096 - c.len()..b10 + 4096].copy_from_slice(&c);
    let (src, sb, cfg, inode) = zopen(d.clone());
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    assert_eq!((zi.tailextent_headlcn, zi.fragmentoff), (2, fragoff));
    for mode in [ZMapMode::Read, ZMapMode::Full] {
        let a = map_compressed(&src, &sb, &cfg, &zi, 5000, mode).unwrap();
        assert_eq!(
            (a.logical, a.physical, a.plength, a.algorithm, a.fragment),
            (0, b10 as u64, 4096, Algorithm::Lz4, false)
        );
        assert_eq!(a.length, 8192);
        let mut out = vec![0u8; 8192];
        decompress_extent(&sb, &a, &d[b10..b10 + 4096], &mut out).unwrap();
        assert_eq!(out, data);
        for off in [8192, 12288, size - 1] {
            let b = map_compressed(&src, &sb, &cfg, &zi, off, mode).unwrap();
            assert!(b.fragment && b.mapped && !b.meta, "{b:?}");
            assert_eq!((b.logical, b.physical), (8192, fragoff));
            if mode == ZMapMode::Full {
                assert_eq!(b.length, size - 8192);
            }
        }
    }
    // Without the FRAGMENTS feature, without a packed inode, or in the packed inode: corrupted.
    let mut nf = d.clone();
    nf[1024 + 80..1024 + 84].copy_from_slice(&ZP.to_le_bytes());
    let mut np = d.clone();
    np[1024 + 96..1024 + 104].fill(0);
    let mut inp = d.clone();
    inp[1024 + 96..1024 + 104].copy_from_slice(&ZNID.to_le_bytes());
    for bad in [nf, np, inp] {
        let (src2, sb2, cfg2, inode2) = zopen(bad);
        assert_eq!(
            ZInode::read(&src2, &sb2, &cfg2, &inode2),
            Err(Error::Corrupted)
        );
    }

    // The whole file in the packed inode (bit 63 of the header).
    let whole = (0x4242u64 | (1 << 63)).to_le_bytes();
    let d = zsynth(ZP | FRAG, 1, 1000, whole, &[]);
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    assert_eq!(
        (zi.advise, zi.fragmentoff),
        (Z_EROFS_ADVISE_FRAGMENT_PCLUSTER, 0x4242)
    );
    let e = map_compressed(&src, &sb, &cfg, &zi, 999, ZMapMode::Read).unwrap();
    assert!(e.fragment && e.mapped);
    assert_eq!((e.logical, e.length, e.physical), (0, 1000, 0x4242));
    assert_eq!(
        map_compressed(&src, &sb, &cfg, &zi, 1000, ZMapMode::Read).unwrap(),
        ZExtent {
            logical: 1000,
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
    );
    let d = zsynth(ZP, 1, 1000, whole, &[]);
    let (src, sb, cfg, inode) = zopen(d);
    assert_eq!(ZInode::read(&src, &sb, &cfg, &inode), Err(Error::Corrupted));
}

#[test]
fn synthetic_fragment_file_read_through_packed_inode() {
    // A real image patched into a fragment layout: the tail extent of `f` is turned into a
    // fragment of another file, `packed`, which holds a copy of `f` after 5000 other bytes, and
    // which the superblock names as the packed inode. mkfs.erofs 1.5 cannot write fragments.
    if !mkfs_available() {
        return;
    }
    let tmp = TempDir::new("zfrag");
    let src = tmp.0.join("src");
    fs::create_dir(&src).unwrap();
    let content = [&text_bytes(77, 3 * 4096)[..], &prng_bytes(78, 777)[..]].concat();
    fs::write(src.join("f"), &content).unwrap();
    fs::write(
        src.join("packed"),
        [&prng_bytes(79, 5000)[..], &content[..]].concat(),
    )
    .unwrap();
    for args in [&["-zlz4", "-Elegacy-compress"][..], &["-zlz4hc"]] {
        let (data, _) = mkfs(&tmp.0, &src, args, false);
        let img = ZImage::open(data.clone()).unwrap();
        let f = lookup_root(&img, b"f");
        let packed = lookup_root(&img, b"packed");
        let zi = img.zinode(&f).unwrap();
        let exts = img.extents(&zi).unwrap();
        let last = *exts.last().unwrap();
        let fragoff = 5000 + last.logical;
        let mut d = data.clone();
        let pos = le_pos(&img, &f);
        d[pos..pos + 4].copy_from_slice(&(fragoff as u32).to_le_bytes());
        let adv = u16::from_le_bytes([d[pos + 4], d[pos + 5]]) | Z_EROFS_ADVISE_FRAGMENT_PCLUSTER;
        d[pos + 4..pos + 6].copy_from_slice(&adv.to_le_bytes());
        if f.datalayout == Layout::CompressedFull {
            // Full indexes keep the high 32 bits of the offset in the tail HEAD's blkaddr.
            let p = pos + 16 + 8 * (last.logical >> zi.lclusterbits) as usize + 4;
            d[p..p + 4].copy_from_slice(&0u32.to_le_bytes());
        }
        // The superblock: FRAGMENTS and packed_nid (checksum recomputed).
        let inc = u32::from_le_bytes(d[1104..1108].try_into().unwrap()) | FRAG;
        d[1104..1108].copy_from_slice(&inc.to_le_bytes());
        d[1120..1128].copy_from_slice(&packed.nid.to_le_bytes());
        fix_checksum(&mut d);
        let img2 = ZImage::open(d).unwrap();
        let zi2 = img2.zinode(&f).unwrap();
        assert_eq!(zi2.fragmentoff, fragoff);
        assert_eq!(zi2.tailextent_headlcn, last.logical >> zi.lclusterbits);
        for mode in [ZMapMode::Full, ZMapMode::Read] {
            let got = img2.read_range(&f, 0, f.size, mode).unwrap();
            assert!(got == content, "{args:?} {mode:?}");
        }
        assert!(img2.st.fragment_extents.get() > 0);
        let e = map_compressed(
            &img2.src,
            &img2.sb,
            &img2.cfg,
            &zi2,
            f.size - 1,
            ZMapMode::Read,
        )
        .unwrap();
        assert!(
            e.fragment && e.logical == last.logical && e.physical == fragoff,
            "{e:?}"
        );
        if last.logical > 0 {
            let e =
                map_compressed(&img2.src, &img2.sb, &img2.cfg, &zi2, 0, ZMapMode::Read).unwrap();
            assert!(!e.fragment);
        }
    }
}

/// Byte position of the map header of `inode`.
fn le_pos(img: &ZImage, inode: &Inode) -> usize {
    (inode.inline_data_pos(&img.sb).unwrap().div_ceil(8) * 8) as usize
}

/// Recomputes the superblock checksum if the image has one.
fn fix_checksum(d: &mut [u8]) {
    let sb = SuperBlock::parse(&d[1024..1152]).unwrap();
    if sb.has_compat(EROFS_FEATURE_COMPAT_SB_CHKSUM) {
        let region = &mut d[1024..1024 + sb.checksum_len()];
        region[4..8].fill(0);
        let crc = crc32c(!0, region);
        region[4..8].copy_from_slice(&crc.to_le_bytes());
    }
}

#[test]
fn synthetic_hostile_index_chains() {
    // 64 MiB file, lcluster 0 HEAD1, every other lcluster a NONHEAD one step back: the extent
    // would be 64 MiB long. The lookback gives up (EOPNOTSUPP, as C refuses > 12 MiB extents)
    // after a bounded number of reads.
    let n = (64 << 20) / 4096;
    let mut idx = vec![head(1, 0, 100)];
    idx.extend(std::iter::repeat_n(nonhead(1, 1), n - 1));
    let mut d = zsynth(ZP, 1, 64 << 20, hdr(0, 0, 0, 0), &[]);
    d.resize(ZIDX + 8 * n + 8192, 0);
    for (i, x) in idx.iter().enumerate() {
        d[ZIDX + 8 * i..ZIDX + 8 * i + 8].copy_from_slice(x);
    }
    let (src, sb, cfg, inode) = zopen(d.clone());
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    for (off, mode) in [
        (60 << 20, ZMapMode::Read),
        (0, ZMapMode::Full),
        (13 << 20, ZMapMode::Read),
    ] {
        src.1.set(0);
        assert_eq!(
            map_compressed(&src, &sb, &cfg, &zi, off, mode),
            Err(Error::Unsupported),
            "{off}"
        );
        assert!(src.1.get() < 3200, "{} reads", src.1.get());
    }
    // Within 12 MiB the same chain is fine.
    let e = map_compressed(&src, &sb, &cfg, &zi, 11 << 20, ZMapMode::Read).unwrap();
    assert_eq!((e.logical, e.length), (0, (11 << 20) + 4096));

    // delta[0] == 0: a NONHEAD pointing at itself.
    assert_eq!(
        map_synth3(
            &[head(1, 0, 9), nonhead(0, 1), nonhead(1, 1)],
            4096,
            ZMapMode::Read
        ),
        Err(Error::Corrupted)
    );
    assert_eq!(
        map_synth3(
            &[head(1, 0, 9), nonhead(0, 1), nonhead(1, 1)],
            8192,
            ZMapMode::Read
        ),
        Err(Error::Corrupted)
    );
    // The chain reaches back before lcluster 0.
    assert_eq!(
        map_synth3(
            &[head(1, 0, 9), nonhead(5, 1), nonhead(1, 1)],
            4096,
            ZMapMode::Read
        ),
        Err(Error::Corrupted)
    );
    // An offset before the clusterofs of lcluster 0's HEAD.
    assert_eq!(
        map_synth3(&[head(1, 100, 9), nonhead(1, 1)], 50, ZMapMode::Read),
        Err(Error::Corrupted)
    );
    // clusterofs outside the lcluster.
    assert_eq!(
        map_synth3(&[head(1, 4096, 9), nonhead(1, 1)], 5000, ZMapMode::Read),
        Err(Error::Corrupted)
    );
    // CBLKCNT without big pclusters; with them (feature and advice), a 3-block pcluster.
    let cb = Z_EROFS_LI_D0_CBLKCNT | 3;
    let idx = [head(1, 0, 9), nonhead(cb, 2), nonhead(1, 1), head(1, 0, 12)];
    let d = zsynth(ZP, 1, 4 * 4096, hdr(0, 0, 0, 0), &idx);
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    // Offset 0 does not look at the CBLKCNT (one-block pclusters); lcluster 1 does.
    assert!(map_compressed(&src, &sb, &cfg, &zi, 0, ZMapMode::Read).is_ok());
    assert_eq!(
        map_compressed(&src, &sb, &cfg, &zi, 4096, ZMapMode::Read),
        Err(Error::Corrupted)
    );
    let big = Z_EROFS_ADVISE_BIG_PCLUSTER_1;
    let d = zsynth(ZP, 1, 4 * 4096, hdr(0, big, 0, 0), &idx);
    let (src, sb, cfg, inode) = zopen(d);
    assert_eq!(ZInode::read(&src, &sb, &cfg, &inode), Err(Error::Corrupted));
    let d = zsynth(
        ZP | EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER,
        1,
        4 * 4096,
        hdr(0, big, 0, 0),
        &idx,
    );
    // COMPR_CFGS shares the bit: give it an LZ4 record.
    let mut d = d;
    d[1024 + 84] = 1;
    d[1152..1154].copy_from_slice(&14u16.to_le_bytes());
    d[1156..1158].copy_from_slice(&4u16.to_le_bytes());
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    for (off, mode) in [
        (0, ZMapMode::Read),
        (5000, ZMapMode::Read),
        (0, ZMapMode::Full),
    ] {
        let e = map_compressed(&src, &sb, &cfg, &zi, off, mode).unwrap();
        assert_eq!(
            (e.logical, e.physical, e.plength),
            (0, 9 * 4096, 3 * 4096),
            "{off}"
        );
        if mode == ZMapMode::Full {
            assert_eq!(e.length, 3 * 4096);
        }
    }
    // A CBLKCNT whose next lcluster chain is bogus: first NONHEAD with delta[0] != 1.
    let idx = [head(1, 0, 9), nonhead(2, 1), nonhead(1, 1)];
    let d = zsynth(
        ZP | EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER,
        1,
        3 * 4096,
        hdr(0, big, 0, 0),
        &idx,
    );
    let mut d = d;
    d[1024 + 84] = 1;
    d[1152..1154].copy_from_slice(&14u16.to_le_bytes());
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    assert_eq!(
        map_compressed(&src, &sb, &cfg, &zi, 0, ZMapMode::Read),
        Err(Error::Corrupted)
    );
    // Compact indexes with inconsistent big pcluster advice.
    let adv = Z_EROFS_ADVISE_BIG_PCLUSTER_2;
    let mut d = zsynth(
        ZP | EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER,
        3,
        4096,
        hdr(0, adv, 0, 0),
        &[],
    );
    d[1024 + 84] = 1;
    d[1152..1154].copy_from_slice(&14u16.to_le_bytes());
    let (src, sb, cfg, inode) = zopen(d);
    assert_eq!(ZInode::read(&src, &sb, &cfg, &inode), Err(Error::Corrupted));
    // Unknown algorithm ids; HEAD2 with an algorithm the superblock does not list.
    for algs in [0x04u8, 0x40, 0xF0] {
        let d = zsynth(ZP, 1, 4096, hdr(0, 0, algs, 0), &[head(1, 0, 9)]);
        let (src, sb, cfg, inode) = zopen(d);
        assert_eq!(
            ZInode::read(&src, &sb, &cfg, &inode),
            Err(Error::Unsupported),
            "{algs:#x}"
        );
    }
    let d = zsynth(ZP, 1, 4096, hdr(0, 0, 0x10, 0), &[head(3, 0, 9)]);
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    assert_eq!(
        map_compressed(&src, &sb, &cfg, &zi, 0, ZMapMode::Read),
        Err(Error::Corrupted)
    );
    // Large lclusters for compact indexes: 2B packs need lclusters <= 4 KiB, 4B <= 16 KiB.
    let d = zsynth(
        ZP,
        3,
        1 << 20,
        hdr(0, Z_EROFS_ADVISE_COMPACTED_2B, 0, 3),
        &[],
    );
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    assert_eq!(
        map_compressed(&src, &sb, &cfg, &zi, 0, ZMapMode::Read),
        Err(Error::Corrupted)
    );
    // Uncompressed pcluster shorter than its extent (an extent over 2 lclusters, 1 block).
    assert_eq!(
        map_synth3(
            &[head(0, 0, 9), nonhead(1, 2), nonhead(2, 1)],
            8000,
            ZMapMode::Read
        ),
        Err(Error::Corrupted)
    );
    assert_eq!(
        map_synth3(
            &[head(0, 0, 9), nonhead(1, 2), nonhead(2, 1)],
            100,
            ZMapMode::Full
        ),
        Err(Error::Corrupted)
    );
    // Huge sizes: indexes past the end of the device are read errors, not panics.
    let d = zsynth(ZP, 1, i64::MAX as u64, hdr(0, 0, 0, 0), &[head(1, 0, 9)]);
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    for off in [1 << 40, i64::MAX as u64 - 1] {
        for mode in [ZMapMode::Read, ZMapMode::Full] {
            assert_eq!(
                map_compressed(&src, &sb, &cfg, &zi, off, mode),
                Err(Error::Io)
            );
        }
    }
    // Lcluster 0 is fine; the zeros after it read as PLAIN HEADs.
    assert!(map_compressed(&src, &sb, &cfg, &zi, 0, ZMapMode::Read).is_ok());
    let e = map_compressed(&src, &sb, &cfg, &zi, 0, ZMapMode::Full).unwrap();
    assert_eq!((e.logical, e.length), (0, 4096));
    let d = zsynth(
        ZP,
        3,
        i64::MAX as u64,
        hdr(0, Z_EROFS_ADVISE_COMPACTED_2B, 0, 0),
        &[],
    );
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    for off in [1 << 40, i64::MAX as u64 - 1, 0, 4096 * 100] {
        for mode in [ZMapMode::Read, ZMapMode::Full] {
            let _ = map_compressed(&src, &sb, &cfg, &zi, off, mode);
        }
    }
    // A ztailpacking inline pcluster crossing its block.
    let idx = [head(1, 0, 9), nonhead(1, 1)];
    let d = zsynth(
        ZP,
        1,
        5000,
        hdr(3000 << 16, Z_EROFS_ADVISE_INLINE_PCLUSTER, 0, 0),
        &idx,
    );
    let (src, sb, cfg, inode) = zopen(d);
    assert_eq!(ZInode::read(&src, &sb, &cfg, &inode), Err(Error::Corrupted));
    let d = zsynth(
        ZP,
        1,
        5000,
        hdr(100 << 16, Z_EROFS_ADVISE_INLINE_PCLUSTER, 0, 0),
        &idx,
    );
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    assert_eq!(
        (zi.idata_size, zi.idata_pos, zi.tailextent_headlcn),
        (100, ZIDX as u64 + 16, 0)
    );
    let e = map_compressed(&src, &sb, &cfg, &zi, 4999, ZMapMode::Read).unwrap();
    assert!(e.meta);
    // The NONHEAD case ends at the lcluster's end, past EOF (as in C).
    assert_eq!(
        (e.logical, e.length, e.physical, e.plength),
        (0, 8192, ZIDX as u64 + 16, 100)
    );
    let e = map_compressed(&src, &sb, &cfg, &zi, 100, ZMapMode::Read).unwrap();
    assert_eq!((e.logical, e.length, e.meta), (0, 4096, true));
    let e = map_compressed(&src, &sb, &cfg, &zi, 100, ZMapMode::Full).unwrap();
    assert_eq!((e.logical, e.length, e.meta), (0, 5000, true));
}

#[test]
fn synthetic_interlaced_mapping() {
    // A plain HEAD with interlaced advice maps to Algorithm::Interlaced (not for inline tails).
    let adv = Z_EROFS_ADVISE_INTERLACED_PCLUSTER;
    let d = zsynth(
        ZP,
        1,
        2 * 4096,
        hdr(0, adv, 0, 0),
        &[head(1, 0, 9), head(0, 100, 10)],
    );
    let (src, sb, cfg, inode) = zopen(d);
    let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
    let e = map_compressed(&src, &sb, &cfg, &zi, 5000, ZMapMode::Full).unwrap();
    assert_eq!(
        (e.logical, e.length, e.algorithm),
        (4196, 2 * 4096 - 4196, Algorithm::Interlaced)
    );
    let e = map_compressed(&src, &sb, &cfg, &zi, 4100, ZMapMode::Read).unwrap();
    assert_eq!(
        (e.logical, e.length, e.algorithm, e.full_mapped),
        (0, 4196, Algorithm::Lz4, true)
    );
}

// ---------------------------------------------------------------------------------------------
// Corrupted images
// ---------------------------------------------------------------------------------------------

/// Finds `name` in the root directory of `img`.
fn lookup_root(img: &ZImage, name: &[u8]) -> Inode {
    let root = img.inode(img.sb.root_nid).unwrap();
    let dir = img.read_range(&root, 0, root.size, ZMapMode::Full).unwrap();
    for block in dir.chunks(4096) {
        for de in DirBlock::new(block).unwrap().iter() {
            if de.name == name {
                return img.inode(de.nid).unwrap();
            }
        }
    }
    panic!("{} not found", String::from_utf8_lossy(name));
}

/// Reads all of `inode` from a possibly corrupted image: any result but a panic or a hang.
fn read_corrupt(data: Vec<u8>, nid: u64) -> std::result::Result<Vec<u8>, Error> {
    let img = ZImage::open_unchecked(data).map_err(ComprError::to_error)?;
    let inode = img.inode(nid)?;
    let zi = if inode.datalayout.is_compressed() {
        Some(img.zinode(&inode)?)
    } else {
        None
    };
    let r = img.read_range(&inode, 0, inode.size.min(1 << 20), ZMapMode::Full);
    let _ = img.read_range(&inode, 0, inode.size.min(64 << 10), ZMapMode::Read);
    if let Some(zi) = zi {
        for off in [
            0,
            4095,
            4096,
            70000,
            inode.size / 2,
            inode.size.saturating_sub(1),
        ] {
            let _ = map_compressed(&img.src, &img.sb, &img.cfg, &zi, off, ZMapMode::Read);
        }
    }
    r
}

#[test]
fn corrupted_compressed_images() {
    if !mkfs_available() {
        return;
    }
    let fx = zfixture(
        "zcorrupt",
        &["lz4", "lz4-legacy", "lz4hc-big16k-ztail"],
        true,
    );
    let want = fs::read(fx.src.join("t102400")).unwrap();
    for (name, data) in &fx.images {
        let img = ZImage::open(data.clone()).unwrap();
        let inode = lookup_root(&img, b"t102400");
        let nid = inode.nid;
        let zi = img.zinode(&inode).unwrap();
        let exts = img.extents(&zi).unwrap();
        let hpos = le_pos(&img, &inode);
        let nidx = inode.size.div_ceil(4096) as usize;
        let idx_end = if inode.datalayout == Layout::CompressedFull {
            hpos + 16 + 8 * nidx
        } else {
            hpos + 8 + 2 * nidx + 64
        };
        assert_eq!(read_corrupt(data.clone(), nid).unwrap(), want);
        // Every byte of the header and indexes, a few values each: never a panic or a hang.
        let mut errors = 0;
        let mut wrong = 0;
        for p in hpos..idx_end {
            for v in [
                0u8,
                0xFF,
                data[p] ^ 1,
                data[p] ^ 0x08,
                data[p] ^ 0x80,
                data[p] ^ 0x40,
            ] {
                if v == data[p] {
                    continue;
                }
                let mut d = data.clone();
                d[p] = v;
                match read_corrupt(d, nid) {
                    Ok(got) if got == want => {}
                    Ok(_) => wrong += 1,
                    Err(_) => errors += 1,
                }
            }
        }
        println!("{name}: index mutations: {errors} errors, {wrong} wrong data");
        assert!(errors > 0);
        // Pcluster data: flipped, zeroed, truncated LZ4 streams.
        let e = exts
            .iter()
            .find(|e| e.algorithm == Algorithm::Lz4 && !e.meta)
            .expect("an LZ4 extent");
        let (ps, pl) = (e.physical as usize, e.plength as usize);
        let mut zeroed = data.clone();
        zeroed[ps..ps + pl].fill(0);
        assert!(
            read_corrupt(zeroed, nid).is_err(),
            "{name}: zeroed pcluster"
        );
        for k in 0..64 {
            let mut d = data.clone();
            let p = ps + (k * 977) % pl;
            d[p] ^= 1 << (k % 8);
            let _ = read_corrupt(d, nid);
        }
        // Truncated: the stream cut short (zero padding keeps the pcluster size).
        let pc = &data[ps..ps + pl];
        let zp = img.sb.has_incompat(EROFS_FEATURE_INCOMPAT_ZERO_PADDING);
        let stream = if zp {
            strip_zero_padding(pc, 4096).unwrap().to_vec()
        } else {
            pc.to_vec()
        };
        for cut in [1usize, 5, 16, stream.len() / 2] {
            let mut d = data.clone();
            let mut newpc = vec![0u8; pl];
            if zp {
                let s = &stream[..stream.len() - cut];
                newpc[pl - s.len()..].copy_from_slice(s);
            } else {
                let l = stream.iter().rposition(|&b| b != 0).unwrap_or(0) + 1;
                let s = &stream[..l.saturating_sub(cut)];
                newpc[..s.len()].copy_from_slice(s);
            }
            d[ps..ps + pl].copy_from_slice(&newpc);
            let r = read_corrupt(d, nid);
            assert!(
                r.as_ref().ok() != Some(&want),
                "{name}: truncated by {cut} still reads right"
            );
            if zp {
                assert!(r.is_err(), "{name}: truncated by {cut}");
            }
        }
        // A pcluster past the end of the image: the HEAD's block address (full indexes) or the
        // compact pack's base address.
        let mut d = data.clone();
        if inode.datalayout == Layout::CompressedFull {
            d[hpos + 16 + 4..hpos + 16 + 8].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        } else {
            // The first 4B pack's blkaddr (4 bytes after its two entries), or the first 2B one.
            let ebase = hpos + 8;
            let initial = ((32 - ebase % 32) / 4) & 7;
            let pack_end = if initial > 0 { ebase + 8 } else { ebase + 32 };
            d[pack_end - 4..pack_end].copy_from_slice(&0xFFFF_FF00u32.to_le_bytes());
        }
        assert_eq!(
            read_corrupt(d, nid),
            Err(Error::Io),
            "{name}: pcluster past the end"
        );
        // A bad map header: unknown algorithm, absurd cluster bits, big pcluster advice.
        let mut d = data.clone();
        d[hpos + 6] = 0x07;
        assert_eq!(read_corrupt(d, nid), Err(Error::Unsupported), "{name}");
        let mut d = data.clone();
        d[hpos + 7] = 0x0F;
        assert!(read_corrupt(d, nid).is_err(), "{name}");
        if !img.sb.has_incompat(EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER) {
            let mut d = data.clone();
            d[hpos + 4] |=
                Z_EROFS_ADVISE_BIG_PCLUSTER_1 as u8 | Z_EROFS_ADVISE_BIG_PCLUSTER_2 as u8;
            assert_eq!(read_corrupt(d, nid), Err(Error::Corrupted), "{name}");
        }
        // i_size overflowing what the indexes describe (compact inode size is 32 bits).
        let ipos = img.sb.nid_pos(nid).unwrap() as usize;
        let mut d = data.clone();
        if inode.extended {
            d[ipos + 8..ipos + 16].copy_from_slice(&(i64::MAX as u64).to_le_bytes());
        } else {
            d[ipos + 8..ipos + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        let _ = read_corrupt(d, nid);
        // CBLKCNT in a file without big pclusters (full indexes): the first NONHEAD.
        if inode.datalayout == Layout::CompressedFull
            && !img.sb.has_incompat(EROFS_FEATURE_INCOMPAT_BIG_PCLUSTER)
        {
            let i = (0..nidx)
                .find(|i| u16::from_le_bytes([data[hpos + 16 + 8 * i], 0]) & 3 == 2)
                .unwrap();
            let mut d = data.clone();
            let p = hpos + 16 + 8 * i + 4;
            d[p..p + 2].copy_from_slice(&(Z_EROFS_LI_D0_CBLKCNT | 2).to_le_bytes());
            let img2 = ZImage::open_unchecked(d).unwrap();
            let zi2 = img2.zinode(&inode).unwrap();
            assert_eq!(
                map_compressed(
                    &img2.src,
                    &img2.sb,
                    &img2.cfg,
                    &zi2,
                    i as u64 * 4096,
                    ZMapMode::Read
                ),
                Err(Error::Corrupted),
                "{name}"
            );
        }
    }
}

#[test]
fn compressed_mkfs_trees_with_odd_files() {
    // A few odd trees: one file only, a file exactly one pcluster, many tiny files.
    if !mkfs_available() {
        return;
    }
    let tmp = TempDir::new("zodd");
    for (i, files) in [
        vec![("only".to_string(), text_bytes(1, 1 << 16))],
        vec![("z".to_string(), vec![0u8; 4096 * 3 + 1])],
        (0..40u64)
            .map(|k| (format!("f{k}"), prng_bytes(k, k as usize * 33)))
            .collect::<Vec<_>>(),
    ]
    .into_iter()
    .enumerate()
    {
        let src = tmp.0.join(format!("src{i}"));
        fs::create_dir(&src).unwrap();
        for (n, d) in &files {
            fs::write(src.join(n), d).unwrap();
        }
        for args in [
            &["-zlz4hc", "-Eztailpacking"][..],
            &["-zlz4", "-Elegacy-compress"],
            &["-zlz4", "-C8192"],
        ] {
            let (data, _) = mkfs(&tmp.0, &src, args, false);
            let img = ZImage::open(data).unwrap();
            assert_eq!(zwalk(&img, img.sb.root_nid, &src, 0), files.len());
        }
    }
}

#[test]
fn synthetic_partial_reference() {
    // A pcluster holding 12 KiB of data of which the extent (lclusters 0 and 1) uses 8 KiB
    // (mkfs.erofs's dedupe writes such references; 1.5 cannot): with Z_EROFS_LI_PARTIAL_REF the
    // extent decodes partially; without it, full decoding of the longer block fails.
    let data = text_bytes(8, 3072).repeat(4);
    let c = lz4_compress(&data);
    assert!(c.len() < 4096);
    for (advise, partial) in [(1u16 | Z_EROFS_LI_PARTIAL_REF, true), (1, false)] {
        let idx = [head(advise, 0, 9), nonhead(1, 1), head(0, 0, 10)];
        let mut d = zsynth(ZP, 1, 3 * 4096, hdr(0, 0, 0, 0), &idx);
        d[10 * 4096 - c.len()..10 * 4096].copy_from_slice(&c);
        let (src, sb, cfg, inode) = zopen(d.clone());
        let zi = ZInode::read(&src, &sb, &cfg, &inode).unwrap();
        for (off, mode) in [
            (100, ZMapMode::Full),
            (5000, ZMapMode::Read),
            (4096, ZMapMode::Full),
        ] {
            let e = map_compressed(&src, &sb, &cfg, &zi, off, mode).unwrap();
            assert_eq!(
                (e.logical, e.length, e.partial_ref),
                (0, 8192, partial),
                "{off}"
            );
            assert_eq!(
                (e.physical, e.plength, e.algorithm),
                (9 * 4096, 4096, Algorithm::Lz4)
            );
            let mut out = vec![0u8; 8192];
            let r = decompress_extent(&sb, &e, &d[9 * 4096..10 * 4096], &mut out);
            if partial || !e.full_mapped {
                r.unwrap();
                assert_eq!(out, data[..8192]);
            } else {
                assert_eq!(r, Err(Error::Corrupted));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// DEFLATE and Zstandard (images recompressed by the selftests' ztranscode.py)
// ---------------------------------------------------------------------------------------------

/// A decoder for [`decompress_extent_with`]'s rules: it checks what it is given (the pcluster
/// without its zero padding, the configured Zstandard window) and "decodes" by copying the
/// extent's known bytes, reporting the stream end the test chose. Real DEFLATE and Zstandard
/// decoding is the kernel's (22_compressed_lz4 in the VM).
struct KnownBytes<'a> {
    /// The file bytes from the extent's start.
    want: &'a [u8],
    /// The compressed data's first byte, as laid out by ztranscode.py.
    first: u8,
    /// What `deflate` reports as the stream end.
    stream_end: bool,
    /// Bytes to leave out of the output (a stream that ends early).
    short: usize,
    /// The window `zstd` must be given.
    window: u32,
}

impl KnownBytes<'_> {
    fn fill(&self, src: &[u8], dst: &mut [u8]) -> usize {
        assert_eq!(src.first(), Some(&self.first), "zero padding not skipped");
        let n = dst.len().saturating_sub(self.short);
        dst[..n].copy_from_slice(&self.want[..n]);
        n
    }
}

impl Decoder for KnownBytes<'_> {
    fn lz4(&mut self, _src: &[u8], _dst: &mut [u8], _mode: Lz4Mode) -> Result<usize> {
        panic!("an LZ4 extent in a recompressed image");
    }

    fn deflate(&mut self, src: &[u8], dst: &mut [u8]) -> Result<Inflated> {
        let produced = self.fill(src, dst);
        Ok(Inflated { produced, stream_end: self.stream_end })
    }

    fn zstd(&mut self, src: &[u8], dst: &mut [u8], max_window: u32) -> Result<usize> {
        assert_eq!(max_window, self.window);
        Ok(self.fill(src, dst))
    }
}

#[test]
fn deflate_and_zstd_images() {
    if !mkfs_available() || !have("zstd") || !have("python3") {
        println!("NOTE: mkfs.erofs, zstd or python3 missing: skipped");
        return;
    }
    let tmp = TempDir::new("ztrans");
    let src = tmp.0.join("src");
    fs::create_dir(&src).expect("mkdir");
    let text: Vec<u8> = (0..300_000u32)
        .flat_map(|i| format!("line {} of {}\n", i.wrapping_mul(2_654_435_761) % 1_000_003, i / 7).into_bytes())
        .take(300_001)
        .collect();
    fs::write(src.join("text"), &text).expect("write");
    let (lz4, _) = mkfs(&tmp.0, &src, &["-zlz4hc", "-C16384"], false);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testing/selftests/erofs_rs/ztranscode.py");
    let supported = (1 << Z_EROFS_COMPRESSION_LZ4)
        | (1 << Z_EROFS_COMPRESSION_DEFLATE)
        | (1 << Z_EROFS_COMPRESSION_ZSTD);
    for (alg, id) in [("deflate", Z_EROFS_COMPRESSION_DEFLATE), ("zstd", Z_EROFS_COMPRESSION_ZSTD)] {
        let path = tmp.0.join(format!("{alg}.img"));
        fs::write(&path, &lz4).expect("write");
        crate::tests::run(Command::new("python3").arg(&script).arg(&path).arg(&src).arg(alg));
        let data = fs::read(&path).expect("read");
        let sb = SuperBlock::parse(&data[1024..1152]).unwrap();
        sb.verify_checksum(&data).unwrap();
        let vs = VecSource(data.clone());
        // A reader without the algorithm refuses it; one with it reads its record.
        assert_eq!(ComprConfig::read(&vs, &sb), Err(ComprError::UnsupportedAlgorithm(id)));
        let cfg = ComprConfig::read_with(&vs, &sb, supported).unwrap();
        assert_eq!(cfg.algorithms, 1 << id, "{alg}");
        if id == Z_EROFS_COMPRESSION_DEFLATE {
            assert_eq!(cfg.deflate_windowbits, 15);
        } else {
            assert!(cfg.zstd_window() >= 16384 && cfg.zstd_window() <= 1 << 20, "{cfg:?}");
        }
        // Records C refuses (the record is at 1152: length, then the config bytes).
        for (byte, value, want) in [
            (2usize, 16u8, ComprError::Config(id, Error::Unsupported)), // DEFLATE windowbits
            (0, 5, ComprError::Config(id, Error::Corrupted)),           // a 5-byte record
        ] {
            let mut d = data.clone();
            d[1152 + byte] = value;
            let got = ComprConfig::read_with(&VecSource(d), &sb, supported);
            if id == Z_EROFS_COMPRESSION_DEFLATE || byte == 0 {
                assert_eq!(got, Err(want), "{alg}: byte {byte} = {value}");
            }
        }
        if id == Z_EROFS_COMPRESSION_ZSTD {
            for (byte, value) in [(2usize, 1u8), (3, 11)] {
                // format 1, window log 11 (2 MiB)
                let mut d = data.clone();
                d[1152 + byte] = value;
                assert_eq!(
                    ComprConfig::read_with(&VecSource(d), &sb, supported),
                    Err(ComprError::Config(id, Error::Corrupted)),
                    "byte {byte} = {value}"
                );
            }
        }
        // Every extent of the file: mapped with the algorithm, decoded under C's rules.
        let img = ZImage { src: vs, sb, cfg, st: ZStats::default() };
        let inode = lookup_root(&img, b"text");
        assert!(inode.datalayout.is_compressed());
        let zi = img.zinode(&inode).unwrap();
        let (mut off, mut compressed) = (0u64, 0);
        while off < inode.size {
            let e = img.map(&zi, off, ZMapMode::Full).unwrap();
            let want = &text[e.logical as usize..];
            let len = (e.length.min(inode.size - e.logical)) as usize;
            if e.algorithm.is_compressed() {
                assert_eq!(e.algorithm, if id == 2 { Algorithm::Deflate } else { Algorithm::Zstd });
                compressed += 1;
                let pcl = img.pcluster(&e).unwrap();
                let lead = pcl.iter().position(|&b| b != 0).unwrap();
                assert!(lead < 4096, "padding past the first block");
                let mut dec = KnownBytes {
                    want,
                    first: pcl[lead],
                    stream_end: true,
                    short: 0,
                    window: cfg.zstd_window(),
                };
                let mut out = vec![0u8; len];
                decompress_extent_with(&mut dec, &img.sb, &cfg, &e, pcl, &mut out).unwrap();
                assert_eq!(&out[..], &want[..len]);
                // Output short of the extent: an error for both.
                dec.short = 1;
                assert_eq!(
                    decompress_extent_with(&mut dec, &img.sb, &cfg, &e, pcl, &mut out),
                    Err(Error::Corrupted)
                );
                dec.short = 0;
                if id == Z_EROFS_COMPRESSION_DEFLATE && len > 1 && e.full_mapped {
                    // DEFLATE: the whole extent needs the stream's end; a partial decode
                    // does not.
                    dec.stream_end = false;
                    assert_eq!(
                        decompress_extent_with(&mut dec, &img.sb, &cfg, &e, pcl, &mut out),
                        Err(Error::Corrupted)
                    );
                    decompress_extent_with(&mut dec, &img.sb, &cfg, &e, pcl, &mut out[..len - 1])
                        .unwrap();
                }
            }
            off = e.logical + e.length;
        }
        assert!(compressed > 5, "{alg}: {compressed} compressed extents");
        // The format layer's own decoder has neither algorithm.
        let e = img.map(&zi, 0, ZMapMode::Full).unwrap();
        if e.algorithm.is_compressed() {
            let mut out = vec![0u8; 16];
            assert_eq!(
                decompress_extent(&img.sb, &e, img.pcluster(&e).unwrap(), &mut out),
                Err(Error::Unsupported)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MicroLZMA (images recompressed by ztranscode.py lzma), decoded for real with liblzma
// ---------------------------------------------------------------------------------------------

/// `lzma_stream` of liblzma 5.4 (`lzma/base.h`); all zero is `LZMA_STREAM_INIT`.
#[repr(C)]
struct LzmaStream {
    next_in: *const u8,
    avail_in: usize,
    total_in: u64,
    next_out: *mut u8,
    avail_out: usize,
    total_out: u64,
    allocator: *const core::ffi::c_void,
    internal: *mut core::ffi::c_void,
    reserved_ptr: [*mut core::ffi::c_void; 4],
    seek_pos: u64,
    reserved_int2: u64,
    reserved_int3: usize,
    reserved_int4: usize,
    reserved_enum: [u32; 2],
}

#[link(name = "lzma")]
extern "C" {
    fn lzma_microlzma_decoder(
        strm: *mut LzmaStream,
        comp_size: u64,
        uncomp_size: u64,
        uncomp_size_is_exact: u8,
        dict_size: u32,
    ) -> core::ffi::c_int;
    fn lzma_code(strm: *mut LzmaStream, action: core::ffi::c_int) -> core::ffi::c_int;
    fn lzma_end(strm: *mut LzmaStream);
}

/// liblzma's MicroLZMA decoder behind [`Decoder::lzma`], with the kernel decoder's contract
/// (the stream is all of `src`; `exact`: the stream ends exactly with `dst`). It also checks
/// that it is given the configured dictionary size.
struct Liblzma {
    dict_size: u32,
    calls: usize,
}

impl Decoder for Liblzma {
    fn lz4(&mut self, _src: &[u8], _dst: &mut [u8], _mode: Lz4Mode) -> Result<usize> {
        panic!("an LZ4 extent in a recompressed image");
    }

    fn lzma(&mut self, src: &[u8], dst: &mut [u8], exact: bool, dict_size: u32) -> Result<usize> {
        assert_eq!(dict_size, self.dict_size);
        self.calls += 1;
        // SAFETY (test code): a zeroed lzma_stream is LZMA_STREAM_INIT; the buffers are the
        // slices, valid for their lengths; lzma_end frees what the decoder allocated.
        unsafe {
            let mut s: LzmaStream = std::mem::zeroed();
            if lzma_microlzma_decoder(&mut s, src.len() as u64, dst.len() as u64, exact as u8, dict_size) != 0 {
                return Err(Error::Corrupted);
            }
            s.next_in = src.as_ptr();
            s.avail_in = src.len();
            s.next_out = dst.as_mut_ptr();
            s.avail_out = dst.len();
            let ret = lzma_code(&mut s, 3); // LZMA_FINISH
            let out = s.total_out as usize;
            lzma_end(&mut s);
            if ret == 1 { Ok(out) } else { Err(Error::Corrupted) } // LZMA_STREAM_END
        }
    }
}

#[test]
fn microlzma_images() {
    if !mkfs_available() || !have("python3") {
        println!("NOTE: mkfs.erofs or python3 missing: skipped");
        return;
    }
    let tmp = TempDir::new("zlzma");
    let src = tmp.0.join("src");
    let selftests = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testing/selftests/erofs_rs");
    crate::tests::run(Command::new("python3").arg(selftests.join("treegen.py")).arg("lzmafit").arg(&src));
    let (lz4, _) = mkfs(&tmp.0, &src, &["-zlz4hc", "-C16384"], false);
    let path = tmp.0.join("lzma.img");
    fs::write(&path, &lz4).expect("write");
    crate::tests::run(Command::new("python3").arg(selftests.join("ztranscode.py")).arg(&path).arg(&src).arg("lzma"));
    let data = fs::read(&path).expect("read");
    let sb = SuperBlock::parse(&data[1024..1152]).unwrap();
    sb.verify_checksum(&data).unwrap();
    let vs = VecSource(data.clone());
    let id = Z_EROFS_COMPRESSION_LZMA;
    let all = (1 << Z_EROFS_COMPRESSION_LZ4) | (1 << id);
    assert_eq!(ComprConfig::read(&vs, &sb), Err(ComprError::UnsupportedAlgorithm(id)));
    let cfg = ComprConfig::read_with(&vs, &sb, all).unwrap();
    assert_eq!((cfg.algorithms, cfg.lzma_dict_size), (1 << id, 16384));
    // Records C refuses (z_erofs_load_lzma_config): the record is at 1152, its length first.
    for (at, bytes) in [
        (0usize, &[13u8, 0][..]),         // shorter than struct z_erofs_lzma_cfgs
        (6, &[1, 0][..]),                 // format 1
        (2, &[0, 8, 0, 0][..]),           // dictionary of 2 KiB
        (2, &[1, 0, 0x80, 0][..]),        // dictionary of 8 MiB + 1
    ] {
        let mut d = data.clone();
        d[1152 + at..1152 + at + bytes.len()].copy_from_slice(bytes);
        let got = ComprConfig::read_with(&VecSource(d), &sb, all);
        assert_eq!(got, Err(ComprError::Config(id, Error::Corrupted)), "bytes {bytes:?} at {at}");
    }
    // The limits themselves are accepted.
    for (bytes, dict) in [([0u8, 0x10, 0, 0], 4096u32), ([0, 0, 0x80, 0], 8 << 20)] {
        let mut d = data.clone();
        d[1154..1158].copy_from_slice(&bytes);
        let got = ComprConfig::read_with(&VecSource(d), &sb, all).map(|c| c.lzma_dict_size);
        assert_eq!(got, Ok(dict));
    }
    // Every file: each extent decoded for real, whole and (a prefix) partially.
    let img = ZImage { src: vs, sb, cfg, st: ZStats::default() };
    let mut dec = Liblzma { dict_size: 16384, calls: 0 };
    let mut files = 0;
    for entry in fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        let want = fs::read(entry.path()).unwrap();
        let inode = lookup_root(&img, entry.file_name().as_encoded_bytes());
        if !inode.datalayout.is_compressed() {
            continue;
        }
        files += 1;
        let zi = img.zinode(&inode).unwrap();
        let mut off = 0u64;
        while off < inode.size {
            let e = img.map(&zi, off, ZMapMode::Full).unwrap();
            let len = (e.length.min(inode.size - e.logical)) as usize;
            let want = &want[e.logical as usize..][..len];
            let mut out = vec![0u8; len];
            if e.algorithm.is_compressed() {
                assert_eq!(e.algorithm, Algorithm::Lzma);
                let pcl = img.pcluster(&e).unwrap();
                decompress_extent_with(&mut dec, &img.sb, &cfg, &e, pcl, &mut out).unwrap();
                assert_eq!(out, want, "{:?} at {}", entry.file_name(), e.logical);
                // A prefix: decoding stops when the output is full.
                let half = len / 2;
                decompress_extent_with(&mut dec, &img.sb, &cfg, &e, pcl, &mut out[..half]).unwrap();
                assert_eq!(out[..half], want[..half]);
                // The format layer's own decoder has no MicroLZMA.
                assert_eq!(decompress_extent(&img.sb, &e, pcl, &mut out), Err(Error::Unsupported));
                // A corrupted stream: an error or other bytes, never a panic.
                let mut bad = pcl.to_vec();
                let mid = bad.len() / 2;
                bad[mid] ^= 0x55;
                match decompress_extent_with(&mut dec, &img.sb, &cfg, &e, &bad, &mut out) {
                    Err(err) => assert_eq!(err, Error::Corrupted),
                    Ok(()) => assert_ne!(out, want),
                }
            }
            off = e.logical + e.length;
        }
    }
    assert!(files >= 3 && dec.calls > 60, "{files} files, {} decodes", dec.calls);
}
