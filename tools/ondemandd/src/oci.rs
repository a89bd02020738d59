// SPDX-License-Identifier: GPL-2.0
//! `--source oci://HOST[:PORT]/REPO[/SUBREPO...]`: blobs of an OCI distribution registry
//! (Docker registry HTTP API v2), over plain HTTP; `ocis://` is the same over TLS (HTTPS, port
//! 443 by default; the server verified against the trust store, `crate::tls::Trust`).
//!
//! A cookie key names a blob by digest: `sha256:<64 hex>` or the bare 64 hex digits
//! (nydus-style blob id) both mean `/v2/<REPO>/blobs/sha256:<hex>`. Any other key fails its
//! OPEN with ENOENT. OPEN asks for the size with `HEAD`; fetches are Range `GET`s. Both follow
//! redirects (301/302/303/307/308, at most [`MAX_REDIRECTS`]) to other `http://` or `https://`
//! hosts, as registries do to their storage, without sending the registry's credentials there.
//! A redirect from `https` to plain `http` is refused, and so is a plain `http` token realm of
//! an `ocis://` registry: nothing fetched over TLS leads to cleartext.
//!
//! Authentication: a `401` with `WWW-Authenticate: Bearer realm=...,service=...,scope=...`
//! makes us get a token from the realm (`GET realm?service=..&scope=..`, with HTTP Basic
//! credentials if configured), cache it for the repository and retry; a `Basic` challenge is
//! answered with the configured credentials. Credentials (`--registry-auth USER:PASS` or
//! `EROFS_ONDEMANDD_REGISTRY_AUTH`) are never logged.

use crate::blobs::{BlobRead, BlobStore};
use crate::digest::{self, key_digest};
use crate::http::{
    check_bounds, invalid, percent_encode, read_range_body, split_http_url, status_error, Conn,
    Endpoint, Head, Pool, Req,
};
use crate::tls::Trust;
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;
/// Largest token response accepted.
const MAX_TOKEN_BODY: usize = 1 << 20;

/// A parsed `oci://` or `ocis://` (TLS) source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciUrl {
    pub ep: Endpoint,
    /// The repository name, e.g. `erofs/test`.
    pub repo: String,
}

impl OciUrl {
    pub fn parse(s: &str) -> Result<OciUrl, String> {
        let bad = |why: &str| format!("bad --source {s:?}: {why}");
        let (rest, tls) =
            match (s.strip_prefix("oci://"), s.strip_prefix("ocis://")) {
                (Some(r), _) => (r, false),
                (_, Some(r)) => (r, true),
                _ => return Err(bad(
                    "expected oci://HOST[:PORT]/REPO[/SUBREPO...] (plain HTTP) or ocis://... (TLS)",
                )),
            };
        let (authority, repo) = rest
            .split_once('/')
            .ok_or_else(|| bad("no repository (oci[s]://HOST[:PORT]/REPO)"))?;
        let ep = Endpoint::parse(authority, tls).map_err(|e| bad(&e))?;
        let repo = repo.trim_end_matches('/');
        // The distribution spec's repository name: lowercase components of [a-z0-9] separated
        // by '.', '_', '__' or '-'s, joined by '/'.
        let ok_component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
                && c.as_bytes()[c.len() - 1].is_ascii_alphanumeric()
        };
        if repo.is_empty() || !repo.split('/').all(ok_component) || repo.len() > 255 {
            return Err(bad(
                "bad repository name (lowercase a-z 0-9 . _ - components joined by '/')",
            ));
        }
        Ok(OciUrl {
            ep,
            repo: repo.to_string(),
        })
    }

    /// The request path of the blob with digest `hex`.
    pub fn blob_path(&self, hex: &str) -> String {
        format!("/v2/{}/blobs/sha256:{hex}", self.repo)
    }
}

impl std::fmt::Display for OciUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.ep.tls { "ocis" } else { "oci" };
        write!(f, "{scheme}://{}/{}", self.ep, self.repo)
    }
}

/// Registry credentials. Debug and Display never show them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    user: String,
    pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

impl Credentials {
    /// `USER:PASS` (the password may contain ':'). The error never quotes the value.
    pub fn parse(s: &str) -> Result<Credentials, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() && !s.contains(['\r', '\n']) => Ok(Credentials {
                user: u.to_string(),
                pass: p.to_string(),
            }),
            _ => Err("bad registry credentials: expected USER:PASS".into()),
        }
    }

    /// The `Authorization` header value.
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            digest::base64(format!("{}:{}", self.user, self.pass).as_bytes())
        )
    }
}

/// An authentication challenge (`WWW-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
    Basic,
}

/// The auth-params of challenges: (scheme, [(name, value)]) in order. Tolerant: quoted
/// values may contain commas and `\`-escapes; names are lowercased.
fn split_challenges(v: &str) -> Vec<(String, Vec<(String, String)>)> {
    let b = v.as_bytes();
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b",= \t".contains(&b[i]) {
            i += 1;
        }
        let token = &v[start..i];
        if token.is_empty() {
            i += 1;
            continue;
        }
        let mut j = i;
        while j < b.len() && b[j].is_ascii_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'=' && !(j + 1 < b.len() && b[j + 1] == b'=') {
            // name=value
            i = j + 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value = String::new();
            if i < b.len() && b[i] == b'"' {
                i += 1;
                let mut esc = false;
                let mut chars = v[i..].char_indices();
                let mut end = v.len();
                for (k, c) in &mut chars {
                    if esc {
                        value.push(c);
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else if c == '"' {
                        end = i + k + 1;
                        break;
                    } else {
                        value.push(c);
                    }
                }
                i = end;
            } else {
                let s = i;
                while i < b.len() && b[i] != b',' {
                    i += 1;
                }
                value = v[s..i].trim().to_string();
            }
            if let Some(last) = out.last_mut() {
                last.1.push((token.to_ascii_lowercase(), value));
            }
        } else {
            // a scheme (token68 credentials after it are skipped as a param-less token)
            out.push((token.to_string(), Vec::new()));
        }
    }
    out
}

/// The challenge to answer among the `WWW-Authenticate` values: Bearer (with a realm) first,
/// else Basic. None if there is neither.
pub fn parse_challenges(values: &[String]) -> Option<Challenge> {
    let all: Vec<_> = values.iter().flat_map(|v| split_challenges(v)).collect();
    for (scheme, params) in &all {
        if scheme.eq_ignore_ascii_case("bearer") {
            let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            if let Some(realm) = get("realm") {
                return Some(Challenge::Bearer {
                    realm,
                    service: get("service"),
                    scope: get("scope"),
                });
            }
        }
    }
    all.iter()
        .any(|(s, _)| s.eq_ignore_ascii_case("basic"))
        .then_some(Challenge::Basic)
}

/// The string value of `"field"` at the top of a JSON object (enough for token responses:
/// `{"token": "...", "access_token": "...", ...}`).
pub fn json_string_field(body: &str, field: &str) -> Option<String> {
    let pat = format!("\"{field}\"");
    let mut from = 0;
    while let Some(i) = body[from..].find(&pat) {
        let after = from + i + pat.len();
        from = after;
        let rest = body[after..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start().strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let h: String = chars.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&h, 16).ok()?)?);
                    }
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
        return None;
    }
    None
}

/// The shared part of an OCI source: where, credentials, tokens, connections.
pub struct Registry {
    pub url: OciUrl,
    creds: Option<Credentials>,
    /// `Authorization` values by repository (a Bearer token or Basic credentials).
    auth: Mutex<HashMap<String, String>>,
    pool: Pool,
}

/// What a response led to.
enum Step<T> {
    Done(T),
    Challenge(Option<Challenge>),
    Redirect(Option<String>),
}

fn is_redirect(s: u16) -> bool {
    matches!(s, 301 | 302 | 303 | 307 | 308)
}

/// Where a `Location` points, from a request to `ep`: absolute `http://` or `https://`, or
/// origin-relative. A redirect from `https` to plain `http` is refused.
fn resolve_location(ep: &Endpoint, loc: &str) -> io::Result<(Endpoint, String)> {
    if loc.starts_with('/') && !loc.starts_with("//") {
        return Ok((ep.clone(), loc.to_string()));
    }
    let (to, target) = split_http_url(loc).map_err(|e| invalid(format!("redirect to {e}")))?;
    if ep.tls && !to.tls {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing a redirect from {} to plain http ({loc:?})",
                ep.origin()
            ),
        ));
    }
    Ok((to, target))
}

impl Registry {
    /// `https` servers (the registry, redirect targets, token realms) are verified against
    /// `trust`.
    pub fn new(
        url: OciUrl,
        creds: Option<Credentials>,
        timeout: Duration,
        trust: Trust,
    ) -> Registry {
        Registry {
            url,
            creds,
            auth: Mutex::new(HashMap::new()),
            pool: Pool::new(timeout, trust),
        }
    }

    fn auth_header(&self) -> Option<String> {
        let a = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        a.get(&self.url.repo).cloned()
    }

    /// Sends `method path` (Range `range`) to the registry, following redirects and answering
    /// challenges, and runs `f` on the final response (any status but 401 and redirects).
    fn exchange<T>(
        &self,
        method: &str,
        path: &str,
        range: Option<(u64, u64)>,
        mut f: impl FnMut(&mut Conn, &Head) -> io::Result<(T, bool)>,
    ) -> io::Result<T> {
        let mut ep = self.url.ep.clone();
        let mut target = path.to_string();
        let (mut redirects, mut auths) = (0, 0);
        loop {
            // The registry's credentials go to the registry only.
            let on_registry = ep == self.url.ep;
            let headers: Vec<(&str, String)> = match self.auth_header() {
                Some(a) if on_registry => vec![("Authorization", a)],
                _ => Vec::new(),
            };
            let req = Req {
                method,
                path: &target,
                range,
                headers: &headers,
            };
            let step = self.pool.request(&ep, &req, |c, h| {
                if h.status == 401 && on_registry {
                    let ch = parse_challenges(&h.www_authenticate);
                    Ok((Step::Challenge(ch), c.skip_body(method, h)))
                } else if is_redirect(h.status) {
                    Ok((Step::Redirect(h.location.clone()), c.skip_body(method, h)))
                } else {
                    let (v, reuse) = f(c, h)?;
                    Ok((Step::Done(v), reuse))
                }
            })?;
            match step {
                Step::Done(v) => return Ok(v),
                Step::Challenge(ch) => {
                    auths += 1;
                    let Some(ch) = ch.filter(|_| auths <= 2) else {
                        return Err(io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!(
                                "HTTP status 401 from {}{}{}",
                                ep,
                                target,
                                if auths > 2 {
                                    " after authenticating"
                                } else {
                                    " without a Bearer or Basic challenge"
                                }
                            ),
                        ));
                    };
                    self.authenticate(&ch)?;
                }
                Step::Redirect(loc) => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        return Err(invalid(format!(
                            "more than {MAX_REDIRECTS} redirects for {path}"
                        )));
                    }
                    let loc = loc.ok_or_else(|| invalid("redirect without a Location".into()))?;
                    (ep, target) = resolve_location(&ep, &loc)?;
                }
            }
        }
    }

    /// Answers challenge `ch`: stores the `Authorization` value to send to the repository.
    fn authenticate(&self, ch: &Challenge) -> io::Result<()> {
        let value = match ch {
            Challenge::Basic => match &self.creds {
                Some(c) => c.basic(),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "the registry wants Basic credentials: give --registry-auth or EROFS_ONDEMANDD_REGISTRY_AUTH",
                    ))
                }
            },
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => {
                let scope = scope
                    .clone()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.url.repo));
                format!("Bearer {}", self.token(realm, service.as_deref(), &scope)?)
            }
        };
        let mut a = self.auth.lock().unwrap_or_else(|e| e.into_inner());
        a.insert(self.url.repo.clone(), value);
        Ok(())
    }

    /// Gets a token from `realm` (following redirects).
    fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> io::Result<String> {
        let (mut ep, mut target) =
            split_http_url(realm).map_err(|e| invalid(format!("token realm {e}")))?;
        if self.url.ep.tls && !ep.tls {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refusing the plain http token realm {realm:?} of a TLS registry"),
            ));
        }
        target.push(if target.contains('?') { '&' } else { '?' });
        if let Some(s) = service {
            target.push_str(&format!("service={}&", percent_encode(s.as_bytes())));
        }
        target.push_str(&format!("scope={}", percent_encode(scope.as_bytes())));
        let headers: Vec<(&str, String)> = match &self.creds {
            Some(c) => vec![("Authorization", c.basic())],
            None => Vec::new(),
        };
        for _ in 0..=MAX_REDIRECTS {
            let req = Req {
                method: "GET",
                path: &target,
                range: None,
                headers: &headers,
            };
            let r = self.pool.request(&ep, &req, |c, h| {
                if is_redirect(h.status) {
                    return Ok((Err(h.location.clone()), c.skip_body("GET", h)));
                }
                if h.status != 200 {
                    return Err(io::Error::new(
                        status_error(h.status).kind(),
                        format!("token request to {ep}: HTTP status {}", h.status),
                    ));
                }
                let (body, reuse) = c.read_small_body(h, MAX_TOKEN_BODY)?;
                Ok((Ok(body), reuse))
            })?;
            match r {
                Ok(body) => {
                    let body = String::from_utf8_lossy(&body);
                    return json_string_field(&body, "token")
                        .or_else(|| json_string_field(&body, "access_token"))
                        .filter(|t| !t.is_empty() && !t.contains(['\r', '\n']))
                        .ok_or_else(|| invalid(format!("token response from {ep} has no token")));
                }
                Err(loc) => {
                    let loc = loc.ok_or_else(|| invalid("redirect without a Location".into()))?;
                    (ep, target) = resolve_location(&ep, &loc)?;
                }
            }
        }
        Err(invalid(format!(
            "more than {MAX_REDIRECTS} redirects getting a token"
        )))
    }
}

/// `--source oci://...` or `ocis://...`.
pub struct OciStore(Arc<Registry>);

impl OciStore {
    pub fn new(
        url: OciUrl,
        creds: Option<Credentials>,
        timeout: Duration,
        trust: Trust,
    ) -> OciStore {
        OciStore(Arc::new(Registry::new(url, creds, timeout, trust)))
    }
}

impl BlobStore for OciStore {
    fn open(&self, key: &[u8]) -> io::Result<Box<dyn BlobRead>> {
        let d = key_digest(key).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cookie key {:?} is not a blob digest (sha256:<64 hex> or <64 hex>): the OCI source serves blobs by digest only",
                    String::from_utf8_lossy(key)
                ),
            )
        })?;
        let hex = digest::hex(&d);
        let path = self.0.url.blob_path(&hex);
        let size = self
            .0
            .exchange("HEAD", &path, None, |_, h| {
                if h.status != 200 {
                    return Err(status_error(h.status));
                }
                let n = h
                    .content_length
                    .ok_or_else(|| invalid("HEAD without Content-Length".into()))?;
                Ok((n, true))
            })
            .map_err(|e| {
                io::Error::new(e.kind(), format!("HEAD {}@sha256:{hex}: {e}", self.0.url))
            })?;
        Ok(Box::new(OciBlob {
            reg: Arc::clone(&self.0),
            path,
            hex,
            size,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "blobs from registry {}{}{}",
            self.0.url,
            if self.0.url.ep.tls {
                format!(" (TLS, {})", self.0.pool.trust().describe())
            } else {
                String::new()
            },
            if self.0.creds.is_some() {
                " (with credentials)"
            } else {
                ""
            }
        )
    }
}

struct OciBlob {
    reg: Arc<Registry>,
    path: String,
    hex: String,
    size: u64,
}

impl BlobRead for OciBlob {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        check_bounds(off, buf.len() as u64, self.size)?;
        self.reg
            .exchange("GET", &self.path, Some((off, buf.len() as u64)), |c, h| {
                read_range_body(c, h, buf, off)
            })
            .map_err(|e| io::Error::new(e.kind(), format!("GET {}: {e}", self.location())))
    }

    fn location(&self) -> String {
        format!("{}@sha256:{}", self.reg.url, self.hex)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::digest::{hex, sha256};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Handler = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

    /// A server answering every request of every connection with `h(request head)` (one
    /// thread per connection); returns its port.
    fn serve(h: Handler) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let h = Arc::clone(&h);
                std::thread::spawn(move || answer(&mut s, &*h));
            }
        });
        port
    }

    /// Answers every request on one connection (plain or TLS) with `h(request head)` until the
    /// peer closes it; responses to HEAD lose their body, whatever they say.
    pub(crate) fn answer(s: &mut (impl Read + Write), h: &(dyn Fn(&str) -> Vec<u8> + Send + Sync)) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let req = String::from_utf8_lossy(&buf[..i]).into_owned();
                buf.drain(..i + 4);
                let mut resp = h(&req);
                if req.starts_with("HEAD ") {
                    if let Some(i) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
                        resp.truncate(i + 4);
                    }
                }
                if s.write_all(&resp).and_then(|_| s.flush()).is_err() {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn header<'a>(req: &'a str, name: &str) -> Option<&'a str> {
        req.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The test blob and its digest.
    fn blob() -> (Vec<u8>, String) {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 13 % 256) as u8).collect();
        let hx = hex(&sha256(&data));
        (data, hx)
    }

    /// Answers a blob HEAD or Range GET for `data`.
    fn blob_response(req: &str, data: &[u8]) -> Vec<u8> {
        if req.starts_with("HEAD ") {
            return format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nDocker-Content-Digest: x\r\n\r\n",
                data.len()
            )
            .into_bytes();
        }
        let (a, b) = header(req, "Range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.split_once('-'))
            .unwrap();
        let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
        let mut r = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
            b - a + 1,
            data.len()
        )
        .into_bytes();
        r.extend_from_slice(&data[a..=b]);
        r
    }

    fn store(port: u16, creds: Option<&str>) -> OciStore {
        OciStore::new(
            OciUrl::parse(&format!("oci://127.0.0.1:{port}/erofs/test")).unwrap(),
            creds.map(|c| Credentials::parse(c).unwrap()),
            Duration::from_secs(5),
            Trust::default(),
        )
    }

    fn read_all(store: &OciStore, key: &str) -> io::Result<Vec<u8>> {
        let b = store.open(key.as_bytes())?;
        let mut out = vec![0u8; b.size() as usize];
        // in two pieces: two Range GETs
        let mid = out.len() / 3;
        b.read_at(&mut out[..mid], 0)?;
        b.read_at(&mut out[mid..], mid as u64)?;
        Ok(out)
    }

    #[test]
    fn urls() {
        let u = OciUrl::parse("oci://127.0.0.1:5000/erofs/test/").unwrap();
        assert_eq!(u.ep.port, 5000);
        assert_eq!(u.repo, "erofs/test");
        assert_eq!(u.to_string(), "oci://127.0.0.1:5000/erofs/test");
        assert_eq!(u.blob_path("ab"), "/v2/erofs/test/blobs/sha256:ab");
        let u = OciUrl::parse("oci://registry.local/a.b_c--d/e").unwrap();
        assert_eq!((u.ep.port, u.repo.as_str()), (80, "a.b_c--d/e"));
        let u = OciUrl::parse("oci://[::1]:5000/r").unwrap();
        assert_eq!(u.ep.host, "::1");
        for bad in [
            "oci://h",
            "oci://h/",
            "oci://h/Repo",
            "oci://h/a//b",
            "oci://h/-a",
            "oci://h/a-",
            "oci://h/a b",
            "oci://h/a?x",
            "oci://:5000/r",
            "oci://h:0/r",
            "oci://u:p@h/r",
            "http://h/r",
            "https://h/r",
            "ocis://h",
            "ocis://u:p@h/r",
        ] {
            assert!(OciUrl::parse(bad).is_err(), "{bad}");
        }
        let u = OciUrl::parse("ocis://registry.example/erofs/test").unwrap();
        assert_eq!((u.ep.port, u.ep.tls), (443, true));
        assert_eq!(u.to_string(), "ocis://registry.example/erofs/test");
        let u = OciUrl::parse("ocis://127.0.0.1:5443/r").unwrap();
        assert_eq!(u.to_string(), "ocis://127.0.0.1:5443/r");
        assert!(!OciUrl::parse("oci://h:443/r").unwrap().ep.tls);
        let c = Credentials::parse("user:pa:ss").unwrap();
        assert_eq!(
            c.basic(),
            format!("Basic {}", digest::base64(b"user:pa:ss"))
        );
        assert_eq!(format!("{c:?}"), "Credentials(<redacted>)");
        for bad in ["", "nocolon", ":p", "u:p\r\nX: y"] {
            let e = Credentials::parse(bad).unwrap_err();
            assert!(!bad.is_empty() && !e.contains(bad) || bad.is_empty(), "{e}");
        }
        assert_eq!(
            split_http_url("http://auth:81/token?x=1").unwrap(),
            (
                Endpoint::parse("auth:81", false).unwrap(),
                "/token?x=1".into()
            )
        );
        assert_eq!(split_http_url("http://h").unwrap().1, "/");
        assert_eq!(split_http_url("http://h?a").unwrap().1, "/?a");
        assert_eq!(
            split_http_url("https://auth.example/token").unwrap(),
            (
                Endpoint::parse("auth.example:443", true).unwrap(),
                "/token".into()
            )
        );
        assert!(split_http_url("ftp://h/").is_err());
        let tls = Endpoint::parse("reg:5443", true).unwrap();
        let plain = Endpoint::parse("reg:5000", false).unwrap();
        assert_eq!(
            resolve_location(&plain, "https://s3.example/b?x").unwrap(),
            (Endpoint::parse("s3.example", true).unwrap(), "/b?x".into())
        );
        assert_eq!(resolve_location(&tls, "/v2/x").unwrap().0, tls);
        let e = resolve_location(&tls, "http://s3.example/b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string()
                .contains("refusing a redirect from https://reg:5443 to plain http"),
            "{e}"
        );
    }

    #[test]
    fn challenges() {
        let v = |s: &str| vec![s.to_string()];
        assert_eq!(
            parse_challenges(&v(
                r#"Bearer realm="http://127.0.0.1:9/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#
            )),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:9/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:samalba/my-app:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenges(&v(r#"bearer Realm = "http://a/t" , scope=x"#)),
            Some(Challenge::Bearer {
                realm: "http://a/t".into(),
                service: None,
                scope: Some("x".into()),
            })
        );
        assert_eq!(
            parse_challenges(&v(r#"Basic realm="Registry Realm""#)),
            Some(Challenge::Basic)
        );
        // several challenges, in one header or several: Bearer wins
        assert_eq!(
            parse_challenges(&v(
                r#"Basic realm="r", Bearer realm="http://a/t",service="s\"q""#
            )),
            Some(Challenge::Bearer {
                realm: "http://a/t".into(),
                service: Some("s\"q".into()),
                scope: None,
            })
        );
        assert_eq!(
            parse_challenges(&["Basic realm=x".into(), "Bearer realm=http://a/t".into()]),
            Some(Challenge::Bearer {
                realm: "http://a/t".into(),
                service: None,
                scope: None,
            })
        );
        assert_eq!(parse_challenges(&v("Bearer service=x")), None, "no realm");
        assert_eq!(parse_challenges(&v("Negotiate abc==")), None);
        assert_eq!(parse_challenges(&[]), None);
        assert_eq!(
            parse_challenges(&v(r#"Bearer realm="unterminated"#)),
            Some(Challenge::Bearer {
                realm: "unterminated".into(),
                service: None,
                scope: None
            })
        );
    }

    #[test]
    fn token_json() {
        assert_eq!(
            json_string_field(r#"{"token":"abc"}"#, "token").as_deref(),
            Some("abc")
        );
        assert_eq!(
            json_string_field(
                r#"{"access_token": "x\"y\\z\u0041", "token" : "t2", "expires_in": 300}"#,
                "token"
            )
            .as_deref(),
            Some("t2")
        );
        assert_eq!(json_string_field(r#"{"access_token":"a"}"#, "token"), None);
        assert_eq!(
            json_string_field(r#"{"access_token":"a\u0041"}"#, "access_token").as_deref(),
            Some("aA")
        );
        assert_eq!(json_string_field(r#"{"token":5}"#, "token"), None);
        assert_eq!(json_string_field(r#"{"token":"open"#, "token"), None);
    }

    #[test]
    fn anonymous_registry_serves_blobs_by_digest() {
        let (data, hx) = blob();
        let d2 = data.clone();
        let hx2 = hx.clone();
        let port = serve(Arc::new(move |req: &str| {
            let path = format!("/v2/erofs/test/blobs/sha256:{hx2} ");
            if req
                .split_once(' ')
                .is_some_and(|(_, r)| r.starts_with(&path))
            {
                blob_response(req, &d2)
            } else {
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}".to_vec()
            }
        }));
        let s = store(port, None);
        assert_eq!(read_all(&s, &format!("sha256:{hx}")).unwrap(), data);
        assert_eq!(read_all(&s, &hx).unwrap(), data, "nydus-style bare hex");
        let b = s.open(hx.as_bytes()).unwrap();
        assert_eq!(
            b.location(),
            format!("oci://127.0.0.1:{port}/erofs/test@sha256:{hx}")
        );
        assert_eq!(
            b.read_at(&mut [0u8; 10], 4995).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let other = hex(&sha256(b"x"));
        assert_eq!(
            s.open(other.as_bytes()).err().unwrap().kind(),
            io::ErrorKind::NotFound
        );
        for bad in ["meta", "blob1", "sha256:abc", "../x", &hx.to_uppercase()] {
            let e = s.open(bad.as_bytes()).err().unwrap();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains("not a blob digest"), "{e}");
        }
        assert!(s.describe().contains("/erofs/test"));
        assert!(!s.describe().contains("credentials"));
    }

    #[test]
    fn bearer_token_flow_with_basic_credentials() {
        let (data, hx) = blob();
        let token_reqs = Arc::new(AtomicUsize::new(0));
        let tr = Arc::clone(&token_reqs);
        let basic = Credentials::parse("alice:s3cret").unwrap().basic();
        // the token server: a chunked JSON answer, the scope checked
        let auth_port = serve(Arc::new(move |req: &str| {
            tr.fetch_add(1, Ordering::SeqCst);
            let first = req.lines().next().unwrap();
            let want = "GET /token?service=test-registry&scope=repository:erofs%2Ftest:pull ";
            if !first.starts_with(want) || header(req, "Authorization") != Some(basic.as_str()) {
                return b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            let body = r#"{"token": "tok-1", "expires_in": 60}"#;
            let (a, b) = body.split_at(10);
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
            .into_bytes()
        }));
        let d2 = data.clone();
        let reg_port = serve(Arc::new(move |req: &str| {
            if header(req, "Authorization") != Some("Bearer tok-1") {
                return format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{auth_port}/token\",service=\"test-registry\",scope=\"repository:erofs/test:pull\"\r\nContent-Length: 20\r\n\r\n{{\"errors\":\"denied\"}}"
                )
                .into_bytes();
            }
            blob_response(req, &d2)
        }));
        let s = store(reg_port, Some("alice:s3cret"));
        assert_eq!(read_all(&s, &hx).unwrap(), data);
        assert_eq!(token_reqs.load(Ordering::SeqCst), 1, "the token is cached");
        assert!(s.describe().contains("with credentials"));
        assert!(!s.describe().contains("s3cret"));

        // without credentials the token server refuses: the OPEN fails, no loop
        let s = store(reg_port, None);
        let e = s.open(hx.as_bytes()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("token request"), "{e}");
    }

    #[test]
    fn basic_challenge() {
        let (data, hx) = blob();
        let basic = Credentials::parse("bob:pw").unwrap().basic();
        let d2 = data.clone();
        let port = serve(Arc::new(move |req: &str| {
            if header(req, "Authorization") != Some(basic.as_str()) {
                return b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"Registry Realm\"\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            blob_response(req, &d2)
        }));
        assert_eq!(read_all(&store(port, Some("bob:pw")), &hx).unwrap(), data);
        let e = store(port, None).open(hx.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("--registry-auth"), "{e}");
        let e = store(port, Some("bob:wrong"))
            .open(hx.as_bytes())
            .err()
            .unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("after authenticating"), "{e}");

        // a registry that always says 401 without a usable challenge
        let port = serve(Arc::new(|_: &str| {
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec()
        }));
        let e = store(port, None).open(hx.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("without a Bearer or Basic"), "{e}");
    }

    #[test]
    fn an_expired_token_is_renewed() {
        let (data, hx) = blob();
        let issued = Arc::new(AtomicUsize::new(0));
        let i2 = Arc::clone(&issued);
        let auth_port = serve(Arc::new(move |_: &str| {
            let n = i2.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(r#"{{"access_token":"tok-{n}"}}"#);
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }));
        // tok-1 is good for two requests, then only tok-2 is
        let served = Arc::new(AtomicUsize::new(0));
        let (d2, s2) = (data.clone(), Arc::clone(&served));
        let reg_port = serve(Arc::new(move |req: &str| {
            let want = if s2.load(Ordering::SeqCst) < 2 {
                "Bearer tok-1"
            } else {
                "Bearer tok-2"
            };
            if header(req, "Authorization") != Some(want) {
                return format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{auth_port}/token\"\r\nContent-Length: 0\r\n\r\n"
                )
                .into_bytes();
            }
            s2.fetch_add(1, Ordering::SeqCst);
            blob_response(req, &d2)
        }));
        assert_eq!(read_all(&store(reg_port, None), &hx).unwrap(), data);
        assert_eq!(issued.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn redirects_to_storage_on_another_port() {
        let (data, hx) = blob();
        let d2 = data.clone();
        // "storage": serves the blob at /s/blob, refuses requests carrying credentials
        let storage = serve(Arc::new(move |req: &str| {
            if header(req, "Authorization").is_some() || !req.contains(" /s/blob?sig=1 ") {
                return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            blob_response(req, &d2)
        }));
        // a hop on the registry itself (relative Location), then to the storage
        let hops = Arc::new(AtomicUsize::new(0));
        let h2 = Arc::clone(&hops);
        let basic = Credentials::parse("u:p").unwrap().basic();
        let reg = serve(Arc::new(move |req: &str| {
            if header(req, "Authorization") != Some(basic.as_str()) {
                return b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=r\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            h2.fetch_add(1, Ordering::SeqCst);
            if req.contains("/blobs/") {
                b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /hop\r\nContent-Length: 5\r\n\r\nhello".to_vec()
            } else {
                format!("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{storage}/s/blob?sig=1\r\nContent-Length: 0\r\n\r\n").into_bytes()
            }
        }));
        assert_eq!(read_all(&store(reg, Some("u:p")), &hx).unwrap(), data);
        assert_eq!(
            hops.load(Ordering::SeqCst),
            6,
            "HEAD and two GETs, two hops each"
        );

        // a redirect loop is cut off; a redirect to https is followed (here without a trust
        // store: it fails saying so; tests::tls has the real thing)
        let looping = serve(Arc::new(|_: &str| {
            b"HTTP/1.1 301 Moved\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n".to_vec()
        }));
        let e = store(looping, None).open(hx.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("redirects"), "{e}");
        let tls = serve(Arc::new(move |_: &str| {
            format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: https://127.0.0.1:{storage}/b\r\nContent-Length: 0\r\n\r\n").into_bytes()
        }));
        let e = store(tls, None).open(hx.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("no trust store"), "{e}");
        let no_loc = serve(Arc::new(|_: &str| {
            b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".to_vec()
        }));
        assert!(store(no_loc, None).open(hx.as_bytes()).is_err());
    }

    #[test]
    fn wrong_content_is_caught_by_the_digest_check() {
        use crate::cache::{fill_checked, AlignedBuf, DigestMismatch};
        let (data, _) = blob();
        let lie = hex(&sha256(b"not this"));
        let d2 = data.clone();
        let port = serve(Arc::new(move |req: &str| blob_response(req, &d2)));
        let s = store(port, None);
        let b = s.open(lie.as_bytes()).unwrap();
        let dir = crate::blobs::tests::TempDir::new("oci-verify");
        let f = std::fs::File::create(dir.0.join("cache")).unwrap();
        let mut buf = AlignedBuf::new(crate::cache::CHUNK).unwrap();
        use std::os::fd::AsFd;
        let e = fill_checked(
            f.as_fd(),
            b.as_ref(),
            0,
            b.size(),
            &mut buf,
            key_digest(lie.as_bytes()).as_ref(),
        )
        .unwrap_err();
        assert!(DigestMismatch::of(&e).is_some(), "{e}");
        assert_eq!(f.metadata().unwrap().len(), 0, "nothing written");
    }

    fn tls_store(url: &str, creds: Option<&str>, trust: Trust) -> OciStore {
        OciStore::new(
            OciUrl::parse(url).unwrap(),
            creds.map(|c| Credentials::parse(c).unwrap()),
            Duration::from_secs(5),
            trust,
        )
    }

    #[test]
    fn ocis_registry_with_a_tls_token_realm_and_tls_storage() {
        use crate::tls::tests::{tls_server, Ca};
        let (data, hx) = blob();
        let ca = Ca::new("registry CA");
        let cert = || ca.server_cert(&["127.0.0.1", "localhost"]);
        // the token server, over TLS, wanting Basic credentials
        let basic = Credentials::parse("alice:s3cret").unwrap().basic();
        let (auth, _) = tls_server(
            cert(),
            Arc::new(move |req: &str| {
                if header(req, "Authorization") != Some(basic.as_str()) {
                    return b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec();
                }
                let body = r#"{"token":"tls-tok"}"#;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }),
        );
        // the storage, over TLS on another port (by name): no credentials accepted
        let d2 = data.clone();
        let (storage, storage_conns) = tls_server(
            cert(),
            Arc::new(move |req: &str| {
                if header(req, "Authorization").is_some() || !req.contains(" /s/blob?sig=1 ") {
                    return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec();
                }
                blob_response(req, &d2)
            }),
        );
        // the registry: Bearer challenge, then HEAD answered, GETs redirected to the storage
        let (reg, reg_conns) = tls_server(
            cert(),
            Arc::new(move |req: &str| {
                if header(req, "Authorization") != Some("Bearer tls-tok") {
                    return format!(
                        "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"https://127.0.0.1:{auth}/token\",service=\"r\"\r\nContent-Length: 0\r\n\r\n"
                    )
                    .into_bytes();
                }
                if req.starts_with("HEAD ") {
                    return b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
                }
                format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: https://localhost:{storage}/s/blob?sig=1\r\nContent-Length: 0\r\n\r\n").into_bytes()
            }),
        );
        let url = format!("ocis://127.0.0.1:{reg}/erofs/test");
        let s = tls_store(&url, Some("alice:s3cret"), ca.trust());
        assert_eq!(read_all(&s, &hx).unwrap(), data);
        let d = s.describe();
        assert!(
            d.contains(&format!("registry {url} (TLS, trusting the test CA)")),
            "{d}"
        );
        assert_eq!(
            s.open(hx.as_bytes()).unwrap().location(),
            format!("{url}@sha256:{hx}")
        );
        // kept alive: one connection to the registry, one to the storage
        assert_eq!(reg_conns.load(Ordering::SeqCst), 1);
        assert_eq!(storage_conns.load(Ordering::SeqCst), 1);

        // a registry whose CA is not trusted: refused at the first request
        let e = tls_store(&url, Some("alice:s3cret"), Ca::new("other").trust())
            .open(hx.as_bytes())
            .err()
            .unwrap();
        assert!(
            e.to_string()
                .contains("certificate verification failed: UnknownIssuer"),
            "{e}"
        );
    }

    #[test]
    fn plain_registry_redirects_to_https_storage() {
        use crate::tls::tests::{tls_server, Ca};
        let (data, hx) = blob();
        let ca = Ca::new("storage CA");
        let d2 = data.clone();
        let (storage, _) = tls_server(
            ca.server_cert(&["localhost"]),
            Arc::new(move |req: &str| {
                if header(req, "Authorization").is_some() {
                    return b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec();
                }
                blob_response(req, &d2)
            }),
        );
        let basic = Credentials::parse("u:p").unwrap().basic();
        let reg = serve(Arc::new(move |req: &str| {
            if header(req, "Authorization") != Some(basic.as_str()) {
                return b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=r\r\nContent-Length: 0\r\n\r\n".to_vec();
            }
            format!("HTTP/1.1 302 Found\r\nLocation: https://localhost:{storage}/b\r\nContent-Length: 0\r\n\r\n").into_bytes()
        }));
        let url = format!("oci://127.0.0.1:{reg}/erofs/test");
        let s = tls_store(&url, Some("u:p"), ca.trust());
        assert_eq!(read_all(&s, &hx).unwrap(), data);
        assert!(
            !s.describe().contains("TLS"),
            "the registry itself is plain"
        );

        // the storage's certificate is not trusted: the fetch fails, saying why
        let s = tls_store(&url, Some("u:p"), Ca::new("other").trust());
        let e = s.open(hx.as_bytes()).err().unwrap();
        assert!(
            e.to_string().contains(&format!(
                "TLS handshake with localhost:{storage}: certificate verification failed"
            )),
            "{e}"
        );
    }

    #[test]
    fn tls_never_leads_to_cleartext() {
        use crate::tls::tests::{tls_server, Ca};
        let (data, hx) = blob();
        let ca = Ca::new("CA");
        let d2 = data.clone();
        let plain = serve(Arc::new(move |req: &str| blob_response(req, &d2)));
        // a TLS registry redirecting to plain http: refused
        let (reg, _) = tls_server(
            ca.server_cert(&["127.0.0.1"]),
            Arc::new(move |_: &str| {
                format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: http://127.0.0.1:{plain}/b\r\nContent-Length: 0\r\n\r\n").into_bytes()
            }),
        );
        let s = tls_store(&format!("ocis://127.0.0.1:{reg}/r"), None, ca.trust());
        let e = s.open(hx.as_bytes()).err().unwrap();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("to plain http"), "{e}");
        // a TLS registry with a plain http token realm: refused before any credential is sent
        let (reg, _) = tls_server(
            ca.server_cert(&["127.0.0.1"]),
            Arc::new(move |_: &str| {
                format!("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{plain}/token\"\r\nContent-Length: 0\r\n\r\n").into_bytes()
            }),
        );
        let s = tls_store(
            &format!("ocis://127.0.0.1:{reg}/r"),
            Some("u:p"),
            ca.trust(),
        );
        let e = s.open(hx.as_bytes()).err().unwrap();
        assert!(e.to_string().contains("plain http token realm"), "{e}");
    }
}
