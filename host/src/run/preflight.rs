//! What a joiner checks before it asks to be added to the cluster.
//!
//! A member add changes the cluster for everyone: a learner that never
//! starts blocks every later join (etcd admits one learner at a time), and
//! one promoted and then gone costs a two-member cluster its quorum. So the
//! failures a joiner can see coming are seen before the add, not after:
//! an etcd binary that does not run or is too old, and an address another
//! process holds.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error_class::ErrorClass;

/// `etcd --version` answers at once; one that does not is not etcd.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Its answer is three short lines.
const MAX_VERSION_BYTES: u64 = 4096;
/// The oldest etcd with learners (`--initial-cluster-state existing` as a
/// learner, `MemberPromote`).
const MIN_VERSION: (u32, u32) = (3, 4);

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "cannot run etcd `{binary}` (`--version`): {source}; install etcd (Debian: etcd-server) or set spec.storage.etcd.binary"
    )]
    Run {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "etcd `{binary}` {problem}; Plinth needs etcd {}.{} or later: install it (Debian: etcd-server) or set spec.storage.etcd.binary",
        MIN_VERSION.0,
        MIN_VERSION.1
    )]
    Version { binary: PathBuf, problem: String },
    #[error(
        "cannot listen on {address} ({key}): {source}; stop what holds it, or give this controller another address or port"
    )]
    Address {
        key: &'static str,
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl PreflightError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Run { .. } | Self::Version { .. } | Self::Address { .. } => ErrorClass::Invalid,
        }
    }
}

/// `binary --version` runs and names etcd 3.4 or later.
pub async fn check_etcd_binary(binary: &Path) -> Result<(), PreflightError> {
    let run_error = |source| PreflightError::Run {
        binary: binary.to_owned(),
        source,
    };
    let mut child = Command::new(binary)
        .arg("--version")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(run_error)?;
    let mut answer = Vec::new();
    let stdout = child.stdout.take().expect("stdout is piped");
    let read = async {
        stdout
            .take(MAX_VERSION_BYTES)
            .read_to_end(&mut answer)
            .await?;
        child.wait().await
    };
    let status = tokio::time::timeout(VERSION_TIMEOUT, read)
        .await
        .map_err(|_| {
            run_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", VERSION_TIMEOUT.as_secs()),
            ))
        })?
        .map_err(run_error)?;
    let version_error = |problem: String| PreflightError::Version {
        binary: binary.to_owned(),
        problem,
    };
    if !status.success() {
        return Err(version_error(format!("--version exited with {status}")));
    }
    let answer = String::from_utf8_lossy(&answer);
    let version = etcd_version(&answer)
        .ok_or_else(|| version_error("does not say `etcd Version: X.Y.Z`".to_owned()))?;
    if version < MIN_VERSION {
        return Err(version_error(format!(
            "is version {}.{}",
            version.0, version.1
        )));
    }
    Ok(())
}

/// Major and minor of etcd's `--version` answer (`etcd Version: 3.4.23`).
fn etcd_version(answer: &str) -> Option<(u32, u32)> {
    let version = answer
        .lines()
        .find_map(|line| line.strip_prefix("etcd Version: "))?;
    let mut parts = version.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Each address can be listened on now (nothing else holds it). The
/// listeners are closed again at once: etcd and the join API bind their
/// own.
pub fn check_addresses(addresses: &[(&'static str, SocketAddr)]) -> Result<(), PreflightError> {
    for &(key, address) in addresses {
        TcpListener::bind(address).map_err(|source| PreflightError::Address {
            key,
            address,
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_etcds_answer() {
        let answer = "etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19\n";
        assert_eq!(etcd_version(answer), Some((3, 4)));
        assert_eq!(etcd_version("etcd Version: 3.10.0\n"), Some((3, 10)));
        assert!(etcd_version("etcd Version: 3.3.27\n") < Some(MIN_VERSION));
        assert_eq!(etcd_version("v3.5.0\n"), None);
        assert_eq!(etcd_version(""), None);
    }

    #[test]
    fn an_address_held_by_another_listener_is_named() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = held.local_addr().unwrap();
        let error = check_addresses(&[("spec.storage.etcd.peerPort", address)]).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains(&address.to_string()) && text.contains("spec.storage.etcd.peerPort"),
            "{text}"
        );
        drop(held);
        check_addresses(&[("spec.storage.etcd.peerPort", address)]).unwrap();
    }

    #[tokio::test]
    async fn a_binary_that_is_not_etcd_is_refused_before_anything_runs() {
        let error = check_etcd_binary(Path::new("/nonexistent/etcd"))
            .await
            .unwrap_err();
        assert!(matches!(error, PreflightError::Run { .. }), "{error}");
        let error = check_etcd_binary(Path::new("/bin/true")).await.unwrap_err();
        assert!(error.to_string().contains("does not say"), "{error}");
    }
}
