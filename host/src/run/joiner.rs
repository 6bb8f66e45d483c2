//! The joining controller's membership: recorded, or asked for and then
//! recorded, before its etcd first starts.
//!
//! Killed anywhere, a joiner restarts into the same membership:
//! - before the add: nothing happened; the add is made.
//! - after the add, before the record: the add is asked again, and the join
//!   API answers the member it made (matched by peer URL).
//! - after the record, before etcd started: the record is used, no add.
//! - after etcd started: the data dir holds the membership
//!   (`etcd/member/snap/db`): the join decision says already-member, and a
//!   learner left unpromoted is promoted by the leader's promoter.

use std::path::Path;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::etcd_process::EtcdLaunch;
use crate::error_class::ErrorClass;
use crate::join::JoinToken;
use crate::join::client::{JoinClient, JoinError};
use crate::join::record::{JoinRecord, RecordError};
use crate::join::wire::MemberRequest;

#[derive(Debug, thiserror::Error)]
pub enum JoinerError {
    #[error(transparent)]
    Client(#[from] JoinError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(
        "the join record {path} is for member `{recorded_name}` at {recorded_url}, but this controller is `{name}` at {url}; restore the config it joined with, or remove the data dir's etcd/ to join anew"
    )]
    RecordMismatch {
        path: std::path::PathBuf,
        recorded_name: String,
        recorded_url: String,
        name: String,
        url: String,
    },
    #[error("joining needs a join token (--token-file): no membership is recorded in {path}")]
    NoToken { path: std::path::PathBuf },
    #[error("stopped while joining")]
    Cancelled,
}

impl JoinerError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Client(error) => error.class(),
            Self::Record(error) => error.class(),
            Self::RecordMismatch { .. } | Self::NoToken { .. } => ErrorClass::Invalid,
            Self::Cancelled => ErrorClass::Internal,
        }
    }
}

/// The membership this joiner starts etcd with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub member_id: u64,
    pub initial_cluster: String,
    /// From the record of an earlier run.
    pub resumed: bool,
}

pub async fn ensure_membership(
    record_path: &Path,
    token: Option<&JoinToken>,
    launch: &EtcdLaunch,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Joined, JoinerError> {
    if let Some(record) = JoinRecord::read(record_path)? {
        if record.name != launch.name || record.peer_url != launch.peer_url {
            return Err(JoinerError::RecordMismatch {
                path: record_path.to_owned(),
                recorded_name: record.name,
                recorded_url: record.peer_url,
                name: launch.name.clone(),
                url: launch.peer_url.clone(),
            });
        }
        tracing::info!(
            id = %format_args!("{:016x}", record.member_id),
            "resuming the recorded membership"
        );
        return Ok(Joined {
            member_id: record.member_id,
            initial_cluster: record.initial_cluster,
            resumed: true,
        });
    }
    let token = token.ok_or_else(|| JoinerError::NoToken {
        path: record_path.to_owned(),
    })?;
    let request = MemberRequest {
        name: launch.name.clone(),
        peer_url: launch.peer_url.clone(),
    };
    tracing::info!(api = %token.api, name = %request.name, peer_url = %request.peer_url, "asking to be added as an etcd learner");
    let client = JoinClient::new(token);
    let answer = tokio::select! {
        answer = client.add_member(&request, deadline) => answer?,
        () = cancel.cancelled() => return Err(JoinerError::Cancelled),
    };
    let record = JoinRecord {
        member_id: answer.member_id,
        name: request.name,
        peer_url: request.peer_url,
        initial_cluster: answer.initial_cluster,
        cluster_token: answer.cluster_token,
        api: token.api.clone(),
    };
    record.write(record_path)?;
    tracing::info!(
        id = %format_args!("{:016x}", record.member_id),
        existing = answer.existing,
        "added as a learner; membership recorded"
    );
    Ok(Joined {
        member_id: record.member_id,
        initial_cluster: record.initial_cluster,
        resumed: false,
    })
}

/// Remove the record once etcd's data holds the membership.
pub fn forget_record(path: &Path) -> Result<(), JoinerError> {
    let fail = |source| RecordError::Write {
        path: path.to_owned(),
        source,
    };
    std::fs::remove_file(path).map_err(fail)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)?;
    }
    Ok(())
}
