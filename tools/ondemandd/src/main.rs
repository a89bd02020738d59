// SPDX-License-Identifier: GPL-2.0
//! erofs-ondemandd: a cachefiles on-demand daemon serving EROFS blobs from a local directory.
//!
//! It binds a cachefiles cache in on-demand mode through /dev/cachefiles, answers OPEN with the
//! size of the blob named by the cookie key, fills cache files on READ and completes the
//! request, and releases objects on CLOSE. It serves in-tree erofs and erofs_rs alike.

mod blobs;
mod cache;
mod coalesce;
mod config;
mod daemon;
mod devnode;
mod digest;
mod fault;
mod fdstore;
mod fetchcmd;
mod http;
mod oci;
#[macro_use]
mod log;
mod prefetch;
mod proto;
mod queue;
mod route;
mod signals;
mod stats;
mod statsock;
mod supervise;
mod tls;
mod toml;

use blobs::{Delays, DirStore};
use daemon::{Daemon, Options};
use devnode::{Devnode, Event};
use fault::{Fault, Faults};
use log::Level;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where blobs come from.
#[derive(Debug, PartialEq)]
enum SourceCfg {
    Dir(PathBuf),
    Http(http::Url),
    Oci(oci::OciUrl),
    /// The config file's [[source]] tables (`--config`), first match wins.
    Routes(Vec<config::Rule>),
}

impl SourceCfg {
    /// `--source`/`--blob-dir` value: a URL (`http[s]://`, `oci[s]://`) or a directory.
    fn parse(val: &str) -> Result<SourceCfg, String> {
        if val.starts_with("oci://") || val.starts_with("ocis://") {
            Ok(SourceCfg::Oci(oci::OciUrl::parse(val)?))
        } else if val.contains("://") {
            Ok(SourceCfg::Http(http::Url::parse(val)?))
        } else {
            Ok(SourceCfg::Dir(PathBuf::from(val)))
        }
    }

    /// The blob store it describes; `https` servers are verified against `trust` (a
    /// `[[source]]` table's `ca_file` replaces it for that source).
    fn store(
        &self,
        timeout: u64,
        creds: Option<&oci::Credentials>,
        trust: &tls::Trust,
    ) -> Result<Arc<dyn blobs::BlobStore>, String> {
        let t = std::time::Duration::from_secs(timeout);
        Ok(match self {
            SourceCfg::Dir(d) => Arc::new(DirStore(d.clone())),
            SourceCfg::Http(u) => Arc::new(http::HttpStore::new(u.clone(), t, trust.clone())),
            SourceCfg::Oci(u) => Arc::new(oci::OciStore::new(
                u.clone(),
                creds.cloned(),
                t,
                trust.clone(),
            )),
            SourceCfg::Routes(rules) => {
                let mut routes = Vec::new();
                for r in rules {
                    let src = match &r.source {
                        config::RuleSource::Dir(d) => SourceCfg::Dir(d.clone()),
                        config::RuleSource::Url(u) => {
                            SourceCfg::parse(u).map_err(|e| format!("{}: {e}", r.at))?
                        }
                    };
                    let own;
                    let trust = match &r.ca_file {
                        Some(p) => {
                            own = tls::Trust::from_file(p)
                                .map_err(|e| format!("{}: ca_file {e}", r.at))?;
                            &own
                        }
                        None => trust,
                    };
                    routes.push((r.clone(), src.store(timeout, creds, trust)?));
                }
                Arc::new(route::RouteStore::new(routes))
            }
        })
    }

    /// Whether it connects to servers (and so may meet `https`, if only in a redirect).
    fn uses_network(&self) -> bool {
        match self {
            SourceCfg::Dir(_) => false,
            SourceCfg::Http(_) | SourceCfg::Oci(_) => true,
            SourceCfg::Routes(rules) => rules
                .iter()
                .any(|r| matches!(r.source, config::RuleSource::Url(_))),
        }
    }

    /// Whether a source connects with TLS itself (`https://`, `ocis://`) using the global
    /// trust store (not a `[[source]]` table's own `ca_file`): that store must then be usable.
    fn needs_global_trust(&self) -> bool {
        let tls_url = |u: &str| u.starts_with("https://") || u.starts_with("ocis://");
        match self {
            SourceCfg::Dir(_) => false,
            SourceCfg::Http(u) => u.ep.tls,
            SourceCfg::Oci(u) => u.ep.tls,
            SourceCfg::Routes(rules) => rules.iter().any(|r| {
                r.ca_file.is_none() && matches!(&r.source, config::RuleSource::Url(u) if tls_url(u))
            }),
        }
    }
}

/// The trust store for `source`: `--ca-file` (which must load), else the system bundle, which
/// must load if a source connects with TLS. Loaded before anything else happens, so that a bad
/// CA file stops the daemon at start.
fn load_trust(ca_file: Option<&Path>, source: &SourceCfg) -> Result<tls::Trust, String> {
    if ca_file.is_none() && !source.uses_network() {
        return Ok(tls::Trust::unavailable("the source makes no connections"));
    }
    let trust = tls::Trust::load(ca_file).map_err(|e| format!("--ca-file {e}"))?;
    if source.needs_global_trust() {
        trust.check().map_err(|e| {
            format!("the source connects with TLS, but there is no trust store: {e}")
        })?;
    }
    Ok(trust)
}

/// The environment variable with registry credentials (`USER:PASS`), read when
/// `--registry-auth` is not given.
const AUTH_ENV: &str = "EROFS_ONDEMANDD_REGISTRY_AUTH";

/// `--registry-auth`, else the environment, if any.
fn registry_auth(given: Option<oci::Credentials>) -> Result<Option<oci::Credentials>, String> {
    if given.is_some() {
        return Ok(given);
    }
    match std::env::var(AUTH_ENV) {
        Ok(v) if !v.is_empty() => oci::Credentials::parse(&v)
            .map(Some)
            .map_err(|e| format!("{AUTH_ENV}: {e}")),
        _ => Ok(None),
    }
}

#[derive(Debug, PartialEq)]
struct Config {
    cache_dir: PathBuf,
    source: SourceCfg,
    http_timeout: u64,
    registry_auth: Option<oci::Credentials>,
    ca_file: Option<PathBuf>,
    tag: Option<String>,
    devnode: PathBuf,
    stats_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
    level: Level,
    log_format: log::Format,
    window: u64,
    faults: Faults,
    delays: Delays,
    threads: usize,
    per_blob: usize,
    supervise: bool,
    worker_pid_file: Option<PathBuf>,
    fd_store: Option<PathBuf>,
    stats_socket: Option<PathBuf>,
    prefetch: prefetch::Plan,
}

const USAGE: &str = "usage: erofs-ondemandd --cache-dir DIR {--blob-dir DIR | --source http[s]://HOST[:PORT][/PREFIX] | --source oci[s]://HOST[:PORT]/REPO} \
[--http-timeout SECS] [--registry-auth USER:PASS] [--ca-file PEM] [--tag NAME] \
[--devnode PATH] [--stats-file PATH] [--pid-file PATH] [--log-level error|warn|info|debug] \
[--log-format text|json] [--window BYTES] [--threads N] [--per-blob N] [--fault KIND[:BLOB]]... \
[--source-delay-ms N[:BLOB]]... [--supervise [--worker-pid-file PATH]] [--fd-store SOCKET] \
[--foreground] [--config FILE] [--stats-socket PATH] [--prefetch BLOB[:OFF:LEN]]... \
[--prefetch-bandwidth BYTES_PER_SEC[K|M|G]]
       erofs-ondemandd stats --socket PATH
       erofs-ondemandd hold --socket SOCKET [--pid-file PATH] [--log-level LEVEL]
       erofs-ondemandd fetch --source {DIR | http[s]://... | oci[s]://...} KEY [--out FILE] [--offset N --length N] \
[--http-timeout SECS] [--registry-auth USER:PASS] [--ca-file PEM] [--log-level LEVEL]
registry credentials may also come from $EROFS_ONDEMANDD_REGISTRY_AUTH (USER:PASS)
fault kinds (testing only): refuse-open, read-no-data, short-write, misaligned-write, write-past, close-anon-fd, no-answer, exit-on-read";

/// `hold` arguments (after the word `hold`): the socket path, the pid file, the log level.
fn parse_hold<I: IntoIterator<Item = String>>(
    args: I,
) -> Result<(PathBuf, Option<PathBuf>, Level), String> {
    let mut args = args.into_iter();
    let (mut socket, mut pid_file, mut level) = (None, None, Level::Info);
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
            "--pid-file" => pid_file = Some(PathBuf::from(val)),
            "--log-level" => {
                level = Level::parse(&val).ok_or_else(|| format!("bad --log-level {val:?}"))?
            }
            _ => return Err(format!("hold: unknown argument {key}")),
        }
    }
    Ok((socket.ok_or("hold: --socket is required")?, pid_file, level))
}

/// `fetch` arguments (after the word `fetch`).
struct FetchCfg {
    source: SourceCfg,
    what: fetchcmd::What,
    http_timeout: u64,
    registry_auth: Option<oci::Credentials>,
    ca_file: Option<PathBuf>,
    level: Level,
}

fn parse_fetch<I: IntoIterator<Item = String>>(args: I) -> Result<FetchCfg, String> {
    let mut args = args.into_iter();
    let mut source = None;
    let mut cfg = FetchCfg {
        source: SourceCfg::Dir(PathBuf::new()),
        what: fetchcmd::What::default(),
        http_timeout: 30,
        registry_auth: None,
        ca_file: None,
        level: Level::Warn,
    };
    let mut key = None;
    while let Some(a) = args.next() {
        if !a.starts_with("--") {
            if key.replace(a).is_some() {
                return Err("fetch: give one KEY".into());
            }
            continue;
        }
        let (k, inline) = match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let val = inline
            .or_else(|| args.next())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("bad {k} {v:?}"));
        match k.as_str() {
            "--source" | "--blob-dir" => source = Some(SourceCfg::parse(&val)?),
            "--out" => cfg.what.out = Some(PathBuf::from(val)),
            "--offset" => cfg.what.offset = Some(num(&val)?),
            "--length" => cfg.what.length = Some(num(&val)?),
            "--http-timeout" => cfg.http_timeout = count(&k, &val, 3600)? as u64,
            "--registry-auth" => cfg.registry_auth = Some(oci::Credentials::parse(&val)?),
            "--ca-file" => cfg.ca_file = Some(PathBuf::from(val)),
            "--log-level" => {
                cfg.level = Level::parse(&val).ok_or_else(|| format!("bad --log-level {val:?}"))?
            }
            _ => return Err(format!("fetch: unknown argument {k}")),
        }
    }
    cfg.source = source.ok_or("fetch: --source is required")?;
    cfg.what.key = key.ok_or("fetch: the blob KEY is required")?;
    Ok(cfg)
}

/// The `fetch` subcommand: exit status 0 (fetched; verified or nothing to verify), 1 (failed
/// or digest mismatch), 2 (usage).
fn fetch_main() -> ! {
    let cfg = match parse_fetch(std::env::args().skip(2)) {
        Ok(c) => c,
        Err(e) => {
            say!("erofs-ondemandd: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    log::set_level(cfg.level);
    let creds = match registry_auth(cfg.registry_auth) {
        Ok(c) => c,
        Err(e) => {
            say!("erofs-ondemandd: {e}");
            std::process::exit(2);
        }
    };
    let store = match load_trust(cfg.ca_file.as_deref(), &cfg.source)
        .and_then(|trust| cfg.source.store(cfg.http_timeout, creds.as_ref(), &trust))
    {
        Ok(s) => s,
        Err(e) => {
            say!("erofs-ondemandd: {e}");
            std::process::exit(2);
        }
    };
    let to_stdout = cfg.what.out.as_deref() == Some(Path::new("-"));
    let mut status: Box<dyn std::io::Write> = if to_stdout {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    match fetchcmd::run(store.as_ref(), &cfg.what, &mut status) {
        Ok(fetchcmd::Outcome::Mismatch) => std::process::exit(1),
        Ok(_) => std::process::exit(0),
        Err(e) => {
            log!(Level::Error, "fetch: {e}");
            std::process::exit(1)
        }
    }
}

/// A count option's value: 1..=max.
fn count(key: &str, val: &str, max: usize) -> Result<usize, String> {
    val.parse()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("bad {key} {val:?}: a number from 1 to {max}"))
}

/// Parses the command line (without argv[0]). Ok(None) for --help.
fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Config>, String> {
    // --config FILE: the file's settings come first, as options the command line overrides.
    let (args, file) = config::expand(args.into_iter().collect())?;
    let mut args = args.into_iter();
    let mut cache_dir = None;
    let mut source = None;
    let mut cfg = Config {
        cache_dir: PathBuf::new(),
        source: SourceCfg::Dir(PathBuf::new()),
        http_timeout: 30,
        registry_auth: None,
        ca_file: None,
        tag: None,
        devnode: PathBuf::from("/dev/cachefiles"),
        stats_file: None,
        pid_file: None,
        level: Level::Info,
        log_format: log::Format::Text,
        window: 1 << 20,
        faults: Faults::default(),
        delays: Delays::default(),
        threads: 16,
        per_blob: 4,
        supervise: false,
        worker_pid_file: None,
        fd_store: None,
        stats_socket: None,
        prefetch: prefetch::Plan::default(),
    };
    while let Some(a) = args.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        match key.as_str() {
            "--help" | "-h" => return Ok(None),
            "--foreground" => continue,
            "--supervise" => {
                cfg.supervise = true;
                continue;
            }
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
            "--blob-dir" | "--source" => {
                if source.is_some() {
                    return Err("give one of --blob-dir and --source, once".into());
                }
                source = Some(if key == "--source" {
                    SourceCfg::parse(&val)?
                } else {
                    SourceCfg::Dir(PathBuf::from(val))
                });
            }
            "--http-timeout" => cfg.http_timeout = count(&key, &val, 3600)? as u64,
            "--registry-auth" => cfg.registry_auth = Some(oci::Credentials::parse(&val)?),
            "--ca-file" => cfg.ca_file = Some(PathBuf::from(val)),
            "--tag" => {
                if val.contains(|c: char| c.is_whitespace() || c == '\0') {
                    return Err(format!("bad --tag {val:?}: no whitespace allowed"));
                }
                cfg.tag = Some(val)
            }
            "--devnode" => cfg.devnode = val.into(),
            "--stats-file" => cfg.stats_file = Some(val.into()),
            "--pid-file" => cfg.pid_file = Some(val.into()),
            "--fault" => cfg.faults.add(Fault::parse(&val)?)?,
            "--window" => cfg.window = val.parse().map_err(|_| format!("bad --window {val:?}"))?,
            "--threads" => cfg.threads = count(&key, &val, 1024)?,
            "--per-blob" => cfg.per_blob = count(&key, &val, 1024)?,
            "--source-delay-ms" => cfg.delays.add(&val)?,
            "--worker-pid-file" => cfg.worker_pid_file = Some(val.into()),
            "--fd-store" => cfg.fd_store = Some(val.into()),
            "--stats-socket" => cfg.stats_socket = Some(val.into()),
            "--prefetch" => cfg.prefetch.specs.push(prefetch::Spec::parse(&val)?),
            "--prefetch-bandwidth" => {
                let n =
                    prefetch::parse_size(&val).map_err(|e| format!("--prefetch-bandwidth: {e}"))?;
                // 0 (no cap) is kept until the file's value is merged below.
                cfg.prefetch.bandwidth = Some(n);
            }
            "--log-level" => {
                cfg.level = Level::parse(&val).ok_or_else(|| format!("bad --log-level {val:?}"))?
            }
            "--log-format" => {
                cfg.log_format = log::Format::parse(&val)
                    .ok_or_else(|| format!("bad --log-format {val:?}: text or json"))?
            }
            _ => return Err(format!("unknown argument {key}")),
        }
    }
    if let Some(fc) = file {
        // --blob-dir/--source replace the file's [[source]] tables; the command line's
        // --prefetch items add to the file's, its --prefetch-bandwidth wins.
        if source.is_none() && !fc.sources.is_empty() {
            source = Some(SourceCfg::Routes(fc.sources));
        }
        cfg.prefetch.specs.splice(0..0, fc.prefetch.specs);
        if cfg.prefetch.bandwidth.is_none() {
            cfg.prefetch.bandwidth = fc.prefetch.bandwidth;
        }
    }
    cfg.prefetch.bandwidth = cfg.prefetch.bandwidth.filter(|&n| n > 0);
    cfg.cache_dir = cache_dir.ok_or("--cache-dir is required")?;
    cfg.source = source.ok_or("--blob-dir, --source or [[source]] in --config is required")?;
    let oci_used = match &cfg.source {
        SourceCfg::Oci(_) => true,
        SourceCfg::Routes(rules) => rules.iter().any(|r| {
            matches!(&r.source, config::RuleSource::Url(u)
                if u.starts_with("oci://") || u.starts_with("ocis://"))
        }),
        _ => false,
    };
    if cfg.registry_auth.is_some() && !oci_used {
        return Err("--registry-auth is for oci:// and ocis:// sources only".into());
    }
    Ok(Some(cfg))
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("fetch") {
        fetch_main();
    }
    if std::env::args().nth(1).as_deref() == Some("stats") {
        let r = statsock::parse_args(std::env::args().skip(2))
            .and_then(|p| statsock::query(&p).map_err(|e| format!("stats: {}: {e}", p.display())));
        match r {
            Ok(s) => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(s.as_bytes());
                return;
            }
            Err(e) => {
                say!("erofs-ondemandd: {e}");
                std::process::exit(1);
            }
        }
    }
    if std::env::args().nth(1).as_deref() == Some("hold") {
        match parse_hold(std::env::args().skip(2)) {
            Ok((socket, pid_file, level)) => {
                log::set_level(level);
                if let Err(e) = fdstore::hold(&socket, pid_file.as_deref()) {
                    log!(Level::Error, "{e}");
                    std::process::exit(1);
                }
                return;
            }
            Err(e) => {
                say!("erofs-ondemandd: {e}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let cfg = match parse_args(std::env::args().skip(1)) {
        Ok(Some(c)) => c,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            say!("erofs-ondemandd: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    log::set_level(cfg.level);
    log::set_format(cfg.log_format);
    let mut cfg = cfg;
    if matches!(cfg.source, SourceCfg::Oci(_) | SourceCfg::Routes(_)) {
        match registry_auth(cfg.registry_auth.take()) {
            Ok(c) => cfg.registry_auth = c,
            Err(e) => {
                say!("erofs-ondemandd: {e}");
                std::process::exit(2);
            }
        }
    }
    // Before binding anything: a bad --ca-file is a usage error.
    let trust = match load_trust(cfg.ca_file.as_deref(), &cfg.source) {
        Ok(t) => t,
        Err(e) => {
            say!("erofs-ondemandd: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cfg, trust) {
        log!(Level::Error, "{e}");
        std::process::exit(1);
    }
}

fn run(cfg: Config, trust: tls::Trust) -> Result<(), String> {
    if let SourceCfg::Dir(d) = &cfg.source {
        if !d.is_dir() {
            return Err(format!("--blob-dir {}: not a directory", d.display()));
        }
    }
    // Block the signals before anything else so none is lost (and threads and workers started
    // later inherit the mask).
    let mut sigs = vec![libc::SIGTERM, libc::SIGINT];
    if cfg.supervise {
        sigs.push(libc::SIGCHLD);
    }
    let sigfd = signals::SignalFd::new(&sigs).map_err(|e| format!("signalfd: {e}"))?;
    let open_bind = || -> Result<Devnode, String> {
        let dev = Devnode::open(&cfg.devnode)?;
        dev.bind(&cfg.cache_dir, cfg.tag.as_deref())?;
        Ok(dev)
    };
    // With --fd-store, the device may come bound from the holder (`first` > 0: hand-overs).
    let (dev, first) = match &cfg.fd_store {
        Some(sock) => fdstore::get_or_put(sock, open_bind)?,
        None => (open_bind()?, 0),
    };
    if first > 0 {
        say!(
            "erofs-ondemandd: got the bound device from {} (hand-over {first})",
            cfg.fd_store.as_deref().unwrap_or(Path::new("")).display()
        );
    } else {
        say!(
            "erofs-ondemandd: bound {} (ondemand)",
            cfg.cache_dir.display()
        );
    }
    if let Some(p) = &cfg.pid_file {
        stats::write_atomic(p, &format!("{}\n", std::process::id()))
            .map_err(|e| format!("--pid-file {}: {e}", p.display()))?;
    }
    let dev = Arc::new(dev);
    if !cfg.supervise {
        worker(&cfg, &trust, dev, sigfd, first)
    }
    let code = supervise::run(&sigfd, first, &|restarts| {
        // In the forked worker: its own signalfd (the mask is inherited).
        match signals::SignalFd::termination() {
            Ok(fd) => worker(&cfg, &trust, Arc::clone(&dev), fd, restarts),
            Err(e) => {
                log!(Level::Error, "signalfd: {e}");
                std::process::exit(1)
            }
        }
    });
    if let Some(p) = &cfg.pid_file {
        let _ = std::fs::remove_file(p);
    }
    std::process::exit(code)
}

/// Serves requests on the bound `dev` until a signal or a devnode failure, then exits. With
/// `restarts` > 0 it is a supervised worker started after a crash: it first writes `restore`
/// so the requests its predecessor had taken are sent again.
fn worker(
    cfg: &Config,
    trust: &tls::Trust,
    dev: Arc<Devnode>,
    sigfd: signals::SignalFd,
    restarts: u64,
) -> ! {
    if let Err(e) = serve_worker(cfg, trust, dev, sigfd, restarts) {
        log!(Level::Error, "{e}");
        std::process::exit(1)
    }
    std::process::exit(0)
}

fn serve_worker(
    cfg: &Config,
    trust: &tls::Trust,
    dev: Arc<Devnode>,
    sigfd: signals::SignalFd,
    restarts: u64,
) -> Result<(), String> {
    if restarts > 0 {
        match dev.command("restore") {
            Ok(()) => log!(
                Level::Info,
                "restarted ({restarts}): wrote 'restore': requests in flight are sent again"
            ),
            Err(e) => log!(
                Level::Error,
                "'restore' failed: {e}: requests the previous daemon had taken stay unanswered (needs Linux 6.8+)"
            ),
        }
    }
    let worker_pid_file = if cfg.supervise {
        cfg.worker_pid_file.as_ref()
    } else {
        None
    };
    if let Some(p) = worker_pid_file {
        stats::write_atomic(p, &format!("{}\n", std::process::id()))
            .map_err(|e| format!("--worker-pid-file {}: {e}", p.display()))?;
    }
    if !cfg.faults.is_empty() {
        log!(
            Level::Warn,
            "fault injection is on: this daemon misbehaves on purpose"
        );
    }
    for f in cfg.faults.iter() {
        log!(Level::Warn, "injecting fault {f}");
    }
    if !cfg.delays.is_empty() {
        log!(
            Level::Warn,
            "--source-delay-ms: fetches are slowed down on purpose"
        );
    }
    let store = cfg
        .source
        .store(cfg.http_timeout, cfg.registry_auth.as_ref(), trust)?;
    if cfg.source.uses_network() {
        if let Err(e) = trust.check() {
            log!(
                Level::Info,
                "no TLS trust store: https:// URLs (redirects, token realms) will fail: {e}"
            );
        }
    }
    log!(
        Level::Info,
        "serving {} with {} threads",
        store.describe(),
        cfg.threads
    );
    log!(
        Level::Info,
        "blobs whose cookie key names a sha256 digest and that fit in --window ({} bytes) are fetched whole and verified before caching",
        cfg.window
    );
    let opts = Options {
        store,
        stats_file: cfg.stats_file.clone(),
        window: cfg.window,
        faults: cfg.faults.clone(),
        delays: cfg.delays.clone(),
        threads: cfg.threads,
        per_blob: cfg.per_blob,
        restarts,
        prefetch: cfg.prefetch.clone(),
    };
    if !cfg.prefetch.is_empty() {
        log!(
            Level::Info,
            "prefetch: {} item(s), bandwidth {}",
            cfg.prefetch.specs.len(),
            cfg.prefetch
                .bandwidth
                .map_or("unlimited".to_string(), |b| format!("{b} bytes/s"))
        );
    }
    let mut d = Daemon::new(opts, Arc::clone(&dev)).map_err(|e| format!("{e}"))?;
    d.write_stats();
    // Removed (by drop) when this function returns: on a clean exit.
    let _stats_socket = match &cfg.stats_socket {
        Some(p) => Some(statsock::start(p, d.snapshot())?),
        None => None,
    };
    let r = serve(&dev, &sigfd, &mut d);
    say!("erofs-ondemandd: exiting: {}", d.stats().summary());
    let own_pid_file = if cfg.supervise {
        worker_pid_file
    } else {
        cfg.pid_file.as_ref()
    };
    if let Some(p) = own_pid_file {
        let _ = std::fs::remove_file(p);
    }
    // The caller exits without waiting for fetches in flight (dropping the daemon would).
    std::mem::forget(d);
    r
}

/// The request loop: until SIGTERM/SIGINT (Ok) or a devnode failure (Err).
fn serve(
    dev: &Devnode,
    sigfd: &signals::SignalFd,
    d: &mut Daemon<Arc<Devnode>>,
) -> Result<(), String> {
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
            Event::Readable => {
                for got in 0u64.. {
                    // One message per read(); 0 when nothing more is pending.
                    let n = dev
                        .read_msg(&mut msg)
                        .map_err(|e| format!("read from the devnode: {e}"))?;
                    if n == 0 {
                        if got == 0 {
                            // Readable but nothing to read: READs of objects being reopened (after
                            // `restore`) stay marked new, and poll() says so, until their OPEN is
                            // answered. Do not spin on them.
                            std::thread::sleep(std::time::Duration::from_millis(2));
                        }
                        break;
                    }
                    d.handle_message(&msg[..n]);
                    if d.exit_requested {
                        // Closing the devnode (by exiting) fails the pending requests with EIO.
                        return Err("fault exit-on-read: exiting with a READ pending".into());
                    }
                }
            }
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
        assert_eq!((c.threads, c.per_blob), (16, 4));
        assert!(c.delays.is_empty());
        let c = parse_args(args(
            "--cache-dir /c --blob-dir=/b --tag t1 --devnode /d --stats-file /s --pid-file /p \
             --log-level debug --log-format json --foreground --window 65536 --threads 3 --per-blob=2 \
             --source-delay-ms 100:slow",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.source, SourceCfg::Dir(PathBuf::from("/b")));
        assert_eq!(c.tag.as_deref(), Some("t1"));
        assert_eq!(c.stats_file, Some(PathBuf::from("/s")));
        assert_eq!(c.pid_file, Some(PathBuf::from("/p")));
        assert_eq!((c.level, c.window), (Level::Debug, 65536));
        assert_eq!(c.log_format, log::Format::Json);
        assert_eq!((c.threads, c.per_blob), (3, 2));
        assert_eq!(c.delays.get(b"slow").as_millis(), 100);
        assert!(c.faults.is_empty());
        let c = parse_args(args(
            "--cache-dir /c --blob-dir /b --fault no-answer:blob1 --fault=refuse-open:meta",
        ))
        .unwrap()
        .unwrap();
        let f: Vec<String> = c.faults.iter().map(|f| f.to_string()).collect();
        assert_eq!(f, ["no-answer:blob1", "refuse-open:meta"]);
        assert_eq!(parse_args(args("--help")).unwrap(), None);
        let c = parse_args(args(
            "--cache-dir /c --blob-dir /b --fd-store /run/s --supervise",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.fd_store, Some(PathBuf::from("/run/s")));
        assert!(c.supervise);
        assert_eq!(
            parse_hold(args("--socket /s --pid-file=/p --log-level warn")).unwrap(),
            (PathBuf::from("/s"), Some(PathBuf::from("/p")), Level::Warn)
        );
        for bad in ["", "--socket", "--pid-file /p", "--socket /s --bogus 1"] {
            assert!(parse_hold(args(bad)).is_err(), "hold {bad}");
        }
        let c = parse_args(args(
            "--cache-dir /c --source http://127.0.0.1:8000/b --http-timeout 5",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.source,
            SourceCfg::Http(http::Url::parse("http://127.0.0.1:8000/b").unwrap())
        );
        assert_eq!(c.http_timeout, 5);
        let c = parse_args(args(
            "--cache-dir /c --source oci://127.0.0.1:5000/erofs/test --registry-auth u:p:w",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.source,
            SourceCfg::Oci(oci::OciUrl::parse("oci://127.0.0.1:5000/erofs/test").unwrap())
        );
        assert_eq!(
            c.registry_auth,
            Some(oci::Credentials::parse("u:p:w").unwrap())
        );
        assert!(
            !format!("{c:?}").contains("p:w"),
            "credentials are never shown"
        );
        let f = parse_fetch(args(
            "--source oci://r/x sha256:ab --out /tmp/o --offset 4096 --length=10",
        ))
        .unwrap();
        assert_eq!(f.what.key, "sha256:ab");
        assert_eq!(f.what.out, Some(PathBuf::from("/tmp/o")));
        assert_eq!((f.what.offset, f.what.length), (Some(4096), Some(10)));
        for bad in [
            "",
            "k",
            "--source /d",
            "--source /d a b",
            "--source /d k --offset x",
            "--source /d k --bogus 1",
        ] {
            assert!(parse_fetch(args(bad)).is_err(), "fetch {bad}");
        }
        let c = parse_args(args("--cache-dir /c --source /srv/b"))
            .unwrap()
            .unwrap();
        assert_eq!(c.source, SourceCfg::Dir(PathBuf::from("/srv/b")));
        // TLS sources, --ca-file
        let c = parse_args(args(
            "--cache-dir /c --source https://127.0.0.1:8443/b --ca-file /etc/ca.pem",
        ))
        .unwrap()
        .unwrap();
        assert_eq!(
            c.source,
            SourceCfg::Http(http::Url::parse("https://127.0.0.1:8443/b").unwrap())
        );
        assert_eq!(c.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert!(c.source.needs_global_trust() && c.source.uses_network());
        let c = parse_args(args(
            "--cache-dir /c --source ocis://registry.example/erofs/test --registry-auth u:p",
        ))
        .unwrap()
        .unwrap();
        let SourceCfg::Oci(u) = &c.source else {
            panic!("{:?}", c.source)
        };
        assert_eq!(u.to_string(), "ocis://registry.example/erofs/test");
        assert!(c.source.needs_global_trust());
        let c = parse_args(args("--cache-dir /c --source oci://r:5000/x"))
            .unwrap()
            .unwrap();
        assert!(!c.source.needs_global_trust() && c.source.uses_network());
        let f = parse_fetch(args("--source https://h/b k --ca-file=/ca.pem")).unwrap();
        assert_eq!(f.ca_file, Some(PathBuf::from("/ca.pem")));
        for bad in [
            "--blob-dir /b",
            "--cache-dir /c",
            "--cache-dir /c --blob-dir",
            "--cache-dir /c --blob-dir /b --log-level loud",
            "--cache-dir /c --blob-dir /b --bogus x",
            "--cache-dir /c --blob-dir /b --window -1",
            "--cache-dir /c --blob-dir /b --fault",
            "--cache-dir /c --blob-dir /b --fault bogus",
            "--cache-dir /c --blob-dir /b --fault no-answer --fault short-write:blob1",
            "--cache-dir /c --blob-dir /b --threads 0",
            "--cache-dir /c --blob-dir /b --source http://h/",
            "--cache-dir /c --source https://h:0/",
            "--cache-dir /c --source ocis://h",
            "--cache-dir /c --source https://h/ --registry-auth u:p",
            "--cache-dir /c --source oci://h",
            "--cache-dir /c --source oci://h/UPPER",
            "--cache-dir /c --source oci://h/r --registry-auth nocolon",
            "--cache-dir /c --blob-dir /b --registry-auth u:p",
            "--cache-dir /c --source http://h/ --http-timeout 0",
            "--cache-dir /c --blob-dir /b --per-blob x",
            "--cache-dir /c --blob-dir /b --source-delay-ms 1:",
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn trust_stores() {
        let d = blobs::tests::TempDir::new("maintrust");
        let ca = tls::tests::Ca::new("main CA");
        let pem = ca.write(&d.0, "ca.pem");
        let dir = SourceCfg::Dir("/b".into());
        let https = SourceCfg::parse("https://127.0.0.1:8443/b").unwrap();
        // no network source: nothing loaded; a given --ca-file is loaded all the same
        assert!(load_trust(None, &dir).unwrap().check().is_err());
        let missing = d.0.join("missing.pem");
        let e = load_trust(Some(&missing), &dir).unwrap_err();
        assert!(
            e.starts_with(&format!("--ca-file {}: ", missing.display())),
            "{e}"
        );
        let t = load_trust(Some(&pem), &https).unwrap();
        assert!(t.describe().contains("1 CA certificate from"));
        // without --ca-file: the system bundle, which a TLS source needs
        match load_trust(None, &https) {
            Ok(t) => assert!(t.describe().contains(tls::SYSTEM_BUNDLE)),
            Err(e) => assert!(e.contains("there is no trust store"), "{e}"),
        }
        // a [[source]] table's own ca_file is loaded for its store
        std::fs::create_dir(d.0.join("b")).unwrap();
        let f = d.0.join("c.toml");
        std::fs::write(
            &f,
            "cache_dir = \"/c\"\n[[source]]\nblobs = [\"meta\"]\ndir = \"b\"\n\
             [[source]]\nurl = \"https://127.0.0.1:9/b\"\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let c = parse_args(args(&format!("--config {}", f.display())))
            .unwrap()
            .unwrap();
        assert!(!c.source.needs_global_trust(), "it has its own ca_file");
        let store = c
            .source
            .store(5, None, &tls::Trust::unavailable("none"))
            .unwrap();
        let desc = store.describe();
        assert!(
            desc.contains("(TLS, trusting 1 CA certificate from"),
            "{desc}"
        );
        std::fs::remove_file(&pem).unwrap();
        assert!(c
            .source
            .store(5, None, &tls::Trust::unavailable("none"))
            .is_err_and(|e| e.contains("ca_file")));
    }

    #[test]
    fn config_file_and_overrides() {
        let d = blobs::tests::TempDir::new("maincfg");
        std::fs::create_dir(d.0.join("b")).unwrap();
        let f = d.0.join("c.toml");
        std::fs::write(
            &f,
            "cache_dir = \"/cache\"\nthreads = 2\nwindow = 65536\n\
             [[source]]\nblobs = [\"meta\"]\ndir = \"b\"\n\
             [prefetch]\nbandwidth = \"2M\"\nblobs = [\"blob1\"]\n",
        )
        .unwrap();
        let fa = format!("--config {}", f.display());
        let c = parse_args(args(&fa)).unwrap().unwrap();
        assert_eq!(c.cache_dir, PathBuf::from("/cache"));
        assert_eq!((c.threads, c.window), (2, 65536));
        let SourceCfg::Routes(r) = &c.source else {
            panic!("{:?}", c.source)
        };
        assert_eq!(r[0].source, config::RuleSource::Dir(d.0.join("b")));
        assert_eq!(c.prefetch.bandwidth, Some(2 << 20));
        assert_eq!(c.prefetch.specs.len(), 1);
        // the command line wins; --blob-dir replaces the file's sources
        let c = parse_args(args(&format!(
            "--threads 7 {fa} --blob-dir /x --cache-dir /c2 --prefetch meta:0:4096 \
             --prefetch-bandwidth 1K --stats-socket /s.sock"
        )))
        .unwrap()
        .unwrap();
        assert_eq!((c.threads, c.cache_dir), (7, PathBuf::from("/c2")));
        assert_eq!(c.source, SourceCfg::Dir("/x".into()));
        assert_eq!(c.prefetch.bandwidth, Some(1024));
        assert_eq!(c.prefetch.specs.len(), 2);
        assert_eq!(c.stats_socket, Some(PathBuf::from("/s.sock")));
        let c = parse_args(args(&format!("{fa} --prefetch-bandwidth 0")))
            .unwrap()
            .unwrap();
        assert_eq!(c.prefetch.bandwidth, None, "0 lifts the file's cap");
        // errors name the file and line
        std::fs::write(&f, "threads = 2\nbogus = 1\n").unwrap();
        let e = parse_args(args(&fa)).unwrap_err();
        assert_eq!(e, format!("{}:2: bogus: unknown key (known here: cache_dir, window, threads, per_blob, http_timeout, tag, devnode, stats_file, stats_socket, pid_file, log_level, log_format, fd_store, ca_file, source, prefetch)", f.display()));
        for bad in [
            "--cache-dir /c --blob-dir /b --prefetch a/b",
            "--cache-dir /c --blob-dir /b --prefetch-bandwidth fast",
            "--cache-dir /c --blob-dir /b --config /nonexistent.toml",
        ] {
            assert!(parse_args(args(bad)).is_err(), "{bad}");
        }
    }
}
