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
    /// Faults injected on purpose (`--fault`).
    pub faults: u64,
    /// Bytes the kernel asked for in READ requests (their `len`, before widening).
    pub bytes_requested: u64,
    /// Time spent serving READs: from the parsed request to the completion ioctl's return.
    pub read_ns: u64,
    /// READ requests by asked length: `<= 4 KiB`, `<= 8 KiB`, ... `<= 1 MiB`, larger.
    pub read_len_hist: [u64; HIST_BUCKETS],
    /// Fetches started (one per READ, unless it is served by fetches already in flight).
    pub fetches: u64,
    /// READs that started no fetch: everything they needed was being fetched already.
    pub coalesced: u64,
    /// Times the supervisor restarted the daemon (`--supervise`) before this one.
    pub restarts: u64,
    /// Whole-blob fetches whose contents matched the digest their key names.
    pub verified: u64,
    /// Whole-blob fetches whose contents did not match the digest their key names (not
    /// cached; their READs got no data).
    pub digest_errors: u64,
    /// Background prefetch: blob bytes copied, pieces copied, objects whose prefetch is over.
    pub prefetch_bytes: u64,
    pub prefetch_pieces: u64,
    pub prefetch_done: u64,
    /// READ latency (receipt to completion) histogram, see [`LAT_BOUNDS_MS`].
    pub read_lat_hist: [u64; LAT_BUCKETS],
}

/// Upper bounds (ms) of the READ latency buckets; the last bucket (`inf`) takes the rest.
pub const LAT_BOUNDS_MS: [u64; 7] = [1, 4, 16, 64, 256, 1000, 4000];
pub const LAT_BUCKETS: usize = LAT_BOUNDS_MS.len() + 1;

/// The latency bucket of `ns` nanoseconds.
pub fn lat_bucket(ns: u64) -> usize {
    LAT_BOUNDS_MS
        .iter()
        .position(|&ms| ns <= ms * 1_000_000)
        .unwrap_or(LAT_BUCKETS - 1)
}

/// Buckets of the READ length histogram: powers of two from 4 KiB to 1 MiB, then "larger".
pub const HIST_BUCKETS: usize = 10;

/// Upper bound (inclusive) of histogram bucket `i`, or None for the last ("larger") one.
pub fn hist_bound(i: usize) -> Option<u64> {
    (i + 1 < HIST_BUCKETS).then(|| 4096u64 << i)
}

/// The histogram bucket of a READ of `len` bytes.
pub fn hist_bucket(len: u64) -> usize {
    (0..HIST_BUCKETS)
        .find(|&i| hist_bound(i).is_none_or(|b| len <= b))
        .unwrap_or(HIST_BUCKETS - 1)
}

impl Stats {
    /// The stats file contents: one `key value` line per counter.
    pub fn render(&self) -> String {
        let mut s = format!(
            "opens {}\nreads {}\ncloses {}\nbytes_fetched {}\nerrors {}\nfaults {}\nbytes_requested {}\nread_ns {}\n",
            self.opens,
            self.reads,
            self.closes,
            self.bytes_fetched,
            self.errors,
            self.faults,
            self.bytes_requested,
            self.read_ns
        );
        for (i, n) in self.read_len_hist.iter().enumerate() {
            match hist_bound(i) {
                Some(b) => s.push_str(&format!("read_len_le_{b} {n}\n")),
                None => s.push_str(&format!("read_len_gt_{} {n}\n", 4096u64 << (i - 1))),
            }
        }
        s.push_str(&format!(
            "fetches {}\ncoalesced {}\nrestarts {}\nverified {}\ndigest_errors {}\n",
            self.fetches, self.coalesced, self.restarts, self.verified, self.digest_errors
        ));
        s.push_str(&self.render_prefetch());
        s
    }

    fn render_prefetch(&self) -> String {
        format!(
            "prefetch_bytes {}\nprefetch_pieces {}\nprefetch_done {}\n",
            self.prefetch_bytes, self.prefetch_pieces, self.prefetch_done
        )
    }

    /// What the stats socket sends: the stats file's lines, then `in_flight` (READs not yet
    /// completed), the READ latency histogram (`read_lat_le_1ms` ... `read_lat_inf`) and
    /// `uptime_ms`.
    pub fn render_live(&self, in_flight: u64, uptime_ms: u64) -> String {
        let mut s = self.render();
        s.push_str(&format!("in_flight {in_flight}\n"));
        for (i, n) in self.read_lat_hist.iter().enumerate() {
            match LAT_BOUNDS_MS.get(i) {
                Some(ms) if ms % 1000 == 0 => {
                    s.push_str(&format!("read_lat_le_{}s {n}\n", ms / 1000))
                }
                Some(ms) => s.push_str(&format!("read_lat_le_{ms}ms {n}\n")),
                None => s.push_str(&format!("read_lat_inf {n}\n")),
            }
        }
        s.push_str(&format!("uptime_ms {uptime_ms}\n"));
        s
    }

    /// Counts a served READ of `len` asked bytes that took `ns` nanoseconds.
    pub fn count_read(&mut self, len: u64, ns: u64) {
        self.bytes_requested = self.bytes_requested.saturating_add(len);
        self.read_ns = self.read_ns.saturating_add(ns);
        self.read_len_hist[hist_bucket(len)] += 1;
        self.read_lat_hist[lat_bucket(ns)] += 1;
    }

    /// The one-line summary printed at exit.
    pub fn summary(&self) -> String {
        format!(
            "{} opens, {} reads, {} closes, {} bytes fetched, {} errors, {} faults injected, {} blobs verified, {} digest errors",
            self.opens,
            self.reads,
            self.closes,
            self.bytes_fetched,
            self.errors,
            self.faults,
            self.verified,
            self.digest_errors
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
        let mut s = Stats {
            opens: 1,
            reads: 2,
            closes: 3,
            bytes_fetched: 4096,
            errors: 0,
            faults: 5,
            ..Stats::default()
        };
        s.count_read(100, 7);
        s.count_read(4096, 5);
        s.count_read(4097, 1);
        s.count_read(1 << 20, 1);
        s.count_read((1 << 20) + 1, 1);
        assert_eq!(
            s.render(),
            "opens 1\nreads 2\ncloses 3\nbytes_fetched 4096\nerrors 0\nfaults 5\n\
             bytes_requested 2105446\nread_ns 15\n\
             read_len_le_4096 2\nread_len_le_8192 1\nread_len_le_16384 0\n\
             read_len_le_32768 0\nread_len_le_65536 0\nread_len_le_131072 0\n\
             read_len_le_262144 0\nread_len_le_524288 0\nread_len_le_1048576 1\n\
             read_len_gt_1048576 1\nfetches 0\ncoalesced 0\nrestarts 0\n\
             verified 0\ndigest_errors 0\n\
             prefetch_bytes 0\nprefetch_pieces 0\nprefetch_done 0\n"
        );
        s.count_read(1, 1_000_001);
        s.count_read(1, 5_000_000_000);
        let live = s.render_live(3, 1234);
        assert!(live.starts_with(&s.render()));
        assert!(live.ends_with(
            "in_flight 3\nread_lat_le_1ms 5\nread_lat_le_4ms 1\nread_lat_le_16ms 0\n\
             read_lat_le_64ms 0\nread_lat_le_256ms 0\nread_lat_le_1s 0\nread_lat_le_4s 0\n\
             read_lat_inf 1\nuptime_ms 1234\n"
        ));
        assert_eq!(lat_bucket(4_000_000_000), LAT_BUCKETS - 2);
        assert_eq!(hist_bucket(0), 0);
        assert_eq!(hist_bucket(u64::MAX), HIST_BUCKETS - 1);
        assert!(s.summary().contains("4096 bytes fetched"));
        assert!(s
            .summary()
            .ends_with("5 faults injected, 0 blobs verified, 0 digest errors"));
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
