// SPDX-License-Identifier: GPL-2.0
//! Blob sources: where the bytes of a blob named by a cookie key come from. [`BlobStore`] looks
//! a blob up, [`BlobRead`] reads ranges of it; [`DirStore`] is a local directory of blob files
//! (`--blob-dir`), `crate::http::HttpStore` an HTTP server (`--source http://...`).

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

/// An open blob: its size and range reads. Shared by the fetch threads.
pub trait BlobRead: Send + Sync {
    fn size(&self) -> u64;
    /// Reads exactly `buf.len()` bytes at `off` (UnexpectedEof if the blob is short).
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Where the blob is, for messages (a path or a URL).
    fn location(&self) -> String;
}

/// Finds blobs by cookie key. `open` errors: NotFound (no such blob) and InvalidInput (unsafe
/// key) fail the OPEN with ENOENT, others with their errno or EIO.
pub trait BlobStore: Send + Sync {
    fn open(&self, key: &[u8]) -> io::Result<Box<dyn BlobRead>>;
    /// Opens blob `key` of volume `volume` (the OPEN's volume key, e.g. `erofs,NAME\0`): for
    /// stores that route by volume (`crate::route::RouteStore`); others ignore the volume.
    fn open_in(&self, volume: &[u8], key: &[u8]) -> io::Result<Box<dyn BlobRead>> {
        let _ = volume;
        self.open(key)
    }
    /// What the store serves from, for the log.
    fn describe(&self) -> String;
}

/// `--blob-dir`: blob files in a local directory, see [`resolve`].
pub struct DirStore(pub PathBuf);

impl BlobStore for DirStore {
    fn open(&self, key: &[u8]) -> io::Result<Box<dyn BlobRead>> {
        let b = Blob::open(resolve(&self.0, key)?)?;
        Ok(Box::new(b))
    }

    fn describe(&self) -> String {
        format!("blobs from {}", self.0.display())
    }
}

/// An open blob file.
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

impl BlobRead for Blob {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        Blob::read_at(self, buf, off)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// `--source-delay-ms N[:BLOB]` (testing): each fetch from blob `BLOB` (or from every blob) is
/// held back N ms, as a slow remote source would be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delays(Vec<(Option<Vec<u8>>, u64)>);

impl Delays {
    /// Parses and adds one `N` or `N:BLOB`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (ms, blob) = match spec.split_once(':') {
            Some((m, b)) => (m, Some(b)),
            None => (spec, None),
        };
        let ms: u64 = ms.parse().ok().filter(|&m| m <= 3_600_000).ok_or_else(|| {
            format!("bad --source-delay-ms {spec:?}: N[:BLOB], N in ms (at most 1 h)")
        })?;
        if blob == Some("") {
            return Err(format!("bad --source-delay-ms {spec:?}: empty blob name"));
        }
        let blob = blob.map(|b| b.as_bytes().to_vec());
        if self.0.iter().any(|(b, _)| *b == blob) {
            return Err(format!(
                "--source-delay-ms {spec:?}: given twice for the same blob"
            ));
        }
        self.0.push((blob, ms));
        Ok(())
    }

    /// The delay of a fetch from blob `key`: its own, else the one for every blob, else 0.
    pub fn get(&self, key: &[u8]) -> std::time::Duration {
        let own = self.0.iter().find(|(b, _)| b.as_deref() == Some(key));
        let all = self.0.iter().find(|(b, _)| b.is_none());
        std::time::Duration::from_millis(own.or(all).map_or(0, |(_, ms)| *ms))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    fn delays() {
        let mut d = Delays::default();
        assert!(d.is_empty());
        assert_eq!(d.get(b"x"), std::time::Duration::ZERO);
        d.add("500:slow").unwrap();
        assert_eq!(d.get(b"slow").as_millis(), 500);
        assert_eq!(d.get(b"other").as_millis(), 0);
        d.add("20").unwrap();
        assert_eq!(d.get(b"other").as_millis(), 20);
        assert_eq!(d.get(b"slow").as_millis(), 500, "a blob's own delay wins");
        d.add("7:sha256:ab").unwrap();
        assert_eq!(d.get(b"sha256:ab").as_millis(), 7);
        for bad in ["", "x", "-1", "1:", "99999999999", "500:slow", "3"] {
            assert!(d.add(bad).is_err(), "{bad}");
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
