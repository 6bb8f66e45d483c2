//! Promote learners to voters once they are in sync.
//!
//! Every controller runs this task; the one whose etcd member is the leader
//! acts at once, so there is one promoter per cluster without an election of
//! Plinth's own, and a learner is promoted even when the Plinth that joined
//! it has died since (k0s PR 7629 does the same with a leader-elected
//! reconciler). The leader's Plinth may be stopped, stalled, or not there
//! at all, so every other controller promotes a started learner it has seen
//! waiting for [`FALLBACK_AFTER`]; promotion is idempotent (etcd forwards it
//! to the leader, and "member is not a learner" counts as done). While a
//! learner exists the task looks every 100 ms (etcd refuses promotion until
//! the learner has 90% of the leader's log); when none does, every 500 ms,
//! or at once when the local join API added one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::etcd_client::Etcd;

const PENDING_INTERVAL: Duration = Duration::from_millis(100);
const IDLE_INTERVAL: Duration = Duration::from_millis(500);
/// How long a started learner waits for the leader's promoter before any
/// controller promotes it: long enough that the leader's, which looks every
/// 100 ms, nearly always comes first.
const FALLBACK_AFTER: Duration = Duration::from_secs(5);

/// What one pass saw.
#[derive(Debug, PartialEq, Eq)]
enum Pass {
    /// A learner is waiting (not started, or not in sync yet).
    LearnerPending,
    /// Nothing to do (no learner, or this member does not lead).
    Idle,
}

pub async fn promote_learners(etcd: Etcd, learner_added: Arc<Notify>, cancel: CancellationToken) {
    let mut waiting = HashMap::new();
    loop {
        let interval = match pass(&etcd, &mut waiting).await {
            Pass::LearnerPending => PENDING_INTERVAL,
            Pass::Idle => IDLE_INTERVAL,
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
            () = learner_added.notified() => {}
        }
    }
}

/// One look at the members. `waiting` holds when this task first saw each
/// started learner.
async fn pass(etcd: &Etcd, waiting: &mut HashMap<u64, Instant>) -> Pass {
    let status = match etcd.status().await {
        Ok(status) => status,
        Err(error) => {
            tracing::debug!(%error, "promoter: no status");
            return Pass::Idle;
        }
    };
    // A learner serves no member list, and promotes no one.
    if status.learner {
        return Pass::Idle;
    }
    let leads = status.leader_id == status.member_id;
    let members = match etcd.members().await {
        Ok(members) => members,
        Err(error) => {
            tracing::debug!(%error, "promoter: no member list");
            return Pass::LearnerPending;
        }
    };
    let now = Instant::now();
    waiting.retain(|id, _| members.iter().any(|m| m.id == *id && m.learner));
    let mut outcome = Pass::Idle;
    for learner in members.iter().filter(|m| m.learner) {
        if !learner.started() {
            outcome = Pass::LearnerPending;
            continue;
        }
        let since = *waiting.entry(learner.id).or_insert(now);
        if !leads && now.duration_since(since) < FALLBACK_AFTER {
            outcome = Pass::LearnerPending;
            continue;
        }
        match etcd.promote(learner.id).await {
            Ok(()) => tracing::info!(
                member = %learner.name,
                id = %format_args!("{:016x}", learner.id),
                "promoted learner to voter"
            ),
            Err(error) if error.says("member is not a learner") => {}
            Err(error) if error.is_transient() => {
                tracing::debug!(member = %learner.name, %error, "promoter: not yet");
                outcome = Pass::LearnerPending;
            }
            Err(error) => {
                tracing::warn!(member = %learner.name, %error, "promoter: promotion refused");
                outcome = Pass::LearnerPending;
            }
        }
    }
    outcome
}
