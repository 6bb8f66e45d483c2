//! `joined.json`: the data dir's CAs belong to a cluster this machine
//! joined, so this data dir never creates a cluster.
//!
//! A joiner's data dir holds the cluster's CAs from the moment its first
//! run commits, long before its etcd has a write-ahead log. Restarted
//! without its token at that point (a `--init-only --token-file` run, then
//! the unit enabled without the token; a crash after the add and before
//! `etcd/join.json`), the built-in decision sees no cluster data and no
//! token and proposes to create a cluster: a second cluster with the same
//! CAs, k0s #5149 again. The marker is staged in the same commit as the
//! CAs, so a data dir never has the one without the other, and the host
//! refuses a create over it whoever proposed the create.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::JoinToken;
use crate::data_dir::DataDirView;
use crate::sha256::Sha256;
use crate::stage::{Stage, StageError};

/// The marker is a few dozen bytes; a larger file is not one.
const MAX_MARKER_BYTES: u64 = 4096;

/// Where the cluster this data dir joined is reached, and which CA it has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Joined {
    /// The join API of the token it joined with (`host:port`).
    pub api: String,
    /// The cluster CA the token pinned.
    pub ca_sha256: Sha256,
}

/// `joined.json` there but not readable as one.
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} is not a join marker Plinth wrote ({problem}); it says this data dir joined a cluster: restore it, or remove the data dir to start anew"
)]
pub struct MarkerError {
    path: PathBuf,
    problem: String,
}

impl Joined {
    /// What joining with `token` commits.
    pub(crate) fn of(token: &JoinToken) -> Self {
        Self {
            api: token.api.clone(),
            ca_sha256: token.ca_sha256,
        }
    }

    /// The marker of `data_dir`, if it has one (never read through a link).
    pub(crate) fn read(data_dir: &DataDirView) -> Result<Option<Self>, MarkerError> {
        let path = data_dir.joined_marker();
        let invalid = |problem: String| MarkerError {
            path: path.clone(),
            problem,
        };
        let Some(bytes) = data_dir
            .read(DataDirView::JOINED_MARKER, MAX_MARKER_BYTES)
            .map_err(|error| invalid(crate::terminal::error_line(&error)))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|error| {
            invalid(format!(
                "not the expected JSON at line {}, column {}",
                error.line(),
                error.column()
            ))
        })
    }

    /// Stage the marker, unless the data dir holds this one already.
    pub(crate) fn stage(&self, stage: &mut Stage<'_>) -> Result<(), StageError> {
        let mut text = serde_json::to_vec_pretty(self).expect("a marker serialises");
        text.push(b'\n');
        stage.write_if_changed(DataDirView::JOINED_MARKER, &text, 0o600)
    }
}
