//! What the create-or-join decision is made from: storage state and the
//! join token.

pub mod bundle;
pub mod client;
pub mod pinned_tls;
pub mod record;
pub mod token;
pub mod wire;

use std::path::Path;

pub use token::{JoinToken, TokenError};

use crate::config::{Config, Storage};
use crate::hooks::join_decision::{JoinFacts, RecordedMembership, StorageKind};
use crate::node::NodeFacts;

/// The file whose presence means this machine's etcd holds cluster data.
/// Deliberately storage state, not certificates: certificates can be copied
/// onto a fresh machine (a CA handed over for joining), data cannot.
pub const ETCD_MEMBER_DB: &str = "etcd/member/snap/db";
/// The membership a joiner recorded before its etcd first started.
pub const JOIN_RECORD: &str = "etcd/join.json";

/// Observe the facts the join decision is made from.
pub fn facts(
    data_dir: &Path,
    config: &Config,
    token: Option<&JoinToken>,
    node: &NodeFacts,
) -> Result<JoinFacts, record::RecordError> {
    let storage = match config.effective.storage {
        Storage::Embedded { .. } => StorageKind::EmbeddedEtcd,
        Storage::External { .. } => StorageKind::ExternalEtcd,
    };
    let recorded = match storage {
        StorageKind::EmbeddedEtcd => record::JoinRecord::read(&data_dir.join(JOIN_RECORD))?,
        StorageKind::ExternalEtcd => None,
    };
    Ok(JoinFacts {
        storage,
        etcd_member_data: storage == StorageKind::EmbeddedEtcd
            && data_dir.join(ETCD_MEMBER_DB).is_file(),
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
