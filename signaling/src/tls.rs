//! HTTPS: certificates, their reload, and TLS on an accepted connection.
//!
//! A browser grants camera and microphone only to a secure context, so a classroom that opens a
//! link to another machine needs HTTPS. Two ways to get a certificate:
//!
//! - `--tls-cert` / `--tls-key`: PEM files from a CA (Let's Encrypt, the school's own). They are
//!   read again on SIGHUP, so a renewal needs no restart: the resolver swaps the key it hands to
//!   new handshakes, connections already open keep theirs.
//! - `--tls-self-signed`: a certificate made with `rcgen` for this server's names and addresses,
//!   kept in the data folder and reused on the next start (browsers then warn once, or are told to
//!   trust it by its fingerprint, printed on start).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::Config;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM {what} in it ({source})")]
    Pem {
        path: PathBuf,
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("the certificate and the key do not fit together: {0}")]
    Key(rustls::Error),
    #[error("making a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
}

/// Where the certificate comes from.
#[derive(Debug, Clone)]
enum Source {
    Files { cert: PathBuf, key: PathBuf },
    SelfSigned { cert: PathBuf, key: PathBuf },
}

/// The server's certificate, swapped whole on reload.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().clone())
    }
}

/// HTTPS for the API and the pages.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    source: Source,
    provider: Arc<CryptoProvider>,
}

impl Tls {
    /// The TLS settings `config` asks for, or `None` for plain HTTP. A self-signed certificate is
    /// made now if the data folder has none for these names yet.
    pub fn from_config(config: &Config) -> Result<Option<Self>, TlsError> {
        let source = match (&config.tls_cert, &config.tls_key, config.tls_self_signed) {
            (Some(cert), Some(key), _) => Source::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            (_, _, true) => {
                let (cert, key) = self_signed(&config.data_dir, &self_signed_names(config))?;
                Source::SelfSigned { cert, key }
            }
            _ => return Ok(None),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load(&source, &provider)?;
        let resolver = Arc::new(Resolver(RwLock::new(Arc::new(key))));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        // HTTP/1.1 only: the WebSocket upgrade is an HTTP/1.1 mechanism.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            resolver,
            source,
            provider,
        }))
    }

    /// Read the certificate and key again; on failure the one in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load(&self.source, &self.provider)?;
        *self.resolver.0.write() = Arc::new(key);
        Ok(())
    }

    /// Reload on every SIGHUP (certbot's deploy hook, `systemctl reload`) until `shutdown`.
    pub fn reload_on_sighup(
        &self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = crate::serve::until_shutdown(&mut shutdown) => break,
                    hangup = hangups.recv() => if hangup.is_none() { break },
                }
                match tls.reload() {
                    Ok(()) => tracing::info!(
                        fingerprint = %tls.fingerprint(),
                        "TLS certificate reloaded"
                    ),
                    Err(err) => {
                        tracing::error!(%err, "TLS certificate not reloaded; the old one stays")
                    }
                }
            }
        });
        Ok(())
    }

    /// SHA-256 of the certificate in use (DER), as browsers show it: `AB:CD:…`.
    pub fn fingerprint(&self) -> String {
        let key = self.resolver.0.read().clone();
        key.cert.first().map(|c| fingerprint(c)).unwrap_or_default()
    }

    /// Whether the certificate was made by this server (`--tls-self-signed`).
    pub fn self_signed(&self) -> bool {
        matches!(self.source, Source::SelfSigned { .. })
    }

    /// The TLS handshake on an accepted connection.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.acceptor.accept(stream).await
    }
}

fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn load(source: &Source, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let (cert, key) = match source {
        Source::Files { cert, key } | Source::SelfSigned { cert, key } => (cert, key),
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .and_then(|chain| {
            if chain.is_empty() {
                Err(rustls::pki_types::pem::Error::NoItemsFound)
            } else {
                Ok(chain)
            }
        })
        .map_err(|source| TlsError::Pem {
            path: cert.clone(),
            what: "certificate",
            source,
        })?;
    let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|source| TlsError::Pem {
        path: key.clone(),
        what: "private key",
        source,
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(TlsError::Key)
}

/// The names and addresses a self-signed certificate covers: localhost, this machine's host
/// name, the addresses the server listens on and announces, the `--public-url` host and
/// `--tls-names`.
fn self_signed_names(config: &Config) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_owned());
        }
    }
    let mut add_ip = |ip: IpAddr| {
        if !ip.is_unspecified() {
            names.push(ip.to_string());
        }
    };
    add_ip(config.listen.ip());
    if let Some(ip) = config.public_ip {
        add_ip(ip);
    }
    if let Some(host) = config.public_url.as_deref().and_then(url_host) {
        names.push(host);
    }
    names.extend(config.tls_names.iter().map(|n| n.trim().to_owned()));
    names.retain(|n| !n.is_empty());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The host of `https://host:port/path` (without brackets for IPv6).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then(|| host.to_owned())
}

/// The self-signed certificate and key in `data_dir` for `names`, made if missing or made for
/// other names.
fn self_signed(data_dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = data_dir.join("tls-self-signed.crt");
    let key = data_dir.join("tls-self-signed.key");
    let names_file = data_dir.join("tls-self-signed.names");
    let wanted = names.join("\n");
    let write = |path: &Path, contents: &[u8]| {
        std::fs::write(path, contents).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let current = std::fs::read_to_string(&names_file).ok();
    if cert.exists() && key.exists() && current.as_deref() == Some(wanted.as_str()) {
        return Ok((cert, key));
    }
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Tandem (self-signed)");
    // Browsers refuse certificates valid for longer than about 13 months, even self-signed.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(397);
    let key_pair = rcgen::KeyPair::generate()?;
    let made = params.self_signed(&key_pair)?;
    write(&key, key_pair.serialize_pem().as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| TlsError::Read {
                path: key.clone(),
                source,
            },
        )?;
    }
    write(&cert, made.pem().as_bytes())?;
    write(&names_file, wanted.as_bytes())?;
    tracing::info!(names = %names.join(", "), path = %cert.display(), "made a self-signed certificate");
    Ok((cert, key))
}

/// The plain-HTTP app that sends every request to the same path on `https_base` (served by
/// the same accept loop as HTTPS, with its timeouts and caps).
pub fn redirect_app(https_base: String) -> axum::Router {
    use axum::http::{HeaderMap, StatusCode, Uri, header};
    axum::Router::new().fallback(move |headers: HeaderMap, uri: Uri| {
        let base = redirect_base(&headers, &https_base);
        async move {
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            // 308 keeps the method and the body (a POST stays a POST).
            (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, format!("{base}{path}"))],
            )
        }
    })
}

/// `https://<host of the request>:<https port>`, or `https_base` when the Host header is absent or
/// odd. The port is the HTTPS listener's (from `https_base`); the name is the one the browser used.
fn redirect_base(headers: &axum::http::HeaderMap, https_base: &str) -> String {
    let port = https_base
        .rsplit_once(':')
        .map(|(_, p)| p.trim_end_matches('/'))
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()));
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .and_then(url_host);
    match (host, port) {
        (Some(host), Some(port)) if host.contains(':') => format!("https://[{host}]:{port}"),
        (Some(host), Some("443")) => format!("https://{host}"),
        (Some(host), Some(port)) => format!("https://{host}:{port}"),
        _ => https_base.trim_end_matches('/').to_owned(),
    }
}

/// The address HTTPS is reached at, as a base URL for links and the redirect.
pub fn https_base(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) => format!("https://[{}]:{}", v6.ip(), v6.port()),
        SocketAddr::V4(v4) => format!("https://{v4}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts() {
        assert_eq!(
            url_host("https://class.example.org/x").as_deref(),
            Some("class.example.org")
        );
        assert_eq!(
            url_host("https://10.1.2.3:8443").as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(
            url_host("https://[fd00::1]:443/").as_deref(),
            Some("fd00::1")
        );
        assert_eq!(url_host("localhost:8080").as_deref(), Some("localhost"));
    }

    #[test]
    fn a_self_signed_certificate_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "192.0.2.7".to_owned()];
        let (cert, _) = self_signed(dir.path(), &names).unwrap();
        let first = std::fs::read(&cert).unwrap();
        self_signed(dir.path(), &names).unwrap();
        assert_eq!(
            std::fs::read(&cert).unwrap(),
            first,
            "the same names reuse the certificate"
        );
        let more = vec!["localhost".to_owned(), "192.0.2.8".to_owned()];
        self_signed(dir.path(), &more).unwrap();
        assert_ne!(
            std::fs::read(&cert).unwrap(),
            first,
            "other names make a new one"
        );
    }
}
