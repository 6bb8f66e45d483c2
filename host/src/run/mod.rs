//! Run mode: everything `plinth controller` does after the init phases
//! committed, and the only async code of Plinth.
//!
//! One task per concern, all stopped through one cancellation token, in
//! order (mini-redis's shape):
//!
//! ```text
//! signals ─► cancel ─┬─► join API stops accepting, finishes requests in flight
//!                    ├─► promoter stops
//!                    └─► then etcd: SIGTERM, grace period, SIGKILL ─► exit 0
//! ```
//!
//! Once etcd is started, the join API serves (`/livez`, `/readyz` and the
//! join routes) while the [`readiness`] phase runs every check at once; a
//! check that fails or a readiness timeout stops the controller in the same
//! order.

pub mod api;
pub mod backoff;
pub mod cluster;
pub mod etcd_client;
pub mod etcd_process;
pub mod joiner;
pub mod promoter;
pub mod readiness;
pub mod tokens;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Storage};
use crate::error_class::ErrorClass;
use crate::hooks::join_decision::JoinAction;
use crate::join::JoinToken;
use crate::join::bundle::{BundleError, CaBundle};
use crate::journal::{Entry, Verdict};
use crate::plugin::PluginSet;
use etcd_client::{Etcd, EtcdAccess, EtcdError};
use etcd_process::{ClusterState, EtcdLaunch, EtcdProcessError, EventSink, SupervisorEvent};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Process(#[from] EtcdProcessError),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Join(#[from] joiner::JoinerError),
    #[error(transparent)]
    Readiness(#[from] readiness::ReadinessError),
    #[error(transparent)]
    Access(#[from] cluster::ClusterError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot watch for signals: {0}")]
    Signals(std::io::Error),
}

impl RunError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Etcd(error) => error.class(),
            Self::Process(error) => error.class(),
            Self::Api(error) => error.class(),
            Self::Bundle(error) => error.class(),
            Self::Join(error) => error.class(),
            Self::Access(error) => error.class(),
            Self::Readiness(error) => error.class(),
            Self::Runtime(_) | Self::Signals(_) => ErrorClass::Internal,
        }
    }
}

/// How this controller comes to be an etcd member.
#[derive(Clone, Debug)]
pub enum Membership {
    /// The first member of a new cluster.
    Create,
    /// Already a member: etcd's data dir says so.
    Member,
    /// Join through the join API (or resume a recorded join).
    Join { token: Option<JoinToken> },
}

/// Where the cluster's data lives.
#[derive(Clone, Debug)]
pub enum StoragePlan {
    Embedded {
        /// etcd's command line, less the cluster state, decided from
        /// `membership`.
        launch: Box<EtcdLaunch>,
        membership: Membership,
        join_record: PathBuf,
    },
    External {
        access: EtcdAccess,
    },
}

/// Everything run mode needs, derived from the config and the data dir.
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub pki_dir: PathBuf,
    pub api_listen: SocketAddr,
    pub storage: StoragePlan,
    /// How long joining (or a first start) may take before Plinth gives up.
    pub join_timeout: Duration,
    /// `spec.readiness.timeout`.
    pub readiness_timeout: Duration,
    /// The plugins the init phases loaded; readiness asks them again.
    pub plugins: Arc<PluginSet>,
}

impl RunPlan {
    /// The plan for the controller on `data_dir` after its init phases
    /// decided `action` and committed.
    pub fn new(
        data_dir: &Path,
        config: &Config,
        action: JoinAction,
        token: Option<JoinToken>,
        plugins: Arc<PluginSet>,
    ) -> Result<Self, RunError> {
        let pki_dir = data_dir.join("pki");
        let effective = &config.effective;
        let storage = match &effective.storage {
            Storage::Embedded(etcd) => {
                let ca_sha256 = crate::join::token::certificate_sha256(&pki_dir.join("ca.crt"))
                    .unwrap_or_default();
                StoragePlan::Embedded {
                    launch: Box::new(EtcdLaunch {
                        binary: etcd.binary.clone(),
                        name: etcd.name.clone(),
                        data_dir: data_dir.join("etcd"),
                        pki_dir: pki_dir.clone(),
                        client_url: etcd.client_url(),
                        peer_url: etcd.peer_url(),
                        cluster_token: cluster_token(&ca_sha256),
                        state: ClusterState::Member,
                    }),
                    membership: match action {
                        JoinAction::CreateCluster => Membership::Create,
                        JoinAction::AlreadyMember => Membership::Member,
                        JoinAction::JoinCluster => Membership::Join { token },
                    },
                    join_record: data_dir.join(crate::join::JOIN_RECORD),
                }
            }
            Storage::External(_) => StoragePlan::External {
                access: cluster::ClusterAccess::from_config(config, &pki_dir)?.etcd,
            },
        };
        Ok(Self {
            pki_dir,
            api_listen: SocketAddr::new(effective.api.address, effective.api.plinth_api_port),
            storage,
            join_timeout: effective.join_timeout.as_std(),
            readiness_timeout: effective.readiness.timeout,
            plugins,
        })
    }
}

/// Where run mode's journal entries go (never a secret in them).
pub type Recorder = Arc<dyn Fn(Entry) + Send + Sync>;

/// A run-mode event for the journal.
fn event(phase: &'static str, detail: serde_json::Value) -> Entry {
    Entry::new(phase, "builtin:run", Verdict::Event).detail(detail)
}

/// The `--initial-cluster-token` of a cluster: derived from its CA, so
/// that two clusters' etcds never mistake each other's peers.
pub fn cluster_token(ca_sha256: &str) -> String {
    format!("plinth-{}", &ca_sha256[..ca_sha256.len().min(16)])
}

/// Build the runtime and run until SIGTERM or SIGINT.
pub fn run_blocking(plan: RunPlan, record: Recorder) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("plinth-run")
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(watch_signals(shutdown.clone()));
        let outcome = run(plan, record, shutdown).await;
        signals.abort();
        outcome
    })
}

/// SIGTERM or SIGINT cancel `shutdown`.
async fn watch_signals(shutdown: CancellationToken) -> Result<(), RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "stopping");
    shutdown.cancel();
    Ok(())
}

/// Run mode proper: bring etcd up (or join), serve, and stop in order when
/// `shutdown` is cancelled.
pub async fn run(
    plan: RunPlan,
    record: Recorder,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    // etcd stops after the API and the promoter: its own token.
    let stop_etcd = CancellationToken::new();
    let started = Instant::now();
    let deadline = started + plan.join_timeout;
    let (etcd, mut supervisor) = match &plan.storage {
        StoragePlan::Embedded {
            launch,
            membership,
            join_record,
        } => {
            let mut launch = launch.as_ref().clone();
            launch.state = match membership {
                Membership::Create => ClusterState::New,
                Membership::Member => ClusterState::Member,
                Membership::Join { token } => {
                    let joined = joiner::ensure_membership(
                        join_record,
                        token.as_ref(),
                        &launch,
                        deadline,
                        &shutdown,
                    )
                    .await?;
                    record(event(
                        "join",
                        serde_json::json!({
                            "memberId": format!("{:016x}", joined.member_id),
                            "initialCluster": joined.initial_cluster,
                            "resumed": joined.resumed,
                        }),
                    ));
                    ClusterState::Existing {
                        initial_cluster: joined.initial_cluster,
                    }
                }
            };
            let access = EtcdAccess::embedded(&plan.pki_dir, launch.client_url.clone());
            let etcd = Etcd::connect(&access).await?;
            let sink: EventSink = {
                let record = record.clone();
                Arc::new(move |happened| record(event("etcd", supervisor_detail(&happened))))
            };
            let supervisor = tokio::spawn(etcd_process::supervise(launch, sink, stop_etcd.clone()));
            (etcd, Some((supervisor, join_record.clone())))
        }
        StoragePlan::External { access } => (Etcd::connect(access).await?, None),
    };
    let serving = serve(&plan, etcd, supervisor.as_mut(), &record, &shutdown).await;
    stop_etcd.cancel();
    if let Some((supervisor, _)) = supervisor
        && !supervisor.is_finished()
    {
        let _ = supervisor.await;
    }
    serving
}

/// etcd's supervisor, and the join record to forget once this member votes.
type Supervised = (JoinHandle<Result<(), EtcdProcessError>>, PathBuf);

/// The join API and the promoter until `shutdown`, and the readiness phase
/// beside them: a check that fails or never becomes ready stops them all.
async fn serve(
    plan: &RunPlan,
    etcd: Etcd,
    mut supervised: Option<&mut Supervised>,
    record: &Recorder,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    if shutdown.is_cancelled() {
        return Ok(());
    }
    let embedded = matches!(plan.storage, StoragePlan::Embedded { .. });
    let bundle = Arc::new(CaBundle::read(&plan.pki_dir, embedded)?);
    let ca_sha256 =
        crate::join::token::pem_certificate_sha256(bundle.ca.cert.as_bytes()).unwrap_or_default();
    let learner_added = Arc::new(Notify::new());
    let state = api::ApiState {
        tokens: tokens::TokenStore::new(etcd.clone()),
        etcd: embedded.then(|| etcd.clone()),
        bundle,
        cluster_token: cluster_token(&ca_sha256),
        learner_added: learner_added.clone(),
    };
    let (board, view) = readiness::Board::new();
    let acceptor = api::tls_acceptor(&plan.pki_dir)?;
    let listener = api::bind(plan.api_listen).await?;
    tracing::info!(address = %plan.api_listen, "join API serving");
    let api = tokio::spawn(api::serve(
        listener,
        acceptor,
        api::routes(state).merge(readiness::routes(view)),
        shutdown.clone(),
    ));
    let promoter = embedded.then(|| {
        tokio::spawn(promoter::promote_learners(
            etcd,
            learner_added,
            shutdown.clone(),
        ))
    });
    let ready = tokio::select! {
        outcome = readiness(plan, &board, record) => outcome,
        exited = supervisor_exit(supervised.as_deref_mut()) => Err(exited),
        () = shutdown.cancelled() => Ok(()),
    };
    if let (Ok(()), Some((_, join_record))) = (&ready, &supervised)
        && join_record.exists()
    {
        // A voter's membership is in etcd's own data now; the record has
        // done its work (and etcd warns about foreign files).
        joiner::forget_record(join_record)?;
    }
    if ready.is_err() {
        shutdown.cancel();
    }
    let _ = api.await;
    if let Some(promoter) = promoter {
        let _ = promoter.await;
    }
    ready
}

/// The readiness phase, journaled check by check whatever its outcome.
async fn readiness(
    plan: &RunPlan,
    board: &readiness::Board,
    record: &Recorder,
) -> Result<(), RunError> {
    let (etcd, own_member) = match &plan.storage {
        StoragePlan::Embedded { launch, .. } => (
            readiness::health_checker(&plan.pki_dir, launch.client_url.clone()),
            true,
        ),
        StoragePlan::External { access } => (access.clone(), false),
    };
    let setup = readiness::Setup {
        timeout: plan.readiness_timeout,
        etcd,
        own_member,
        plinth_api_livez: url::Url::parse(&format!("https://{}/livez", plan.api_listen))
            .expect("a socket address makes a URL"),
        pki_dir: plan.pki_dir.clone(),
        plugins: Arc::clone(&plan.plugins),
        modules: readiness::KernelModules::of_this_node(),
    };
    let outcome = readiness::run(setup, board).await;
    for entry in readiness::journal_entries(&board.view().snapshot(), &plan.plugins) {
        record(entry);
    }
    Ok(outcome.map(|_| ())?)
}

/// Resolves when etcd's supervisor gave up (etcd cannot be started at all);
/// never without one.
async fn supervisor_exit(supervised: Option<&mut Supervised>) -> RunError {
    let Some((supervisor, _)) = supervised else {
        return std::future::pending().await;
    };
    match supervisor.await {
        Ok(Err(error)) => RunError::Process(error),
        // Stopped (only after `serve`) or panicked: readiness reports etcd.
        _ => std::future::pending().await,
    }
}

fn supervisor_detail(event: &SupervisorEvent) -> serde_json::Value {
    match event {
        SupervisorEvent::Started { pid, restart } => {
            serde_json::json!({"event": "started", "pid": pid, "restart": restart})
        }
        SupervisorEvent::Exited { status, restart_in } => serde_json::json!({
            "event": "exited", "status": status, "restartInMs": restart_in.as_millis() as u64
        }),
        SupervisorEvent::Stopped { status, killed } => {
            serde_json::json!({"event": "stopped", "status": status, "killed": killed})
        }
    }
}

/// `text` fit for a terminal and a log line: control characters escaped,
/// at most 2000 characters.
pub fn printable(text: &str) -> String {
    const MAX: usize = 2000;
    let mut out = String::with_capacity(text.len().min(MAX));
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
