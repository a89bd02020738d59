// SPDX-License-Identifier: GPL-2.0
//! Request counters and the stats file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub opens: u64,
    pub reads: u64,
    pub closes: u64,
    /// Blob bytes written into cache files.
    pub bytes_fetched: u64,
    pub errors: u64,
}

impl Stats {
    /// The stats file contents: one `key value` line per counter.
    pub fn render(&self) -> String {
        format!(
            "opens {}\nreads {}\ncloses {}\nbytes_fetched {}\nerrors {}\n",
            self.opens, self.reads, self.closes, self.bytes_fetched, self.errors
        )
    }

    /// The one-line summary printed at exit.
    pub fn summary(&self) -> String {
        format!(
            "{} opens, {} reads, {} closes, {} bytes fetched, {} errors",
            self.opens, self.reads, self.closes, self.bytes_fetched, self.errors
        )
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Replaces `path` with `contents` atomically (write a temporary file beside it, then rename).
pub fn write_atomic(path: &Path, contents: &str) -> io::Result<()> {
    let tmp = tmp_path(path);
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;

    #[test]
    fn renders_and_writes() {
        let s = Stats {
            opens: 1,
            reads: 2,
            closes: 3,
            bytes_fetched: 4096,
            errors: 0,
        };
        assert_eq!(
            s.render(),
            "opens 1\nreads 2\ncloses 3\nbytes_fetched 4096\nerrors 0\n"
        );
        assert!(s.summary().contains("4096 bytes fetched"));
        let d = TempDir::new("stats");
        let p = d.0.join("stats");
        write_atomic(&p, &s.render()).unwrap();
        write_atomic(&p, &Stats::default().render()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            Stats::default().render()
        );
        assert!(!d.0.join("stats.tmp").exists());
        assert!(write_atomic(&d.0.join("missing/stats"), "x").is_err());
    }
}
