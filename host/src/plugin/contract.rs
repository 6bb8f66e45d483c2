//! The contract's vocabulary (`wit/plinth.wit`, package
//! `plinth:bootstrap`): its hooks, the records they exchange, and which
//! contract version and hooks a component speaks.
//!
//! The records are the ones the WIT defines, generated in
//! [`bindings`](super::bindings); they are named here so that the rest of
//! Plinth speaks the contract without reaching into generated modules.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use super::bindings::exports::plinth::bootstrap::image_resolve::{Image, Origin, PullPolicy};
pub use super::bindings::exports::plinth::bootstrap::join_decision::{
    JoinAction, JoinFacts, Proposal, RecordedMembership, StorageKind,
};
pub use super::bindings::exports::plinth::bootstrap::post_pki::{Certificate, KeyAlgorithm};
pub use super::bindings::exports::plinth::bootstrap::pre_init::{NodeFacts, PreInitAnswer};
pub use super::bindings::exports::plinth::bootstrap::readiness::{
    CheckSpec, ClusterFacts, Observation, ProbeResult,
};
pub use super::bindings::plinth::bootstrap::types::{Finding, Metadata, Severity};

use crate::phase::Phase;

/// The version of `package plinth:bootstrap` this host implements.
pub(crate) const CONTRACT_VERSION: &str = "0.2.0";

/// The hooks of the contract, in bootstrap order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    PreInit,
    JoinDecision,
    PostPki,
    ImageResolve,
    Readiness,
}

impl Hook {
    pub(crate) const ALL: [Hook; 5] = [
        Hook::PreInit,
        Hook::JoinDecision,
        Hook::PostPki,
        Hook::ImageResolve,
        Hook::Readiness,
    ];

    /// The name used in the WIT, manifests, logs and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::PreInit => "pre-init",
            Hook::JoinDecision => "join-decision",
            Hook::PostPki => "post-pki",
            Hook::ImageResolve => "image-resolve",
            Hook::Readiness => "readiness",
        }
    }

    /// The bootstrap phase this hook is called in.
    pub fn phase(self) -> Phase {
        match self {
            Hook::PreInit => Phase::PreInit,
            Hook::JoinDecision => Phase::JoinDecision,
            Hook::PostPki => Phase::PostPki,
            Hook::ImageResolve => Phase::ImageResolve,
            Hook::Readiness => Phase::Readiness,
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Hook {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Hook::ALL
            .into_iter()
            .find(|hook| hook.as_str() == name)
            .ok_or_else(|| format!("`{name}` is not a hook"))
    }
}

/// What to do when a participant fails (trap, timeout, malformed answer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Fail the bootstrap (exit 4). The default: a policy that cannot run
    /// must not be taken as a policy that allowed.
    #[default]
    Fail,
    /// Log, journal and go on as if the participant had not been called.
    Ignore,
}

impl JoinAction {
    /// The contract's name of an action, e.g. `create-cluster`.
    pub fn as_str(self) -> &'static str {
        match self {
            JoinAction::CreateCluster => "create-cluster",
            JoinAction::JoinCluster => "join-cluster",
            JoinAction::AlreadyMember => "already-member",
        }
    }
}
