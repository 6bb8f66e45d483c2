//! What can go wrong making the PKI. Each error names the file involved and
//! what to do; none ever quotes private key material.

use std::io;
use std::path::PathBuf;

use super::spec::KeyAlgorithm;
use crate::error_class::ErrorClass;
use crate::stage::StageError;

/// Errors of the PKI phase.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("pki: cannot read {path}; check the data dir's ownership and permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "pki: CA certificate {cert} exists but its key {key} is missing; restore the key (a CA is never regenerated), or remove both to create a new CA"
    )]
    CaKeyMissing { cert: PathBuf, key: PathBuf },
    #[error(
        "pki: CA key {key} exists but its certificate {cert} is missing; restore the certificate, or remove both to create a new CA"
    )]
    CaCertMissing { cert: PathBuf, key: PathBuf },
    #[error(
        "pki: CA key {key} does not match certificate {cert}; restore the matching pair (a CA is never regenerated)"
    )]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "pki: {path} is not a CA certificate (basicConstraints CA:TRUE missing); provide a CA certificate"
    )]
    NotACa { path: PathBuf },
    #[error("pki: certificate {path} is invalid: {detail}; fix or remove it")]
    InvalidCertificate { path: PathBuf, detail: String },
    #[error(
        "pki: private key {path} cannot be used: {detail}; fix it or remove it with its certificate"
    )]
    InvalidKey { path: PathBuf, detail: String },
    #[error("pki: cannot generate the {algorithm} key for {name}")]
    KeyGeneration {
        name: String,
        algorithm: KeyAlgorithm,
        #[source]
        source: rcgen::Error,
    },
    #[error("pki: cannot sign the certificate {name}")]
    Sign {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("pki: cannot sign with the CA {ca}")]
    CaUnusable {
        ca: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("pki: invalid SAN {value:?}: {detail}; fix the extra SANs in the config")]
    InvalidSan { value: String, detail: String },
    #[error("pki: invalid PKI settings: {detail}; fix the config")]
    InvalidSpec { detail: String },
    #[error("pki: cannot render kubeconfig {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    /// A bug: the phase asked itself for something it did not prepare.
    #[error("pki: the data dir {path} does not exist or is not a directory; check --data-dir")]
    NoDataDir { path: PathBuf },
    #[error("pki: internal error: {0}")]
    Bug(String),
    #[error(transparent)]
    Stage(#[from] StageError),
}

impl PkiError {
    /// A PKI the user handed over in a state Plinth will not touch is bad
    /// input; failing to read, generate or sign is not.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::CaKeyMissing { .. }
            | Self::CaCertMissing { .. }
            | Self::CaKeyMismatch { .. }
            | Self::NotACa { .. }
            | Self::InvalidCertificate { .. }
            | Self::InvalidKey { .. }
            | Self::InvalidSan { .. }
            | Self::InvalidSpec { .. }
            | Self::NoDataDir { .. } => ErrorClass::Invalid,
            Self::Stage(error) => error.class(),
            Self::Read { .. }
            | Self::KeyGeneration { .. }
            | Self::Sign { .. }
            | Self::CaUnusable { .. }
            | Self::Kubeconfig { .. }
            | Self::Bug(_) => ErrorClass::Internal,
        }
    }
}
