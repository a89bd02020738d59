// SPDX-License-Identifier: GPL-2.0
//! `--source http://HOST[:PORT][/PREFIX]`: blobs fetched over plain HTTP/1.1 (std only).
//!
//! Blob `KEY` is at `/PREFIX/KEY` (the key percent-encoded). OPEN asks for its size with
//! `HEAD` (`Content-Length`); each fetch is a `GET` with `Range: bytes=A-B`, answered
//! `206 Partial Content` with a matching `Content-Range` (a `200` with the whole blob is taken
//! only for a range starting at 0). Connections are kept alive and reused; one that fails
//! before any response byte arrived is retried once on a new connection. Any other failure
//! (refused connection, timeout, error status, short body) fails the fetch: its READs are
//! completed without data and the readers get EIO. 404 on OPEN fails the OPEN with ENOENT.
//! No TLS, no redirects, no chunked bodies, no proxies.

use crate::blobs::{safe_name, BlobRead, BlobStore};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 16;

/// A parsed `http://` source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// The path prefix, without a trailing '/' ("" for the root).
    pub prefix: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("bad --source {s:?}: {why}");
        let rest = s.strip_prefix("http://").ok_or_else(|| {
            if s.starts_with("https://") {
                bad("https is not supported (plain http only)")
            } else {
                bad("expected http://HOST[:PORT][/PREFIX] or a directory")
            }
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            // [::1]:8080
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace()) {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("bad port"))?,
            None => 80,
        };
        if path.contains(['?', '#']) || path.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(bad("the prefix must be a plain path"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The `Host:` header value.
    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }

    /// The request path of blob `key`.
    pub fn blob_path(&self, key: &[u8]) -> String {
        format!("{}/{}", self.prefix, percent_encode(key))
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host_header(), self.prefix)
    }
}

/// Percent-encodes everything but unreserved characters and ':' '@' (`sha256:...` stays
/// readable).
pub fn percent_encode(key: &[u8]) -> String {
    let mut s = String::new();
    for &b in key {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The parts of a response head that matter here.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<u64>,
    /// `Content-Range: bytes FIRST-LAST/TOTAL` (TOTAL None for `*`).
    pub content_range: Option<(u64, u64, Option<u64>)>,
    pub chunked: bool,
    /// The server closes the connection after this response.
    pub close: bool,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses a response head (status line and header lines, without the blank line that ends
/// it).
pub fn parse_head(head: &[u8]) -> io::Result<Head> {
    let text =
        std::str::from_utf8(head).map_err(|_| invalid("response head is not UTF-8".into()))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts
        .next()
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..1000).contains(c));
    let (Some(status), true) = (status, version.starts_with("HTTP/1.")) else {
        return Err(invalid(format!("bad status line {status_line:?}")));
    };
    let mut h = Head {
        status,
        close: version == "HTTP/1.0",
        ..Head::default()
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("bad header line {line:?}")));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let n = value
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length {value:?}")))?;
                if h.content_length.is_some_and(|m| m != n) {
                    return Err(invalid("conflicting Content-Length headers".into()));
                }
                h.content_length = Some(n);
            }
            "content-range" => h.content_range = Some(parse_content_range(value)?),
            "transfer-encoding" => h.chunked = !value.eq_ignore_ascii_case("identity"),
            "connection" => {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    h.close = true;
                } else if v.contains("keep-alive") {
                    h.close = false;
                }
            }
            _ => {}
        }
    }
    Ok(h)
}

/// `bytes FIRST-LAST/TOTAL` or `bytes FIRST-LAST/*`.
pub fn parse_content_range(v: &str) -> io::Result<(u64, u64, Option<u64>)> {
    let bad = || invalid(format!("bad Content-Range {v:?}"));
    let r = v.strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, total) = r.split_once('/').ok_or_else(bad)?;
    let (a, b) = range.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().map_err(|_| bad())?),
    };
    if b < a || total.is_some_and(|t| b >= t) {
        return Err(bad());
    }
    Ok((a, b, total))
}

/// Checks a response to `GET` with `Range: bytes=off-(off+len-1)`: Ok(true) if the body
/// starts at `off` and has at least `len` bytes; Ok(false) for a 200 with the whole blob from 0
/// (read `len` bytes, then drop the connection); an error otherwise.
pub fn check_range_response(h: &Head, off: u64, len: u64) -> io::Result<bool> {
    let last = off + len - 1;
    match h.status {
        206 => {
            let Some((a, b, _)) = h.content_range else {
                return Err(invalid("206 without Content-Range".into()));
            };
            if (a, b) != (off, last) {
                return Err(invalid(format!(
                    "asked for bytes {off}-{last}, got {a}-{b}"
                )));
            }
            if h.content_length.is_some_and(|n| n != len) {
                return Err(invalid(format!(
                    "Content-Length {:?} for {len} bytes",
                    h.content_length
                )));
            }
            Ok(true)
        }
        200 if off == 0 && h.content_length.is_some_and(|n| n >= len) => Ok(false),
        200 => Err(invalid("the server ignored the Range header".into())),
        s => Err(status_error(s)),
    }
}

fn status_error(s: u16) -> io::Error {
    let kind = match s {
        404 | 410 => io::ErrorKind::NotFound,
        401 | 403 => io::ErrorKind::PermissionDenied,
        416 => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("HTTP status {s}"))
}

/// A connection and the bytes read past the last response head.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Reads until the end of a response head; returns it (without the blank line) and keeps
    /// what followed in `buf`. Ok(None) if the server closed the connection before any byte.
    fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = self.buf[..i].to_vec();
                self.buf.drain(..i + 4);
                return Ok(Some(head));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("response head too long".into()));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a response head",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Reads exactly `out.len()` body bytes.
    fn read_body(&mut self, out: &mut [u8]) -> io::Result<()> {
        let have = self.buf.len().min(out.len());
        out[..have].copy_from_slice(&self.buf[..have]);
        self.buf.drain(..have);
        self.stream.read_exact(&mut out[have..])
    }
}

/// The shared part of an HTTP source: where it is, and idle connections.
struct Client {
    url: Url,
    timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

/// A request failed before any of the response arrived, on a reused connection: worth one
/// retry on a new one (the server may have closed it while idle).
struct Stale(io::Error);

impl Client {
    fn connect(&self) -> io::Result<Conn> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in (self.url.host.as_str(), self.url.port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(self.timeout))?;
                    stream.set_write_timeout(Some(self.timeout))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn {
                        stream,
                        buf: Vec::new(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn idle_conn(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    fn put_back(&self, c: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Sends `method path` (with a Range of `range` = (off, len) if any) and reads the head.
    fn send(
        &self,
        c: &mut Conn,
        method: &str,
        path: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Head, Result<Stale, io::Error>> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: erofs-ondemandd\r\nAccept-Encoding: identity\r\n",
            self.url.host_header()
        );
        if let Some((off, len)) = range {
            req.push_str(&format!("Range: bytes={off}-{}\r\n", off + len - 1));
        }
        req.push_str("\r\n");
        if let Err(e) = c.stream.write_all(req.as_bytes()) {
            return Err(Ok(Stale(e)));
        }
        match c.read_head() {
            Ok(Some(h)) => parse_head(&h).map_err(Err),
            Ok(None) => Err(Ok(Stale(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )))),
            Err(e) => Err(Err(e)),
        }
    }

    /// Runs `f` on a connection with a response head to `method path`: an idle connection
    /// first, retried once on a new one if it turns out stale. `f` returns whether the
    /// connection can be reused.
    fn request<T>(
        &self,
        method: &str,
        path: &str,
        range: Option<(u64, u64)>,
        f: impl FnOnce(&mut Conn, &Head) -> io::Result<(T, bool)>,
    ) -> io::Result<T> {
        let mut conn = self.idle_conn();
        let (mut c, head) = loop {
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => self.connect()?,
            };
            match self.send(&mut c, method, path, range) {
                Ok(h) => break (c, h),
                Err(Ok(Stale(_))) if reused => continue,
                Err(Ok(Stale(e))) | Err(Err(e)) => return Err(e),
            }
        };
        if head.chunked {
            return Err(invalid("chunked responses are not supported".into()));
        }
        let (v, reusable) = f(&mut c, &head)?;
        if reusable && !head.close {
            self.put_back(c);
        }
        Ok(v)
    }
}

/// `--source http://...`.
pub struct HttpStore(Arc<Client>);

impl HttpStore {
    pub fn new(url: Url, timeout: Duration) -> HttpStore {
        HttpStore(Arc::new(Client {
            url,
            timeout,
            idle: Mutex::new(Vec::new()),
        }))
    }
}

impl BlobStore for HttpStore {
    fn open(&self, key: &[u8]) -> io::Result<Box<dyn BlobRead>> {
        if safe_name(key).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cookie key is not a safe blob name",
            ));
        }
        let path = self.0.url.blob_path(key);
        let size = self.0.request("HEAD", &path, None, |_, h| {
            if h.status != 200 {
                return Err(status_error(h.status));
            }
            let n = h
                .content_length
                .ok_or_else(|| invalid("HEAD without Content-Length".into()))?;
            // A HEAD response has no body whatever its Content-Length says.
            Ok((n, true))
        })?;
        Ok(Box::new(HttpBlob {
            client: Arc::clone(&self.0),
            path,
            size,
        }))
    }

    fn describe(&self) -> String {
        format!("blobs from {}", self.0.url)
    }
}

struct HttpBlob {
    client: Arc<Client>,
    path: String,
    size: u64,
}

impl BlobRead for HttpBlob {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let len = buf.len() as u64;
        if off.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("bytes {off}+{len} past the blob's {} bytes", self.size),
            ));
        }
        self.client
            .request("GET", &self.path, Some((off, len)), |c, h| {
                let partial = check_range_response(h, off, len)?;
                c.read_body(buf)?;
                // A whole-blob 200 has more body we do not read: the connection is spent.
                Ok(((), partial))
            })
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "GET {}{}: {e}",
                        self.client.url,
                        &self.path[self.client.url.prefix.len()..]
                    ),
                )
            })
    }

    fn location(&self) -> String {
        format!("http://{}{}", self.client.url.host_header(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/blobs/").unwrap();
        assert_eq!(
            u,
            Url {
                host: "127.0.0.1".into(),
                port: 8080,
                prefix: "/blobs".into()
            }
        );
        assert_eq!(u.blob_path(b"sha256:ab"), "/blobs/sha256:ab");
        assert_eq!(u.blob_path(b"a b/%\xff"), "/blobs/a%20b%2F%25%FF");
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/blobs");
        let u = Url::parse("http://example").unwrap();
        assert_eq!((u.port, u.prefix.as_str()), (80, ""));
        assert_eq!(u.blob_path(b"x"), "/x");
        assert_eq!(u.host_header(), "example");
        let u = Url::parse("http://[::1]:81/p").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 81));
        assert_eq!(u.host_header(), "[::1]:81");
        for bad in [
            "https://h/",
            "ftp://h",
            "/srv/blobs",
            "http://",
            "http://:80/",
            "http://h:0/",
            "http://h:99999/",
            "http://h:x/",
            "http://u:p@h/",
            "http://h/a?b",
            "http://h/a b",
            "http://[::1/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        assert!(Url::parse("https://h").unwrap_err().contains("https"));
    }

    #[test]
    fn heads() {
        let h = parse_head(
            b"HTTP/1.1 206 Partial Content\r\nContent-Length: 4096\r\ncontent-range: bytes 0-4095/10000\r\nX: y",
        )
        .unwrap();
        assert_eq!(
            h,
            Head {
                status: 206,
                content_length: Some(4096),
                content_range: Some((0, 4095, Some(10000))),
                chunked: false,
                close: false
            }
        );
        assert!(check_range_response(&h, 0, 4096).unwrap());
        assert!(check_range_response(&h, 4096, 4096).is_err(), "wrong range");
        assert!(check_range_response(&h, 0, 100).is_err(), "wrong length");
        let h = parse_head(b"HTTP/1.0 200 OK\r\nContent-Length: 10").unwrap();
        assert!(h.close, "HTTP/1.0 closes by default");
        assert!(
            !check_range_response(&h, 0, 10).unwrap(),
            "whole blob from 0"
        );
        assert!(check_range_response(&h, 0, 11).is_err());
        assert!(check_range_response(&h, 5, 1).is_err(), "Range ignored");
        let h = parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive").unwrap();
        assert!(!h.close);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked")
            .unwrap();
        assert!(h.close && h.chunked);
        for (s, kind) in [
            (404, io::ErrorKind::NotFound),
            (500, io::ErrorKind::Other),
            (416, io::ErrorKind::UnexpectedEof),
        ] {
            let h = Head {
                status: s,
                ..Head::default()
            };
            assert_eq!(check_range_response(&h, 0, 1).unwrap_err().kind(), kind);
        }
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 abc OK",
            b"HTTP/2 200 OK",
            b"ICY 200 OK",
            b"HTTP/1.1 200 OK\r\nno colon",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 5-4/10",
            b"HTTP/1.1 206 OK\r\nContent-Range: bytes 0-10/10",
            b"HTTP/1.1 206 OK\r\nContent-Range: items 0-1/10",
            b"HTTP/1.1 200 \xff",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_content_range("bytes 1-2/*").unwrap(), (1, 2, None));
        let h = Head {
            status: 206,
            ..Head::default()
        };
        assert!(check_range_response(&h, 0, 1).is_err(), "206 without range");
    }

    /// A one-thread server answering each connection's requests with `respond(request head)`;
    /// returns its URL. Serves `conns` connections, then stops.
    fn server(conns: usize, respond: fn(&str) -> Vec<u8>) -> Url {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming().take(conns) {
                let mut s = s.unwrap();
                let mut c = Conn {
                    stream: s.try_clone().unwrap(),
                    buf: Vec::new(),
                };
                while let Ok(Some(h)) = c.read_head() {
                    let req = String::from_utf8(h).unwrap();
                    if s.write_all(&respond(&req)).is_err() {
                        break;
                    }
                    if req.contains("close-after") {
                        break;
                    }
                }
            }
        });
        Url::parse(&format!("http://127.0.0.1:{port}/p")).unwrap()
    }

    /// Bytes of the 1000-byte test blob.
    fn byte(i: u64) -> u8 {
        (i * 7 % 251) as u8
    }

    fn blob_server(req: &str) -> Vec<u8> {
        let first = req.lines().next().unwrap();
        if first.starts_with("HEAD /p/blob ") {
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec();
        }
        if !first.starts_with("GET /p/blob ") {
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!".to_vec();
        }
        let range = req
            .lines()
            .find_map(|l| l.strip_prefix("Range: bytes="))
            .unwrap();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        let mut r = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/1000\r\n\r\n",
            b - a + 1
        )
        .into_bytes();
        r.extend((a..=b).map(byte));
        r
    }

    #[test]
    fn fetches_ranges_over_one_connection() {
        let url = server(1, blob_server);
        let store = HttpStore::new(url, Duration::from_secs(5));
        let blob = store.open(b"blob").unwrap();
        assert_eq!(blob.size(), 1000);
        let mut buf = vec![0u8; 300];
        for off in [0, 700, 100] {
            blob.read_at(&mut buf, off).unwrap();
            assert!(buf.iter().zip(off..).all(|(&b, i)| b == byte(i)), "{off}");
        }
        assert_eq!(
            blob.read_at(&mut buf, 800).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        // all of it went over the one connection the server accepts
        assert_eq!(
            store.open(b"missing").err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(
            store.open(b"../x").err().map(|e| e.kind()),
            Some(io::ErrorKind::InvalidInput)
        );
        assert!(store.describe().ends_with("/p"));
    }

    #[test]
    fn error_status_and_no_server() {
        // 500 for every GET
        let url = server(8, |req| {
            if req.starts_with("HEAD") {
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()
            } else {
                b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
        });
        let store = HttpStore::new(url, Duration::from_secs(5));
        let blob = store.open(b"blob").unwrap();
        let e = blob.read_at(&mut [0u8; 10], 0).unwrap_err();
        assert!(e.to_string().contains("HTTP status 500"), "{e}");

        // nobody listening: the fetch fails, no hang
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let store = HttpStore::new(
            Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
            Duration::from_secs(5),
        );
        assert!(store.open(b"blob").is_err());
    }

    #[test]
    fn reconnects_when_the_server_closed_an_idle_connection() {
        // Each connection answers one request, then the server closes it.
        let url = server(4, blob_server);
        // The test server keeps connections open: make the idle one stale by shutting it down.
        let store = HttpStore::new(url, Duration::from_secs(5));
        let blob = store.open(b"blob").unwrap();
        if let Some(c) = store.0.idle_conn() {
            c.stream.shutdown(std::net::Shutdown::Both).unwrap();
            store.0.put_back(c);
        }
        let mut buf = [0u8; 10];
        blob.read_at(&mut buf, 990).unwrap();
        assert!(buf.iter().zip(990..).all(|(&b, i)| b == byte(i)));
    }
}
