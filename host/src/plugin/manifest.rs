//! The optional sidecar `NAME.toml` beside `NAME.wasm`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::allow_urls::AllowUrls;
use super::contract::{FailurePolicy, Hook};
use super::engine::MAX_MEMORY_MIB;
use super::error::PluginError;
use super::sandbox::Limits;
use crate::sha256::Sha256;

/// How long one readiness probe may take when the manifest does not say.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The client certificates a manifest may have the host present on its
/// plugin's probes. Short on purpose: none of them grants more than a
/// health check (`admin` or `apiserver-kubelet-client`, in
/// `system:masters`, never will be).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum ClientCertificate {
    /// etcd's health-check client: `GET /health` of an etcd member.
    #[serde(rename = "etcd/healthcheck-client")]
    EtcdHealthcheckClient,
}

impl ClientCertificate {
    /// The certificate's name in the PKI set (`pki/<name>.crt`, `.key`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EtcdHealthcheckClient => "etcd/healthcheck-client",
        }
    }
}
/// The largest manifest read. Most are under 4 KiB, but settings may carry
/// a site's digest pins (airgap-mirror's `digests`: about 90 bytes per
/// image, 1000 images ≈ 90 KiB); TOML nesting is bounded by the parser.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// A plugin's manifest, as written. Every key is optional.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Position in every chain; plugins without one follow, by file name.
    pub order: Option<i64>,
    /// Serve only these of the hooks the component exports.
    pub hooks: Option<BTreeSet<Hook>>,
    pub timeout_ms: Option<u64>,
    pub memory_mib: Option<u64>,
    pub failure_policy: Option<FailurePolicy>,
    /// Refuse to load unless the `.wasm` file has this sha256 (hex).
    pub sha256: Option<Sha256>,
    /// May this plugin add or drop images in image-resolve?
    pub allow_image_set_change: Option<bool>,
    /// URLs a readiness plugin may have the host GET (prefixes admitted).
    #[serde(default)]
    pub allow_urls: AllowUrls,
    /// The client certificate the host presents when it probes an https URL
    /// for this plugin; none by default.
    pub client_certificate: Option<ClientCertificate>,
    /// How long one probe of a readiness check may take.
    pub probe_timeout_ms: Option<u64>,
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
}

impl Manifest {
    /// Read `path` if it exists; a plugin without a manifest gets defaults.
    pub fn read(path: &Path) -> Result<Self, PluginError> {
        let text = match crate::regular_file::read_text(path, MAX_MANIFEST_BYTES) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default());
            }
            Err(source) => {
                return Err(PluginError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Self::parse(&text, path)
    }

    /// Parse and check the text of a manifest; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PluginError> {
        let manifest: Self =
            toml::from_str(text).map_err(|source| PluginError::ManifestSyntax {
                path: path.to_owned(),
                source,
            })?;
        manifest.check(path)?;
        Ok(manifest)
    }

    fn check(&self, path: &Path) -> Result<(), PluginError> {
        let bad = |message: String| PluginError::Manifest {
            path: path.to_owned(),
            message,
        };
        if self.timeout_ms == Some(0) || self.timeout_ms.is_some_and(|ms| ms > 60_000) {
            return Err(bad("timeout-ms must be between 1 and 60000".to_owned()));
        }
        if self
            .probe_timeout_ms
            .is_some_and(|ms| ms == 0 || ms > 60_000)
        {
            return Err(bad(
                "probe-timeout-ms must be between 1 and 60000".to_owned()
            ));
        }
        if let Some(mib) = self
            .memory_mib
            .filter(|mib| *mib == 0 || *mib > MAX_MEMORY_MIB)
        {
            return Err(bad(format!(
                "memory-mib {mib} must be between 1 and {MAX_MEMORY_MIB}"
            )));
        }
        Ok(())
    }

    pub(crate) fn probe_timeout(&self) -> Duration {
        self.probe_timeout_ms
            .map_or(DEFAULT_PROBE_TIMEOUT, Duration::from_millis)
    }

    pub(crate) fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            memory_mib: self.memory_mib.unwrap_or(defaults.memory_mib),
        }
    }
}
