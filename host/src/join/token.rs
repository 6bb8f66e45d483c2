//! Join tokens: `plinth-join-v1:<api host:port>:<sha256 of the cluster CA>:<secret>`.
//!
//! The CA digest pins the cluster a joining controller may trust, as
//! kubeadm's `--discovery-token-ca-cert-hash` does: a token cannot be used to
//! steer a controller into another cluster.

use std::path::{Path, PathBuf};

use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::sha256::Sha256;

const PREFIX: &str = "plinth-join-v1:";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read join token {path}: {source}; check --token-file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid join token in {path}: {message}; expected plinth-join-v1:<host:port>:<ca sha256>:<secret>"
    )]
    Malformed { path: PathBuf, message: String },
}

impl TokenError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Invalid
    }
}

/// A parsed join token. Its secret is not printable.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// `host:port` of an existing controller's join API.
    pub api: String,
    /// sha256 of the cluster CA certificate, DER-encoded.
    pub ca_sha256: Sha256,
    secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("api", &self.api)
            .field("ca_sha256", &self.ca_sha256)
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    pub fn read(path: &Path) -> Result<Self, TokenError> {
        let text =
            crate::regular_file::read_text(path, 4096).map_err(|source| TokenError::Read {
                path: path.to_owned(),
                source,
            })?;
        Self::parse(text.trim()).map_err(|message| TokenError::Malformed {
            path: path.to_owned(),
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        // One line of printable text: a second line would end up in the
        // API address, secret and all (issue 11).
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("it contains whitespace or control characters".to_owned());
        }
        let body = text
            .strip_prefix(PREFIX)
            .ok_or("it does not start with plinth-join-v1:")?;
        let mut fields = body.rsplitn(3, ':');
        let (secret, ca_sha256, api) = match (fields.next(), fields.next(), fields.next()) {
            (Some(secret), Some(ca), Some(api)) => (secret, ca, api),
            _ => return Err("it has fewer than three fields".to_owned()),
        };
        let (host, port) = api.rsplit_once(':').ok_or("the API address has no port")?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("the API address is not host:port with a port of 1-65535".to_owned());
        }
        let ca_sha256: Sha256 = ca_sha256
            .parse()
            .map_err(|_| "the CA digest is not 64 hex digits")?;
        if secret.len() < 16 || !secret.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("the secret must be at least 16 letters or digits".to_owned());
        }
        Ok(Self {
            api: api.to_owned(),
            ca_sha256,
            secret: secret.to_owned(),
        })
    }
}

/// sha256 of the DER of the PEM certificate at `rel` in the data dir: what
/// a token pins. `None` when there is no readable certificate there.
pub(crate) fn certificate_sha256(data_dir: &DataDirView, rel: &Path) -> Option<Sha256> {
    let pem = data_dir.read(rel, 1 << 20).ok()??;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    Some(Sha256::of(&pem.contents))
}

#[cfg(test)]
mod tests {
    use super::JoinToken;

    #[test]
    fn parses_tokens_with_ipv6_apis_and_hides_the_secret() {
        let ca = "ab".repeat(32);
        let token = JoinToken::parse(&format!(
            "plinth-join-v1:[fd00::1]:9443:{ca}:s3cr3tS3cr3tS3cr3t"
        ))
        .unwrap();
        assert_eq!(token.api, "[fd00::1]:9443");
        assert_eq!(token.ca_sha256.to_string(), ca);
        assert!(!format!("{token:?}").contains("s3cr3t"));
    }

    #[test]
    fn rejects_malformed_tokens() {
        let ca = "ab".repeat(32);
        for bad in [
            String::new(),
            format!("plinth-join-v2:10.0.0.1:9443:{ca}:s3cr3tS3cr3tS3cr3t"),
            format!("plinth-join-v1:10.0.0.1:{ca}:s3cr3tS3cr3tS3cr3t"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:short"),
            "plinth-join-v1:10.0.0.1:9443:abcd:s3cr3tS3cr3tS3cr3t".to_owned(),
        ] {
            assert!(JoinToken::parse(&bad).is_err(), "{bad} was accepted");
        }
    }
}
