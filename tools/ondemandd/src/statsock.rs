// SPDX-License-Identifier: GPL-2.0
//! The stats socket (`--stats-socket PATH`): a Unix stream socket; each connection is sent the
//! current counters (the stats file's `key value` lines, then `in_flight`, the READ latency
//! histogram and `uptime_ms`, see [`crate::stats::Stats::render_live`]) and closed. Served by a
//! thread of its own: a slow or stuck client never holds up request handling (it takes the
//! counters' lock only to copy them). `erofs-ondemandd stats --socket PATH` prints them.

use crate::log::Level;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What a connection is sent.
pub type Snapshot = Arc<dyn Fn() -> String + Send + Sync>;

/// A bound stats socket; the file is removed on drop.
pub struct StatsSocket {
    path: PathBuf,
}

/// Binds `path` (replacing a stale socket left there, but no other kind of file) and serves it
/// on a new thread.
pub fn start(path: &Path, snapshot: Snapshot) -> Result<StatsSocket, String> {
    let what = |e: io::Error| format!("--stats-socket {}: {e}", path.display());
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(what(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(what(io::Error::new(
                io::ErrorKind::AddrInUse,
                "a running daemon serves it",
            )));
        }
        std::fs::remove_file(path).map_err(what)?;
    }
    let listener = UnixListener::bind(path).map_err(what)?;
    let p = path.to_path_buf();
    std::thread::Builder::new()
        .name("stats-socket".into())
        .spawn(move || serve(listener, &p, snapshot))
        .map_err(what)?;
    Ok(StatsSocket {
        path: path.to_path_buf(),
    })
}

fn serve(listener: UnixListener, path: &Path, snapshot: Snapshot) {
    for conn in listener.incoming() {
        match conn {
            Ok(mut c) => {
                let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
                if let Err(e) = c.write_all(snapshot().as_bytes()) {
                    log!(Level::Debug, "stats socket: a client went away: {e}");
                }
            }
            Err(e) => {
                log!(Level::Warn, "stats socket {}: accept: {e}", path.display());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for StatsSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `erofs-ondemandd stats --socket PATH`: the counters, as the daemon sends them.
pub fn query(path: &Path) -> io::Result<String> {
    let mut c = UnixStream::connect(path)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

/// `stats` arguments (after the word `stats`): `--socket PATH`.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<PathBuf, String> {
    let mut args = args.into_iter();
    let mut socket = None;
    while let Some(a) = args.next() {
        let (key, val) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let val = val
            .or_else(|| args.next())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{key} needs a value"))?;
        match key.as_str() {
            "--socket" => socket = Some(PathBuf::from(val)),
            _ => return Err(format!("stats: unknown argument {key}")),
        }
    }
    socket.ok_or_else(|| "stats: --socket is required".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn serves_snapshots_and_cleans_up() {
        let d = TempDir::new("statsock");
        let p = d.0.join("s.sock");
        std::fs::write(&p, "not a socket").unwrap();
        let n = Arc::new(AtomicU64::new(0));
        let n2 = Arc::clone(&n);
        let snap: Snapshot = Arc::new(move || format!("reads {}\n", n2.load(Ordering::Relaxed)));
        assert!(
            start(&p, Arc::clone(&snap)).is_err(),
            "a regular file is left alone"
        );
        std::fs::remove_file(&p).unwrap();
        let s = start(&p, Arc::clone(&snap)).unwrap();
        // a client that connects and never reads does not stop others
        let _idle = UnixStream::connect(&p).unwrap();
        assert_eq!(query(&p).unwrap(), "reads 0\n");
        n.store(7, Ordering::Relaxed);
        assert_eq!(query(&p).unwrap(), "reads 7\n");
        drop(s);
        assert!(!p.exists(), "removed on drop");
        // a stale socket (no listener) is replaced
        let l = UnixListener::bind(&p).unwrap();
        drop(l);
        let _s = start(&p, snap).unwrap();
        assert_eq!(query(&p).unwrap(), "reads 7\n");
        assert_eq!(
            parse_args(["--socket".to_string(), "/x".into()]),
            Ok(PathBuf::from("/x"))
        );
        assert!(parse_args(Vec::<String>::new()).is_err());
        assert!(parse_args(["--sock=/x".to_string()]).is_err());
    }
}
