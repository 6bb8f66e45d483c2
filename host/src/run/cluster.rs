//! Commands that run beside a running controller and talk to its cluster:
//! `plinth token create|list|revoke`, `plinth etcd members|leave`.
//!
//! They take no data dir lock (the controller holds it for its whole life)
//! and write nothing there. They read the persisted config, so they reach
//! etcd where the controller made it listen, with the client certificate
//! the controller generated (or, with external etcd, the one the operator
//! configured).

use std::path::PathBuf;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::Instant;

use super::etcd_client::{Etcd, EtcdAccess, EtcdError, Member};
use super::tokens::{Role, StoredToken, TokenStore};
use crate::config::{Config, ConfigError, GoDuration, Storage};
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::join::JoinToken;
use crate::join::token::{TokenId, certificate_sha256};
use crate::node::NodeFacts;
use crate::retry::Backoff;
use crate::sha256::Sha256;

/// How long `etcd leave` retries etcd's transient refusals.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "{path} is missing: this data dir has no controller yet; run `plinth controller` on it first (or give --data-dir)"
    )]
    NoController { path: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(
        "external etcd needs spec.storage.etcd.externalCluster.{{caFile, certFile, keyFile}} for Plinth's own calls (join tokens)"
    )]
    ExternalCredentialsMissing,
    #[error("no token with id {id}")]
    NoSuchToken { id: TokenId },
    #[error("this controller ({peer_url}) is not a member of the cluster at {endpoints}")]
    NotAMember { peer_url: String, endpoints: String },
    #[error(
        "refusing to remove member `{name}`: it is the cluster's last voter, and the cluster would be lost; remove the other members first, or delete the cluster"
    )]
    LastVoter { name: String },
    #[error("`plinth etcd {command}` needs embedded etcd; this cluster's etcd is external")]
    ExternalEtcd { command: &'static str },
    #[error("{argument} on the command line: {message}")]
    Argument {
        argument: &'static str,
        message: String,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl ClusterError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Etcd(error) => error.class(),
            Self::Config(error) => error.class(),
            Self::NoController { .. }
            | Self::ExternalCredentialsMissing
            | Self::NoSuchToken { .. }
            | Self::NotAMember { .. }
            | Self::LastVoter { .. }
            | Self::ExternalEtcd { .. }
            | Self::Argument { .. } => ErrorClass::Invalid,
            Self::Runtime(_) => ErrorClass::Internal,
        }
    }
}

/// `--ttl` of `plinth token create`: Go-style (`24h`, `90m`), or `0` for a
/// token that never expires.
pub fn parse_ttl(text: &str) -> Result<Option<time::Duration>, ClusterError> {
    if text == "0" {
        return Ok(None);
    }
    let ttl: GoDuration = text.parse().map_err(|message| ClusterError::Argument {
        argument: "--ttl",
        message,
    })?;
    Ok(Some(ttl.as_time()))
}

/// The `ID` of `plinth token revoke`.
pub fn parse_token_id(text: &str) -> Result<TokenId, ClusterError> {
    text.parse().map_err(|message| ClusterError::Argument {
        argument: "ID",
        message,
    })
}

/// How to reach the cluster of the controller on a data dir.
#[derive(Clone, Debug)]
pub struct ClusterAccess {
    pub etcd: EtcdAccess,
    /// `host:port` of this controller's join API, for the tokens it prints.
    pub api: String,
    /// This member's peer URL; `None` with external etcd.
    pub peer_url: Option<String>,
    data_dir: DataDirView,
}

impl ClusterAccess {
    /// From the data dir's persisted config, resolved as the controller
    /// resolved it.
    pub fn from_data_dir(data_dir: &DataDirView) -> Result<Self, ClusterError> {
        Self::from_config(&persisted_config(data_dir)?, data_dir)
    }

    pub(crate) fn from_config(
        config: &Config,
        data_dir: &DataDirView,
    ) -> Result<Self, ClusterError> {
        let effective = config.effective();
        let pki_dir = data_dir.pki_dir();
        let api = std::net::SocketAddr::new(effective.api.address, effective.api.plinth_api_port)
            .to_string();
        let (etcd, peer_url) = match &effective.storage {
            Storage::Embedded(etcd) => (
                EtcdAccess::embedded(&pki_dir, etcd.client_url()),
                Some(etcd.peer_url()),
            ),
            Storage::External(external) => {
                let (Some(ca), Some(cert), Some(key)) =
                    (&external.ca_file, &external.cert_file, &external.key_file)
                else {
                    return Err(ClusterError::ExternalCredentialsMissing);
                };
                (
                    EtcdAccess {
                        endpoints: external.endpoints.clone(),
                        ca: ca.clone(),
                        cert: cert.clone(),
                        key: key.clone(),
                    },
                    None,
                )
            }
        };
        Ok(Self {
            etcd,
            api,
            peer_url,
            data_dir: data_dir.clone(),
        })
    }

    /// sha256 of the cluster CA, as tokens pin it.
    fn ca_sha256(&self) -> Result<Sha256, ClusterError> {
        certificate_sha256(&self.data_dir, &crate::pki::cluster_ca_cert()).ok_or_else(|| {
            ClusterError::NoController {
                path: self.data_dir.path(crate::pki::cluster_ca_cert()),
            }
        })
    }
}

/// The config the controller on `data_dir` persisted, resolved as the
/// controller resolved it.
fn persisted_config(data_dir: &DataDirView) -> Result<Config, ClusterError> {
    let persisted = data_dir.persisted_config();
    if !persisted.is_file() {
        return Err(ClusterError::NoController { path: persisted });
    }
    Ok(Config::load(Some(&persisted), &NodeFacts::discover())?)
}

/// The address of the join API of the controller on `data_dir`.
pub(crate) fn join_api_address(
    data_dir: &DataDirView,
) -> Result<std::net::SocketAddr, ClusterError> {
    let config = persisted_config(data_dir)?;
    let api = &config.effective().api;
    Ok(std::net::SocketAddr::new(api.address, api.plinth_api_port))
}

/// Run `body` on a runtime of its own: these commands are short and alone.
pub(crate) fn block_on<T>(
    body: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, ClusterError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClusterError::Runtime)?
        .block_on(body)
}

/// `plinth token create`: the token's text and what was stored.
pub fn token_create(
    access: &ClusterAccess,
    role: Role,
    ttl: Option<time::Duration>,
) -> Result<(String, StoredToken), ClusterError> {
    let ca_sha256 = access.ca_sha256()?;
    block_on(async {
        let store = TokenStore::new(Etcd::connect(&access.etcd).await?);
        let (credential, stored) = store.create(role, ttl, OffsetDateTime::now_utc()).await?;
        Ok((
            JoinToken::render(&access.api, &ca_sha256, &credential),
            stored,
        ))
    })
}

pub fn token_list(access: &ClusterAccess) -> Result<Vec<StoredToken>, ClusterError> {
    block_on(async {
        let store = TokenStore::new(Etcd::connect(&access.etcd).await?);
        Ok(store.list().await?)
    })
}

pub fn token_revoke(access: &ClusterAccess, id: &TokenId) -> Result<(), ClusterError> {
    block_on(async {
        let store = TokenStore::new(Etcd::connect(&access.etcd).await?);
        if store.revoke(id).await? {
            Ok(())
        } else {
            Err(ClusterError::NoSuchToken { id: id.clone() })
        }
    })
}

pub fn members(access: &ClusterAccess) -> Result<Vec<Member>, ClusterError> {
    if access.peer_url.is_none() {
        return Err(ClusterError::ExternalEtcd { command: "members" });
    }
    block_on(async { Ok(Etcd::connect(&access.etcd).await?.members().await?) })
}

/// `plinth etcd leave`: remove this controller's member, never the last
/// voter, retrying etcd's transient refusals for a minute. Idempotent
/// under those retries: a remove that timed out may have been applied, so
/// a retry that finds the member gone has left, and answers the member the
/// first attempt saw.
pub fn leave(access: &ClusterAccess) -> Result<Member, ClusterError> {
    let Some(peer_url) = &access.peer_url else {
        return Err(ClusterError::ExternalEtcd { command: "leave" });
    };
    block_on(async {
        let etcd = Etcd::connect(&access.etcd).await?;
        let mut backoff = Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(2),
            Instant::now() + LEAVE_TIMEOUT,
        );
        let mut sent = None;
        loop {
            match leave_once(&etcd, peer_url, &mut sent).await {
                Err(ClusterError::Etcd(error)) if error.is_transient() => {
                    tracing::info!(%error, "etcd refused for now; retrying");
                    if !backoff.wait().await {
                        return Err(error.into());
                    }
                }
                outcome => return outcome,
            }
        }
    })
}

/// One attempt of `leave`. `sent` is the member an earlier attempt sent a
/// remove for; it is set before the remove goes out.
async fn leave_once(
    etcd: &Etcd,
    peer_url: &str,
    sent: &mut Option<Member>,
) -> Result<Member, ClusterError> {
    let members = etcd.members().await?;
    let retry = sent.is_some();
    let me = match leave_step(&members, peer_url, sent.as_ref(), etcd.endpoints())? {
        LeaveStep::Left(member) => return Ok(member),
        LeaveStep::Remove(member) => sent.insert(member),
    };
    match etcd.remove(me.id).await {
        Ok(()) => Ok(me.clone()),
        // The member list can lag a remove applied meanwhile: gone all the
        // same.
        Err(error) if retry && error.says("member not found") => Ok(me.clone()),
        Err(error) => Err(error.into()),
    }
}

/// What an attempt of `leave` does, given the members etcd lists.
#[derive(Debug, PartialEq, Eq)]
enum LeaveStep {
    /// Send a remove for this member.
    Remove(Member),
    /// An earlier attempt's remove was applied: nothing left to do.
    Left(Member),
}

/// The member with this controller's peer URL is removed, unless it is the
/// last voter. On a retry (`sent`) only the member the remove went out for
/// counts: if it is gone the leave is done, whoever has the URL now.
fn leave_step(
    members: &[Member],
    peer_url: &str,
    sent: Option<&Member>,
    endpoints: &str,
) -> Result<LeaveStep, ClusterError> {
    let me = match sent {
        Some(sent) => match members.iter().find(|m| m.id == sent.id) {
            Some(me) => me,
            None => return Ok(LeaveStep::Left(sent.clone())),
        },
        None => members
            .iter()
            .find(|m| m.peer_urls.iter().any(|u| u == peer_url))
            .ok_or_else(|| ClusterError::NotAMember {
                peer_url: peer_url.to_owned(),
                endpoints: endpoints.to_owned(),
            })?,
    };
    let voters = members.iter().filter(|m| !m.learner).count();
    if !me.learner && voters <= 1 {
        return Err(ClusterError::LastVoter {
            name: crate::terminal::escape(&me.name).into_owned(),
        });
    }
    Ok(LeaveStep::Remove(sent.unwrap_or(me).clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENDPOINTS: &str = "https://127.0.0.1:2379";

    fn member(id: u64, name: &str, learner: bool) -> Member {
        Member {
            name: name.to_owned(),
            id,
            peer_urls: vec![format!("https://127.0.0.{id}:2380")],
            client_urls: vec![format!("https://127.0.0.{id}:2379")],
            learner,
        }
    }

    #[test]
    fn a_first_attempt_removes_the_member_with_this_peer_url() {
        let members = [member(1, "c1", false), member(2, "c2", false)];
        let step = leave_step(&members, "https://127.0.0.2:2380", None, ENDPOINTS);
        assert_eq!(step.unwrap(), LeaveStep::Remove(member(2, "c2", false)));
    }

    #[test]
    fn a_first_attempt_that_finds_no_member_is_refused() {
        let members = [member(1, "c1", false)];
        let step = leave_step(&members, "https://127.0.0.2:2380", None, ENDPOINTS);
        assert!(
            matches!(step, Err(ClusterError::NotAMember { .. })),
            "{step:?}"
        );
    }

    #[test]
    fn a_retry_that_finds_the_member_gone_has_left_as_first_seen() {
        let first_seen = member(2, "c2", false);
        let members = [member(1, "c1", false)];
        let step = leave_step(
            &members,
            "https://127.0.0.2:2380",
            Some(&first_seen),
            ENDPOINTS,
        );
        assert_eq!(step.unwrap(), LeaveStep::Left(first_seen));
    }

    #[test]
    fn a_retry_removes_again_while_etcd_still_lists_the_member() {
        let first_seen = member(2, "c2", false);
        let members = [member(1, "c1", false), member(2, "c2", false)];
        let step = leave_step(
            &members,
            "https://127.0.0.2:2380",
            Some(&first_seen),
            ENDPOINTS,
        );
        assert_eq!(step.unwrap(), LeaveStep::Remove(first_seen));
    }

    #[test]
    fn a_retry_never_removes_another_member_that_took_the_peer_url() {
        let first_seen = member(2, "c2", false);
        let mut newcomer = member(7, "", true);
        newcomer.peer_urls = first_seen.peer_urls.clone();
        let members = [member(1, "c1", false), newcomer];
        let step = leave_step(
            &members,
            "https://127.0.0.2:2380",
            Some(&first_seen),
            ENDPOINTS,
        );
        assert_eq!(step.unwrap(), LeaveStep::Left(first_seen));
    }

    #[test]
    fn the_last_voter_is_never_removed() {
        let members = [member(1, "c1", false), member(2, "", true)];
        let step = leave_step(&members, "https://127.0.0.1:2380", None, ENDPOINTS);
        assert!(
            matches!(step, Err(ClusterError::LastVoter { ref name }) if name == "c1"),
            "{step:?}"
        );
    }
}
