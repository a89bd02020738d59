// SPDX-License-Identifier: GPL-2.0
//! erofs-ondemandd: a cachefiles on-demand daemon serving EROFS blobs from a local directory.
//!
//! It binds a cachefiles cache in on-demand mode through /dev/cachefiles, answers OPEN with the
//! size of the blob named by the cookie key, fills cache files on READ and completes the
//! request, and releases objects on CLOSE. It serves in-tree erofs and erofs_rs alike.

mod blobs;
mod cache;
mod daemon;
mod devnode;
#[macro_use]
mod log;
mod proto;
mod signals;
mod stats;

use daemon::{Daemon, Options};
use devnode::{Devnode, Event};
use log::Level;
use std::os::fd::AsFd;
use std::path::PathBuf;

#[derive(Debug, PartialEq)]
struct Config {
    cache_dir: PathBuf,
    blob_dir: PathBuf,
    tag: Option<String>,
    devnode: PathBuf,
    stats_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    level: Level,
    window: u64,
}

const USAGE: &str = "usage: erofs-ondemandd --cache-dir DIR --blob-dir DIR [--tag NAME] \
[--devnode PATH] [--stats-file PATH] [--pid-file PATH] [--log-level error|warn|info|debug] \
[--window BYTES] [--foreground]";

/// Parses the command line (without argv[0]). Ok(None) for --help.
fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>, String> {
    let mut args = args.into_iter();
    let mut cache_dir = None;
    let mut blob_dir = None;
    let mut cfg = Config {
        cache_dir: PathBuf::new(),
        blob_dir: PathBuf::new(),
        tag: None,
        devnode: PathBuf::from("/dev/cachefiles"),
        stats_file: None,
        pid_file: None,
        level: Level::Info,
        window: 1 << 20,
    };
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match key.as_str() {
            "--help" | "-h" => return Ok(None),
            "--foreground" => continue,
            _ => {}
        }
        let val = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{key} needs a value"))?,
        };
        if val.is_empty() {
            return Err(format!("{key} needs a non-empty value"));
        }
        match key.as_str() {
            "--cache-dir" => cache_dir = Some(PathBuf::from(val)),
            "--blob-dir" => blob_dir = Some(PathBuf::from(val)),
            "--tag" => {
                if val.contains(|c: char| c.is_whitespace() || c == '\0') {
                    return Err(format!("bad --tag {val:?}: no whitespace allowed"));
                }
                cfg.tag = Some(val)
            }
            "--devnode" => cfg.devnode = val.into(),
            "--stats-file" => cfg.stats_file = Some(val.into()),
            "--pid-file" => cfg.pid_file = Some(val.into()),
            "--window" => cfg.window = val.parse().map_err(|_| format!("bad --window {val:?}"))?,
            "--log-level" => {
                cfg.level = Level::parse(&val).ok_or_else(|| format!("bad --log-level {val:?}"))?
            }
            _ => return Err(format!("unknown argument {key}")),
        }
    }
    cfg.cache_dir = cache_dir.ok_or("--cache-dir is required")?;
    cfg.blob_dir = blob_dir.ok_or("--blob-dir is required")?;
    Ok(Some(cfg))
}

fn main() {
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("erofs-ondemandd: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    log::set_level(cfg.level);
    if let Err(e) = run(cfg) {
        log!(Level::Error, "{e}");
        std::process::exit(1);
    }
}

fn run(cfg: Config) -> Result<(), String> {
    if !cfg.blob_dir.is_dir() {
        return Err(format!(
            "--blob-dir {}: not a directory",
            cfg.blob_dir.display()
        ));
    }
    // Block the signals before anything else so none is lost (and threads added later inherit
    // the mask).
    let sigfd = signals::SignalFd::termination().map_err(|e| format!("signalfd: {e}"))?;
    let dev = Devnode::open(&cfg.devnode)?;
    dev.bind(&cfg.cache_dir, cfg.tag.as_deref())?;
    eprintln!(
        "erofs-ondemandd: bound {} (ondemand)",
        cfg.cache_dir.display()
    );
    log!(Level::Info, "serving blobs from {}", cfg.blob_dir.display());
    if let Some(p) = &cfg.pid_file {
        stats::write_atomic(p, &format!("{}\n", std::process::id()))
            .map_err(|e| format!("--pid-file {}: {e}", p.display()))?;
    }
    let opts = Options {
        blob_dir: cfg.blob_dir.clone(),
        stats_file: cfg.stats_file.clone(),
        window: cfg.window,
    };
    let mut d = Daemon::new(opts, &dev).map_err(|e| format!("{e}"))?;
    d.write_stats();
    let r = serve(&dev, &sigfd, &mut d);
    eprintln!("erofs-ondemandd: exiting: {}", d.stats.summary());
    if let Some(p) = &cfg.pid_file {
        let _ = std::fs::remove_file(p);
    }
    r
}

/// The request loop: until SIGTERM/SIGINT (Ok) or a devnode failure (Err).
fn serve(dev: &Devnode, sigfd: &signals::SignalFd, d: &mut Daemon<&Devnode>) -> Result<(), String> {
    let mut msg = vec![0u8; proto::MSG_MAX_SIZE];
    loop {
        match dev.wait(sigfd.as_fd()).map_err(|e| format!("poll: {e}"))? {
            Event::Other => {
                if let Some(sig) = sigfd.take() {
                    log!(Level::Info, "signal {sig}: shutting down");
                    return Ok(());
                }
            }
            Event::Hangup => return Err("the cachefiles device reported an error or hangup".into()),
            Event::Readable => loop {
                // One message per read(); 0 when nothing more is pending.
                let n = dev
                    .read_msg(&mut msg)
                    .map_err(|e| format!("read from the devnode: {e}"))?;
                if n == 0 {
                    break;
                }
                d.handle_message(&msg[..n]);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn cli() {
        let c = parse_args(args("--cache-dir /c --blob-dir /b"))
            .unwrap()
            .unwrap();
        assert_eq!(c.cache_dir, PathBuf::from("/c"));
        assert_eq!(c.devnode, PathBuf::from("/dev/cachefiles"));
        assert_eq!((c.level, c.window, c.tag), (Level::Info, 1 << 20, None));
        let c = parse_args(args(
            "--cache-dir /c --blob-dir=/b --tag t1 --devnode /d --stats-file /s --pid-file /p \
             --log-level debug --foreground --window 65536",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.blob_dir, PathBuf::from("/b"));
        assert_eq!(c.tag.as_deref(), Some("t1"));
        assert_eq!(c.stats_file, Some(PathBuf::from("/s")));
        assert_eq!(c.pid_file, Some(PathBuf::from("/p")));
        assert_eq!((c.level, c.window), (Level::Debug, 65536));
        assert_eq!(parse_args(args("--help")).unwrap(), None);
        for bad in [
            "--blob-dir /b",
            "--cache-dir /c",
            "--cache-dir /c --blob-dir",
            "--cache-dir /c --blob-dir /b --log-level loud",
            "--cache-dir /c --blob-dir /b --bogus x",
            "--cache-dir /c --blob-dir /b --window -1",
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad}");
        }
    }
}
