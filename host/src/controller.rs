//! The order of the bootstrap, and nothing else.
//!
//! Each phase is a call into the module that owns it, from explicit inputs
//! to explicit outputs; this file only sequences them, times them, and makes
//! sure a failure after staging began throws the stage away.
//!
//! ```text
//! config ─► plugins ─► pre-init ─► join-decision ─► pki ─► post-pki ─► image-resolve ─► commit
//! ```

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::config::{self, Config, Storage};
use crate::error::{Error, ExitCode};
use crate::hooks::image_resolve::{self, CatalogDefaults, Image};
use crate::hooks::join_decision::{self, JoinAction, Proposal};
use crate::hooks::{Attributed, post_pki, pre_init};
use crate::images::{self, Catalog, Selection};
use crate::join::bundle::CaBundle;
use crate::join::client::JoinClient;
use crate::join::{self, JoinToken};
use crate::journal::{Entry, Journal, Verdict};
use crate::node::NodeFacts;
use crate::pki::{self, Decision, EtcdMode, PkiSpec};
use crate::plugin::{self, Cache, LoadKind, PluginSet, Runtime};
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
    /// The time certificates are judged and issued at.
    pub now: OffsetDateTime,
}

/// What a finished bootstrap did, for the operator.
#[derive(Debug)]
pub struct Bootstrap {
    pub phases: Vec<PhaseTiming>,
    pub join: Proposal,
    pub pki: Vec<Decision>,
    pub images: Vec<Image>,
    /// Findings that did not deny (warnings, information).
    pub notes: Vec<Attributed>,
    pub plugins: Vec<String>,
    /// The plugins themselves, for run mode's readiness checks.
    pub loaded: std::sync::Arc<PluginSet>,
    /// The configuration in force, for run mode.
    pub config: Config,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PhaseTiming {
    pub phase: &'static str,
    pub took: Duration,
    pub summary: String,
}

/// A join the local state cannot support.
#[derive(Debug, thiserror::Error)]
pub enum JoinPrerequisite {
    #[error(
        "the join token pins CA sha256 {pinned} but {path} has {actual}; this CA belongs to another cluster"
    )]
    ClusterCaMismatch {
        path: PathBuf,
        pinned: String,
        actual: String,
    },
}

impl JoinPrerequisite {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Self::ClusterCaMismatch { .. } => ExitCode::Usage,
        }
    }
}

struct Phases(Vec<PhaseTiming>);

impl Phases {
    /// Run one phase, logging its start and how long it took.
    fn run<T, E>(
        &mut self,
        phase: &'static str,
        body: impl FnOnce() -> Result<(T, String), E>,
    ) -> Result<T, E> {
        tracing::info!(phase, "starting");
        let started = Instant::now();
        let (value, summary) = body()?;
        let took = started.elapsed();
        tracing::info!(phase, took_ms = took.as_secs_f64() * 1e3, "{summary}");
        self.0.push(PhaseTiming {
            phase,
            took,
            summary,
        });
        Ok(value)
    }
}

/// `plinth controller --init-only`: every phase up to commit.
pub fn init(options: &InitOptions) -> Result<Bootstrap, Error> {
    let mut phases = Phases(Vec::new());
    let data_dir = &options.data_dir;
    let node = NodeFacts::discover();

    let config = phases.run("config", || {
        let config = Config::load(options.config_file.as_deref(), &node)?;
        images::check_overrides(&options.catalog, &config)?;
        Ok::<_, Error>((
            config.clone(),
            format!("{} ({})", config.effective.name, config.origin),
        ))
    })?;
    let token = options
        .token_file
        .as_deref()
        .map(JoinToken::read)
        .transpose()?;
    prepare_data_dir(data_dir)?;
    let mut journal = Journal::open(data_dir)?;
    let outcome = run_from_plugins(options, &node, config, token, &mut journal, phases);
    if let Err(error) = &outcome {
        // The last line of the journal says why the bootstrap stopped, so
        // the journal alone explains a failed run.
        let mut entry = Entry::new("bootstrap", "plinth", Verdict::Failed);
        entry.trap = Some(error.to_string());
        journal.record(entry)?;
        journal.sync()?;
    }
    outcome
}

/// Everything after the journal is open.
fn run_from_plugins(
    options: &InitOptions,
    node: &NodeFacts,
    config: Config,
    token: Option<JoinToken>,
    journal: &mut Journal,
    mut phases: Phases,
) -> Result<Bootstrap, Error> {
    let data_dir = &options.data_dir;
    // Recover from a crash of an earlier run before anything else is read.
    let stage = Stage::open(data_dir)?;

    let plugins = phases.run("plugins", || {
        let plugins = load_plugins(options.plugins_dir.as_deref(), Some(data_dir))?;
        let cached = plugins
            .all()
            .iter()
            .filter(|p| matches!(p.load, LoadKind::Cached { .. }))
            .count();
        let summary = format!(
            "{} plugin(s) loaded, {cached} from the compiled cache",
            plugins.all().len()
        );
        Ok::<_, Error>((plugins, summary))
    })?;
    for plugin in plugins.all() {
        journal.record(plugin.load_entry())?;
    }

    let (config, mut notes) = phases.run("pre-init", || {
        let (config, notes) = pre_init::run(config, node, data_dir, &plugins, journal)?;
        Ok::<_, Error>(((config, notes), "configuration accepted".to_owned()))
    })?;

    let join = phases.run("join-decision", || {
        let facts = join::facts(data_dir, &config, token.as_ref(), node)?;
        let proposal = join_decision::run(&facts, &plugins, journal)?;
        let summary = format!(
            "{}: {}",
            join_decision::action_name(proposal.action),
            proposal.reason
        );
        Ok::<_, Error>((proposal, summary))
    })?;
    let bundle = match (&token, join.action) {
        (Some(token), JoinAction::JoinCluster) => {
            cluster_ca_bundle(data_dir, token, config.effective.join_timeout)?
        }
        _ => None,
    };

    // A joiner issues its leaves from the cluster's CAs: staged first, so
    // that they commit with everything else or not at all.
    let mut stage = stage;
    for (rel, pem) in bundle.as_ref().map(CaBundle::files).unwrap_or_default() {
        if let Err(error) =
            stage_if_changed(&mut stage, rel, pem.as_bytes(), CaBundle::mode_of(rel))
        {
            let _ = stage.discard();
            return Err(error);
        }
    }
    let staged = stage_everything(
        options,
        &config,
        node,
        &plugins,
        journal,
        &mut phases,
        stage,
    );
    let (stage, pki, images, more_notes) = staged?;
    notes.extend(more_notes);

    phases.run("commit", || {
        let staged = stage.staged().count();
        stage.commit()?;
        Ok::<_, Error>(((), format!("{staged} file(s) published")))
    })?;
    journal.record(Entry::new("commit", "builtin:stage", Verdict::Event))?;
    journal.sync()?;
    Ok(Bootstrap {
        phases: phases.0,
        join,
        pki,
        images,
        notes,
        plugins: plugins.all().iter().map(|p| p.name.clone()).collect(),
        loaded: std::sync::Arc::new(plugins),
        config,
    })
}

type Staged = (Stage, Vec<Decision>, Vec<Image>, Vec<Attributed>);

/// The phases that write into the stage; on any failure the stage is
/// discarded, so the data dir stays as it was.
fn stage_everything(
    options: &InitOptions,
    config: &Config,
    node: &NodeFacts,
    plugins: &PluginSet,
    journal: &mut Journal,
    phases: &mut Phases,
    mut stage: Stage,
) -> Result<Staged, Error> {
    let result = (|| {
        let outcome = phases.run("pki", || {
            let outcome = pki::stage_pki(&pki_spec(config, node), &mut stage, options.now)?;
            let changed = outcome.decisions.iter().filter(|d| d.changed()).count();
            let summary = format!(
                "{} certificate(s), {changed} file(s) new or reissued",
                outcome.certificates.len()
            );
            Ok::<_, Error>((outcome, summary))
        })?;
        for decision in &outcome.decisions {
            let detail = serde_json::json!({"name": decision.name, "path": decision.path, "kind": decision.kind});
            journal.record(Entry::new("pki", "builtin:pki", Verdict::Event).detail(detail))?;
        }
        let mut notes = phases.run("post-pki", || {
            let certificates: Vec<_> = outcome.certificates.iter().map(post_pki::to_wire).collect();
            let builtin = post_pki::ValidityCheck {
                now: options.now.unix_timestamp(),
            };
            let notes = post_pki::run(&certificates, &builtin, plugins, journal)?;
            Ok::<_, Error>((
                notes,
                format!("{} certificate(s) audited", certificates.len()),
            ))
        })?;
        let images = phases.run("image-resolve", || {
            let (images, image_notes) = resolve_images(&options.catalog, config, plugins, journal)?;
            notes.extend(image_notes);
            Ok::<_, Error>((
                images.clone(),
                format!("{} image(s) resolved", images.len()),
            ))
        })?;
        let references: Vec<String> = images.iter().map(images::reference_of).collect();
        let lock_entry = Entry::new("image-resolve", "builtin:lock", Verdict::Event);
        journal.record(lock_entry.detail(serde_json::json!({ "images": references })))?;
        stage_if_changed(
            &mut stage,
            config::PERSISTED_PATH,
            config.persisted_yaml().as_bytes(),
            0o600,
        )?;
        stage_if_changed(
            &mut stage,
            images::LOCK_PATH,
            &images::lock_file(&images),
            0o644,
        )?;
        Ok((outcome.decisions, images, notes))
    })();
    match result {
        Ok((decisions, images, notes)) => Ok((stage, decisions, images, notes)),
        Err(error) => {
            if let Err(discard) = stage.discard() {
                tracing::error!("could not remove the stage after a failure: {discard}");
            }
            Err(error)
        }
    }
}

/// `plinth airgap list-images`: the images this configuration and these
/// plugins resolve to, without touching any data dir.
pub fn list_images(
    catalog: &Catalog,
    config_file: Option<&Path>,
    plugins_dir: Option<&Path>,
    selection: Selection,
) -> Result<Vec<Image>, Error> {
    let node = NodeFacts::discover();
    let config = Config::load(config_file, &node)?;
    images::check_overrides(catalog, &config)?;
    let plugins = load_plugins(plugins_dir, None)?;
    let mut journal = Journal::in_memory();
    let (config, _) = pre_init::run(config, &node, Path::new(""), &plugins, &mut journal)?;
    let builtin = CatalogDefaults {
        catalog,
        config: &config,
        selection,
    };
    Ok(image_resolve::run(&builtin, &plugins, &mut journal)?.value)
}

fn resolve_images(
    catalog: &Catalog,
    config: &Config,
    plugins: &PluginSet,
    journal: &mut Journal,
) -> Result<(Vec<Image>, Vec<Attributed>), Error> {
    let builtin = CatalogDefaults {
        catalog,
        config,
        selection: Selection::Active,
    };
    let outcome = image_resolve::run(&builtin, plugins, journal)?;
    Ok((outcome.value, outcome.notes))
}

/// Load the plugins of `dir`, caching compiled components under `data_dir`.
pub fn load_plugins(dir: Option<&Path>, data_dir: Option<&Path>) -> Result<PluginSet, Error> {
    let Some(dir) = dir else {
        return Ok(PluginSet::empty());
    };
    let runtime = Runtime::new()?;
    let cache = Cache::new(
        data_dir.map(|d| d.join(plugin::CACHE_DIR)),
        runtime.engine(),
    );
    Ok(PluginSet::load(runtime, &cache, dir)?)
}

fn pki_spec(config: &Config, node: &NodeFacts) -> PkiSpec {
    let effective = &config.effective;
    PkiSpec {
        cluster_domain: effective.network.cluster_domain.clone(),
        service_ip: effective.network.service_cidr.first_host(),
        api_address: effective.api.address,
        api_port: effective.api.port,
        extra_sans: effective.api.sans.clone(),
        node_addresses: node.addresses.clone(),
        hostname: node.hostname.clone(),
        etcd: match &effective.storage {
            Storage::Embedded(etcd) => EtcdMode::Embedded {
                peer_address: etcd.peer_address,
                client_address: etcd.client_address,
            },
            Storage::External { .. } => EtcdMode::External,
        },
        key_algorithm: effective.pki.key_algorithm,
        ca_validity: effective.pki.ca_validity.as_time(),
        cert_validity: effective.pki.cert_validity.as_time(),
        renew_before: effective.pki.renew_before.as_time(),
    }
}

/// The cluster CAs a joiner must stage: none when the data dir holds the
/// pinned CA already (a join resumed, or CAs copied by hand as with
/// kubeadm's manual distribution), else the bundle fetched from the join
/// API over TLS pinned to the token's CA.
fn cluster_ca_bundle(
    data_dir: &Path,
    token: &JoinToken,
    timeout: crate::config::GoDuration,
) -> Result<Option<CaBundle>, Error> {
    let path = data_dir.join("pki/ca.crt");
    if path.exists() {
        let actual = join::token::certificate_sha256(&path).unwrap_or_default();
        if actual != token.ca_sha256 {
            return Err(JoinPrerequisite::ClusterCaMismatch {
                path,
                pinned: token.ca_sha256.clone(),
                actual,
            }
            .into());
        }
        return Ok(None);
    }
    tracing::info!(api = %token.api, "fetching the cluster CAs from the join API");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
    let timeout = timeout.as_std();
    let bundle = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + timeout;
        JoinClient::new(token).fetch_ca_bundle(deadline).await
    })?;
    Ok(Some(bundle))
}

fn prepare_data_dir(data_dir: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(|source| Error::DataDir {
            path: data_dir.to_owned(),
            source,
        })
}

/// Stage `bytes` for `rel` unless the data dir already holds exactly them,
/// so a re-run changes no byte and no modification time.
fn stage_if_changed(stage: &mut Stage, rel: &str, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let current = std::fs::read(stage.data_dir().join(rel)).ok();
    if current.as_deref() != Some(bytes) {
        stage.write(Path::new(rel), bytes, mode)?;
    }
    Ok(())
}
