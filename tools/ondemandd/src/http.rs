// SPDX-License-Identifier: GPL-2.0
//! `--source http://HOST[:PORT][/PREFIX]` and `https://...`: blobs fetched over HTTP/1.1
//! (std only; TLS by rustls, see `crate::tls`).
//!
//! Blob `KEY` is at `/PREFIX/KEY` (the key percent-encoded). OPEN asks for its size with
//! `HEAD` (`Content-Length`); each fetch is a `GET` with `Range: bytes=A-B`, answered
//! `206 Partial Content` with a matching `Content-Range` (a `200` with the whole blob is taken
//! only for a range starting at 0). Connections are kept alive and reused; one that fails
//! before any response byte arrived is retried once on a new connection. Any other failure
//! (refused connection, TLS handshake or certificate verification failure, timeout, error
//! status, short body) fails the fetch: its READs are completed without data and the readers
//! get EIO. 404 on OPEN fails the OPEN with ENOENT.
//! `https://` connects with TLS (the server's certificate verified against the trust store,
//! `crate::tls::Trust`); TLS connections are pooled and reused like plain ones. No redirects
//! (see `crate::oci` for a source that follows them), no chunked data bodies, no proxies.
//!
//! The connection pool ([`Pool`]), response head parsing and the range checks are shared with
//! the OCI registry source (`crate::oci`).

use crate::blobs::{safe_name, BlobRead, BlobStore};
use crate::tls::{TlsStream, Trust};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Idle connections kept for reuse.
pub const MAX_IDLE: usize = 16;
/// Largest body of an unwanted response (error, redirect) read to keep its connection.
const SKIP_MAX: usize = 64 * 1024;

/// A host and port to connect to, with TLS (`https`) or without (`http`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Endpoint {
    /// Parses `HOST[:PORT]` or `[V6]:PORT` (port 80 if none, 443 with `tls`); no credentials.
    pub fn parse(authority: &str, tls: bool) -> Result<Endpoint, String> {
        if authority.contains('@') {
            return Err("credentials in the URL are not supported".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            // [::1]:8080
            let (h, after) = v6.split_once(']').ok_or("unclosed '['")?;
            let port = match after {
                "" => None,
                a => Some(a.strip_prefix(':').ok_or("junk after ']'")?),
            };
            (h, port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err("no host".into());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or("bad port")?,
            None => Endpoint::default_port(tls),
        };
        Ok(Endpoint {
            host: host.to_string(),
            port,
            tls,
        })
    }

    fn default_port(tls: bool) -> u16 {
        if tls {
            443
        } else {
            80
        }
    }

    /// `https` or `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// `http://HOST[:PORT]` or `https://HOST[:PORT]`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.host_header())
    }

    /// The `Host:` header value.
    pub fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == Endpoint::default_port(self.tls) {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.host_header())
    }
}

/// Splits an absolute `http://HOST[:PORT]/PATH?QUERY` or `https://...` into its endpoint and
/// request target ("/" if it has no path). Used for token realms and redirect targets.
pub fn split_http_url(s: &str) -> Result<(Endpoint, String), String> {
    let (rest, tls) = match (s.strip_prefix("http://"), s.strip_prefix("https://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return Err(format!("{s:?}: not an http:// or https:// URL")),
    };
    let i = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(i);
    let ep = Endpoint::parse(authority, tls).map_err(|e| format!("{s:?}: {e}"))?;
    let target = target.split('#').next().unwrap_or_default();
    if target.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!("{s:?}: bad path"));
    }
    let target = match target {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    Ok((ep, target))
}

/// A parsed `http://` or `https://` source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub ep: Endpoint,
    /// The path prefix, without a trailing '/' ("" for the root).
    pub prefix: String,
}

impl Url {
    pub fn parse(s: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("bad --source {s:?}: {why}");
        let (rest, tls) = match (s.strip_prefix("http://"), s.strip_prefix("https://")) {
            (Some(r), _) => (r, false),
            (_, Some(r)) => (r, true),
            _ => return Err(bad(
                "expected http[s]://HOST[:PORT][/PREFIX], oci[s]://HOST[:PORT]/REPO or a directory",
            )),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let ep = Endpoint::parse(authority, tls).map_err(|e| bad(&e))?;
        if path.contains(['?', '#']) || path.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(bad("the prefix must be a plain path"));
        }
        Ok(Url {
            ep,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The request path of blob `key`.
    pub fn blob_path(&self, key: &[u8]) -> String {
        format!("{}/{}", self.prefix, percent_encode(key))
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.ep.origin(), self.prefix)
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
    /// `Location` (redirects).
    pub location: Option<String>,
    /// `WWW-Authenticate` values (401), in order.
    pub www_authenticate: Vec<String>,
}

pub fn invalid(msg: String) -> io::Error {
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
            "location" => h.location = Some(value.to_string()),
            "www-authenticate" => h.www_authenticate.push(value.to_string()),
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
    if h.chunked && (200..300).contains(&h.status) {
        return Err(invalid("chunked responses are not supported".into()));
    }
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

pub fn status_error(s: u16) -> io::Error {
    let kind = match s {
        404 | 410 => io::ErrorKind::NotFound,
        401 | 403 => io::ErrorKind::PermissionDenied,
        416 => io::ErrorKind::UnexpectedEof,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("HTTP status {s}"))
}

/// A connection's byte stream: plain TCP, or TLS over TCP.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The TCP connection (under the TLS layer, if any).
    #[cfg(test)]
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A connection and the bytes read past the last response head.
pub struct Conn {
    stream: Stream,
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
            let n = match self.stream.read(&mut chunk) {
                // A TLS server that closes an idle connection without close_notify: the
                // connection is just closed, as for plain TCP (mid-head it is an error).
                Err(e)
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && self.buf.is_empty()
                        && matches!(self.stream, Stream::Tls(_)) =>
                {
                    0
                }
                r => r?,
            };
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
    pub fn read_body(&mut self, out: &mut [u8]) -> io::Result<()> {
        let have = self.buf.len().min(out.len());
        out[..have].copy_from_slice(&self.buf[..have]);
        self.buf.drain(..have);
        self.stream.read_exact(&mut out[have..])
    }

    /// Reads a small body (at most `max` bytes) of a response to a request other than HEAD:
    /// by Content-Length, chunked, or up to the connection's end. Returns it and whether the
    /// connection can be reused.
    pub fn read_small_body(&mut self, h: &Head, max: usize) -> io::Result<(Vec<u8>, bool)> {
        if h.chunked {
            let mut body = Vec::new();
            loop {
                let line = self.read_line()?;
                let size = line.split(';').next().unwrap_or_default().trim();
                let n = usize::from_str_radix(size, 16)
                    .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
                if n == 0 {
                    // trailers, up to the blank line
                    while !self.read_line()?.is_empty() {}
                    return Ok((body, true));
                }
                if body.len() + n > max {
                    return Err(invalid(format!("response body over {max} bytes")));
                }
                let at = body.len();
                body.resize(at + n, 0);
                self.read_body(&mut body[at..])?;
                if !self.read_line()?.is_empty() {
                    return Err(invalid("chunk not followed by CRLF".into()));
                }
            }
        }
        if let Some(n) = h.content_length {
            let n = usize::try_from(n)
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| invalid(format!("response body over {max} bytes")))?;
            let mut body = vec![0u8; n];
            self.read_body(&mut body)?;
            return Ok((body, true));
        }
        if [204, 304].contains(&h.status) || (100..200).contains(&h.status) {
            return Ok((Vec::new(), true));
        }
        // No length: the body ends with the connection.
        let mut body = std::mem::take(&mut self.buf);
        (&mut self.stream)
            .take((max + 1 - body.len().min(max)) as u64)
            .read_to_end(&mut body)?;
        if body.len() > max {
            return Err(invalid(format!("response body over {max} bytes")));
        }
        Ok((body, false))
    }

    /// Skips the body of a response not wanted (an error, a redirect, a challenge); returns
    /// whether the connection can be reused.
    pub fn skip_body(&mut self, method: &str, h: &Head) -> bool {
        if method == "HEAD" {
            return true;
        }
        match h.content_length {
            Some(n) if n > SKIP_MAX as u64 => false,
            None if !h.chunked => false,
            _ => self
                .read_small_body(h, SKIP_MAX)
                .is_ok_and(|(_, reuse)| reuse),
        }
    }

    /// One CRLF-terminated line (without the CRLF), for chunked bodies.
    fn read_line(&mut self) -> io::Result<String> {
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(invalid("line too long".into()));
            }
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a chunked body",
                ));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A request: method, request target, an optional byte range (off, len) and extra headers.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub range: Option<(u64, u64)>,
    pub headers: &'a [(&'a str, String)],
}

/// Connections to any number of endpoints, kept alive and reused (at most [`MAX_IDLE`] idle
/// ones). Shared by the HTTP and OCI sources.
pub struct Pool {
    timeout: Duration,
    /// For `https` endpoints.
    trust: Trust,
    idle: Mutex<Vec<(Endpoint, Conn)>>,
}

/// A request failed before any of the response arrived, on a reused connection: worth one
/// retry on a new one (the server may have closed it while idle).
struct Stale(io::Error);

impl Pool {
    /// A pool whose connections time out after `timeout` (connect, each read and write) and
    /// whose `https` connections verify servers against `trust`.
    pub fn new(timeout: Duration, trust: Trust) -> Pool {
        Pool {
            timeout,
            trust,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// What `https` servers are verified against.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    fn connect(&self, ep: &Endpoint) -> io::Result<Conn> {
        // Connection errors name the server (the OS error alone does not say which).
        let named = |e: io::Error| io::Error::new(e.kind(), format!("connect to {ep}: {e}"));
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for addr in (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(named)?
        {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(self.timeout))?;
                    stream.set_write_timeout(Some(self.timeout))?;
                    let _ = stream.set_nodelay(true);
                    let stream = if ep.tls {
                        // Verification failures are final: no other address is tried.
                        let s = self.trust.handshake(&ep.host, &ep.to_string(), stream)?;
                        Stream::Tls(Box::new(s))
                    } else {
                        Stream::Plain(stream)
                    };
                    return Ok(Conn {
                        stream,
                        buf: Vec::new(),
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(named(last))
    }

    fn idle_conn(&self, ep: &Endpoint) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = idle.iter().rposition(|(e, _)| e == ep)?;
        Some(idle.remove(i).1)
    }

    fn put_back(&self, ep: &Endpoint, c: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.remove(0);
        }
        idle.push((ep.clone(), c));
    }

    /// Sends `req` and reads the response head.
    fn send(
        &self,
        ep: &Endpoint,
        c: &mut Conn,
        req: &Req,
    ) -> Result<Head, Result<Stale, io::Error>> {
        let mut text = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: erofs-ondemandd\r\nAccept-Encoding: identity\r\n",
            req.method,
            req.path,
            ep.host_header()
        );
        if let Some((off, len)) = req.range {
            text.push_str(&format!("Range: bytes={off}-{}\r\n", off + len - 1));
        }
        for (name, value) in req.headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        // (flush: TLS sends what it buffered; plain TCP has nothing buffered)
        if let Err(e) = c
            .stream
            .write_all(text.as_bytes())
            .and_then(|_| c.stream.flush())
        {
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

    /// Runs `f` on a connection to `ep` with the response head to `req`: an idle connection
    /// first, retried once on a new one if it turns out stale. `f` returns whether the
    /// connection can be reused (its response fully read).
    pub fn request<T>(
        &self,
        ep: &Endpoint,
        req: &Req,
        f: impl FnOnce(&mut Conn, &Head) -> io::Result<(T, bool)>,
    ) -> io::Result<T> {
        let mut conn = self.idle_conn(ep);
        let (mut c, head) = loop {
            let reused = conn.is_some();
            let mut c = match conn.take() {
                Some(c) => c,
                None => self.connect(ep)?,
            };
            match self.send(ep, &mut c, req) {
                Ok(h) => break (c, h),
                Err(Ok(Stale(_))) if reused => continue,
                Err(Ok(Stale(e))) | Err(Err(e)) => return Err(e),
            }
        };
        let (v, reusable) = f(&mut c, &head)?;
        if reusable && !head.close {
            self.put_back(ep, c);
        }
        Ok(v)
    }
}

/// `--source http://...` or `https://...`.
pub struct HttpStore {
    url: Url,
    pool: Arc<Pool>,
}

impl HttpStore {
    /// `https` servers are verified against `trust`.
    pub fn new(url: Url, timeout: Duration, trust: Trust) -> HttpStore {
        HttpStore {
            url,
            pool: Arc::new(Pool::new(timeout, trust)),
        }
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
        let path = self.url.blob_path(key);
        let req = Req {
            method: "HEAD",
            path: &path,
            range: None,
            headers: &[],
        };
        let size = self.pool.request(&self.url.ep, &req, |_, h| {
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
            pool: Arc::clone(&self.pool),
            ep: self.url.ep.clone(),
            path,
            size,
        }))
    }

    fn describe(&self) -> String {
        if self.url.ep.tls {
            format!(
                "blobs from {} (TLS, {})",
                self.url,
                self.pool.trust.describe()
            )
        } else {
            format!("blobs from {}", self.url)
        }
    }
}

/// Reads `buf.len()` bytes at `off` with a Range GET of `path` on `ep` (the response checked
/// with [`check_range_response`]). Shared with the OCI source, which handles the redirects
/// and challenges before the body.
pub fn get_range(
    pool: &Pool,
    ep: &Endpoint,
    path: &str,
    buf: &mut [u8],
    off: u64,
) -> io::Result<()> {
    let len = buf.len() as u64;
    let req = Req {
        method: "GET",
        path,
        range: Some((off, len)),
        headers: &[],
    };
    pool.request(ep, &req, |c, h| read_range_body(c, h, buf, off))
}

/// Checks a Range GET's response head and reads its body into `buf`; returns whether the
/// connection can be reused (a whole-blob 200 has more body we do not read: it is spent).
pub fn read_range_body(c: &mut Conn, h: &Head, buf: &mut [u8], off: u64) -> io::Result<((), bool)> {
    let partial = check_range_response(h, off, buf.len() as u64)?;
    c.read_body(buf)?;
    Ok(((), partial))
}

/// Checks that `[off, off + len)` is inside a blob of `size` bytes.
pub fn check_bounds(off: u64, len: u64, size: u64) -> io::Result<()> {
    if off.checked_add(len).is_none_or(|e| e > size) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("bytes {off}+{len} past the blob's {size} bytes"),
        ));
    }
    Ok(())
}

struct HttpBlob {
    pool: Arc<Pool>,
    ep: Endpoint,
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
        check_bounds(off, buf.len() as u64, self.size)?;
        get_range(&self.pool, &self.ep, &self.path, buf, off)
            .map_err(|e| io::Error::new(e.kind(), format!("GET {}: {e}", self.location())))
    }

    fn location(&self) -> String {
        format!("{}{}", self.ep.origin(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8080/blobs/").unwrap();
        assert_eq!(
            u,
            Url {
                ep: Endpoint {
                    host: "127.0.0.1".into(),
                    port: 8080,
                    tls: false,
                },
                prefix: "/blobs".into()
            }
        );
        assert_eq!(u.blob_path(b"sha256:ab"), "/blobs/sha256:ab");
        assert_eq!(u.blob_path(b"a b/%\xff"), "/blobs/a%20b%2F%25%FF");
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/blobs");
        let u = Url::parse("http://example").unwrap();
        assert_eq!((u.ep.port, u.prefix.as_str()), (80, ""));
        assert_eq!(u.blob_path(b"x"), "/x");
        assert_eq!(u.ep.host_header(), "example");
        let u = Url::parse("http://[::1]:81/p").unwrap();
        assert_eq!((u.ep.host.as_str(), u.ep.port), ("::1", 81));
        assert_eq!(u.ep.host_header(), "[::1]:81");
        let u = Url::parse("https://h.example/b/").unwrap();
        assert_eq!((u.ep.port, u.ep.tls, u.prefix.as_str()), (443, true, "/b"));
        assert_eq!(u.ep.host_header(), "h.example");
        assert_eq!(u.to_string(), "https://h.example/b");
        let u = Url::parse("https://[::1]:8443").unwrap();
        assert_eq!(u.ep.host_header(), "[::1]:8443");
        assert_eq!(u.to_string(), "https://[::1]:8443");
        let u = Url::parse("https://h:80/").unwrap();
        assert_eq!(u.ep.host_header(), "h:80", "80 is not https' default port");
        assert_eq!(
            Url::parse("http://h:443/").unwrap().ep.host_header(),
            "h:443"
        );
        for bad in [
            "ftp://h",
            "https://",
            "https://u:p@h/",
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
        assert!(Url::parse("ftp://h").unwrap_err().contains("http[s]://"));
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
                close: false,
                ..Head::default()
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

    #[test]
    fn small_bodies_and_skipping() {
        // three responses on one connection, then one delimited by the connection's end
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(
                b"HTTP/1.1 401 No\r\nWWW-Authenticate: Basic realm=x\r\nWWW-Authenticate: Bearer realm=y\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n\
HTTP/1.1 302 Found\r\nLocation: http://h:1/p\r\nContent-Length: 0\r\n\r\n\
HTTP/1.0 200 OK\r\n\r\nto the end",
            )
            .unwrap();
        });
        let mut c = Conn {
            stream: Stream::Plain(TcpStream::connect(("127.0.0.1", port)).unwrap()),
            buf: Vec::new(),
        };
        let h = parse_head(&c.read_head().unwrap().unwrap()).unwrap();
        assert_eq!(h.www_authenticate, ["Basic realm=x", "Bearer realm=y"]);
        assert!(
            c.skip_body("GET", &h),
            "a small body is skipped, the connection kept"
        );
        let h = parse_head(&c.read_head().unwrap().unwrap()).unwrap();
        assert!(
            check_range_response(&h, 0, 5).is_err(),
            "no chunked data bodies"
        );
        assert_eq!(
            c.read_small_body(&h, 100).unwrap(),
            (b"abcde".to_vec(), true)
        );
        let h = parse_head(&c.read_head().unwrap().unwrap()).unwrap();
        assert_eq!(
            (h.status, h.location.as_deref()),
            (302, Some("http://h:1/p"))
        );
        assert!(c.skip_body("GET", &h));
        let h = parse_head(&c.read_head().unwrap().unwrap()).unwrap();
        assert_eq!(
            c.read_small_body(&h, 100).unwrap(),
            (b"to the end".to_vec(), false)
        );
        let big = Head {
            status: 200,
            content_length: Some(1 << 30),
            ..Head::default()
        };
        assert!(
            !c.skip_body("GET", &big),
            "a large body is not read: drop the connection"
        );
        assert!(c.skip_body("HEAD", &big), "HEAD responses have no body");
        assert!(c.read_small_body(&big, 100).is_err());
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
                    stream: Stream::Plain(s.try_clone().unwrap()),
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
        let store = HttpStore::new(url, Duration::from_secs(5), Trust::default());
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
        let store = HttpStore::new(url, Duration::from_secs(5), Trust::default());
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
            Trust::default(),
        );
        assert!(store.open(b"blob").is_err());
    }

    #[test]
    fn reconnects_when_the_server_closed_an_idle_connection() {
        // Each connection answers one request, then the server closes it.
        let url = server(4, blob_server);
        // The test server keeps connections open: make the idle one stale by shutting it down.
        let store = HttpStore::new(url, Duration::from_secs(5), Trust::default());
        let blob = store.open(b"blob").unwrap();
        if let Some(c) = store.pool.idle_conn(&store.url.ep) {
            c.stream.tcp().shutdown(std::net::Shutdown::Both).unwrap();
            store.pool.put_back(&store.url.ep, c);
        }
        let mut buf = [0u8; 10];
        blob.read_at(&mut buf, 990).unwrap();
        assert!(buf.iter().zip(990..).all(|(&b, i)| b == byte(i)));
    }

    /// TLS: the same blob server over https, with a certificate of `ca` for `names`.
    fn tls_blob_server(ca: &crate::tls::tests::Ca, names: &[&str]) -> (u16, Arc<AtomicUsize>) {
        crate::tls::tests::tls_server(ca.server_cert(names), Arc::new(blob_server))
    }

    fn https_store(host: &str, port: u16, trust: Trust) -> HttpStore {
        let url = Url::parse(&format!("https://{host}:{port}/p")).unwrap();
        HttpStore::new(url, Duration::from_secs(5), trust)
    }

    #[test]
    fn https_range_gets_verified_over_one_connection() {
        use crate::tls::tests::Ca;
        let d = crate::blobs::tests::TempDir::new("https");
        let ca = Ca::new("test CA");
        let (port, conns) = tls_blob_server(&ca, &["localhost", "127.0.0.1"]);
        // the trust store from a PEM file, as --ca-file loads it
        let trust = Trust::from_file(&ca.write(&d.0, "ca.pem")).unwrap();
        let store = https_store("127.0.0.1", port, trust.clone());
        assert!(
            store
                .describe()
                .contains("(TLS, trusting 1 CA certificate from"),
            "{}",
            store.describe()
        );
        let blob = store.open(b"blob").unwrap();
        assert_eq!(blob.size(), 1000);
        assert_eq!(blob.location(), format!("https://127.0.0.1:{port}/p/blob"));
        let mut buf = vec![0u8; 300];
        for off in [0, 700, 100] {
            blob.read_at(&mut buf, off).unwrap();
            assert!(buf.iter().zip(off..).all(|(&b, i)| b == byte(i)), "{off}");
        }
        assert_eq!(
            store.open(b"missing").err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        assert_eq!(
            conns.load(Ordering::SeqCst),
            1,
            "one TLS connection, kept alive and reused"
        );

        // a reused TLS connection found dead is replaced by a new one (one retry)
        if let Some(c) = store.pool.idle_conn(&store.url.ep) {
            c.stream.tcp().shutdown(std::net::Shutdown::Both).unwrap();
            store.pool.put_back(&store.url.ep, c);
        }
        blob.read_at(&mut buf[..10], 990).unwrap();
        assert!(buf[..10].iter().zip(990..).all(|(&b, i)| b == byte(i)));
        assert_eq!(conns.load(Ordering::SeqCst), 2);

        // by name: SNI and the DNS name in the certificate
        let store = https_store("localhost", port, trust);
        let blob = store.open(b"blob").unwrap();
        blob.read_at(&mut buf[..5], 995).unwrap();
        assert!(buf[..5].iter().zip(995..).all(|(&b, i)| b == byte(i)));
    }

    #[test]
    fn https_refuses_an_untrusted_ca_and_a_wrong_name() {
        use crate::tls::tests::Ca;
        let ca = Ca::new("test CA");
        let (port, conns) = tls_blob_server(&ca, &["localhost"]);

        // a CA we do not trust signed the server's certificate
        let other = Ca::new("other CA");
        let e = https_store("localhost", port, other.trust())
            .open(b"blob")
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("TLS handshake with localhost:{port}: certificate verification failed: UnknownIssuer")),
            "{msg}"
        );
        assert!(
            !matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
            ),
            "an EIO, not an ENOENT: {e:?}"
        );

        // the right CA, but the certificate is for localhost, not 127.0.0.1
        let e = https_store("127.0.0.1", port, ca.trust())
            .open(b"blob")
            .err()
            .unwrap();
        let msg = e.to_string();
        assert!(msg.contains("certificate verification failed"), "{msg}");
        assert!(
            msg.contains("certificate not valid for name \"127.0.0.1\""),
            "{msg}"
        );
        assert_eq!(conns.load(Ordering::SeqCst), 0, "no handshake completed");

        // no trust store (no system bundle, no --ca-file): refused, saying so
        let e = https_store("localhost", port, Trust::unavailable("no bundle here"))
            .open(b"blob")
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("no trust store: no bundle here"),
            "{e}"
        );

        // a plain HTTP client talking to the TLS port gets no blob either (and no hang)
        let url = Url::parse(&format!("http://127.0.0.1:{port}/p")).unwrap();
        let plain = HttpStore::new(url, Duration::from_secs(5), ca.trust());
        assert!(plain.open(b"blob").is_err());
    }

    #[test]
    fn a_tls_server_closing_an_idle_connection_is_not_an_error() {
        // The server completes the handshake, then drops the connection without close_notify
        // (as servers do with idle connections): reading a response head finds it closed,
        // which the pool takes as stale (retried), not as a failure.
        use crate::tls::tests::Ca;
        use rustls::ServerConnection;
        let ca = Ca::new("test CA");
        let (chain, key) = ca.server_cert(&["127.0.0.1"]);
        let config = crate::tls::tests::server_config(chain, key);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut tcp, _) = l.accept().unwrap();
            let mut conn = ServerConnection::new(config).unwrap();
            while conn.is_handshaking() {
                conn.complete_io(&mut tcp).unwrap();
            }
            // session tickets and all
            while conn.wants_write() {
                conn.write_tls(&mut tcp).unwrap();
            }
        });
        let pool = Pool::new(Duration::from_secs(5), ca.trust());
        let ep = Endpoint::parse(&format!("127.0.0.1:{port}"), true).unwrap();
        let mut c = pool.connect(&ep).unwrap();
        t.join().unwrap();
        assert!(c.read_head().unwrap().is_none());
    }
}
