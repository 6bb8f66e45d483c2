//! join-decision: create a cluster, join one, or stay the member this
//! machine already is.
//!
//! The built-in decides from storage state: embedded etcd with data means
//! already a member; a recorded join (`etcd/join.json`) is resumed;
//! otherwise a join token means join; otherwise create.
//! External etcd never joins etcd: the cluster's state is elsewhere, so a
//! controller with a token joins the control plane, and without one it
//! creates (connects to) the cluster the external etcd holds.

use super::chain::{Answer, HookError, Participant, check_text, run_chain};
use crate::journal::Journal;
use crate::phase::Summarize;
use crate::plugin::contract::{Hook, JoinAction, JoinFacts, Proposal, StorageKind};
use crate::plugin::{CallFailure, Plugin, PluginSet};

/// The built-in that opens the chain: the decision from storage state.
pub(crate) const BUILTIN: &str = "builtin:storage-state";

/// A participant of join-decision.
pub(crate) trait JoinDecider: Participant {
    /// The next proposal, or `Err(reason)` to refuse every outcome.
    fn decide(
        &self,
        facts: &JoinFacts,
        current: &Proposal,
    ) -> Result<Result<Proposal, String>, CallFailure>;
}

impl JoinDecider for Plugin {
    fn decide(
        &self,
        facts: &JoinFacts,
        current: &Proposal,
    ) -> Result<Result<Proposal, String>, CallFailure> {
        self.join_decision(facts, current)
    }
}

/// The built-in decision from storage state.
pub(crate) struct StorageState;

impl Participant for StorageState {
    fn name(&self) -> &str {
        BUILTIN
    }
}

impl JoinDecider for StorageState {
    fn decide(
        &self,
        facts: &JoinFacts,
        _current: &Proposal,
    ) -> Result<Result<Proposal, String>, CallFailure> {
        let (action, reason) = if facts.etcd_member_data {
            (
                JoinAction::AlreadyMember,
                "etcd/member/wal holds a write-ahead log: this machine's etcd has run as a member"
                    .to_owned(),
            )
        } else if let Some(member) = &facts.recorded_membership {
            (
                JoinAction::JoinCluster,
                format!(
                    "etcd/join.json records member {} added by {}: resuming that join",
                    member.member_id, member.join_api
                ),
            )
        } else if let Some(api) = &facts.join_token_api {
            (
                JoinAction::JoinCluster,
                format!("a join token for {api} was given and this machine holds no cluster data"),
            )
        } else if facts.storage == StorageKind::ExternalEtcd {
            (
                JoinAction::CreateCluster,
                "external etcd holds the cluster state and no join token was given".to_owned(),
            )
        } else {
            (
                JoinAction::CreateCluster,
                "no cluster data and no join token".to_owned(),
            )
        };
        Ok(Ok(Proposal { action, reason }))
    }
}

impl Summarize for Proposal {
    fn summary(&self) -> String {
        format!("{}: {}", self.action.as_str(), self.reason)
    }
}

/// The starting point of the chain, replaced by the built-in's proposal.
fn undecided() -> Proposal {
    Proposal {
        action: JoinAction::CreateCluster,
        reason: "nothing decided yet".to_owned(),
    }
}

pub fn run(
    facts: &JoinFacts,
    plugins: &PluginSet,
    journal: &Journal,
) -> Result<Proposal, HookError> {
    let mut chain: Vec<&dyn JoinDecider> = vec![&StorageState];
    chain.extend(
        plugins
            .serving(Hook::JoinDecision)
            .map(|p| p as &dyn JoinDecider),
    );
    run_deciders(&chain, facts, undecided(), journal)
}

/// Run an explicit chain of deciders from the proposal `initial`.
pub(crate) fn run_deciders(
    chain: &[&dyn JoinDecider],
    facts: &JoinFacts,
    initial: Proposal,
    journal: &Journal,
) -> Result<Proposal, HookError> {
    let outcome = run_chain(
        Hook::JoinDecision,
        journal,
        chain,
        initial,
        |participant, current| match participant.decide(facts, current)? {
            Ok(next) => {
                check_text("reason", &next.reason)?;
                if next.reason.trim().is_empty() {
                    return Err(CallFailure::Malformed(
                        "a proposal without a reason".to_owned(),
                    ));
                }
                let detail =
                    serde_json::json!({"action": next.action.as_str(), "reason": next.reason});
                Ok(Answer {
                    detail: Some(detail),
                    ..Answer::next(next)
                })
            }
            Err(reason) => {
                check_text("refusal", &reason)?;
                Ok(Answer::refuse(current.clone(), Hook::JoinDecision, reason))
            }
        },
    )?;
    Ok(outcome.value)
}
