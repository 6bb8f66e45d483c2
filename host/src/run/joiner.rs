//! The joining controller's membership: recorded, or asked for and then
//! recorded, before its etcd first starts.
//!
//! Killed anywhere, a joiner restarts into the same membership:
//! - before the add: nothing happened; the add is made.
//! - after the add, before the record: the add is asked again, and the join
//!   API answers the member it made (matched by peer URL).
//! - after the record, before etcd started: the record is used, no add.
//! - after etcd started: the data dir holds the membership (a write-ahead
//!   log in `etcd/member/wal`): the join decision says already-member, and
//!   a learner left unpromoted is promoted by the leader's promoter.
//! - etcd started but never reached its peers (it made `member/snap/db`,
//!   no WAL): the record is used again, as before etcd started.
//!
//! Restarted without its token after the add, a joiner is not a creator:
//! `joined.json`, committed with the cluster's CAs, makes the host refuse
//! to create a cluster on this data dir ([`crate::join::Joined`]).

use std::path::{Path, PathBuf};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::join::JoinToken;
use crate::join::client::{JoinApiError, JoinClient};
use crate::join::record::{JoinRecord, RecordError};
use crate::join::wire::MemberRequest;

/// Who the journal says joined.
pub(crate) const JOURNAL_NAME: &str = "builtin:joiner";

#[derive(Debug, thiserror::Error)]
pub enum JoinerError {
    #[error(transparent)]
    Client(#[from] JoinApiError),
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
}

impl JoinerError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Client(error) => error.class(),
            Self::Record(error) => error.class(),
            Self::RecordMismatch { .. } | Self::NoToken { .. } => ErrorClass::Invalid,
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

/// The membership of the member `request` names: the recorded one, or one
/// the join API of `token` adds and this records. `None` when `cancel`
/// came first (a stop while joining is no failure: nothing was started).
pub async fn ensure_membership(
    data_dir: &DataDirView,
    token: Option<&JoinToken>,
    request: MemberRequest,
    deadline: Instant,
    cancel: &CancellationToken,
) -> Result<Option<Joined>, JoinerError> {
    let record_path = data_dir.join_record();
    if let Some(record) = JoinRecord::read(data_dir)? {
        if record.name != request.name || record.peer_url != request.peer_url {
            return Err(JoinerError::RecordMismatch {
                path: record_path.clone(),
                recorded_name: crate::terminal::escape(&record.name).into_owned(),
                recorded_url: crate::terminal::escape(&record.peer_url).into_owned(),
                name: request.name,
                url: request.peer_url,
            });
        }
        tracing::info!(
            id = %format_args!("{:016x}", record.member_id),
            "resuming the recorded membership"
        );
        return Ok(Some(Joined {
            member_id: record.member_id,
            initial_cluster: record.initial_cluster,
            resumed: true,
        }));
    }
    let token = token.ok_or_else(|| JoinerError::NoToken {
        path: record_path.clone(),
    })?;
    tracing::info!(api = %token.api, name = %request.name, peer_url = %request.peer_url, "asking to be added as an etcd learner");
    let client = JoinClient::new(token);
    let answer = tokio::select! {
        answer = client.add_member(&request, deadline) => answer?,
        () = cancel.cancelled() => return Ok(None),
    };
    let record = JoinRecord {
        member_id: answer.member_id,
        name: request.name,
        peer_url: request.peer_url,
        initial_cluster: answer.initial_cluster,
        cluster_token: answer.cluster_token,
        api: token.api.clone(),
    };
    // Three fsyncs: on the blocking pool, not on one of the two workers.
    let record = {
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || record.write(&data_dir).map(|()| record))
            .await
            .map_err(|error| RecordError::Write {
                path: record_path.clone(),
                source: std::io::Error::other(error),
            })??
    };
    tracing::info!(
        id = %format_args!("{:016x}", record.member_id),
        existing = answer.existing,
        "added as a learner; membership recorded"
    );
    Ok(Some(Joined {
        member_id: record.member_id,
        initial_cluster: record.initial_cluster,
        resumed: false,
    }))
}

/// Remove the record, if there is one, once etcd's data holds the
/// membership. A record that cannot be removed is left with a warning: the
/// member db decides from now on, and the controller is ready.
pub async fn forget_record(path: PathBuf) {
    let forgotten = tokio::task::spawn_blocking({
        let path = path.clone();
        move || forget(&path)
    })
    .await
    .unwrap_or_else(|error| Err(std::io::Error::other(error)));
    if let Err(error) = forgotten {
        tracing::warn!(path = %path.display(), %error, "cannot remove the join record; etcd's data decides from now on");
    }
}

fn forget(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        removed => removed?,
    }
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
