// SPDX-License-Identifier: GPL-2.0
//! `erofs-ondemandd fetch --source SOURCE KEY [--out FILE] [--offset N] [--length N]`: fetches
//! one blob (or a range of it) through the same blob sources the daemon uses, without the
//! kernel, and checks the digest the key names when the whole blob was fetched. For operators
//! debugging a source configuration (URL, repository, credentials, redirects).

use crate::blobs::BlobStore;
use crate::cache::CHUNK;
use crate::digest::{hex, key_digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to fetch.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct What {
    pub key: String,
    /// Where the bytes go ("-": stdout); None: nowhere (just fetch and check).
    pub out: Option<PathBuf>,
    pub offset: Option<u64>,
    pub length: Option<u64>,
}

/// The outcome, for the exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Whole blob, digest matched.
    Verified,
    /// Fetched, but nothing to verify (a range, or a key naming no digest).
    Unverified,
    /// Whole blob, digest did not match.
    Mismatch,
}

/// Where fetched data goes, and (for a file) its `.part` and final paths.
type Sink = (Box<dyn Write>, Option<(PathBuf, PathBuf)>);

fn part_path(p: &Path) -> PathBuf {
    let mut n = p.file_name().unwrap_or_default().to_os_string();
    n.push(".part");
    p.with_file_name(n)
}

/// Fetches and reports on `status` (one line each: size and location, then the digest
/// status). The data goes to `what.out` (written to `FILE.part`, renamed when complete and
/// not mismatched). Errors (lookup, fetch, write) are returned as messages.
pub fn run(store: &dyn BlobStore, what: &What, status: &mut dyn Write) -> Result<Outcome, String> {
    let key = what.key.as_bytes();
    let blob = store
        .open(key)
        .map_err(|e| format!("{:?}: {e}", what.key))?;
    let size = blob.size();
    let off = what.offset.unwrap_or(0);
    let len = match what.length {
        Some(l) => l,
        None => size.saturating_sub(off),
    };
    let end = off
        .checked_add(len)
        .filter(|&e| e <= size)
        .ok_or_else(|| format!("range {off}+{len} is past the blob's {size} bytes"))?;
    let whole = off == 0 && end == size;
    let w = |status: &mut dyn Write, s: String| {
        let _ = writeln!(status, "{s}");
    };
    w(
        status,
        format!(
            "{}: {size} bytes at {}{}",
            what.key,
            blob.location(),
            if whole {
                String::new()
            } else {
                format!("; fetching bytes {off}..{end}")
            }
        ),
    );
    let mut sink: Option<Sink> = match &what.out {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some((Box::new(std::io::stdout().lock()), None)),
        Some(p) => {
            let part = part_path(p);
            let f = std::fs::File::create(&part)
                .map_err(|e| format!("--out {}: {e}", part.display()))?;
            Some((
                Box::new(std::io::BufWriter::new(f)),
                Some((part, p.clone())),
            ))
        }
    };
    let res = (|| -> Result<Outcome, String> {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut pos = off;
        let t = std::time::Instant::now();
        while pos < end {
            let n = (end - pos).min(CHUNK as u64) as usize;
            blob.read_at(&mut buf[..n], pos)
                .map_err(|e| format!("fetch at {pos}: {e}"))?;
            h.update(&buf[..n]);
            if let Some((out, _)) = &mut sink {
                out.write_all(&buf[..n])
                    .map_err(|e| format!("writing the data: {e}"))?;
            }
            pos += n as u64;
        }
        if let Some((out, _)) = &mut sink {
            out.flush().map_err(|e| format!("writing the data: {e}"))?;
        }
        let got = h.finish();
        let took = t.elapsed();
        let outcome = match (whole, key_digest(key)) {
            (true, Some(want)) if want == got => {
                w(
                    status,
                    format!(
                        "digest sha256:{}: verified ({len} bytes in {took:?})",
                        hex(&got)
                    ),
                );
                Outcome::Verified
            }
            (true, Some(want)) => {
                w(
                    status,
                    format!(
                        "digest MISMATCH: the key names sha256:{} but the contents hash to sha256:{}",
                        hex(&want),
                        hex(&got)
                    ),
                );
                Outcome::Mismatch
            }
            (true, None) => {
                w(status, format!("sha256:{} (the key names no digest: not verified; {len} bytes in {took:?})", hex(&got)));
                Outcome::Unverified
            }
            (false, _) => {
                w(status, format!("range of {len} bytes fetched in {took:?}: not verified (digests cover whole blobs); its sha256: {}", hex(&got)));
                Outcome::Unverified
            }
        };
        Ok(outcome)
    })();
    if let Some((out, paths)) = sink {
        drop(out);
        if let Some((part, dest)) = paths {
            match &res {
                Ok(Outcome::Verified | Outcome::Unverified) => std::fs::rename(&part, &dest)
                    .map_err(|e| format!("--out {}: {e}", dest.display()))?,
                _ => {
                    let _ = std::fs::remove_file(&part);
                }
            }
        }
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use crate::blobs::DirStore;
    use crate::digest::sha256;

    #[test]
    fn fetches_checks_and_writes() {
        let d = TempDir::new("fetchcmd");
        let blobs = d.0.join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let data: Vec<u8> = (0..3 * CHUNK as u32 + 7).map(|i| (i % 253) as u8).collect();
        let key = format!("sha256:{}", hex(&sha256(&data)));
        std::fs::write(blobs.join(&key), &data).unwrap();
        let bad = hex(&sha256(b"something else"));
        std::fs::write(blobs.join(&bad), &data).unwrap();
        std::fs::write(blobs.join("plain"), b"abc").unwrap();
        let store = DirStore(blobs);
        let mut st = Vec::new();
        let out = d.0.join("out");
        let what = |key: &str| What {
            key: key.into(),
            out: Some(out.clone()),
            ..What::default()
        };
        assert_eq!(
            run(&store, &what(&key), &mut st).unwrap(),
            Outcome::Verified
        );
        assert_eq!(std::fs::read(&out).unwrap(), data);
        let text = String::from_utf8_lossy(&st).into_owned();
        assert!(text.contains(&format!("{} bytes", data.len())), "{text}");
        assert!(text.contains("verified"), "{text}");
        std::fs::remove_file(&out).unwrap();
        st.clear();
        assert_eq!(
            run(&store, &what(&bad), &mut st).unwrap(),
            Outcome::Mismatch
        );
        assert!(!out.exists(), "nothing kept on a mismatch");
        assert!(!part_path(&out).exists());
        assert!(String::from_utf8_lossy(&st).contains("MISMATCH"));
        assert_eq!(
            run(&store, &what("plain"), &mut st).unwrap(),
            Outcome::Unverified
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"abc");
        let r = What {
            offset: Some(1),
            length: Some(1),
            ..what(&bad)
        };
        assert_eq!(
            run(&store, &r, &mut st).unwrap(),
            Outcome::Unverified,
            "a range is not checked"
        );
        assert_eq!(std::fs::read(&out).unwrap(), &data[1..2]);
        let r = What {
            offset: Some(2),
            length: Some(data.len() as u64),
            ..what(&key)
        };
        assert!(run(&store, &r, &mut st).is_err());
        assert!(run(&store, &what("nope"), &mut st).is_err());
    }
}
