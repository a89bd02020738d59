// SPDX-License-Identifier: GPL-2.0
//! `--source oci://HOST[:PORT]/REPO[/SUBREPO...]`: blobs of an OCI distribution registry
//! (Docker registry HTTP API v2), over plain HTTP (no TLS: `ocis://` and `https://` are
//! refused).
//!
//! A cookie key names a blob by digest: `sha256:<64 hex>` or the bare 64 hex digits
//! (nydus-style blob id) both mean `/v2/<REPO>/blobs/sha256:<hex>`. Any other key fails its
//! OPEN with ENOENT. OPEN asks for the size with `HEAD`; fetches are Range `GET`s. Both follow
//! redirects (301/302/303/307/308, at most [`MAX_REDIRECTS`]) to other `http://` hosts, as
//! registries do to their storage, without sending the registry's credentials there.
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
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Redirects followed per request.
pub const MAX_REDIRECTS: usize = 5;
/// Largest token response accepted.
const MAX_TOKEN_BODY: usize = 1 << 20;

/// A parsed `oci://` source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciUrl {
    pub ep: Endpoint,
    /// The repository name, e.g. `erofs/test`.
    pub repo: String,
}

impl OciUrl {
    pub fn parse(s: &str) -> Result<OciUrl, String> {
        let bad = |why: &str| format!("bad --source {s:?}: {why}");
        if s.starts_with("ocis://") || s.starts_with("https://") {
            return Err(bad(
                "TLS is not implemented: only plain-http registries (oci://HOST[:PORT]/REPO)",
            ));
        }
        let rest = s
            .strip_prefix("oci://")
            .ok_or_else(|| bad("expected oci://HOST[:PORT]/REPO[/SUBREPO...]"))?;
        let (authority, repo) = rest
            .split_once('/')
            .ok_or_else(|| bad("no repository (oci://HOST[:PORT]/REPO)"))?;
        let ep = Endpoint::parse(authority).map_err(|e| bad(&e))?;
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
        write!(f, "oci://{}/{}", self.ep, self.repo)
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

/// Where a `Location` points, from a request to `ep`: absolute `http://` or origin-relative.
fn resolve_location(ep: &Endpoint, loc: &str) -> io::Result<(Endpoint, String)> {
    if loc.starts_with('/') && !loc.starts_with("//") {
        return Ok((ep.clone(), loc.to_string()));
    }
    split_http_url(loc).map_err(|e| invalid(format!("redirect to {e}")))
}

impl Registry {
    pub fn new(url: OciUrl, creds: Option<Credentials>, timeout: Duration) -> Registry {
        Registry {
            url,
            creds,
            auth: Mutex::new(HashMap::new()),
            pool: Pool::new(timeout),
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

/// `--source oci://...`.
pub struct OciStore(Arc<Registry>);

impl OciStore {
    pub fn new(url: OciUrl, creds: Option<Credentials>, timeout: Duration) -> OciStore {
        OciStore(Arc::new(Registry::new(url, creds, timeout)))
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
            "blobs from registry {}{}",
            self.0.url,
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
