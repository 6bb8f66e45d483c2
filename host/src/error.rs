//! The error of a whole command: one variant per module that can end it.

use crate::error_class::ErrorClass;

/// Anything that can end a Plinth command. Each variant is its module's own
/// error, shown as it is; [`Error::class`] says what kind of failure it was.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Images(#[from] crate::images::ImagesError),
    #[error(transparent)]
    Token(#[from] crate::join::TokenError),
    #[error(transparent)]
    Join(#[from] crate::join::JoinError),
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
    Run(#[from] crate::run::RunError),
    #[error(transparent)]
    Cluster(#[from] crate::run::cluster::ClusterError),
    #[error(transparent)]
    Status(#[from] crate::status::StatusError),
    #[error(transparent)]
    Scaffold(#[from] crate::scaffold::ScaffoldError),
    #[error(transparent)]
    Invoke(#[from] crate::invoke::InvokeError),
}

impl Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Error::DataDir(error) => error.class(),
            Error::Config(error) => error.class(),
            Error::Images(error) => error.class(),
            Error::Token(error) => error.class(),
            Error::Join(error) => error.class(),
            Error::Plugin(error) => error.class(),
            Error::Hook(error) => error.class(),
            Error::Pki(error) => error.class(),
            Error::Stage(error) => error.class(),
            Error::Journal(error) => error.class(),
            Error::Run(error) => error.class(),
            Error::Cluster(error) => error.class(),
            Error::Status(error) => error.class(),
            Error::Scaffold(error) => error.class(),
            Error::Invoke(error) => error.class(),
        }
    }

    /// Whether the error names paths relative to the data dir, so that the
    /// data dir must be named with it.
    pub fn is_inside_data_dir(&self) -> bool {
        matches!(self, Error::Pki(_) | Error::Stage(_) | Error::Journal(_))
    }

    /// The error and its causes on one line, as the journal records why a
    /// run stopped.
    pub(crate) fn one_line(&self) -> String {
        crate::terminal::error_line(self)
    }
}
