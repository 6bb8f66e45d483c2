//! The order of the bootstrap, and nothing else.
//!
//! Each phase is a call into the module that owns it, from explicit inputs
//! to explicit outputs; this file only sequences them, times them, and makes
//! sure a failure after staging began throws the stage away.
//!
//! ```text
//! config ─► plugins ─► pre-init ─► join-decision ─► pki ─► post-pki ─► image-resolve ─► commit
//! ```
//!
//! After the join decision, [`join::prepare`] checks the data dir can go
//! that way and a joining controller fetches the cluster's CAs; they are
//! staged first (with the marker that this data dir joined), so its leaves
//! are issued from them and everything commits together. Run mode (`run/`) carries on
//! from the [`Bootstrap`].
//!
//! The data dir is locked after the configuration is read and before
//! anything is opened in it, so a second Plinth on the same data dir is
//! refused before it writes a byte, its journal line included.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use time::OffsetDateTime;

pub use crate::bootstrap::Bootstrap;
use crate::config::Config;
use crate::data_dir::DataDir;
use crate::error::Error;
use crate::hooks::image_resolve::{self, CatalogDefaults};
use crate::hooks::{Attributed, join_decision, post_pki, pre_init};
use crate::images::{self, Catalog, Selection};
use crate::join::{self, JoinStaging, JoinToken};
use crate::journal::{Entry, Journal};
use crate::node::NodeFacts;
use crate::phase::{Phase, PhaseTiming, Summarize};
use crate::pki::{self, Decision};
use crate::plugin::contract::{Image, Proposal};
use crate::plugin::{PluginError, PluginSet, SignaturePolicy};
use crate::stage::Stage;

/// What `plinth controller --init-only` was asked to do.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub plugins_dir: Option<PathBuf>,
    pub config_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    /// The image catalog to resolve against; [`Catalog::builtin`] in the CLI.
    pub catalog: Catalog,
    /// The machine being bootstrapped; [`NodeFacts::discover`] in the CLI.
    pub node: NodeFacts,
    /// The time certificates are judged and issued at.
    pub now: OffsetDateTime,
}

/// `plinth controller --init-only`: every phase up to commit.
pub fn init(options: &InitOptions) -> Result<Bootstrap, Error> {
    let mut phases = Phases::default();
    let config = phases.run(Phase::Config, || {
        configure(
            options.config_file.as_deref(),
            &options.node,
            &options.catalog,
        )
    })?;
    let token = options
        .token_file
        .as_deref()
        .map(JoinToken::read)
        .transpose()?;
    let data_dir = DataDir::lock(&options.data_dir)?;
    let journal = Journal::open(&data_dir)?;
    journal.record_all(data_dir.tightened().iter().map(Entry::tightened))?;
    match after_lock(
        options,
        &data_dir,
        &journal,
        config,
        token.as_ref(),
        &mut phases,
    ) {
        Ok(done) => Ok(Bootstrap {
            data_dir,
            journal,
            config: done.config,
            token,
            plugins: Arc::new(done.plugins),
            phases: phases.0,
            join: done.join,
            pki: done.pki,
            images: done.images,
            notes: done.notes,
        }),
        Err(error) => {
            // The last line of the journal says why the bootstrap stopped, so
            // the journal alone explains a failed run.
            journal.record(Entry::failure(error.one_line()))?;
            journal.sync()?;
            Err(error)
        }
    }
}

/// What the phases after the lock produced.
struct Done {
    config: Config,
    plugins: PluginSet,
    join: Proposal,
    pki: Vec<Decision>,
    images: Vec<Image>,
    notes: Vec<Attributed>,
}

fn after_lock(
    options: &InitOptions,
    data_dir: &DataDir,
    journal: &Journal,
    config: Config,
    token: Option<&JoinToken>,
    phases: &mut Phases,
) -> Result<Done, Error> {
    let node = &options.node;
    // Recover from a crash of an earlier run before anything else is read.
    let mut stage = Stage::open(data_dir)?;
    let plugins = phases.run(Phase::Plugins, || {
        let signatures = signature_policy(&config)?;
        PluginSet::open(options.plugins_dir.as_deref(), Some(data_dir), &signatures)
    })?;
    journal.record_all(plugins.load_entries())?;
    let pre_init = phases.run(Phase::PreInit, || {
        pre_init::run(config, node, Some(data_dir), &plugins, journal)
    })?;
    let config = pre_init.value;
    let join = phases.run(Phase::JoinDecision, || {
        let facts = join::facts(data_dir, &config, token, node)?;
        Ok::<_, Error>(join_decision::run(&facts, &plugins, journal)?)
    })?;
    let join_staging = join::prepare(&join, token, data_dir, &config)?;

    let staged = stage_phases(
        options,
        &config,
        &join_staging,
        &plugins,
        journal,
        phases,
        &mut stage,
    );
    let staged = match staged {
        Ok(staged) => staged,
        Err(error) => {
            stage.abandon();
            return Err(error);
        }
    };
    let published = phases.run(Phase::Commit, || stage.commit())?;
    journal.record(published.journal_entry())?;
    journal.sync()?;
    Ok(Done {
        config,
        plugins,
        join,
        pki: staged.pki,
        images: staged.images,
        notes: pre_init.notes.into_iter().chain(staged.notes).collect(),
    })
}

/// What the phases that write into the stage produced.
struct Staged {
    pki: Vec<Decision>,
    images: Vec<Image>,
    notes: Vec<Attributed>,
}

/// The phases that write into the stage, after a joiner's cluster CAs.
fn stage_phases(
    options: &InitOptions,
    config: &Config,
    join_staging: &JoinStaging,
    plugins: &PluginSet,
    journal: &Journal,
    phases: &mut Phases,
    stage: &mut Stage<'_>,
) -> Result<Staged, Error> {
    join_staging.stage(stage)?;
    let pki = phases.run(Phase::Pki, || {
        pki::stage_pki(&config.pki_spec(&options.node), stage, options.now)
    })?;
    journal.record_all(pki.journal_entries())?;
    let audit = phases.run(Phase::PostPki, || {
        post_pki::run(&pki.certificates, options.now, plugins, journal)
    })?;
    let images = phases.run(Phase::ImageResolve, || {
        let builtin = CatalogDefaults {
            catalog: &options.catalog,
            config,
            selection: Selection::Active,
        };
        image_resolve::run(&builtin, plugins, journal)
    })?;
    journal.record(images::lock_entry(&images.value))?;
    config.stage_persisted(stage)?;
    images::stage_lock(stage, &images.value)?;
    Ok(Staged {
        pki: pki.decisions,
        images: images.value,
        notes: audit.notes.into_iter().chain(images.notes).collect(),
    })
}

/// The signature policy of `spec.plugins`, its allowed-signers file read.
fn signature_policy(config: &Config) -> Result<SignaturePolicy, PluginError> {
    let (allowed, required) = config.plugin_signers();
    Ok(SignaturePolicy::new(allowed, required)?)
}

/// `plinth airgap list-images`: the images this configuration and these
/// plugins resolve to, after the same config, plugins and pre-init phases
/// as a bootstrap, without touching any data dir.
pub fn list_images(
    catalog: &Catalog,
    config_file: Option<&Path>,
    plugins_dir: Option<&Path>,
    node: &NodeFacts,
    selection: Selection,
) -> Result<Vec<Image>, Error> {
    let config = configure(config_file, node, catalog)?;
    let plugins = PluginSet::open(plugins_dir, None, &signature_policy(&config)?)?;
    let journal = Journal::discard();
    let config = pre_init::run(config, node, None, &plugins, &journal)?.value;
    let builtin = CatalogDefaults {
        catalog,
        config: &config,
        selection,
    };
    Ok(image_resolve::run(&builtin, &plugins, &journal)?.value)
}

/// The config phase: the file (or the embedded default), with its image
/// overrides checked against the catalog so a typo stops the run at once.
fn configure(file: Option<&Path>, node: &NodeFacts, catalog: &Catalog) -> Result<Config, Error> {
    let config = Config::load(file, node)?;
    images::check_overrides(catalog, &config)?;
    Ok(config)
}

/// The timings of the phases run so far.
#[derive(Default)]
struct Phases(Vec<PhaseTiming>);

impl Phases {
    /// Run one phase, logging its start, how long it took and what it did.
    fn run<T: Summarize, E: Into<Error>>(
        &mut self,
        phase: Phase,
        body: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, Error> {
        tracing::debug!(phase = phase.as_str(), "starting");
        // Test hook, debug builds only: a bug in a phase, to prove that a
        // panic still ends in one line and a journal entry.
        if cfg!(debug_assertions)
            && std::env::var_os("PLINTH_TEST_PANIC_IN").is_some_and(|p| p == phase.as_str())
        {
            panic!("PLINTH_TEST_PANIC_IN={phase}");
        }
        let started = Instant::now();
        let value = body().map_err(Into::into)?;
        let took = started.elapsed();
        let summary = value.summary();
        // The summary table shows every phase once the run is done; the
        // log repeats it only when asked (-v), with the time rounded.
        tracing::debug!(
            phase = phase.as_str(),
            took_ms = %format_args!("{:.1}", took.as_secs_f64() * 1e3),
            "{summary}"
        );
        self.0.push(PhaseTiming {
            phase,
            took,
            summary,
        });
        Ok(value)
    }
}
