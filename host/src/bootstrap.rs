//! What a finished bootstrap holds: what it did, for the operator's
//! summary, and what run mode carries on from. [`controller::init`] makes
//! one; run mode keeps it, and with it the data dir's lock, until the
//! process exits.
//!
//! [`controller::init`]: crate::controller::init

use std::sync::Arc;

use crate::config::Config;
use crate::data_dir::DataDir;
use crate::hooks::Attributed;
use crate::join::JoinToken;
use crate::journal::Journal;
use crate::phase::PhaseTiming;
use crate::pki::Decision;
use crate::plugin::PluginSet;
use crate::plugin::contract::{Image, Proposal};

/// A finished bootstrap: what it did, for the operator, and what run mode
/// carries on with. It holds the data dir's lock for as long as it lives,
/// so run mode keeps it until the process exits.
pub struct Bootstrap {
    pub(crate) data_dir: DataDir,
    pub(crate) journal: Journal,
    pub(crate) config: Config,
    pub(crate) token: Option<JoinToken>,
    /// Shared: run mode's readiness checks call plugins from the blocking
    /// pool.
    pub(crate) plugins: Arc<PluginSet>,
    pub(crate) phases: Vec<PhaseTiming>,
    pub(crate) join: Proposal,
    pub(crate) pki: Vec<Decision>,
    pub(crate) images: Vec<Image>,
    pub(crate) notes: Vec<Attributed>,
}

impl Bootstrap {
    pub fn data_dir(&self) -> &DataDir {
        &self.data_dir
    }

    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The configuration in force, pre-init patches applied.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The join token the bootstrap was given, for run mode's join.
    pub(crate) fn token(&self) -> Option<&JoinToken> {
        self.token.as_ref()
    }

    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    /// The plugins, shared with run mode's readiness checks.
    pub(crate) fn shared_plugins(&self) -> Arc<PluginSet> {
        Arc::clone(&self.plugins)
    }

    /// Each phase in order, with how long it took and what it did.
    pub fn phases(&self) -> &[PhaseTiming] {
        &self.phases
    }

    pub fn join(&self) -> &Proposal {
        &self.join
    }

    pub fn pki(&self) -> &[Decision] {
        &self.pki
    }

    pub fn images(&self) -> &[Image] {
        &self.images
    }

    /// Findings that did not deny (warnings, information).
    pub fn notes(&self) -> &[Attributed] {
        &self.notes
    }
}
