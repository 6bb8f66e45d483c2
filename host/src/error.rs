//! The error of a whole command, and the documented exit codes.

/// Process exit codes (DESIGN.md, "Exit codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    Done = 0,
    /// A bug, or the machine refused something Plinth needs (disk, memory).
    Internal = 1,
    /// Bad command line, config, manifest, plugin file or plugin settings.
    Usage = 2,
    /// A plugin (or built-in policy) denied.
    Denied = 3,
    /// A plugin trapped, timed out or answered malformed, under fail-closed.
    PluginFailed = 4,
    /// A required component or peer is unreachable.
    Unreachable = 5,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Anything that can end a Plinth command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Images(#[from] crate::images::ImagesError),
    #[error(transparent)]
    Token(#[from] crate::join::TokenError),
    #[error(transparent)]
    Join(#[from] crate::controller::JoinPrerequisite),
    #[error(transparent)]
    Plugin(#[from] crate::plugin::PluginError),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error(transparent)]
    Stage(#[from] crate::stage::StageError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Scaffold(#[from] crate::scaffold::ScaffoldError),
    #[error(
        "run mode (etcd, readiness, join API) is not part of this build; use `plinth controller --init-only`"
    )]
    RunModeUnavailable,
    #[error("cannot prepare the data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Config(_) | Error::Token(_) | Error::RunModeUnavailable => ExitCode::Usage,
            Error::Images(error) => error.exit_code(),
            Error::Join(error) => error.exit_code(),
            Error::Plugin(error) => error.exit_code(),
            Error::Hook(error) => error.exit_code(),
            Error::Pki(error) => pki_exit_code(error),
            Error::Stage(crate::stage::StageError::Busy { .. }) => ExitCode::Usage,
            Error::Scaffold(crate::scaffold::ScaffoldError::Io { .. }) => ExitCode::Internal,
            Error::Scaffold(_) => ExitCode::Usage,
            Error::Stage(_) | Error::Journal(_) | Error::DataDir { .. } => ExitCode::Internal,
        }
    }
}

/// A PKI the user handed over in a state Plinth will not touch is bad input;
/// failing to read, generate or sign is not.
fn pki_exit_code(error: &crate::pki::PkiError) -> ExitCode {
    use crate::pki::PkiError;
    match error {
        PkiError::CaKeyMissing { .. }
        | PkiError::CaCertMissing { .. }
        | PkiError::CaKeyMismatch { .. }
        | PkiError::NotACa { .. }
        | PkiError::InvalidCertificate { .. }
        | PkiError::InvalidKey { .. }
        | PkiError::InvalidSan { .. }
        | PkiError::InvalidSpec { .. } => ExitCode::Usage,
        _ => ExitCode::Internal,
    }
}
