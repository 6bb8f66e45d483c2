//! What can go wrong loading a plugin or calling it at load.

use std::path::PathBuf;

use super::contract::CONTRACT_VERSION;
use super::sandbox::CallFailure;
use crate::error_class::ErrorClass;
use crate::sha256::Sha256;

/// The engine's own error, kept as the cause (wasmtime's error type is not
/// a `std::error::Error` itself, its boxed form is).
pub(crate) type EngineCause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin directory {path} does not exist or is not a directory; check --plugins")]
    NoDirectory { path: PathBuf },
    #[error("plugin directory: {path} {reason}")]
    StrayFile { path: PathBuf, reason: String },
    #[error("invalid plugin manifest {path}")]
    ManifestSyntax {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid plugin manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "{path} is not a WebAssembly component: the file is empty; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    Empty { path: PathBuf },
    #[error(
        "{path} is not a WebAssembly component (build it for wasm32-wasip2 or wrap it with `wasm-tools component new`)"
    )]
    NotAComponent {
        path: PathBuf,
        #[source]
        source: EngineCause,
    },
    #[error(
        "{path} does not export plinth:bootstrap/plugin@{CONTRACT_VERSION}, so it is not a Plinth plugin"
    )]
    NotAPlugin { path: PathBuf },
    #[error(
        "{path} was built against plinth:bootstrap@{found}; this Plinth speaks {CONTRACT_VERSION}: rebuild the plugin against wit/ of this version"
    )]
    ContractMismatch { path: PathBuf, found: String },
    #[error("{path} needs imports this host does not grant")]
    Link {
        path: PathBuf,
        #[source]
        source: EngineCause,
    },
    #[error("{path} has sha256 {actual} but its manifest pins {expected}; refusing to load it")]
    PinMismatch {
        path: PathBuf,
        expected: Sha256,
        actual: Sha256,
    },
    #[error("plugin {plugin} rejected its settings: {}", messages.join("; "))]
    BadSettings {
        plugin: String,
        messages: Vec<String>,
    },
    #[error("plugin {plugin} failed in {function}")]
    Failed {
        plugin: String,
        function: &'static str,
        #[source]
        failure: CallFailure,
    },
    #[error(transparent)]
    Signature(#[from] super::signature::SignatureError),
    #[error("cannot set up the WebAssembly engine")]
    Engine(#[source] EngineCause),
}

impl PluginError {
    pub(super) fn engine(error: wasmtime::Error) -> Self {
        Self::Engine(error.into())
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            // Everything else, a failure in describe or validate-settings
            // included, happens at load: the plugin directory is unusable as
            // given, which is the operator's to fix before any phase runs.
            Self::Engine(_) => ErrorClass::Internal,
            _ => ErrorClass::Invalid,
        }
    }
}
