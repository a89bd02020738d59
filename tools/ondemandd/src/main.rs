// SPDX-License-Identifier: GPL-2.0
//! erofs-ondemandd: a cachefiles on-demand daemon serving EROFS blobs from a local directory.
//!
//! It binds a cachefiles cache in on-demand mode through /dev/cachefiles, answers OPEN with the
//! size of the blob named by the cookie key, fills cache files on READ and completes the request,
//! and releases objects on CLOSE. It serves in-tree erofs and erofs_rs alike.

mod blobs;
mod cache;
mod proto;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

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
[--devnode PATH] [--stats-file PATH] [--pid-file PATH] [--window BYTES] \
[--log-level error|warn|info|debug]";

fn parse_args() -> Result<Config, String> {
    let mut args = std::env::args().skip(1);
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
        if key == "--help" || key == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if key == "--foreground" {
            continue;
        }
        let val = match inline {
            Some(v) => v,
            None => args.next().ok_or_else(|| format!("{key} needs a value"))?,
        };
        match key.as_str() {
            "--cache-dir" => cfg.cache_dir = val.into(),
            "--blob-dir" => cfg.blob_dir = val.into(),
            "--tag" => cfg.tag = Some(val),
            "--devnode" => cfg.devnode = val.into(),
            "--stats-file" => cfg.stats_file = Some(val.into()),
            "--pid-file" => cfg.pid_file = Some(val.into()),
            "--window" => cfg.window = val.parse().map_err(|_| format!("bad --window {val}"))?,
            "--log-level" => {
                cfg.level = match val.as_str() {
                    "error" => Level::Error,
                    "warn" => Level::Warn,
                    "info" => Level::Info,
                    "debug" => Level::Debug,
                    _ => return Err(format!("bad --log-level {val}")),
                }
            }
            _ => return Err(format!("unknown argument {key}")),
        }
    }
    if cfg.cache_dir.as_os_str().is_empty() || cfg.blob_dir.as_os_str().is_empty() {
        return Err("--cache-dir and --blob-dir are required".into());
    }
    Ok(cfg)
}

#[derive(Default)]
struct Stats {
    opens: u64,
    reads: u64,
    closes: u64,
    bytes_fetched: u64,
    errors: u64,
}

impl Stats {
    fn render(&self) -> String {
        format!(
            "opens {}\nreads {}\ncloses {}\nbytes_fetched {}\nerrors {}\n",
            self.opens, self.reads, self.closes, self.bytes_fetched, self.errors
        )
    }
}

struct Object {
    fd: OwnedFd,
    blob: blobs::Blob,
}

struct Daemon {
    cfg: Config,
    dev: File,
    objects: HashMap<u32, Object>,
    stats: Stats,
    buf: cache::AlignedBuf,
}

macro_rules! log {
    ($d:expr, $lvl:expr, $($arg:tt)*) => {
        if $lvl <= $d.cfg.level {
            let tag = match $lvl { Level::Error => "error", Level::Warn => "warn", Level::Info => "info", Level::Debug => "debug" };
            eprintln!("erofs-ondemandd: {}: {}", tag, format_args!($($arg)*));
        }
    };
}

fn errno_of(e: &io::Error) -> i64 {
    e.raw_os_error().map(i64::from).unwrap_or(libc::EIO as i64)
}

fn open_devnode(path: &PathBuf) -> Result<File, String> {
    std::fs::OpenOptions::new().read(true).write(true).open(path).map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EBUSY) => "is busy: another daemon (cachefilesd?) has it open",
            Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                "cachefiles is not available (CONFIG_CACHEFILES=y/m, modprobe cachefiles)"
            }
            Some(libc::EACCES) | Some(libc::EPERM) => "needs CAP_SYS_ADMIN (run as root)",
            _ => "cannot be opened",
        };
        format!("{}: {hint}: {e}", path.display())
    })
}

fn command(dev: &mut File, cmd: &str) -> io::Result<()> {
    dev.write_all(cmd.as_bytes())
}

fn bind(cfg: &Config, dev: &mut File) -> Result<(), String> {
    std::fs::create_dir_all(&cfg.cache_dir)
        .map_err(|e| format!("cannot create {}: {e}", cfg.cache_dir.display()))?;
    let dir = cfg.cache_dir.canonicalize().map_err(|e| format!("{}: {e}", cfg.cache_dir.display()))?;
    command(dev, &format!("dir {}", dir.display())).map_err(|e| format!("'dir' command: {e}"))?;
    if let Some(tag) = &cfg.tag {
        command(dev, &format!("tag {tag}")).map_err(|e| format!("'tag' command: {e}"))?;
    }
    command(dev, "bind ondemand").map_err(|e| {
        let hint = match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) => {
                " (the cache directory's filesystem lacks what cachefiles needs, e.g. tmpfs: \
                 use ext4 or xfs; or the kernel lacks CONFIG_CACHEFILES_ONDEMAND)"
            }
            Some(libc::EBUSY) => " (a cache is already bound)",
            _ => "",
        };
        format!("'bind ondemand' failed: {e}{hint}")
    })
}

impl Daemon {
    fn write_stats(&self) {
        if let Some(p) = &self.cfg.stats_file {
            let tmp = p.with_extension("tmp");
            if std::fs::write(&tmp, self.stats.render()).and_then(|_| std::fs::rename(&tmp, p)).is_err() {
                eprintln!("erofs-ondemandd: warn: cannot write {}", p.display());
            }
        }
    }

    fn reply(&mut self, msg: &str) -> io::Result<()> {
        command(&mut self.dev, msg)
    }

    fn handle(&mut self, req: proto::Request) {
        match req {
            proto::Request::Open { msg_id, object_id, volume_key, cookie_key, fd, flags } => {
                self.stats.opens += 1;
                // SAFETY: the kernel installed `fd` in our fd table for this object; we own it.
                let owned = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
                let vk = String::from_utf8_lossy(&volume_key).into_owned();
                let ck = String::from_utf8_lossy(&cookie_key).into_owned();
                let res = blobs::resolve(&self.cfg.blob_dir, &cookie_key).and_then(blobs::Blob::open);
                match res {
                    Ok(blob) => {
                        let size = blob.size;
                        log!(self, Level::Info, "OPEN object {object_id} volume {vk:?} blob {ck:?} -> {} ({size} bytes, flags {flags:#x})", blob.path.display());
                        match self.reply(&proto::copen(msg_id, size as i64)) {
                            Ok(()) => {
                                self.objects.insert(object_id, Object { fd: owned, blob });
                            }
                            Err(e) => {
                                self.stats.errors += 1;
                                log!(self, Level::Error, "copen {msg_id}: {e}");
                            }
                        }
                    }
                    Err(e) => {
                        self.stats.errors += 1;
                        let errno = if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::InvalidInput {
                            libc::ENOENT as i64
                        } else {
                            errno_of(&e)
                        };
                        log!(self, Level::Warn, "OPEN object {object_id} volume {vk:?} blob {ck:?}: {e}: refusing with -{errno}");
                        if let Err(e) = self.reply(&proto::copen(msg_id, -errno)) {
                            log!(self, Level::Error, "copen {msg_id}: {e}");
                        }
                        drop(owned);
                    }
                }
            }
            proto::Request::Close { object_id, .. } => {
                self.stats.closes += 1;
                log!(self, Level::Info, "CLOSE object {object_id}");
                self.objects.remove(&object_id);
            }
            proto::Request::Read { msg_id, object_id, off, len } => {
                self.stats.reads += 1;
                let t = Instant::now();
                let Some(obj) = self.objects.get(&object_id) else {
                    self.stats.errors += 1;
                    log!(self, Level::Error, "READ {msg_id} for unknown object {object_id}");
                    return;
                };
                let fd = obj.fd.as_raw_fd();
                let result = match proto::fill_range(off, len, obj.blob.size, cache::ALIGN as u64, self.cfg.window) {
                    Some((start, end)) => cache::fill(fd, &obj.blob, start, end, &mut self.buf),
                    None => Err(io::Error::new(io::ErrorKind::InvalidInput, "READ past the end of the blob")),
                };
                match result {
                    Ok(n) => {
                        self.stats.bytes_fetched += n;
                        log!(self, Level::Debug, "READ {msg_id} object {object_id} [{off}, +{len}): {n} bytes in {:?}", t.elapsed());
                    }
                    Err(e) => {
                        self.stats.errors += 1;
                        log!(self, Level::Error, "READ {msg_id} object {object_id} [{off}, +{len}): {e} (the reader gets EIO)");
                    }
                }
                // Always complete: a request left pending blocks the reader.
                if let Err(e) = cache::complete(fd, msg_id) {
                    self.stats.errors += 1;
                    log!(self, Level::Error, "READ {msg_id}: completion ioctl failed: {e}");
                }
            }
            proto::Request::Unknown { msg_id, opcode, .. } => {
                self.stats.errors += 1;
                log!(self, Level::Warn, "message {msg_id}: unknown opcode {opcode}, ignored");
            }
        }
        self.write_stats();
    }

    fn run(&mut self, sigfd: RawFd) -> Result<(), String> {
        let mut msg = vec![0u8; proto::MSG_MAX_SIZE];
        loop {
            let mut fds = [
                libc::pollfd { fd: self.dev.as_raw_fd(), events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: sigfd, events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: `fds` is a valid array of two pollfds.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {e}"));
            }
            if fds[1].revents != 0 {
                return Ok(());
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0 && fds[0].revents & libc::POLLIN == 0 {
                return Err("the cachefiles device reported an error".into());
            }
            if fds[0].revents & libc::POLLIN == 0 {
                continue;
            }
            // Drain every pending message.
            loop {
                // SAFETY: reading into a buffer of `msg.len()` bytes.
                let n = unsafe { libc::read(self.dev.as_raw_fd(), msg.as_mut_ptr().cast(), msg.len()) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    match e.kind() {
                        io::ErrorKind::Interrupted => continue,
                        io::ErrorKind::WouldBlock => break,
                        _ => return Err(format!("read from the cachefiles device: {e}")),
                    }
                }
                if n == 0 {
                    break;
                }
                match proto::parse(&msg[..n as usize]) {
                    Ok(req) => self.handle(req),
                    Err(e) => {
                        self.stats.errors += 1;
                        log!(self, Level::Error, "bad message from the kernel: {e}");
                    }
                }
            }
        }
    }
}

fn signal_fd() -> Result<OwnedFd, String> {
    // SAFETY: plain libc signal-mask calls on a zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("cannot block signals".into());
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if fd < 0 {
            return Err(format!("signalfd: {}", io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn main() {
    let cfg = match parse_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("erofs-ondemandd: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cfg) {
        eprintln!("erofs-ondemandd: error: {e}");
        std::process::exit(1);
    }
}

fn run(cfg: Config) -> Result<(), String> {
    let sigfd = signal_fd()?;
    let mut dev = open_devnode(&cfg.devnode)?;
    bind(&cfg, &mut dev)?;
    eprintln!("erofs-ondemandd: bound {} (ondemand), serving {}", cfg.cache_dir.display(), cfg.blob_dir.display());
    if let Some(p) = &cfg.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id())).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut d = Daemon { cfg, dev, objects: HashMap::new(), stats: Stats::default(), buf: cache::AlignedBuf::new(cache::CHUNK) };
    d.write_stats();
    let r = d.run(sigfd.as_raw_fd());
    let s = &d.stats;
    eprintln!(
        "erofs-ondemandd: exiting: {} opens, {} reads, {} closes, {} bytes fetched, {} errors",
        s.opens, s.reads, s.closes, s.bytes_fetched, s.errors
    );
    if let Some(p) = &d.cfg.pid_file {
        let _ = std::fs::remove_file(p);
    }
    r
}
