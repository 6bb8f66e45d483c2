//! The optional sidecar `NAME.toml` beside `NAME.wasm`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::contract::{FailurePolicy, Hook};
use super::engine::MAX_MEMORY_MIB;
use super::error::PluginError;
use super::sandbox::Limits;
use crate::sha256::Sha256;

/// The largest manifest read: settings included, a real one is under 4 KiB.
const MAX_MANIFEST_BYTES: u64 = 64 << 10;

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
