// SPDX-License-Identifier: GPL-2.0
//! Blob sources: a local directory of blob files, looked up by cookie key.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Is `key` usable as one path component? (Keys come from mount options and images.)
pub fn safe_name(key: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(key).ok()?;
    if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') || s.len() > 255 {
        return None;
    }
    Some(s)
}

/// Finds the file of blob `key` in `dir`: `key`, then `key.img`, then `key.blob`.
pub fn resolve(dir: &Path, key: &[u8]) -> io::Result<PathBuf> {
    let name = safe_name(key).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "cookie key is not a safe file name")
    })?;
    for cand in [name.to_string(), format!("{name}.img"), format!("{name}.blob")] {
        let p = dir.join(cand);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("no blob {name:?} in {}", dir.display())))
}

/// An open blob.
pub struct Blob {
    pub file: File,
    pub size: u64,
    pub path: PathBuf,
}

impl Blob {
    pub fn open(path: PathBuf) -> io::Result<Blob> {
        let file = File::open(&path)?;
        let size = file.metadata()?.len();
        Ok(Blob { file, size, path })
    }

    /// Reads exactly `buf.len()` bytes at `off` (fails on a short blob).
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(safe_name(b"meta"), Some("meta"));
        assert_eq!(safe_name(b"sha256:abc"), Some("sha256:abc"));
        for bad in [&b""[..], b".", b"..", b"a/b", b"/etc/passwd", b"a\0b", b"\xff"] {
            assert_eq!(safe_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn resolves_in_order() {
        let d = std::env::temp_dir().join(format!("ondemandd-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("a.img"), b"x").unwrap();
        std::fs::write(d.join("b"), b"y").unwrap();
        std::fs::write(d.join("b.img"), b"z").unwrap();
        assert_eq!(resolve(&d, b"a").unwrap(), d.join("a.img"));
        assert_eq!(resolve(&d, b"b").unwrap(), d.join("b"));
        assert!(resolve(&d, b"c").is_err());
        assert!(resolve(&d, b"../etc").is_err());
        let blob = Blob::open(d.join("b.img")).unwrap();
        assert_eq!(blob.size, 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
