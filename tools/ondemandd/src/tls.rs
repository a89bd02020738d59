// SPDX-License-Identifier: GPL-2.0
//! TLS for `https://` and `ocis://` sources (and redirects and token realms on `https://`):
//! rustls with the `ring` crypto provider, TLS 1.2 and 1.3, the server's certificate verified
//! against a trust store (webpki: chain to a trusted CA, validity dates, the host name or IP
//! address of the URL in the subjectAltName). SNI is sent for host names. There is no way to
//! turn verification off.
//!
//! The trust store ([`Trust`]) is a PEM bundle of CA certificates: `--ca-file PATH` (or
//! `ca_file` in the config file, globally or per `[[source]]`), which replaces the default, the
//! system bundle [`SYSTEM_BUNDLE`]. A `--ca-file` that is missing, unreadable, holds no
//! certificate or a certificate that cannot be parsed is an error at start; so is a missing
//! system bundle when a source needs TLS and no `--ca-file` is given.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// The system's CA bundle (Debian's `ca-certificates`), the default trust store.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS connection over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// The CAs TLS servers are verified against, and the client configuration built on them.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Trust {
    /// Err: why there is no trust store (TLS connections fail with that).
    config: Result<Arc<ClientConfig>, String>,
    /// What is trusted, for messages: `3 CA certificates from /etc/ca.pem`.
    what: String,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Trust({})", self.describe())
    }
}

impl Default for Trust {
    /// No trust store: every TLS connection fails (for sources that make none).
    fn default() -> Trust {
        Trust::unavailable("no CA certificates were loaded")
    }
}

impl Trust {
    /// A trust store that refuses every TLS connection with `why`.
    pub fn unavailable(why: &str) -> Trust {
        Trust {
            config: Err(why.to_string()),
            what: "nothing".into(),
        }
    }

    /// The trust store for `ca_file` if given (errors: the file is missing or unreadable, it
    /// holds no PEM certificate, or one of them cannot be parsed), else the system bundle
    /// (if that cannot be loaded, the result refuses TLS connections, saying why: see
    /// [`Trust::check`]).
    pub fn load(ca_file: Option<&Path>) -> Result<Trust, String> {
        match ca_file {
            Some(p) => Trust::from_file(p),
            None => Ok(Trust::system()),
        }
    }

    /// The system bundle [`SYSTEM_BUNDLE`]; certificates in it that webpki cannot parse are
    /// skipped (a distribution's bundle may hold some), but at least one must be usable.
    pub fn system() -> Trust {
        let why = match std::fs::read(SYSTEM_BUNDLE) {
            Ok(pem) => {
                let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
                    .filter_map(Result::ok)
                    .collect();
                let mut roots = RootCertStore::empty();
                let (added, _) = roots.add_parsable_certificates(certs);
                if added > 0 {
                    return Trust::with_roots(
                        roots,
                        format!("{added} CA certificates from {SYSTEM_BUNDLE}"),
                    );
                }
                format!("the system CA bundle {SYSTEM_BUNDLE} holds no usable certificate")
            }
            Err(e) => format!("no system CA bundle: {SYSTEM_BUNDLE}: {e}"),
        };
        Trust::unavailable(&format!(
            "{why} (install ca-certificates, or give --ca-file)"
        ))
    }

    /// The CA certificates of PEM file `path`: every one must parse, and there must be one at
    /// least. Errors start with the path.
    pub fn from_file(path: &Path) -> Result<Trust, String> {
        let p = path.display();
        let pem = std::fs::read(path).map_err(|e| format!("{p}: {e}"))?;
        let mut roots = RootCertStore::empty();
        for (i, c) in CertificateDer::pem_slice_iter(&pem).enumerate() {
            let c = c.map_err(|e| format!("{p}: bad PEM: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("{p}: certificate {} is not usable as a CA: {e}", i + 1))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "{p}: no certificates in it (expected a PEM bundle: -----BEGIN CERTIFICATE----- blocks)"
            ));
        }
        let n = roots.len();
        Ok(Trust::with_roots(
            roots,
            format!(
                "{n} CA certificate{} from {p}",
                if n == 1 { "" } else { "s" }
            ),
        ))
    }

    fn with_roots(roots: RootCertStore, what: String) -> Trust {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| {
                let mut c = b.with_root_certificates(roots).with_no_client_auth();
                // We speak HTTP/1.1 only.
                c.alpn_protocols = vec![b"http/1.1".to_vec()];
                Arc::new(c)
            })
            .map_err(|e| format!("TLS setup: {e}"));
        Trust { config, what }
    }

    /// Ok if TLS connections can be made; else why not (for sources that need TLS, at start).
    pub fn check(&self) -> Result<(), String> {
        self.config.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    /// What is trusted, for the log: `trusting 3 CA certificates from PATH`, or why nothing is.
    pub fn describe(&self) -> String {
        match &self.config {
            Ok(_) => format!("trusting {}", self.what),
            Err(why) => format!("no trust store: {why}"),
        }
    }

    /// Runs the TLS handshake with `host` (a DNS name or an IP address; `shown` names the
    /// server in messages) over `tcp`, verifying the server's certificate.
    pub fn handshake(&self, host: &str, shown: &str, mut tcp: TcpStream) -> io::Result<TlsStream> {
        let config = self
            .config
            .as_ref()
            .map_err(|why| io::Error::other(format!("TLS to {shown}: no trust store: {why}")))?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| {
            io::Error::other(format!(
                "TLS to {shown}: {host:?} is not a valid server name: {e}"
            ))
        })?;
        let mut conn = ClientConnection::new(Arc::clone(config), name)
            .map_err(|e| io::Error::other(format!("TLS to {shown}: {e}")))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                return Err(self.handshake_error(shown, e));
            }
        }
        Ok(StreamOwned::new(conn, tcp))
    }

    /// A handshake error, saying what failed: certificate verification (with what is
    /// trusted), another TLS error, or the connection.
    fn handshake_error(&self, shown: &str, e: io::Error) -> io::Error {
        let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
        let msg = match tls {
            Some(rustls::Error::InvalidCertificate(c)) => {
                let why = match c {
                    rustls::CertificateError::UnknownIssuer => {
                        "UnknownIssuer: the server's certificate is not signed by a trusted CA"
                            .to_string()
                    }
                    c => c.to_string(),
                };
                format!(
                    "TLS handshake with {shown}: certificate verification failed: {why} (trusting {})",
                    self.what
                )
            }
            Some(t) => format!("TLS handshake with {shown}: {t}"),
            None => format!("TLS handshake with {shown}: {e}"),
        };
        io::Error::new(
            match e.kind() {
                // a TLS failure is no "bad input" (which would fail an OPEN with ENOENT)
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => io::ErrorKind::Other,
                k => k,
            },
            msg,
        )
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use rustls::{ServerConfig, ServerConnection};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A throwaway CA.
    pub struct Ca {
        issuer: CertifiedIssuer<'static, KeyPair>,
    }

    impl Ca {
        pub fn new(name: &str) -> Ca {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
            Ca { issuer }
        }

        pub fn pem(&self) -> String {
            self.issuer.pem()
        }

        /// Writes the CA certificate to `dir/name`; returns the path.
        pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
            let p = dir.join(name);
            std::fs::write(&p, self.pem()).unwrap();
            p
        }

        /// A server certificate (chain) and key for `names` (DNS names or IP addresses).
        pub fn server_cert(
            &self,
            names: &[&str],
        ) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, "test server");
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &self.issuer).unwrap();
            let key = PrivatePkcs8KeyDer::from(key.serialize_der()).into();
            (vec![cert.der().clone()], key)
        }

        /// A trust store holding this CA only.
        pub fn trust(&self) -> Trust {
            let mut roots = RootCertStore::empty();
            roots.add(self.issuer.der().clone()).unwrap();
            Trust::with_roots(roots, "the test CA".into())
        }
    }

    /// Answers a request (its head) with a whole response.
    pub type Handler = Arc<dyn Fn(&str) -> Vec<u8> + Send + Sync>;

    /// A TLS server configuration presenting `chain` with `key`.
    pub fn server_config(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }

    /// A TLS server on 127.0.0.1 with `cert` answering every request of every connection with
    /// `h(request head)` (one thread per connection, HEAD bodies cut). Returns its port and the
    /// count of TLS connections it accepted (handshake done).
    pub fn tls_server(
        cert: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
        h: Handler,
    ) -> (u16, Arc<AtomicUsize>) {
        let config = server_config(cert.0, cert.1);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let conns = Arc::new(AtomicUsize::new(0));
        let n = Arc::clone(&conns);
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut tcp) = s else { return };
                let (config, h, n) = (Arc::clone(&config), Arc::clone(&h), Arc::clone(&n));
                std::thread::spawn(move || {
                    let mut conn = ServerConnection::new(config).unwrap();
                    while conn.is_handshaking() {
                        if conn.complete_io(&mut tcp).is_err() {
                            return; // e.g. the client refused our certificate
                        }
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    crate::oci::tests::answer(&mut StreamOwned::new(conn, tcp), &*h);
                });
            }
        });
        (port, conns)
    }

    fn connect(trust: &Trust, host: &str, port: u16) -> io::Result<TlsStream> {
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        trust.handshake(host, &format!("{host}:{port}"), tcp)
    }

    fn hello(_: &str) -> Vec<u8> {
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec()
    }

    #[test]
    fn handshake_verifies_the_chain_and_the_name() {
        let ca = Ca::new("test CA");
        let (port, conns) =
            tls_server(ca.server_cert(&["localhost", "127.0.0.1"]), Arc::new(hello));
        for host in ["127.0.0.1", "localhost"] {
            let mut s = connect(&ca.trust(), host, port).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut got = vec![0u8; 40];
            let n = s.read(&mut got).unwrap();
            assert!(got[..n].starts_with(b"HTTP/1.1 200 OK"), "{host}");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 2);

        // another CA: refused, saying why and what is trusted
        let other = Ca::new("other CA");
        let e = connect(&other.trust(), "127.0.0.1", port).err().unwrap();
        let msg = e.to_string();
        assert!(msg.contains("certificate verification failed"), "{msg}");
        assert!(msg.contains("UnknownIssuer"), "{msg}");
        assert!(msg.contains("trusting the test CA"), "{msg}");
        assert_eq!(e.kind(), io::ErrorKind::Other);

        // the right CA, the wrong name
        let e = connect(&ca.trust(), "127.0.0.2", port).err().unwrap();
        let msg = e.to_string();
        assert!(msg.contains("certificate verification failed"), "{msg}");
        assert!(msg.contains("not valid for name"), "{msg}");
        assert_eq!(
            conns.load(Ordering::SeqCst),
            2,
            "no refused handshake completed"
        );

        // no trust store at all
        let e = connect(&Trust::default(), "127.0.0.1", port).err().unwrap();
        assert!(e.to_string().contains("no trust store"), "{e}");
    }

    #[test]
    fn ca_files() {
        let d = crate::blobs::tests::TempDir::new("cafile");
        let (a, b) = (Ca::new("A"), Ca::new("B"));
        let both = d.0.join("both.pem");
        std::fs::write(&both, format!("# a comment\n{}\n{}", a.pem(), b.pem())).unwrap();
        let t = Trust::from_file(&both).unwrap();
        assert_eq!(
            t.describe(),
            format!("trusting 2 CA certificates from {}", both.display())
        );
        assert!(t.check().is_ok());
        let one = a.write(&d.0, "a.pem");
        assert!(Trust::load(Some(&one))
            .unwrap()
            .describe()
            .starts_with("trusting 1 CA certificate from"));

        let missing = d.0.join("missing.pem");
        let e = Trust::from_file(&missing).err().unwrap();
        assert!(e.starts_with(&missing.display().to_string()), "{e}");
        assert!(e.contains("No such file"), "{e}");
        let empty = d.0.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = Trust::from_file(&empty).err().unwrap();
        assert!(e.contains("no certificates in it"), "{e}");
        let bad = d.0.join("bad.pem");
        std::fs::write(
            &bad,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = Trust::from_file(&bad).err().unwrap();
        assert!(e.contains("certificate 1 is not usable as a CA"), "{e}");
        let truncated = d.0.join("trunc.pem");
        let pem = a.pem();
        std::fs::write(&truncated, &pem[..pem.len() - 30]).unwrap();
        let e = Trust::from_file(&truncated).err().unwrap();
        assert!(
            e.contains("bad PEM") || e.contains("no certificates"),
            "{e}"
        );

        // the system bundle: either usable or refusing TLS with a reason
        let s = Trust::system();
        match s.check() {
            Ok(()) => assert!(s.describe().contains(SYSTEM_BUNDLE)),
            Err(e) => assert!(e.contains("--ca-file"), "{e}"),
        }
        assert!(Trust::default().check().is_err());
    }
}
