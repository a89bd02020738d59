// SPDX-License-Identifier: GPL-2.0
//! Blob source: a local directory of blob files looked up by cookie key, and range reads.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Longest file name component on Linux (NAME_MAX).
const NAME_MAX: usize = 255;

/// `key` as a file name if it is one safe path component: non-empty, no '/', no NUL, not "."
/// or "..", and short enough for `<key>.blob`. Keys come from mount options and image device
/// tables, so anything else is refused.
pub fn safe_name(key: &[u8]) -> Option<&OsStr> {
    if key.is_empty()
        || key == b"."
        || key == b".."
        || key.contains(&b'/')
        || key.contains(&0)
        || key.len() + ".blob".len() > NAME_MAX
    {
        return None;
    }
    Some(OsStr::from_bytes(key))
}

/// Finds the file of blob `key` in `dir`: `<key>`, then `<key>.img`, then `<key>.blob` (the
/// first that is a regular file, symlinks followed). NotFound if none; InvalidInput for an
/// unsafe key; other errors (e.g. EACCES on the directory) as they are.
pub fn resolve(dir: &Path, key: &[u8]) -> io::Result<PathBuf> {
    let name = safe_name(key).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "cookie key is not a safe file name",
        )
    })?;
    for suffix in ["", ".img", ".blob"] {
        let mut cand = name.to_os_string();
        cand.push(suffix);
        let p = dir.join(cand);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_file() => return Ok(p),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("no blob {:?} in {}", name, dir.display()),
    ))
}

/// An open blob.
#[derive(Debug)]
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

    /// Reads exactly `buf.len()` bytes at `off` (pread loop; UnexpectedEof if the blob is short,
    /// e.g. truncated since OPEN).
    pub fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, off)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh scratch directory removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(what: &str) -> TempDir {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("ondemandd-{what}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn names() {
        assert_eq!(safe_name(b"meta"), Some(OsStr::new("meta")));
        assert_eq!(safe_name(b"sha256:abc"), Some(OsStr::new("sha256:abc")));
        assert_eq!(safe_name(b"..."), Some(OsStr::new("...")));
        assert!(safe_name(b"\xff\xfe").is_some());
        let long = [b'a'; 300];
        for bad in [
            &b""[..],
            b".",
            b"..",
            b"a/b",
            b"/etc/passwd",
            b"../x",
            b"a\0b",
            b"\0",
            &long,
        ] {
            assert_eq!(safe_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn resolves_in_order() {
        let d = TempDir::new("blobs");
        let d = &d.0;
        std::fs::write(d.join("a.img"), b"x").unwrap();
        std::fs::write(d.join("a.blob"), b"xx").unwrap();
        std::fs::write(d.join("b"), b"y").unwrap();
        std::fs::write(d.join("b.img"), b"z").unwrap();
        std::fs::write(d.join("c.blob"), b"zzz").unwrap();
        std::fs::create_dir(d.join("e")).unwrap();
        std::fs::write(d.join("e.img"), b"e").unwrap();
        assert_eq!(resolve(d, b"a").unwrap(), d.join("a.img"));
        assert_eq!(resolve(d, b"b").unwrap(), d.join("b"));
        assert_eq!(resolve(d, b"c").unwrap(), d.join("c.blob"));
        assert_eq!(
            resolve(d, b"e").unwrap(),
            d.join("e.img"),
            "directories are skipped"
        );
        assert_eq!(
            resolve(d, b"nope").unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            resolve(d, b"../b").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            resolve(d, b"..").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let blob = Blob::open(resolve(d, b"c").unwrap()).unwrap();
        assert_eq!(blob.size, 3);
        let mut b = [0u8; 2];
        blob.read_at(&mut b, 1).unwrap();
        assert_eq!(&b, b"zz");
        assert_eq!(
            blob.read_at(&mut b, 2).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
