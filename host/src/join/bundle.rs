//! The cluster's CA bundle: what `GET /v1/ca` hands a joining controller so
//! that it issues its own leaves from the cluster's CAs (k0s's
//! `/v1beta1/ca`, kubeadm's `--upload-certs`). It holds private keys: it is
//! only ever sent to a caller with a valid token over TLS the caller has
//! verified against the CA its token pins, and it is never logged or
//! journaled.

use std::path::{Path, PathBuf};

use super::token::pem_certificate_sha256;
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::sha256::Sha256;
use crate::stage::{Stage, StageError};

/// A bundle is a few PEM files; anything larger is not one.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read {path} for the CA bundle: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the CA bundle from {api} is not valid: {message}")]
    Invalid { api: String, message: String },
    #[error(
        "the CA bundle from {api} has a cluster CA with sha256 {actual}, but the join token pins {pinned}"
    )]
    PinMismatch {
        api: String,
        pinned: Sha256,
        actual: Sha256,
    },
}

impl BundleError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Read { .. } => ErrorClass::Internal,
            Self::Invalid { .. } | Self::PinMismatch { .. } => ErrorClass::Invalid,
        }
    }
}

/// A certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaPair {
    pub cert: String,
    pub key: String,
}

/// The service-account key pair, PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaPair {
    pub key: String,
    #[serde(rename = "pub")]
    pub public: String,
}

/// The CAs and keys every controller of a cluster shares.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaBundle {
    pub ca: CaPair,
    pub front_proxy_ca: CaPair,
    /// Absent with external etcd, whose CA Plinth does not hold.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub etcd_ca: Option<CaPair>,
    pub sa: SaPair,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("etcd_ca", &self.etcd_ca.is_some())
            .finish_non_exhaustive()
    }
}

/// Modes of what the bundle becomes on disk.
const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

impl CaBundle {
    /// Read the bundle from a data dir's committed PKI, never through a
    /// link: these bytes are served to joiners.
    pub fn read(data_dir: &DataDirView, with_etcd: bool) -> Result<Self, BundleError> {
        let read = |name: &str| {
            let rel = Path::new(DataDirView::PKI).join(name);
            let path = data_dir.path(&rel);
            let bytes = data_dir
                .read(&rel, MAX_BUNDLE_BYTES as u64)
                .and_then(|bytes| bytes.ok_or_else(|| std::io::ErrorKind::NotFound.into()))
                .map_err(|source| BundleError::Read {
                    path: path.clone(),
                    source,
                })?;
            String::from_utf8(bytes).map_err(|_| BundleError::Read {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "is not PEM text"),
            })
        };
        let pair = |name: &str| -> Result<CaPair, BundleError> {
            Ok(CaPair {
                cert: read(&format!("{name}.crt"))?,
                key: read(&format!("{name}.key"))?,
            })
        };
        Ok(Self {
            ca: pair("ca")?,
            front_proxy_ca: pair("front-proxy-ca")?,
            etcd_ca: with_etcd.then(|| pair("etcd/ca")).transpose()?,
            sa: SaPair {
                key: read("sa.key")?,
                public: read("sa.pub")?,
            },
        })
    }

    /// Parse a bundle as the join API answered it, and check that its
    /// cluster CA is the one the token pins.
    pub fn from_answer(api: &str, body: &[u8], pinned: &Sha256) -> Result<Self, BundleError> {
        let invalid = |message: String| BundleError::Invalid {
            api: api.to_owned(),
            message,
        };
        // Not serde's own text: it quotes the values it read, and these are
        // private keys.
        let bundle: CaBundle = serde_json::from_slice(body).map_err(|e| {
            invalid(format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let actual = pem_certificate_sha256(bundle.ca.cert.as_bytes())
            .ok_or_else(|| invalid("`ca.cert` is not a PEM certificate".to_owned()))?;
        if actual != *pinned {
            return Err(BundleError::PinMismatch {
                api: api.to_owned(),
                pinned: *pinned,
                actual,
            });
        }
        for (name, pem) in bundle.files() {
            if pem.len() > MAX_BUNDLE_BYTES || !pem.is_ascii() {
                return Err(invalid(format!("{name} is not a PEM text")));
            }
        }
        Ok(bundle)
    }

    /// Every file of the bundle: path relative to the data dir, content,
    /// mode.
    pub fn files(&self) -> Vec<(&'static str, &str)> {
        let mut files = vec![
            ("pki/ca.crt", self.ca.cert.as_str()),
            ("pki/ca.key", self.ca.key.as_str()),
            ("pki/front-proxy-ca.crt", self.front_proxy_ca.cert.as_str()),
            ("pki/front-proxy-ca.key", self.front_proxy_ca.key.as_str()),
            ("pki/sa.key", self.sa.key.as_str()),
            ("pki/sa.pub", self.sa.public.as_str()),
        ];
        if let Some(etcd) = &self.etcd_ca {
            files.push(("pki/etcd/ca.crt", etcd.cert.as_str()));
            files.push(("pki/etcd/ca.key", etcd.key.as_str()));
        }
        files
    }

    /// Stage every file of the bundle that the data dir does not hold
    /// already (keys 0600, certificates 0644): a joiner issues its leaves
    /// from the cluster's CAs, which commit with everything else or not at
    /// all.
    pub(crate) fn stage(&self, stage: &mut Stage<'_>) -> Result<(), StageError> {
        for (rel, pem) in self.files() {
            let mode = if rel.ends_with(".key") {
                KEY_MODE
            } else {
                CERT_MODE
            };
            stage.write_if_changed(rel, pem.as_bytes(), mode)?;
        }
        Ok(())
    }
}
