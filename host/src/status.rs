//! `plinth status`: ask the local controller how its readiness stands.
//!
//! A client beside a running controller: it takes no lock on the data dir.
//! It asks the join API's `/readyz?verbose` for the JSON form of the table,
//! over TLS verified against the data dir's cluster CA, and prints every
//! check.

use std::fmt;
use std::time::Duration;

use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::run::cluster::{self, ClusterError};
use crate::run::readiness::{ProbeSetupError, Prober, Report, TrustedCas};
use crate::terminal::clipped;

/// How long the controller may take to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Controller(#[from] ClusterError),
    #[error("{0}; is this a controller's data dir?")]
    Ca(#[from] ProbeSetupError),
    #[error("no controller answers at {url}: {message}; is `plinth controller` running?")]
    Unreachable { url: String, message: String },
    #[error("{url} answered HTTP {status}, not a readiness report: {message}")]
    BadAnswer {
        url: String,
        status: u16,
        message: String,
    },
}

impl StatusError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Controller(error) => error.class(),
            Self::Ca(_) => ErrorClass::Invalid,
            Self::Unreachable { .. } => ErrorClass::Unreachable,
            Self::BadAnswer { .. } => ErrorClass::Internal,
        }
    }
}

/// The report of the controller on `data_dir`, from the join API its
/// persisted config names, whose certificate its cluster CA signed.
pub fn query(data_dir: &DataDirView) -> Result<Report, StatusError> {
    let address = cluster::join_api_address(data_dir)?;
    let prober = Prober::new(
        &TrustedCas::from_files(&[data_dir.path(crate::pki::cluster_ca_cert())])?,
        None,
        TIMEOUT,
    )?;
    let url = url::Url::parse(&format!("https://{address}/readyz?verbose"))
        .expect("a socket address makes a URL");
    let unreachable = |message: String| StatusError::Unreachable {
        url: url.to_string(),
        message,
    };
    let seen = cluster::block_on(async { Ok(prober.get_as(&url, "application/json").await) })?;
    let Some(status) = seen.status else {
        return Err(unreachable(seen.error.unwrap_or_default()));
    };
    serde_json::from_str(&seen.body).map_err(|error| StatusError::BadAnswer {
        url: url.to_string(),
        status,
        message: error.to_string(),
    })
}

/// The text form: one line per check, kube-apiserver's marks.
pub struct Text<'a>(pub &'a Report);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        // The controller escaped its reasons already, but a terminal trusts
        // no server more than it trusts a plugin.
        let safe = |text: &str| clipped(text, 200);
        for check in &report.checks {
            let mark = if check.state == "ready" { '+' } else { '-' };
            write!(f, "[{mark}]{} {}", safe(&check.name), safe(&check.state))?;
            if let Some(reason) = &check.reason {
                write!(f, ": {}", safe(reason))?;
            }
            writeln!(f)?;
        }
        if report.checks.is_empty() {
            writeln!(f, "[-]readiness {}", safe(&report.phase))?;
        }
        f.write_str(if report.ready { "ready" } else { "not ready" })
    }
}
