//! What the create-or-join decision is made from (storage state, the join
//! token, a recorded join), and what a join needs before the PKI phase: the
//! cluster's CAs, fetched from the join API the token names.
//!
//! This module is synchronous, like the phases that call it; the one
//! network exchange of the init phases, [`fetch_bundle`], runs its client
//! on a runtime of its own.

pub mod bundle;
pub mod client;
mod joined;
pub mod pinned_tls;
pub mod record;
pub mod token;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

pub use bundle::CaBundle;
pub use client::JoinApiError;
pub use joined::{Joined, MarkerError};
pub use record::RecordError;
pub use token::{JoinToken, TokenError};

use crate::config::{Config, Storage};
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::node::NodeFacts;
use crate::plugin::contract::{JoinAction, JoinFacts, Proposal, RecordedMembership, StorageKind};
use crate::sha256::Sha256;
use crate::stage::{Stage, StageError};

/// A join the local state cannot support, or could not get what it needs.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "the join decision is join-cluster ({reason}), but no join token was given: a controller cannot join without one; pass --token-file, or have the decision create the cluster"
    )]
    NoToken { reason: String },
    #[error(
        "the join token pins CA sha256 {pinned} but {path} has {actual}; this CA belongs to another cluster"
    )]
    ClusterCaMismatch {
        path: PathBuf,
        pinned: Sha256,
        actual: Sha256,
    },
    #[error(
        "{path} holds no readable certificate, so it cannot be checked against the join token's CA pin; restore it, or remove the data dir's pki/ to fetch the cluster's CAs again"
    )]
    ClusterCaUnreadable { path: PathBuf },
    #[error(
        "this data dir joined the cluster at {api} ({path}); it does not create a cluster of its own: pass that cluster's --token-file to join again, or remove the data dir to start anew"
    )]
    JoinedCluster { path: PathBuf, api: String },
    #[error(transparent)]
    Marker(#[from] MarkerError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Api(#[from] JoinApiError),
    #[error("cannot start the join API client")]
    Runtime(#[source] std::io::Error),
}

impl JoinError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::ClusterCaMismatch { .. }
            | Self::ClusterCaUnreadable { .. }
            | Self::NoToken { .. }
            | Self::JoinedCluster { .. }
            | Self::Marker(_) => ErrorClass::Invalid,
            Self::Record(error) => error.class(),
            Self::Api(error) => error.class(),
            Self::Runtime(_) => ErrorClass::Internal,
        }
    }
}

/// Observe the facts the join decision is made from.
pub fn facts(
    data_dir: &DataDirView,
    config: &Config,
    token: Option<&JoinToken>,
    node: &NodeFacts,
) -> Result<JoinFacts, JoinError> {
    let storage = match config.effective().storage {
        Storage::Embedded(_) => StorageKind::EmbeddedEtcd,
        Storage::External(_) => StorageKind::ExternalEtcd,
    };
    let recorded = match storage {
        StorageKind::EmbeddedEtcd => record::JoinRecord::read(data_dir)?,
        StorageKind::ExternalEtcd => None,
    };
    Ok(JoinFacts {
        storage,
        etcd_member_data: storage == StorageKind::EmbeddedEtcd && data_dir.has_etcd_wal(),
        join_token_present: token.is_some(),
        join_token_api: token.map(|t| t.api.clone()),
        recorded_membership: recorded.map(|r| RecordedMembership {
            member_id: format!("{:016x}", r.member_id),
            name: r.name,
            peer_url: r.peer_url,
            join_api: r.api,
        }),
        hostname: node.hostname.clone(),
    })
}

/// What a decision needs in the stage before the PKI phase: a joiner's
/// cluster CAs, when it fetched them, and the marker saying this data dir
/// joined a cluster.
#[derive(Default)]
pub(crate) struct JoinStaging {
    bundle: Option<CaBundle>,
    joined: Option<Joined>,
}

impl JoinStaging {
    pub(crate) fn stage(&self, stage: &mut Stage<'_>) -> Result<(), StageError> {
        if let Some(bundle) = &self.bundle {
            bundle.stage(stage)?;
        }
        if let Some(joined) = &self.joined {
            joined.stage(stage)?;
        }
        Ok(())
    }
}

/// Check that the data dir can go the way `decision` says, and get what a
/// join needs before its PKI phase.
///
/// - Creating a cluster on a data dir that joined one (embedded etcd) is
///   refused, whoever proposed it: it would be a second cluster with the
///   first one's CAs.
/// - A join needs a token, whoever proposed it (a plugin turning the
///   decision into a join without one would otherwise have a brand-new CA
///   made), except to resume the membership `etcd/join.json` recorded.
/// - The cluster CAs come from the data dir when it holds the CA the token
///   pins (a join resumed, or CAs copied by hand as with kubeadm's manual
///   distribution), else from the token's join API over TLS pinned to that
///   CA, retried for at most the join timeout.
pub(crate) fn prepare(
    decision: &Proposal,
    token: Option<&JoinToken>,
    data_dir: &DataDirView,
    config: &Config,
) -> Result<JoinStaging, JoinError> {
    let embedded = matches!(config.effective().storage, Storage::Embedded(_));
    match decision.action {
        JoinAction::AlreadyMember => Ok(JoinStaging::default()),
        JoinAction::CreateCluster => match Joined::read(data_dir)? {
            Some(joined) if embedded => Err(JoinError::JoinedCluster {
                path: data_dir.joined_marker(),
                api: joined.api,
            }),
            _ => Ok(JoinStaging::default()),
        },
        JoinAction::JoinCluster => {
            let Some(token) = token else {
                if data_dir.is_file(DataDirView::JOIN_RECORD) {
                    return Ok(JoinStaging::default());
                }
                return Err(JoinError::NoToken {
                    reason: crate::terminal::escape(&decision.reason).into_owned(),
                });
            };
            Ok(JoinStaging {
                bundle: fetch_bundle(token, data_dir, config.join_timeout())?,
                joined: embedded.then(|| Joined::of(token)),
            })
        }
    }
}

/// The cluster CAs to stage: none when the data dir holds the CA `token`
/// pins already, else the bundle from its join API.
fn fetch_bundle(
    token: &JoinToken,
    data_dir: &DataDirView,
    timeout: Duration,
) -> Result<Option<CaBundle>, JoinError> {
    let rel = crate::pki::cluster_ca_cert();
    let path = data_dir.path(&rel);
    if data_dir.is_file(&rel) {
        let Some(actual) = token::certificate_sha256(data_dir, &rel) else {
            return Err(JoinError::ClusterCaUnreadable { path });
        };
        if actual != token.ca_sha256 {
            return Err(JoinError::ClusterCaMismatch {
                path,
                pinned: token.ca_sha256,
                actual,
            });
        }
        return Ok(None);
    }
    tracing::info!(api = %token.api, "fetching the cluster CAs from the join API");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(JoinError::Runtime)?;
    let bundle = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + timeout;
        client::JoinClient::new(token)
            .fetch_ca_bundle(deadline)
            .await
    })?;
    Ok(Some(bundle))
}
