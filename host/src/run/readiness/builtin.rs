//! The host's own checks: `etcd`, `etcd-voter` and `plinth-api`, and the
//! cluster facts handed to plugins.
//!
//! One task polls this controller's etcd member every [`POLL`] over mTLS
//! with `etcd/healthcheck-client` (kubeadm's health-check identity): a
//! linearizable read for `etcd` (a learner, or a member without quorum,
//! cannot serve one), the member's status for `etcd-voter`, and the member
//! list for the facts. The facts keep flowing after both checks are ready,
//! since plugin checks (quorum-guard's `min-voters`) wait on them.

use std::path::Path;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use url::Url;

use super::board::{CheckHandle, State};
use super::probe::{self, ProbeSetupError, Prober};
use crate::hooks::readiness::ClusterFacts;

/// How often the built-in checks look again while not ready: k3s polls
/// every 2 s, k0s every 100 ms; 100 ms keeps the reaction to a change within
/// the 100 ms the readiness phase promises, at one local RPC per poll.
pub const POLL: Duration = Duration::from_millis(100);
/// Deadline of one etcd RPC or one connection attempt.
const RPC_TIMEOUT: Duration = Duration::from_secs(1);
/// The key of the linearizable read; its value does not matter (kubeadm's
/// and etcdctl's health checks read a key that need not exist).
const HEALTH_KEY: &str = "health";

/// How to reach this controller's etcd member as its health checker.
pub struct EtcdAccess {
    endpoint: String,
    tls: TlsOptions,
}

impl EtcdAccess {
    /// `endpoint` (`https://127.0.0.2:2379`) with the data dir's
    /// `etcd/ca.crt` and `etcd/healthcheck-client.{crt,key}` under `pki_dir`.
    pub fn new(endpoint: String, pki_dir: &Path) -> Result<Self, ProbeSetupError> {
        let ca = probe::read_pem(&pki_dir.join("etcd/ca.crt"))?;
        let cert = probe::read_pem(&pki_dir.join("etcd/healthcheck-client.crt"))?;
        let key = probe::read_pem(&pki_dir.join("etcd/healthcheck-client.key"))?;
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(ca))
            .identity(Identity::from_pem(cert, key));
        Ok(Self { endpoint, tls })
    }

    async fn connect(&self) -> Result<Client, etcd_client::Error> {
        let options = ConnectOptions::new()
            .with_tls(self.tls.clone())
            .with_connect_timeout(RPC_TIMEOUT)
            .with_timeout(RPC_TIMEOUT);
        Client::connect([self.endpoint.as_str()], Some(options)).await
    }
}

/// `etcd`, `etcd-voter` (absent with external etcd: no member is ours) and
/// the facts.
pub struct EtcdTask {
    pub access: EtcdAccess,
    pub etcd: CheckHandle,
    pub voter: Option<CheckHandle>,
    pub facts: watch::Sender<Option<ClusterFacts>>,
}

impl EtcdTask {
    pub async fn run(self) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut client = None;
        loop {
            tick.tick().await;
            if client.is_none() {
                match self.access.connect().await {
                    Ok(connected) => client = Some(connected),
                    Err(error) => {
                        self.not_answering(&format!(
                            "cannot connect to {}: {error}",
                            self.access.endpoint
                        ));
                        continue;
                    }
                }
            }
            if let Some(client) = &mut client {
                self.observe(client).await;
            }
        }
    }

    fn not_answering(&self, reason: &str) {
        self.etcd.observe(State::Waiting(reason.to_owned()));
        if let Some(voter) = &self.voter {
            voter.observe(State::Waiting(reason.to_owned()));
        }
    }

    async fn observe(&self, client: &mut Client) {
        self.etcd.observe(match client.get(HEALTH_KEY, None).await {
            Ok(_) => State::Ready,
            Err(error) => State::Waiting(format!("linearizable read failed: {error}")),
        });
        let status = match client.status().await {
            Ok(status) => status,
            Err(error) => {
                if let Some(voter) = &self.voter {
                    voter.observe(State::Waiting(format!("no status from etcd: {error}")));
                }
                return;
            }
        };
        let is_learner = status.is_learner();
        if let Some(voter) = &self.voter {
            voter.observe(if is_learner {
                State::Waiting(
                    "this member is a learner; it votes once the leader has promoted it".to_owned(),
                )
            } else {
                State::Ready
            });
        }
        // A learner may refuse the member list; the facts then wait for its
        // promotion.
        if let Ok(list) = client.member_list().await {
            let members = list.members();
            let learners = members.iter().filter(|m| m.is_learner()).count();
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            let facts = ClusterFacts {
                members: count(members.len()),
                voters: count(members.len() - learners),
                learners: count(learners),
                this_node_voter: !is_learner,
                cluster_id: list.header().map_or(0, |header| header.cluster_id()),
            };
            self.facts.send_if_modified(|current| {
                let changed = current.as_ref() != Some(&facts);
                *current = Some(facts);
                changed
            });
        }
    }
}

/// `plinth-api`: the join API answers `GET /livez` with 200, over TLS
/// verified against the cluster CA.
pub struct PlinthApiTask {
    pub prober: Prober,
    pub livez: Url,
    pub handle: CheckHandle,
}

impl PlinthApiTask {
    pub async fn run(self) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let seen = self.prober.get(&self.livez).await;
            let state = match (seen.status, seen.error) {
                (Some(200), _) => State::Ready,
                (Some(status), _) => {
                    State::Waiting(format!("{} answered HTTP {status}", self.livez))
                }
                (None, error) => State::Waiting(error.unwrap_or_else(|| "no answer".to_owned())),
            };
            let done = state.is_final();
            self.handle.observe(state);
            if done {
                return;
            }
        }
    }
}
