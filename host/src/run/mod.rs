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
//! order. Once ready, the etcd checks go on behind `/readyz`; when shutdown
//! begins `/readyz` answers 503 before the join API stops. Nothing fallible
//! stands between spawning those tasks and that ordered stop.
//!
//! Run mode holds the [`Bootstrap`], and with it the data dir's lock, until
//! the process exits: a second controller on the same data dir is refused
//! as busy before it touches anything.

mod api;
pub mod cluster;
pub mod etcd_client;
mod etcd_process;
mod joiner;
mod preflight;
mod promoter;
pub mod readiness;
pub mod tokens;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bootstrap::Bootstrap;
use crate::config::{EmbeddedEtcd, Storage};
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::join::JoinToken;
use crate::join::bundle::{BundleError, CaBundle};
use crate::join::wire::MemberRequest;
use crate::journal::{Entry, JournalError, JournalQueue, Verdict};
use crate::phase::Phase;
use crate::plugin::PluginSet;
use crate::plugin::contract::JoinAction;
use crate::sha256::Sha256;
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
    Preflight(#[from] preflight::PreflightError),
    #[error(transparent)]
    Readiness(#[from] readiness::ReadinessError),
    #[error(transparent)]
    Access(#[from] cluster::ClusterError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(
        "{path} holds no readable certificate: the cluster's identity (etcd's cluster token, what join tokens pin) comes from it; restore it, or run `plinth controller --init-only` to recreate the PKI"
    )]
    NoClusterCa { path: PathBuf },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot watch for signals")]
    Signals(#[source] std::io::Error),
}

impl RunError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Etcd(error) => error.class(),
            Self::Process(error) => error.class(),
            Self::Api(error) => error.class(),
            Self::Bundle(error) => error.class(),
            Self::Join(error) => error.class(),
            Self::Preflight(error) => error.class(),
            Self::Access(error) => error.class(),
            Self::Readiness(error) => error.class(),
            Self::Journal(error) => error.class(),
            Self::NoClusterCa { .. } => ErrorClass::Invalid,
            Self::Runtime(_) | Self::Signals(_) => ErrorClass::Internal,
        }
    }
}

/// How this controller comes to be an etcd member.
#[derive(Clone, Debug)]
enum Membership {
    /// The first member of a new cluster.
    Create,
    /// Already a member: etcd's data dir says so.
    Member,
    /// Join through the join API (or resume a recorded join).
    Join { token: Option<JoinToken> },
}

/// etcd as this controller runs it, before its membership is known.
#[derive(Clone, Debug)]
struct EmbeddedPlan {
    etcd: EmbeddedEtcd,
    membership: Membership,
    /// etcd's `--initial-cluster-token`, derived from the cluster CA.
    cluster_token: String,
}

impl EmbeddedPlan {
    /// etcd's command line, once the membership says how it joins.
    fn launch(&self, data_dir: &DataDirView, state: ClusterState) -> EtcdLaunch {
        EtcdLaunch {
            binary: self.etcd.binary.clone(),
            name: self.etcd.name.clone(),
            data_dir: data_dir.etcd_dir(),
            pki_dir: data_dir.pki_dir(),
            client_url: self.etcd.client_url(),
            peer_url: self.etcd.peer_url(),
            cluster_token: self.cluster_token.clone(),
            state,
            log_level: etcd_process::log_level_shown(),
        }
    }
}

/// Where the cluster's data lives.
#[derive(Clone, Debug)]
enum StoragePlan {
    Embedded(Box<EmbeddedPlan>),
    External { access: EtcdAccess },
}

/// Everything run mode needs, derived from the bootstrap.
struct RunPlan {
    data_dir: DataDirView,
    api_listen: SocketAddr,
    storage: StoragePlan,
    /// The cluster CA's digest: what join tokens pin.
    ca_sha256: Sha256,
    /// How long joining may take before Plinth gives up.
    join_timeout: Duration,
    /// `spec.readiness.timeout`.
    readiness_timeout: Duration,
    /// The plugins the init phases loaded; readiness asks them again.
    plugins: Arc<PluginSet>,
}

impl RunPlan {
    fn new(bootstrap: &Bootstrap) -> Result<Self, RunError> {
        let data_dir = bootstrap.data_dir().view().clone();
        let config = bootstrap.config();
        let effective = config.effective();
        let ca_path = data_dir.path(crate::pki::cluster_ca_cert());
        let ca_sha256 =
            crate::join::token::certificate_sha256(&data_dir, &crate::pki::cluster_ca_cert())
                .ok_or(RunError::NoClusterCa { path: ca_path })?;
        let storage = match &effective.storage {
            Storage::Embedded(etcd) => StoragePlan::Embedded(Box::new(EmbeddedPlan {
                etcd: etcd.clone(),
                membership: match bootstrap.join().action {
                    JoinAction::CreateCluster => Membership::Create,
                    JoinAction::AlreadyMember => Membership::Member,
                    JoinAction::JoinCluster => Membership::Join {
                        token: bootstrap.token().cloned(),
                    },
                },
                cluster_token: cluster_token(&ca_sha256),
            })),
            Storage::External(_) => StoragePlan::External {
                access: cluster::ClusterAccess::from_config(config, &data_dir)?.etcd,
            },
        };
        Ok(Self {
            api_listen: SocketAddr::new(effective.api.address, effective.api.plinth_api_port),
            storage,
            ca_sha256,
            join_timeout: config.join_timeout(),
            readiness_timeout: effective.readiness.timeout,
            plugins: bootstrap.shared_plugins(),
            data_dir,
        })
    }
}

/// A run-mode event for the journal (never a secret in it).
fn event(phase: Phase, participant: &str, detail: serde_json::Value) -> Entry {
    Entry::new(phase, participant, Verdict::Event).detail(detail)
}

/// The `--initial-cluster-token` of a cluster: derived from its CA, so
/// that two clusters' etcds never mistake each other's peers.
pub(crate) fn cluster_token(ca_sha256: &Sha256) -> String {
    format!("plinth-{}", &ca_sha256.to_string()[..16])
}

/// `plinth controller` after its init phases: run until SIGTERM or SIGINT,
/// holding `bootstrap` (the data dir's lock) until the end. A run that
/// stops on an error says why in the journal's last line, as a failed
/// bootstrap does.
pub fn run_blocking(bootstrap: Bootstrap) -> Result<(), RunError> {
    let plan = RunPlan::new(&bootstrap)?;
    let (journal, writer) = bootstrap.journal().queue()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("plinth-run")
        .enable_all()
        .build()
        .map_err(RunError::Runtime)?;
    let outcome = runtime.block_on(async {
        let term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
        let int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(watch_signals(term, int, shutdown.clone()));
        let outcome = run(plan, journal.clone(), shutdown).await;
        signals.abort();
        outcome
    });
    // Tasks still holding a clone of the queue (etcd's log forwarders) end
    // with the runtime; then the writer has every entry.
    drop(runtime);
    if let Err(error) = &outcome {
        journal.record(Entry::failure(crate::terminal::error_line(error)));
    }
    drop(journal);
    writer.finish();
    drop(bootstrap);
    outcome
}

/// SIGTERM or SIGINT cancel `shutdown`.
async fn watch_signals(mut term: Signal, mut int: Signal, shutdown: CancellationToken) {
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "stopping");
    shutdown.cancel();
}

/// Run mode proper: bring etcd up (or join), serve, and stop in order when
/// `shutdown` is cancelled.
async fn run(
    plan: RunPlan,
    journal: JournalQueue,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    match &plan.storage {
        StoragePlan::Embedded(embedded) => run_embedded(&plan, embedded, &journal, &shutdown).await,
        StoragePlan::External { access } => {
            let etcd = Etcd::connect(access).await?;
            serve(&plan, etcd, None, &journal, &shutdown).await
        }
    }
}

/// With embedded etcd: the membership, then etcd under its supervisor,
/// then [`serve`]; etcd stops last.
async fn run_embedded(
    plan: &RunPlan,
    embedded: &EmbeddedPlan,
    journal: &JournalQueue,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    let state = match &embedded.membership {
        Membership::Create => ClusterState::New,
        Membership::Member => ClusterState::Member,
        Membership::Join { token } => {
            preflight::check_etcd_binary(&embedded.etcd.binary).await?;
            preflight::check_addresses(&[
                (
                    "spec.storage.etcd.peerAddress and peerPort",
                    SocketAddr::new(embedded.etcd.peer_address, embedded.etcd.peer_port),
                ),
                (
                    "spec.storage.etcd.clientAddress and clientPort",
                    SocketAddr::new(embedded.etcd.client_address, embedded.etcd.client_port),
                ),
                ("spec.api.address and plinthApiPort", plan.api_listen),
            ])?;
            let request = MemberRequest {
                name: embedded.etcd.name.clone(),
                peer_url: embedded.etcd.peer_url(),
            };
            let deadline = Instant::now() + plan.join_timeout;
            let joining = joiner::ensure_membership(
                &plan.data_dir,
                token.as_ref(),
                request,
                deadline,
                shutdown,
            );
            // Stopped while joining: nothing was started, nothing to undo.
            let Some(joined) = joining.await? else {
                return Ok(());
            };
            journal.record(event(
                Phase::Join,
                joiner::JOURNAL_NAME,
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
    let launch = embedded.launch(&plan.data_dir, state);
    let access = EtcdAccess::embedded(&plan.data_dir.pki_dir(), launch.client_url.clone());
    let etcd = Etcd::connect(&access).await?;
    let sink: EventSink = {
        let journal = journal.clone();
        Arc::new(move |happened| {
            journal.record(event(
                Phase::Etcd,
                etcd_process::JOURNAL_NAME,
                supervisor_detail(&happened),
            ));
        })
    };
    let stop_etcd = CancellationToken::new();
    let mut supervisor = tokio::spawn(etcd_process::supervise(launch, sink, stop_etcd.clone()));
    let serving = serve(plan, etcd, Some(&mut supervisor), journal, shutdown).await;
    stop_etcd.cancel();
    if !supervisor.is_finished() {
        let _ = supervisor.await;
    }
    serving
}

/// etcd's supervisor: it ends early only when etcd cannot be started.
type Supervisor = JoinHandle<Result<(), EtcdProcessError>>;

/// How the readiness phase ended.
enum Concluded {
    /// Every check is ready; the etcd checks go on behind `/readyz`, held
    /// here until `serve` returns.
    Ready { _live: readiness::LiveChecks },
    /// Shutdown came first.
    Stopped,
}

/// The join API and the promoter until `shutdown`, and the readiness phase
/// beside them: a check that fails or never becomes ready stops them all.
async fn serve(
    plan: &RunPlan,
    etcd: Etcd,
    supervisor: Option<&mut Supervisor>,
    journal: &JournalQueue,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    if shutdown.is_cancelled() {
        return Ok(());
    }
    // Everything that can fail comes before the first task is spawned.
    let embedded = matches!(plan.storage, StoragePlan::Embedded(_));
    let bundle = Arc::new(CaBundle::read(&plan.data_dir, embedded)?);
    let acceptor = api::tls_acceptor(&plan.data_dir)?;
    let listener = api::bind(plan.api_listen).await?;
    tracing::info!(address = %plan.api_listen, "join API serving");

    let learner_added = Arc::new(Notify::new());
    let state = api::ApiState {
        tokens: tokens::TokenStore::new(etcd.clone()),
        etcd: embedded.then(|| etcd.clone()),
        bundle,
        cluster_token: cluster_token(&plan.ca_sha256),
        learner_added: learner_added.clone(),
        journal: journal.clone(),
    };
    let (board, view) = readiness::Board::new();
    // Stopped only after `/readyz` says the controller is stopping.
    let stop_api = CancellationToken::new();
    let api = tokio::spawn(api::serve(
        listener,
        acceptor,
        api::routes(state).merge(readiness::routes(view)),
        stop_api.clone(),
    ));
    let promoter = embedded.then(|| {
        tokio::spawn(promoter::promote_learners(
            etcd,
            learner_added,
            shutdown.clone(),
        ))
    });
    let concluded = tokio::select! {
        outcome = readiness_phase(plan, &board, journal) => outcome.map(|live| Concluded::Ready { _live: live }),
        exited = supervisor_exit(supervisor) => Err(exited),
        () = shutdown.cancelled() => Ok(Concluded::Stopped),
    };
    match &concluded {
        Ok(Concluded::Ready { .. }) if embedded => {
            // This member votes: its membership is in etcd's own data now,
            // and a join record has done its work (etcd warns about foreign
            // files in its dir).
            joiner::forget_record(plan.data_dir.join_record()).await;
        }
        Ok(_) => {}
        Err(_) => shutdown.cancel(),
    }
    // Until shutdown `/readyz` answers from the live checks; from its first
    // moment 503, and only then does the API drain.
    shutdown.cancelled().await;
    board.stop();
    stop_api.cancel();
    let _ = api.await;
    if let Some(promoter) = promoter {
        let _ = promoter.await;
    }
    concluded.map(|_| ())
}

/// The readiness phase, journaled check by check whatever its outcome.
async fn readiness_phase(
    plan: &RunPlan,
    board: &readiness::Board,
    journal: &JournalQueue,
) -> Result<readiness::LiveChecks, RunError> {
    let pki_dir = plan.data_dir.pki_dir();
    let (etcd, own_member) = match &plan.storage {
        StoragePlan::Embedded(embedded) => (
            readiness::health_checker(&pki_dir, embedded.etcd.client_url()),
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
        pki_dir,
        plugins: Arc::clone(&plan.plugins),
        modules: readiness::KernelModules::of_this_node(),
    };
    let outcome = readiness::run(setup, board).await;
    for entry in readiness::journal_entries(&board.view().snapshot(), &plan.plugins) {
        journal.record(entry);
    }
    Ok(outcome?)
}

/// Resolves when etcd's supervisor gave up (etcd cannot be started at all);
/// never without one.
async fn supervisor_exit(supervisor: Option<&mut Supervisor>) -> RunError {
    let Some(supervisor) = supervisor else {
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
