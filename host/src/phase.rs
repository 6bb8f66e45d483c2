//! The phases of a bootstrap, by name: what the log, the journal and the
//! operator's summary call each step.
//!
//! ```text
//! config ─► plugins ─► pre-init ─► join-decision ─► pki ─► post-pki ─► image-resolve ─► commit
//!   └─ run mode: join ─► etcd ─► readiness, beside serve
//! ```

use std::fmt;

/// One step of the bootstrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Read and validate the configuration.
    Config,
    /// Load every plugin of the plugin directory.
    Plugins,
    PreInit,
    JoinDecision,
    Pki,
    PostPki,
    ImageResolve,
    /// Publish the staged files into the data dir.
    Commit,
    /// Run mode: become an etcd member through the join API (or resume a
    /// recorded membership).
    Join,
    /// Run mode: the supervised etcd's starts, exits and stop.
    Etcd,
    /// Run mode: every readiness check, until all are ready.
    Readiness,
    /// Run mode: the join API (the members it added).
    Serve,
    /// The bootstrap as a whole: the journal's line saying why it stopped.
    Bootstrap,
}

impl Phase {
    /// The name in logs and the journal, e.g. `image-resolve`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Config => "config",
            Phase::Plugins => "plugins",
            Phase::PreInit => "pre-init",
            Phase::JoinDecision => "join-decision",
            Phase::Pki => "pki",
            Phase::PostPki => "post-pki",
            Phase::ImageResolve => "image-resolve",
            Phase::Commit => "commit",
            Phase::Join => "join",
            Phase::Etcd => "etcd",
            Phase::Readiness => "readiness",
            Phase::Serve => "serve",
            Phase::Bootstrap => "bootstrap",
        }
    }
}

impl serde::Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a phase's result says about it in one line, for the log and the
/// operator's summary. Implemented by each phase's result, in the module
/// that owns the phase.
pub trait Summarize {
    fn summary(&self) -> String;
}

/// How long a phase took and what it did, for the operator's summary.
#[derive(Clone, Debug)]
pub struct PhaseTiming {
    pub phase: Phase,
    pub took: std::time::Duration,
    pub summary: String,
}
