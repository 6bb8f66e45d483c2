//! HTTP GETs on behalf of readiness checks.
//!
//! One [`Prober`] per plugin (and one for the built-in `plinth-api` check):
//! HTTPS is verified against the cluster's CAs only (`ca` and `etcd/ca`,
//! never the system's roots), the server name included; a manifest may name
//! one client certificate from a short list to present. Redirects are not
//! followed (a redirect could lead outside `allow-urls`: the plugin sees the
//! 3xx instead), proxies from the environment are ignored, each probe has a
//! deadline covering connect, TLS, headers and body, and at most 64 KiB of
//! the body is read.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use url::Url;

/// Bytes of a response body handed to the plugin; the rest is not read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest PEM file read from the PKI.
const MAX_PEM_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ProbeSetupError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("cannot set up TLS for readiness probes: {0}")]
    Tls(String),
}

/// A certificate and its key, presented to servers that ask for one.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// `pki/<name>.crt` and `pki/<name>.key`.
    pub fn read(pki_dir: &Path, name: &str) -> Result<Self, ProbeSetupError> {
        let cert = pki_dir.join(format!("{name}.crt"));
        let key = pki_dir.join(format!("{name}.key"));
        let chain = certificates(&cert)?;
        let key_pem = read_pem(&key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| ProbeSetupError::Pem {
            path: key.clone(),
            what: "private key",
        })?;
        Ok(Self { chain, key })
    }
}

/// The CAs a probed server must chain to.
#[derive(Clone)]
pub struct TrustedCas(Arc<rustls::RootCertStore>);

impl TrustedCas {
    /// The cluster's CAs: `pki/ca.crt` (kube-apiserver, the join API) and,
    /// when it exists, `pki/etcd/ca.crt` (etcd's own endpoints).
    pub fn of_cluster(pki_dir: &Path) -> Result<Self, ProbeSetupError> {
        let mut paths = vec![pki_dir.join("ca.crt")];
        let etcd_ca = pki_dir.join("etcd/ca.crt");
        if etcd_ca.exists() {
            paths.push(etcd_ca);
        }
        Self::from_files(&paths)
    }

    pub fn from_files(paths: &[PathBuf]) -> Result<Self, ProbeSetupError> {
        let mut roots = rustls::RootCertStore::empty();
        for path in paths {
            for cert in certificates(path)? {
                roots.add(cert).map_err(|error| {
                    ProbeSetupError::Tls(format!("{} is not a usable CA: {error}", path.display()))
                })?;
            }
        }
        Ok(Self(Arc::new(roots)))
    }
}

/// What one probe saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub status: Option<u16>,
    pub body: String,
    pub error: Option<String>,
}

/// An HTTP client for one plugin's probes.
pub struct Prober {
    client: reqwest::Client,
}

impl Prober {
    pub fn new(
        trust: &TrustedCas,
        identity: Option<ClientIdentity>,
        timeout: Duration,
    ) -> Result<Self, ProbeSetupError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| ProbeSetupError::Tls(error.to_string()))?
            .with_root_certificates(Arc::clone(&trust.0));
        let mut tls = match identity {
            Some(identity) => builder
                .with_client_auth_cert(identity.chain, identity.key)
                .map_err(|error| ProbeSetupError::Tls(error.to_string()))?,
            None => builder.with_no_client_auth(),
        };
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .http1_only()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION"), " readiness"))
            .build()
            .map_err(|error| ProbeSetupError::Tls(error.to_string()))?;
        Ok(Self { client })
    }

    /// GET `url`; never fails: what went wrong is part of what was seen.
    pub async fn get(&self, url: &Url) -> Seen {
        self.get_as(url, "*/*").await
    }

    /// GET `url` with `Accept: <accept>`.
    pub async fn get_as(&self, url: &Url, accept: &str) -> Seen {
        let request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, accept);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Seen {
                    error: Some(describe(&error)),
                    ..Seen::default()
                };
            }
        };
        let status = Some(response.status().as_u16());
        let mut body = Vec::new();
        let error = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() == MAX_BODY_BYTES {
                        break None;
                    }
                }
                Ok(None) => break None,
                Err(error) => break Some(describe(&error)),
            }
        };
        Seen {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            error,
        }
    }
}

/// An error and its causes on one line, without reqwest's URL prefix noise.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ProbeSetupError> {
    let pem = read_pem(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|certs| !certs.is_empty());
    certs.ok_or_else(|| ProbeSetupError::Pem {
        path: path.to_owned(),
        what: "certificate",
    })
}

/// A PEM file of the PKI: not through a symlink, at most 1 MiB.
pub(super) fn read_pem(path: &Path) -> Result<Vec<u8>, ProbeSetupError> {
    let read = |source| ProbeSetupError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(read)?;
    let mut pem = Vec::new();
    file.take(MAX_PEM_BYTES)
        .read_to_end(&mut pem)
        .map_err(read)?;
    Ok(pem)
}
