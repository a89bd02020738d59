// SPDX-License-Identifier: GPL-2.0
//! The config file (`--config FILE`, TOML, see Documentation/daemon.md "Config file").
//!
//! Top-level keys stand for the command-line options of the same name (`cache_dir` is
//! `--cache-dir`); [[source]] tables map volumes and blobs to sources, first match wins;
//! [prefetch] lists blobs and ranges to copy in the background. Command-line options given too
//! override the file: scalars are turned into options placed before the command line's (the
//! last one given wins), and `--blob-dir`/`--source` on the command line replace the file's
//! [[source]] tables. Every error names the file, the line and the key.

use crate::prefetch::{self, Spec};
use crate::toml::{self, Item, Table, Value};
use std::path::{Path, PathBuf};

/// Where a [[source]] table's blobs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    Dir(PathBuf),
    /// A URL, as `--source` takes it.
    Url(String),
}

/// One [[source]] table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The volume key to match (`erofs,NAME` or just `NAME`); None: any.
    pub volume: Option<String>,
    /// Cookie keys (blob names) to match; None: any.
    pub blobs: Option<Vec<String>>,
    pub source: RuleSource,
    /// `ca_file`: the trust store for this source's TLS connections (replacing `--ca-file` or
    /// the system bundle); url sources only. Checked (loaded) when the file is read.
    pub ca_file: Option<PathBuf>,
    /// Where the table is, for messages: `FILE:LINE`.
    pub at: String,
}

impl Rule {
    pub fn matches(&self, volume: &[u8], key: &[u8]) -> bool {
        // The kernel's volume key ends in NULs (padding).
        let end = volume.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let volume = &volume[..end];
        let vol_ok = self.volume.as_ref().is_none_or(|v| {
            volume == v.as_bytes() || volume.strip_prefix(b"erofs,") == Some(v.as_bytes())
        });
        vol_ok
            && self
                .blobs
                .as_ref()
                .is_none_or(|b| b.iter().any(|n| n.as_bytes() == key))
    }
}

/// What a config file says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// Options equivalent to the scalar keys: `["--window", "1048576", ...]`.
    pub args: Vec<String>,
    pub sources: Vec<Rule>,
    pub prefetch: prefetch::Plan,
}

/// Scalar keys and their options; the value is checked again by the option parser.
const SCALARS: &[(&str, &str, Kind)] = &[
    ("cache_dir", "--cache-dir", Kind::Path),
    ("window", "--window", Kind::Int),
    ("threads", "--threads", Kind::Int),
    ("per_blob", "--per-blob", Kind::Int),
    ("http_timeout", "--http-timeout", Kind::Int),
    ("tag", "--tag", Kind::Str),
    ("devnode", "--devnode", Kind::Path),
    ("stats_file", "--stats-file", Kind::Path),
    ("stats_socket", "--stats-socket", Kind::Path),
    ("pid_file", "--pid-file", Kind::Path),
    ("log_level", "--log-level", Kind::Str),
    ("log_format", "--log-format", Kind::Str),
    ("fd_store", "--fd-store", Kind::Path),
    ("ca_file", "--ca-file", Kind::Path),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Path,
    Int,
}

struct Ctx<'a> {
    file: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, line: usize, key: &str, msg: impl std::fmt::Display) -> String {
        format!("{}:{line}: {key}: {msg}", self.file.display())
    }

    fn string(&self, key: &str, it: &Item) -> Result<String, String> {
        match &it.value {
            Value::Str(s) if !s.is_empty() => Ok(s.clone()),
            Value::Str(_) => Err(self.err(it.line, key, "must not be empty")),
            v => Err(self.err(
                it.line,
                key,
                format!("must be a string, not {}", v.type_name()),
            )),
        }
    }

    fn strings(&self, key: &str, it: &Item) -> Result<Vec<String>, String> {
        let Value::Array(v) = &it.value else {
            return Err(self.err(
                it.line,
                key,
                format!("must be an array of strings, not {}", it.value.type_name()),
            ));
        };
        v.iter()
            .enumerate()
            .map(|(i, x)| self.string(&format!("{key}[{i}]"), x))
            .collect()
    }

    fn table<'t>(&self, key: &str, it: &'t Item) -> Result<&'t Table, String> {
        match &it.value {
            Value::Table(t) => Ok(t),
            v => Err(self.err(
                it.line,
                key,
                format!("must be a table, not {}", v.type_name()),
            )),
        }
    }

    /// Refuses keys of `t` not in `known`.
    fn known(&self, prefix: &str, t: &Table, known: &[&str]) -> Result<(), String> {
        for (k, it) in &t.0 {
            if !known.contains(&k.as_str()) {
                return Err(self.err(
                    it.line,
                    &format!("{prefix}{k}"),
                    format!("unknown key (known here: {})", known.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// Reads and checks config file `path` (paths in it may be relative to its directory).
pub fn load(path: &Path) -> Result<FileConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    parse(path, &text)
}

/// Parses config `text` read from `file`.
pub fn parse(file: &Path, text: &str) -> Result<FileConfig, String> {
    let cx = Ctx { file };
    let root =
        toml::parse(text).map_err(|e| format!("{}:{}: {}", file.display(), e.line, e.msg))?;
    let base = file.parent().unwrap_or(Path::new("."));
    let rel = |p: &str| -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_relative() {
            base.join(p)
        } else {
            p
        }
    };
    let mut known: Vec<&str> = SCALARS.iter().map(|s| s.0).collect();
    known.extend(["source", "prefetch"]);
    cx.known("", &root, &known)?;
    let mut fc = FileConfig::default();
    for &(key, opt, kind) in SCALARS {
        let Some(it) = root.get(key) else { continue };
        let val = match (kind, &it.value) {
            (Kind::Int, Value::Int(n)) if *n >= 0 => n.to_string(),
            (Kind::Int, Value::Int(_)) => return Err(cx.err(it.line, key, "must not be negative")),
            (Kind::Int, v) => {
                return Err(cx.err(
                    it.line,
                    key,
                    format!("must be an integer, not {}", v.type_name()),
                ))
            }
            (Kind::Path, _) => rel(&cx.string(key, it)?).display().to_string(),
            (Kind::Str, _) => cx.string(key, it)?,
        };
        // Check the value now, where the line is known, the way the option parser will.
        check_scalar(opt, &val).map_err(|e| cx.err(it.line, key, e))?;
        fc.args.push(opt.to_string());
        fc.args.push(val);
    }
    if let Some(it) = root.get("source") {
        let Value::Array(tables) = &it.value else {
            return Err(cx.err(
                it.line,
                "source",
                format!("must be [[source]] tables, not {}", it.value.type_name()),
            ));
        };
        for (i, t) in tables.iter().enumerate() {
            let name = format!("source[{i}]");
            let tab = cx.table(&name, t)?;
            let pre = format!("{name}.");
            cx.known(&pre, tab, &["volume", "blobs", "dir", "url", "ca_file"])?;
            let volume = tab
                .get("volume")
                .map(|v| cx.string(&format!("{pre}volume"), v))
                .transpose()?;
            let blobs = match tab.get("blobs") {
                Some(b) => {
                    let v = cx.strings(&format!("{pre}blobs"), b)?;
                    if v.is_empty() {
                        return Err(cx.err(
                            b.line,
                            &format!("{pre}blobs"),
                            "is empty: leave it out to match any blob",
                        ));
                    }
                    Some(v)
                }
                None => None,
            };
            let source = match (tab.get("dir"), tab.get("url")) {
                (Some(d), None) => {
                    let p = rel(&cx.string(&format!("{pre}dir"), d)?);
                    if !p.is_dir() {
                        return Err(cx.err(
                            d.line,
                            &format!("{pre}dir"),
                            format!("{}: not a directory", p.display()),
                        ));
                    }
                    RuleSource::Dir(p)
                }
                (None, Some(u)) => {
                    let s = cx.string(&format!("{pre}url"), u)?;
                    if !s.contains("://") {
                        return Err(cx.err(
                            u.line,
                            &format!("{pre}url"),
                            format!("{s:?} is not a URL (http[s]://HOST[:PORT][/PREFIX] or oci[s]://HOST[:PORT]/REPO)"),
                        ));
                    }
                    RuleSource::Url(s)
                }
                (Some(_), Some(u)) => {
                    return Err(cx.err(u.line, &name, "give one of dir and url, not both"))
                }
                (None, None) => return Err(cx.err(t.line, &name, "needs dir or url")),
            };
            let ca_file = match tab.get("ca_file") {
                Some(c) => {
                    let key = format!("{pre}ca_file");
                    if matches!(source, RuleSource::Dir(_)) {
                        return Err(cx.err(c.line, &key, "is for url sources only"));
                    }
                    let p = rel(&cx.string(&key, c)?);
                    crate::tls::Trust::from_file(&p).map_err(|e| cx.err(c.line, &key, e))?;
                    Some(p)
                }
                None => None,
            };
            fc.sources.push(Rule {
                volume,
                blobs,
                source,
                ca_file,
                at: format!("{}:{}", file.display(), t.line),
            });
        }
    }
    if let Some(it) = root.get("prefetch") {
        let tab = cx.table("prefetch", it)?;
        cx.known("prefetch.", tab, &["bandwidth", "blobs", "ranges"])?;
        if let Some(b) = tab.get("bandwidth") {
            let n = match &b.value {
                Value::Int(n) if *n > 0 => *n as u64,
                Value::Str(s) => {
                    prefetch::parse_size(s).map_err(|e| cx.err(b.line, "prefetch.bandwidth", e))?
                }
                v => {
                    return Err(cx.err(
                        b.line,
                        "prefetch.bandwidth",
                        format!(
                            "must be a positive integer or a string like \"20M\", not {}",
                            describe(v)
                        ),
                    ))
                }
            };
            if n == 0 {
                return Err(cx.err(b.line, "prefetch.bandwidth", "must not be 0"));
            }
            fc.prefetch.bandwidth = Some(n);
        }
        if let Some(b) = tab.get("blobs") {
            for (i, name) in cx.strings("prefetch.blobs", b)?.into_iter().enumerate() {
                if crate::blobs::safe_name(name.as_bytes()).is_none() {
                    return Err(cx.err(
                        b.line,
                        &format!("prefetch.blobs[{i}]"),
                        format!("{name:?} is not a blob name"),
                    ));
                }
                fc.prefetch.specs.push(Spec {
                    blob: name.into_bytes(),
                    range: None,
                });
            }
        }
        if let Some(r) = tab.get("ranges") {
            let Value::Array(items) = &r.value else {
                return Err(cx.err(
                    r.line,
                    "prefetch.ranges",
                    format!("must be an array of strings, not {}", r.value.type_name()),
                ));
            };
            for (i, x) in items.iter().enumerate() {
                let key = format!("prefetch.ranges[{i}]");
                let s = cx.string(&key, x)?;
                let spec = Spec::parse(&s).map_err(|e| cx.err(x.line, &key, e))?;
                if spec.range.is_none() {
                    return Err(cx.err(
                        x.line,
                        &key,
                        format!(
                            "{s:?} is not BLOB:OFFSET:LENGTH (whole blobs go in prefetch.blobs)"
                        ),
                    ));
                }
                fc.prefetch.specs.push(spec);
            }
        }
    }
    Ok(fc)
}

fn describe(v: &Value) -> String {
    match v {
        Value::Int(n) => format!("{n}"),
        v => v.type_name().to_string(),
    }
}

/// The checks the option parser does on these options' values (so errors can name the line).
fn check_scalar(opt: &str, val: &str) -> Result<(), String> {
    let range = |lo: u64, hi: u64| -> Result<(), String> {
        match val.parse::<u64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(format!("{val} is out of range: {lo} to {hi}")),
        }
    };
    match opt {
        "--threads" | "--per-blob" => range(1, 1024),
        "--http-timeout" => range(1, 3600),
        "--window" => range(0, 1 << 30),
        "--log-level" => crate::log::Level::parse(val)
            .map(|_| ())
            .ok_or_else(|| format!("{val:?} is not one of error, warn, info, debug")),
        "--log-format" => crate::log::Format::parse(val)
            .map(|_| ())
            .ok_or_else(|| format!("{val:?} is not one of text, json")),
        "--tag" if val.contains(|c: char| c.is_whitespace() || c == '\0') => {
            Err(format!("{val:?}: no whitespace allowed"))
        }
        // Loaded here to name the line; the daemon loads it again at start.
        "--ca-file" => crate::tls::Trust::from_file(Path::new(val)).map(|_| ()),
        _ => Ok(()),
    }
}

/// Takes `--config FILE` (or `--config=FILE`) out of `args`: the file's options first, then
/// the remaining command line. Also returns the file's sources and prefetch plan.
pub fn expand(args: Vec<String>) -> Result<(Vec<String>, Option<FileConfig>), String> {
    let mut rest = Vec::new();
    let mut file = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let path = if a == "--config" {
            Some(it.next().ok_or("--config needs a value")?)
        } else if let Some(p) = a.strip_prefix("--config=") {
            Some(p.to_string())
        } else {
            rest.push(a);
            None
        };
        if let Some(p) = path {
            if p.is_empty() {
                return Err("--config needs a non-empty value".into());
            }
            if file.replace(p).is_some() {
                return Err("--config given twice".into());
            }
        }
    }
    let Some(f) = file else {
        return Ok((rest, None));
    };
    let fc = load(Path::new(&f))?;
    let mut all = fc.args.clone();
    all.extend(rest);
    Ok((all, Some(fc)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::tests::TempDir;

    #[test]
    fn parses_a_config() {
        let d = TempDir::new("config");
        std::fs::create_dir(d.0.join("blobs")).unwrap();
        let f = d.0.join("c.toml");
        let fc = parse(
            &f,
            "cache_dir = \"/var/cache/erofs\"\nwindow = 1048576\nthreads = 16\n\
             stats_socket = \"s.sock\"\nlog_level = \"debug\"\n\
             [[source]]\nvolume = \"mydomain\"\nblobs = [\"meta\", \"blob1\"]\ndir = \"blobs\"\n\
             [[source]]  # any other blob\nurl = \"http://127.0.0.1:8080/p\"\n\
             [prefetch]\nbandwidth = \"2M\"\nblobs = [\"blob1\"]\nranges = [\"meta:0:4096\"]\n",
        )
        .unwrap();
        assert_eq!(
            fc.args,
            [
                "--cache-dir",
                "/var/cache/erofs",
                "--window",
                "1048576",
                "--threads",
                "16",
                "--stats-socket",
                &d.0.join("s.sock").display().to_string(),
                "--log-level",
                "debug"
            ]
        );
        assert_eq!(fc.sources.len(), 2);
        assert_eq!(fc.sources[0].source, RuleSource::Dir(d.0.join("blobs")));
        assert_eq!(fc.sources[0].at, format!("{}:6", f.display()));
        assert_eq!(
            fc.sources[1].source,
            RuleSource::Url("http://127.0.0.1:8080/p".into())
        );
        let r = &fc.sources[0];
        assert!(r.matches(b"erofs,mydomain\0", b"meta"));
        assert!(r.matches(b"mydomain", b"blob1"));
        assert!(!r.matches(b"erofs,other\0", b"meta"));
        assert!(!r.matches(b"erofs,mydomain\0", b"blob2"));
        assert!(fc.sources[1].matches(b"erofs,x", b"anything"));
        assert_eq!(fc.prefetch.bandwidth, Some(2 << 20));
        assert_eq!(
            fc.prefetch.specs,
            [
                Spec {
                    blob: b"blob1".to_vec(),
                    range: None
                },
                Spec {
                    blob: b"meta".to_vec(),
                    range: Some((0, 4096))
                }
            ]
        );
        assert_eq!(parse(&f, "# nothing\n").unwrap(), FileConfig::default());
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let d = TempDir::new("configerr");
        let f = d.0.join("c.toml");
        for (text, want) in [
            (
                "cache_dir = 1\n",
                "c.toml:1: cache_dir: must be a string, not an integer",
            ),
            (
                "\nthreads = \"8\"\n",
                "c.toml:2: threads: must be an integer, not a string",
            ),
            (
                "threads = 0\n",
                "c.toml:1: threads: 0 is out of range: 1 to 1024",
            ),
            ("windw = 5\n", "c.toml:1: windw: unknown key"),
            (
                "log_level = \"loud\"\n",
                "c.toml:1: log_level: \"loud\" is not one of",
            ),
            (
                "[[source]]\ndir = \"/nonexistent-dir\"\n",
                "c.toml:2: source[0].dir: /nonexistent-dir: not a directory",
            ),
            (
                "[[source]]\nvolume = \"v\"\n",
                "c.toml:1: source[0]: needs dir or url",
            ),
            (
                "[[source]]\ndir = \"/\"\nurl = \"http://h/\"\n",
                "c.toml:3: source[0]: give one of dir and url",
            ),
            (
                "[[source]]\ndir = \"/\"\nblob = [\"x\"]\n",
                "c.toml:3: source[0].blob: unknown key",
            ),
            (
                "[[source]]\ndir = \"/\"\nblobs = \"x\"\n",
                "c.toml:3: source[0].blobs: must be an array of strings, not a string",
            ),
            (
                "[[source]]\ndir = \"/\"\nblobs = [\"x\", 1]\n",
                "c.toml:3: source[0].blobs[1]: must be a string, not an integer",
            ),
            (
                "[[source]]\nurl = \"host:80\"\n",
                "c.toml:2: source[0].url: \"host:80\" is not a URL",
            ),
            (
                "source = \"x\"\n",
                "c.toml:1: source: must be [[source]] tables",
            ),
            (
                "[prefetch]\nbandwidth = \"fast\"\n",
                "c.toml:2: prefetch.bandwidth: bad size \"fast\"",
            ),
            (
                "[prefetch]\nbandwidth = 0\n",
                "c.toml:2: prefetch.bandwidth: must be a positive integer",
            ),
            (
                "[prefetch]\nranges = [\"b\"]\n",
                "c.toml:2: prefetch.ranges[0]: \"b\" is not BLOB:OFFSET:LENGTH",
            ),
            (
                "[prefetch]\nspeed = 1\n",
                "c.toml:2: prefetch.speed: unknown key",
            ),
            (
                "[prefetch]\nblobs = [\"../x\"]\n",
                "c.toml:2: prefetch.blobs[0]: \"../x\" is not a blob name",
            ),
            ("a = [\n", "c.toml:2: unterminated array"),
        ] {
            let e = parse(&f, text).unwrap_err();
            let want = format!("{}/{want}", d.0.display());
            assert!(e.starts_with(&want), "{text:?}:\n got {e}\nwant {want}");
        }
        assert!(load(&d.0.join("missing.toml"))
            .unwrap_err()
            .contains("missing.toml"));
    }

    #[test]
    fn ca_files() {
        let d = TempDir::new("configca");
        let ca = crate::tls::tests::Ca::new("config CA");
        ca.write(&d.0, "ca.pem");
        std::fs::write(d.0.join("junk.pem"), "junk\n").unwrap();
        let f = d.0.join("c.toml");
        let fc = parse(
            &f,
            "ca_file = \"ca.pem\"\n\
             [[source]]\nurl = \"https://127.0.0.1:8443/b\"\nca_file = \"ca.pem\"\n\
             [[source]]\nurl = \"ocis://registry.example/r\"\n",
        )
        .unwrap();
        let pem = d.0.join("ca.pem");
        assert_eq!(fc.args, ["--ca-file", &pem.display().to_string()]);
        assert_eq!(fc.sources[0].ca_file, Some(pem));
        assert_eq!(fc.sources[1].ca_file, None);
        for (text, want) in [
            (
                "ca_file = \"missing.pem\"\n",
                "c.toml:1: ca_file: {d}/missing.pem: No such file",
            ),
            (
                "\nca_file = \"junk.pem\"\n",
                "c.toml:2: ca_file: {d}/junk.pem: no certificates in it",
            ),
            (
                "[[source]]\nurl = \"https://h/\"\nca_file = \"junk.pem\"\n",
                "c.toml:3: source[0].ca_file: {d}/junk.pem: no certificates in it",
            ),
            (
                "[[source]]\ndir = \"/\"\nca_file = \"ca.pem\"\n",
                "c.toml:3: source[0].ca_file: is for url sources only",
            ),
            (
                "[[source]]\nurl = \"https://h/\"\nca_file = 1\n",
                "c.toml:3: source[0].ca_file: must be a string",
            ),
        ] {
            let e = parse(&f, text).unwrap_err();
            let want = format!(
                "{}/{}",
                d.0.display(),
                want.replace("{d}", &d.0.display().to_string())
            );
            assert!(e.starts_with(&want), "{text:?}:\n got {e}\nwant {want}");
        }
    }

    #[test]
    fn the_sample_config_parses() {
        let text = include_str!("../../../samples/erofs-ondemandd.toml");
        assert!(crate::toml::parse(text).is_ok());
        // its directories do not exist here: the error names the first one
        let e = parse(Path::new("sample.toml"), text).unwrap_err();
        assert!(
            e.contains("source[0].dir: /srv/blobs: not a directory"),
            "{e}"
        );
    }

    #[test]
    fn expand_puts_the_file_first() {
        let d = TempDir::new("expand");
        let f = d.0.join("c.toml");
        std::fs::write(&f, "threads = 3\n").unwrap();
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (a, fc) = expand(args(&["--threads", "5", "--config", f.to_str().unwrap()])).unwrap();
        assert_eq!(a, args(&["--threads", "3", "--threads", "5"]));
        assert!(fc.is_some());
        let (a, fc) = expand(args(&["--x", "1"])).unwrap();
        assert_eq!((a, fc), (args(&["--x", "1"]), None));
        assert!(expand(args(&["--config"])).is_err());
        let c2 = format!("--config={}", f.display());
        assert!(expand(args(&[&c2, &c2])).unwrap_err().contains("twice"));
    }
}
