//! What the create-or-join decision is made from (storage state and the
//! join token), and what a join needs before it can go ahead.

pub mod token;

use std::path::PathBuf;

pub use token::{JoinToken, TokenError};

use crate::config::{Config, Storage};
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::node::NodeFacts;
use crate::plugin::contract::{JoinAction, JoinFacts, Proposal, StorageKind};
use crate::sha256::Sha256;

/// A join the local state cannot support.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(
        "joining the cluster at {api} needs its CA in {path}: this build has no join API client, so copy the cluster's CAs (pki/ca.*, pki/front-proxy-ca.*, pki/etcd/ca.*) there first, as with kubeadm's manual certificate distribution"
    )]
    ClusterCaMissing { api: String, path: PathBuf },
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
}

impl JoinError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::ClusterCaMissing { .. } => ErrorClass::Unreachable,
            Self::ClusterCaMismatch { .. } | Self::NoToken { .. } => ErrorClass::Invalid,
        }
    }
}

/// Observe the facts the join decision is made from.
pub fn facts(
    data_dir: &DataDirView,
    config: &Config,
    token: Option<&JoinToken>,
    node: &NodeFacts,
) -> JoinFacts {
    let storage = match config.effective().storage {
        Storage::Embedded { .. } => StorageKind::EmbeddedEtcd,
        Storage::External { .. } => StorageKind::ExternalEtcd,
    };
    JoinFacts {
        storage,
        etcd_member_data: storage == StorageKind::EmbeddedEtcd
            && data_dir.is_file(DataDirView::ETCD_MEMBER_DB),
        join_token_present: token.is_some(),
        join_token_api: token.map(|t| t.api.clone()),
        hostname: node.hostname.clone(),
    }
}

/// Whether this machine can go ahead with the decision: a join needs a
/// token, whoever proposed it (a plugin turning the decision into a join
/// without one would otherwise have a brand-new CA made), and the cluster
/// CA the token pins already in `pki/` (copied by hand, as this build has
/// no join API client).
pub(crate) fn check_prerequisites(
    decision: &Proposal,
    token: Option<&JoinToken>,
    data_dir: &DataDirView,
) -> Result<(), JoinError> {
    if decision.action != JoinAction::JoinCluster {
        return Ok(());
    }
    match token {
        Some(token) => check_cluster_ca(data_dir, token),
        None => Err(JoinError::NoToken {
            reason: crate::terminal::escape(&decision.reason).into_owned(),
        }),
    }
}

fn check_cluster_ca(data_dir: &DataDirView, token: &JoinToken) -> Result<(), JoinError> {
    let rel = crate::pki::cluster_ca_cert();
    let path = data_dir.path(&rel);
    let Some(actual) = token::certificate_sha256(data_dir, &rel) else {
        return Err(JoinError::ClusterCaMissing {
            api: token.api.clone(),
            path,
        });
    };
    if actual != token.ca_sha256 {
        return Err(JoinError::ClusterCaMismatch {
            path,
            pinned: token.ca_sha256,
            actual,
        });
    }
    Ok(())
}
