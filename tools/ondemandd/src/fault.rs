// SPDX-License-Identifier: GPL-2.0
//! Fault injection (`--fault KIND[:BLOB]`): make the daemon misbehave on purpose, the way a buggy
//! or hostile daemon could, so tests can check that the kernel side copes (the reader gets an
//! error or can be killed, nothing hangs, umount works).
//!
//! Each fault applies to every cookie, or only to the blob whose cookie key is `BLOB`. The
//! decisions (which fault applies, what to write instead of the requested data) are pure
//! functions here; `daemon.rs` carries them out.

use crate::blobs::BlobRead;
use crate::cache::{pwrite_all, AlignedBuf};
use crate::proto::{fill_range, PAGE};
use std::io;
use std::os::fd::BorrowedFd;

/// How far past the end of the blob `write-past` writes.
pub const PAST_LEN: u64 = 64 * 1024;
/// The byte `write-past` fills its extra pages with.
pub const PAST_BYTE: u8 = 0xee;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// OPEN: fail the cookie with `copen <id>,-EIO`.
    RefuseOpen,
    /// READ: complete without writing anything.
    ReadNoData,
    /// READ: write the requested range except its last page, then complete.
    ShortWrite,
    /// READ: write at an unaligned offset, then with an unaligned length, then complete.
    MisalignedWrite,
    /// READ: serve the request, also write [`PAST_LEN`] bytes past the end of the blob.
    WritePast,
    /// READ: close the object's anon fd instead of answering; the READ can never be completed.
    CloseAnonFd,
    /// READ: never answer.
    NoAnswer,
    /// READ: exit at once, closing the devnode with the READ pending.
    ExitOnRead,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::RefuseOpen,
        Kind::ReadNoData,
        Kind::ShortWrite,
        Kind::MisalignedWrite,
        Kind::WritePast,
        Kind::CloseAnonFd,
        Kind::NoAnswer,
        Kind::ExitOnRead,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::RefuseOpen => "refuse-open",
            Kind::ReadNoData => "read-no-data",
            Kind::ShortWrite => "short-write",
            Kind::MisalignedWrite => "misaligned-write",
            Kind::WritePast => "write-past",
            Kind::CloseAnonFd => "close-anon-fd",
            Kind::NoAnswer => "no-answer",
            Kind::ExitOnRead => "exit-on-read",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Does this fault act on READ requests (all but `refuse-open`)?
    pub fn on_read(self) -> bool {
        self != Kind::RefuseOpen
    }
}

/// One `--fault` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: Kind,
    /// Only the cookie with this key; None: every cookie.
    pub blob: Option<Vec<u8>>,
}

impl Fault {
    /// Parses `KIND` or `KIND:BLOB`.
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let (kind, blob) = match spec.split_once(':') {
            Some((k, b)) => (k, Some(b)),
            None => (spec, None),
        };
        let kind = Kind::parse(kind).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
            format!("bad --fault {spec:?}: kinds are {}", names.join(", "))
        })?;
        if blob == Some("") {
            return Err(format!("bad --fault {spec:?}: empty blob name"));
        }
        Ok(Fault {
            kind,
            blob: blob.map(|b| b.as_bytes().to_vec()),
        })
    }

    fn applies_to(&self, key: &[u8]) -> bool {
        self.blob.as_deref().is_none_or(|b| b == key)
    }

    /// Could both faults apply to one cookie?
    fn overlaps(&self, other: &Fault) -> bool {
        match (&self.blob, &other.blob) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.blob {
            Some(b) => write!(f, "{}:{}", self.kind.name(), String::from_utf8_lossy(b)),
            None => f.write_str(self.kind.name()),
        }
    }
}

/// The faults in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults(Vec<Fault>);

impl Faults {
    /// Adds a fault. Two READ faults that could hit the same cookie are refused (which one
    /// would win is not obvious), as is the same fault twice.
    pub fn add(&mut self, f: Fault) -> Result<(), String> {
        for g in &self.0 {
            let clash = if f.kind.on_read() {
                g.kind.on_read() && f.overlaps(g)
            } else {
                g.kind == f.kind && f.overlaps(g)
            };
            if clash {
                return Err(format!("--fault {f} conflicts with --fault {g}"));
            }
        }
        self.0.push(f);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Fault> {
        self.0.iter()
    }

    /// Should the OPEN of cookie `key` be refused?
    pub fn refuse_open(&self, key: &[u8]) -> bool {
        self.0
            .iter()
            .any(|f| f.kind == Kind::RefuseOpen && f.applies_to(key))
    }

    /// The fault to inject into a READ on the object of cookie `key`, if any.
    pub fn on_read(&self, key: &[u8]) -> Option<Kind> {
        self.0
            .iter()
            .find(|f| f.kind.on_read() && f.applies_to(key))
            .map(|f| f.kind)
    }
}

/// Where the bytes of a [`Piece`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The blob from this offset on (zeros past its end).
    Blob(u64),
    /// [`PAST_BYTE`] repeated.
    Garbage,
}

/// One write into the cache file: `len` bytes at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub at: u64,
    pub len: u64,
    pub what: Source,
}

/// The writes a write fault makes for a READ of `[off, off + len)` of a blob of `size` bytes
/// (`window` as for a normal fill). Empty for `read-no-data` and for the faults that do not
/// write at all.
pub fn write_plan(kind: Kind, off: u64, len: u64, size: u64, window: u64) -> Vec<Piece> {
    let blob = |at: u64, len: u64| Piece {
        at,
        len,
        what: Source::Blob(at),
    };
    match kind {
        Kind::ShortWrite => match fill_range(off, len, size, 0) {
            // Whole pages of the request but the last one: never all that was asked.
            Some((s, e)) if e - s > PAGE => {
                let short = (e - s).div_ceil(PAGE).saturating_sub(1) * PAGE;
                vec![blob(s, short)]
            }
            _ => vec![],
        },
        Kind::MisalignedWrite => match fill_range(off, len, size, 0) {
            Some((s, e)) => {
                let n = (e - s).next_multiple_of(PAGE);
                vec![
                    // the right data one byte off: cachefiles refuses unaligned offsets
                    Piece {
                        at: s + 1,
                        len: n,
                        what: Source::Blob(s),
                    },
                    // aligned offset, length one byte short of a page: direct I/O refuses it
                    blob(s, n - 1),
                ]
            }
            None => vec![],
        },
        Kind::WritePast => {
            let mut v: Vec<Piece> = fill_range(off, len, size, window)
                .map(|(s, e)| blob(s, (e - s).next_multiple_of(PAGE)))
                .into_iter()
                .collect();
            if let Some(at) = size.checked_next_multiple_of(PAGE) {
                v.push(Piece {
                    at,
                    len: PAST_LEN,
                    what: Source::Garbage,
                });
            }
            v
        }
        _ => vec![],
    }
}

/// Carries out one [`Piece`] with pwrite() on the anon fd, in pieces of at most `buf.len()`
/// bytes (each piece keeps the alignment of the whole). Returns the bytes written.
pub fn write_piece(
    fd: BorrowedFd<'_>,
    blob: &dyn BlobRead,
    p: &Piece,
    buf: &mut AlignedBuf,
) -> io::Result<u64> {
    let buf = buf.as_mut_slice();
    let mut done = 0u64;
    while done < p.len {
        let n = usize::try_from(p.len - done).map_or(buf.len(), |r| r.min(buf.len()));
        let chunk = &mut buf[..n];
        match p.what {
            Source::Garbage => chunk.fill(PAST_BYTE),
            Source::Blob(from) => {
                let pos = from.saturating_add(done);
                let avail = usize::try_from(blob.size().saturating_sub(pos)).unwrap_or(usize::MAX);
                let have = avail.min(n);
                blob.read_at(&mut chunk[..have], pos)?;
                chunk[have..].fill(0);
            }
        }
        pwrite_all(fd, chunk, p.at.saturating_add(done))?;
        done += n as u64;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds_and_blobs() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.name()), Some(k));
            assert_eq!(
                Fault::parse(k.name()),
                Ok(Fault {
                    kind: k,
                    blob: None
                })
            );
        }
        assert_eq!(
            Fault::parse("no-answer:blob1"),
            Ok(Fault {
                kind: Kind::NoAnswer,
                blob: Some(b"blob1".to_vec())
            })
        );
        // blob names may contain ':' (sha256:...): only the first one separates
        assert_eq!(
            Fault::parse("short-write:sha256:ab").map(|f| f.blob),
            Ok(Some(b"sha256:ab".to_vec()))
        );
        assert_eq!(
            Fault::parse("write-past:x").unwrap().to_string(),
            "write-past:x"
        );
        for bad in ["", "nope", "no-answer:", "NO-ANSWER", ":blob1", "no_answer"] {
            let e = Fault::parse(bad).unwrap_err();
            assert!(e.contains("--fault"), "{bad}: {e}");
        }
        assert!(Fault::parse("nope").unwrap_err().contains("exit-on-read"));
    }

    #[test]
    fn selects_by_blob_and_refuses_conflicts() {
        let mut f = Faults::default();
        assert!(f.is_empty());
        f.add(Fault::parse("refuse-open:meta").unwrap()).unwrap();
        f.add(Fault::parse("no-answer:blob1").unwrap()).unwrap();
        f.add(Fault::parse("short-write:blob2").unwrap()).unwrap();
        assert!(f.refuse_open(b"meta"));
        assert!(!f.refuse_open(b"blob1"));
        assert_eq!(f.on_read(b"blob1"), Some(Kind::NoAnswer));
        assert_eq!(f.on_read(b"blob2"), Some(Kind::ShortWrite));
        assert_eq!(f.on_read(b"meta"), None);
        // a READ fault for every blob would clash with the per-blob ones
        assert!(f.add(Fault::parse("exit-on-read").unwrap()).is_err());
        assert!(f.add(Fault::parse("read-no-data:blob1").unwrap()).is_err());
        assert!(f.add(Fault::parse("refuse-open:meta").unwrap()).is_err());
        // refuse-open does not clash with READ faults
        f.add(Fault::parse("refuse-open:blob1").unwrap()).unwrap();
        assert!(f.refuse_open(b"blob1"));
        assert_eq!(f.iter().count(), 4);

        let mut all = Faults::default();
        all.add(Fault::parse("close-anon-fd").unwrap()).unwrap();
        assert_eq!(all.on_read(b"anything"), Some(Kind::CloseAnonFd));
        assert!(!all.refuse_open(b"anything"));
    }

    #[test]
    fn plans() {
        const M: u64 = 1 << 20;
        let blob = |at, len| Piece {
            at,
            len,
            what: Source::Blob(at),
        };
        // short-write: the request but its last page, whatever the window
        assert_eq!(
            write_plan(Kind::ShortWrite, 4096, 3 * 4096, M, M),
            vec![blob(4096, 8192)]
        );
        assert_eq!(
            write_plan(Kind::ShortWrite, 100, 5000, M, 0),
            vec![blob(0, 4096)]
        );
        assert_eq!(write_plan(Kind::ShortWrite, 4096, 4096, M, M), vec![]);
        // the last, partial page of a blob is the one left out
        assert_eq!(
            write_plan(Kind::ShortWrite, 0, M, 9000, 0),
            vec![blob(0, 8192)]
        );
        assert_eq!(write_plan(Kind::ShortWrite, 9000, 10, 9000, 0), vec![]);

        // misaligned-write: one byte off, then one byte short
        assert_eq!(
            write_plan(Kind::MisalignedWrite, 5000, 10, M, M),
            vec![
                Piece {
                    at: 4097,
                    len: 4096,
                    what: Source::Blob(4096)
                },
                blob(4096, 4095)
            ]
        );
        for p in write_plan(Kind::MisalignedWrite, 0, 3 * 4096 + 7, M, 0) {
            assert!(p.at % PAGE != 0 || p.len % PAGE != 0, "{p:?} is aligned");
        }

        // write-past: the normal fill, then garbage after the blob's last page
        assert_eq!(
            write_plan(Kind::WritePast, 8200, 10, 9000, M),
            vec![
                blob(8192, 4096),
                Piece {
                    at: 12288,
                    len: PAST_LEN,
                    what: Source::Garbage
                }
            ]
        );
        assert_eq!(write_plan(Kind::WritePast, 0, 10, 3 * M, M)[0], blob(0, M));
        // kinds that write nothing
        for k in [
            Kind::ReadNoData,
            Kind::NoAnswer,
            Kind::CloseAnonFd,
            Kind::ExitOnRead,
            Kind::RefuseOpen,
        ] {
            assert_eq!(write_plan(k, 0, 4096, M, M), vec![], "{k:?}");
        }
        // no overflow near the top of the range
        assert_eq!(
            write_plan(Kind::WritePast, u64::MAX - 10, 5, u64::MAX, 0).len(),
            1
        );
    }

    #[test]
    fn writes_pieces() {
        use crate::blobs::{tests::TempDir, Blob};
        use std::os::fd::AsFd;
        let d = TempDir::new("fault");
        let data: Vec<u8> = (0..9000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(d.0.join("blob"), &data).unwrap();
        let b = Blob::open(d.0.join("blob")).unwrap();
        let out = std::fs::File::create(d.0.join("cache")).unwrap();
        // a small buffer: pieces are split
        let mut buf = AlignedBuf::new(4096).unwrap();
        for p in write_plan(Kind::WritePast, 8200, 10, b.size, 1 << 20) {
            let n = write_piece(out.as_fd(), &b, &p, &mut buf).unwrap();
            assert_eq!(n, p.len);
        }
        let got = std::fs::read(d.0.join("cache")).unwrap();
        assert_eq!(got.len() as u64, 12288 + PAST_LEN);
        assert_eq!(&got[8192..9000], &data[8192..]);
        assert!(got[9000..12288].iter().all(|&x| x == 0));
        assert!(got[12288..].iter().all(|&x| x == PAST_BYTE));
        // an unaligned piece from the blob lands where asked on a plain file
        let p = Piece {
            at: 1,
            len: 10,
            what: Source::Blob(100),
        };
        assert_eq!(write_piece(out.as_fd(), &b, &p, &mut buf).unwrap(), 10);
        let got = std::fs::read(d.0.join("cache")).unwrap();
        assert_eq!(&got[1..11], &data[100..110]);
    }
}
