//! The host's own checks: `etcd`, `etcd-voter` and `plinth-api`, and the
//! cluster facts handed to plugins.
//!
//! One task polls this controller's etcd member every [`POLL`] over mTLS
//! with `etcd/healthcheck-client` (kubeadm's health-check identity): a
//! linearizable read for `etcd` (a learner, or a member without quorum,
//! cannot serve one), the member's status for `etcd-voter`, and the member
//! list for the facts. The facts keep flowing after both checks are ready,
//! since plugin checks (quorum-guard's `min-voters`) wait on them. Once the
//! phase concluded ready the task goes on every [`LIVE_POLL`], so that
//! `/readyz` turns 503 when etcd stops answering or this member stops
//! voting, and 200 again when it is back.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use url::Url;

use super::board::{CheckHandle, Phase, State};
use super::probe::Prober;
use crate::plugin::contract::ClusterFacts;
use crate::run::etcd_client::{Etcd, EtcdAccess, EtcdError};

/// How often the built-in checks look again while not ready: k3s polls
/// every 2 s, k0s every 100 ms; 100 ms keeps the reaction to a change within
/// the 100 ms the readiness phase promises, at one local RPC per poll.
pub const POLL: Duration = Duration::from_millis(100);

/// How often they look once the controller is ready: only `/readyz`
/// depends on them then, and a load balancer polls it every few seconds.
pub const LIVE_POLL: Duration = Duration::from_secs(1);

/// How the readiness phase reaches etcd: this controller's member, as
/// kubeadm's health checker (`etcd/healthcheck-client`), or the external
/// cluster with the credentials the operator configured.
pub fn health_checker(pki_dir: &std::path::Path, client_url: String) -> EtcdAccess {
    EtcdAccess {
        endpoints: vec![client_url],
        ca: pki_dir.join("etcd/ca.crt"),
        cert: pki_dir.join("etcd/healthcheck-client.crt"),
        key: pki_dir.join("etcd/healthcheck-client.key"),
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
        let mut live = false;
        let mut client = None;
        loop {
            tick.tick().await;
            if !live && self.etcd.phase() == Phase::Ready {
                live = true;
                let start = tokio::time::Instant::now() + LIVE_POLL;
                tick = tokio::time::interval_at(start, LIVE_POLL);
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                continue;
            }
            if client.is_none() {
                match Etcd::connect(&self.access).await {
                    Ok(connected) => client = Some(connected),
                    Err(error) => {
                        self.not_answering(&error);
                        continue;
                    }
                }
            }
            if let Some(etcd) = &client
                && !self.observe(etcd).await
            {
                // A fresh channel next time: the client's own reconnection
                // backs off for longer than a start-up can afford.
                client = None;
            }
        }
    }

    fn not_answering(&self, error: &EtcdError) {
        let reason = format!("etcd does not answer: {error}");
        self.etcd.observe(State::Waiting(reason.clone()));
        if let Some(voter) = &self.voter {
            voter.observe(State::Waiting(reason));
        }
    }

    /// One look at etcd; `false` when it did not answer at all.
    async fn observe(&self, etcd: &Etcd) -> bool {
        let read = etcd.healthy().await;
        let answered = read.is_ok();
        self.etcd.observe(match read {
            Ok(()) => State::Ready,
            Err(error) => State::Waiting(format!("no linearizable read: {error}")),
        });
        let status = match etcd.status().await {
            Ok(status) => status,
            Err(error) => {
                if let Some(voter) = &self.voter {
                    voter.observe(State::Waiting(format!("no status from etcd: {error}")));
                }
                return answered;
            }
        };
        if let Some(voter) = &self.voter {
            voter.observe(if status.learner {
                State::Waiting(
                    "this member is a learner; it votes once the leader has promoted it".to_owned(),
                )
            } else {
                State::Ready
            });
        }
        // A learner may refuse the member list; the facts then wait for its
        // promotion.
        if let Ok(members) = etcd.members().await {
            let learners = members.iter().filter(|m| m.learner).count();
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            let facts = ClusterFacts {
                members: count(members.len()),
                voters: count(members.len() - learners),
                learners: count(learners),
                this_node_voter: !status.learner,
                cluster_id: status.cluster_id,
            };
            self.facts.send_if_modified(|current| {
                let changed = current.as_ref() != Some(&facts);
                *current = Some(facts);
                changed
            });
        }
        true
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
