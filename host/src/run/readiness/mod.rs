//! The readiness phase of run mode: after etcd has started, every check runs
//! at once and reports as it changes (the k3s 1.32 model: parallel,
//! progressive, transient vs fatal), and the controller is ready when all of
//! them are.
//!
//! * Built-in checks ([`builtin`]): `etcd`, `etcd-voter`, `plinth-api`.
//! * Plugin checks ([`plugin_check`]): each plugin serving `readiness` is
//!   asked for its `checks()` once; the host probes each URL (only those its
//!   manifest's `allow-urls` admits) and hands the observation, with the
//!   cluster facts and the kernel modules, to the plugin's `evaluate`.
//! * `waiting`, probe errors and (under `failure-policy = "ignore"`) plugin
//!   traps are transient until `spec.readiness.timeout`; `failed` is final.
//! * Everything shows on the [`board`]: `/readyz` (200 once ready), the
//!   terminal or the log ([`progress`]), and `STATUS=` / `READY=1`
//!   ([`notify`]).
//!
//! During the phase every check's state is latched once final: the phase
//! ends the first time every check is ready, and `READY=1` is sent once, as
//! systemd wants it. After that `/readyz` answers from the current state,
//! as kube-apiserver's does: the built-in etcd checks go on ([`LiveChecks`],
//! every second) and turn it 503 while etcd does not answer or this member
//! does not vote; it is 503 too from the moment shutdown begins. Plugin
//! checks judged the bootstrap and are not asked again.

pub mod board;
mod builtin;
pub mod kernel_modules;
mod notify;
mod plugin_check;
mod probe;
mod progress;
mod readyz;
pub mod render;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;
use url::Url;

pub use board::{Board, CheckId, Phase, State, Table, View};
pub use builtin::health_checker;
pub use kernel_modules::KernelModules;
pub use probe::{ProbeSetupError, Prober, Seen, TrustedCas};
pub use readyz::routes;
pub use render::Report;

use board::FailureCause;
use builtin::{EtcdTask, PlinthApiTask};
use notify::Notifier;
use plugin_check::{CheckPlan, Lane, PluginCheckTask};
use probe::ClientIdentity;
use progress::Progress;

use crate::error_class::ErrorClass;
use crate::journal::{Entry, Verdict};
use crate::plugin::contract::{FailurePolicy, Hook};
use crate::plugin::{CallFailure, PluginSet, parse_probe_url};
use crate::run::etcd_client::EtcdAccess;

/// Probe deadline of the built-in `plinth-api` check.
const PLINTH_API_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the phase needs from run mode.
pub struct Setup {
    /// `spec.readiness.timeout`.
    pub timeout: Duration,
    /// This controller's etcd member (or, with external etcd, the cluster).
    pub etcd: EtcdAccess,
    /// Embedded etcd: this controller has a member of its own, and
    /// `etcd-voter` checks that it votes.
    pub own_member: bool,
    /// The join API's `/livez`.
    pub plinth_api_livez: Url,
    /// The data dir's `pki/`: the CAs probes trust, the client certificates
    /// a manifest may name.
    pub pki_dir: PathBuf,
    pub plugins: Arc<PluginSet>,
    pub modules: KernelModules,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadinessError {
    #[error("readiness check {check} failed: {reason}")]
    CheckFailed { check: String, reason: String },
    #[error("plugin {plugin} failed in readiness ({what}): {reason}")]
    PluginFailed {
        plugin: String,
        what: String,
        reason: String,
    },
    #[error(
        "readiness timed out after {}s, {ready} of {total} checks ready: {not_ready}",
        timeout.as_secs()
    )]
    TimedOut {
        timeout: Duration,
        ready: usize,
        total: usize,
        /// Each check not ready, with its last state and reason.
        not_ready: String,
    },
    #[error(
        "plugin {plugin}'s readiness check {check} wants {url}, which {manifest} does not admit; \
         add it (or a prefix of it) to allow-urls there"
    )]
    UrlNotAllowed {
        plugin: String,
        check: String,
        url: String,
        manifest: PathBuf,
    },
    #[error("{manifest} names client-certificate `{certificate}`, which cannot be used: {source}")]
    ClientCertificate {
        manifest: PathBuf,
        certificate: &'static str,
        source: ProbeSetupError,
    },
    #[error("cannot set up readiness probes: {0}")]
    Setup(#[from] ProbeSetupError),
}

impl ReadinessError {
    /// A plugin's `failed` is a denial (exit 3); a check that never became
    /// ready, a component unreachable (exit 5).
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::CheckFailed { .. } => ErrorClass::Denied,
            Self::PluginFailed { .. } => ErrorClass::PluginFailed,
            Self::TimedOut { .. } => ErrorClass::Unreachable,
            Self::UrlNotAllowed { .. } | Self::ClientCertificate { .. } => ErrorClass::Invalid,
            Self::Setup(_) => ErrorClass::Internal,
        }
    }
}

/// The built-in etcd checks, still running after the phase concluded ready
/// so that `/readyz` tells the current state; dropping this stops them.
pub struct LiveChecks {
    _etcd: AbortOnDropHandle<()>,
}

/// Run the phase to its end: `Ok` once every check is ready (`READY=1`
/// sent, `/readyz` 200), with the checks that stay live, or the reason it
/// gave up. Dropping the future (shutdown) stops every check.
pub async fn run(setup: Setup, board: &Board) -> Result<LiveChecks, ReadinessError> {
    let trust = TrustedCas::of_cluster(&setup.pki_dir)?;
    let plugin_checks = plugin_checks(&setup, &trust).await?;

    let mut ids = vec![CheckId::Etcd];
    if setup.own_member {
        ids.push(CheckId::EtcdVoter);
    }
    ids.push(CheckId::PlinthApi);
    ids.extend(plugin_checks.iter().map(PlannedCheck::id));
    let mut handles = board.begin(ids).into_iter();
    let mut next = || handles.next().expect("one handle per check");

    let (facts, facts_seen) = watch::channel(None);
    let mut tasks = JoinSet::new();
    let etcd = next();
    let voter = setup.own_member.then(&mut next);
    let live = LiveChecks {
        _etcd: AbortOnDropHandle::new(tokio::spawn(
            EtcdTask {
                access: setup.etcd,
                etcd,
                voter,
                facts,
            }
            .run(),
        )),
    };
    tasks.spawn(
        PlinthApiTask {
            prober: Prober::new(&trust, None, PLINTH_API_PROBE_TIMEOUT)?,
            livez: setup.plinth_api_livez,
            handle: next(),
        }
        .run(),
    );
    for planned in plugin_checks {
        let handle = next();
        match planned {
            PlannedCheck::Probed(plan) => {
                tasks.spawn(
                    PluginCheckTask {
                        plan,
                        facts: facts_seen.clone(),
                        modules: setup.modules.clone(),
                        handle,
                    }
                    .run(),
                );
            }
            PlannedCheck::Unknown { plugin, failure } => {
                handle.observe(State::Waiting(format!(
                    "checks {failure}; failure-policy ignore: not ready"
                )));
                tracing::warn!(plugin = %plugin, "readiness checks {failure}; failure-policy ignore: not ready");
            }
        }
    }

    let outcome = watch_until_concluded(board, setup.timeout).await;
    tasks.abort_all();
    outcome.map(|()| live)
}

/// Follow the board until every check is ready, one fails, or the timeout
/// passes; show every change on the way.
async fn watch_until_concluded(board: &Board, timeout: Duration) -> Result<(), ReadinessError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut view = board.view();
    let mut progress = Progress::for_stderr();
    let mut notifier = Notifier::from_env();
    loop {
        let table = view.seen();
        progress.update(&table);
        if table.all_ready() {
            board.conclude(Phase::Ready);
            let table = board.view().snapshot();
            notifier.ready(&render::status_line(&table));
            progress.finish(&table);
            return Ok(());
        }
        if let Some((id, failure)) = table.first_failure() {
            board.conclude(Phase::GaveUp);
            progress.finish(&table);
            let reason = crate::terminal::clipped(&failure.reason, render::MAX_SHOWN_REASON);
            return Err(match failure.cause {
                FailureCause::Verdict => ReadinessError::CheckFailed {
                    check: id.to_string(),
                    reason,
                },
                FailureCause::PluginBroke => ReadinessError::PluginFailed {
                    plugin: id.plugin().unwrap_or_default().to_owned(),
                    what: id.to_string(),
                    reason,
                },
            });
        }
        notifier.status(&render::status_line(&table));
        tokio::select! {
            alive = view.changed() => if !alive {
                unreachable!("the board outlives its phase");
            },
            () = tokio::time::sleep_until(deadline) => {
                board.conclude(Phase::GaveUp);
                let table = view.seen();
                progress.finish(&table);
                return Err(timed_out(&table, timeout));
            }
        }
    }
}

fn timed_out(table: &Table, timeout: Duration) -> ReadinessError {
    let not_ready: Vec<String> = table
        .not_ready()
        .map(|check| {
            let reason = check
                .state
                .reason()
                .map(|r| {
                    format!(
                        ": {}",
                        crate::terminal::clipped(r, render::MAX_SHOWN_REASON)
                    )
                })
                .unwrap_or_default();
            format!("{} {}{reason}", check.id, check.state.word())
        })
        .collect();
    ReadinessError::TimedOut {
        timeout,
        ready: table.ready_count(),
        total: table.checks.len(),
        not_ready: not_ready.join("; "),
    }
}

/// A plugin check before its handle exists.
enum PlannedCheck {
    Probed(CheckPlan),
    /// `checks()` failed under `failure-policy = "ignore"`.
    Unknown {
        plugin: Arc<str>,
        failure: CallFailure,
    },
}

impl PlannedCheck {
    fn id(&self) -> CheckId {
        match self {
            Self::Probed(plan) => CheckId::Plugin {
                plugin: Arc::from(plan.lane.plugin().name()),
                check: plan.name.clone(),
            },
            Self::Unknown { plugin, .. } => CheckId::PluginWithoutChecks {
                plugin: Arc::clone(plugin),
            },
        }
    }
}

/// Ask every readiness plugin for its checks, all at once, and hold each
/// check's URL to the plugin's `allow-urls` before anything is fetched.
async fn plugin_checks(
    setup: &Setup,
    trust: &TrustedCas,
) -> Result<Vec<PlannedCheck>, ReadinessError> {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        plugin_check::MAX_CALLS_IN_FLIGHT,
    ));
    let lanes: Vec<Lane> = setup
        .plugins
        .all()
        .iter()
        .enumerate()
        .filter(|(_, plugin)| plugin.hooks().contains(&Hook::Readiness))
        .map(|(index, _)| Lane::new(Arc::clone(&setup.plugins), index, Arc::clone(&in_flight)))
        .collect();
    let mut asked = JoinSet::new();
    for (order, lane) in lanes.iter().enumerate() {
        let lane = lane.clone();
        asked.spawn(async move { (order, lane.checks().await) });
    }
    let mut answers: Vec<_> = asked.join_all().await;
    answers.sort_by_key(|(order, _)| *order);

    let mut planned = Vec::new();
    for ((_, answer), lane) in answers.into_iter().zip(lanes) {
        let plugin = lane.plugin();
        let checks = match answer {
            Ok(checks) => checks,
            Err(failure) if plugin.failure_policy() == FailurePolicy::Ignore => {
                planned.push(PlannedCheck::Unknown {
                    plugin: Arc::from(plugin.name()),
                    failure,
                });
                continue;
            }
            Err(failure) => {
                return Err(ReadinessError::PluginFailed {
                    plugin: plugin.name().to_owned(),
                    what: "checks".to_owned(),
                    reason: failure.to_string(),
                });
            }
        };
        let identity = plugin
            .client_certificate()
            .map(|cert| {
                ClientIdentity::read(&setup.pki_dir, cert.name()).map_err(|source| {
                    ReadinessError::ClientCertificate {
                        manifest: plugin.manifest_path(),
                        certificate: cert.name(),
                        source,
                    }
                })
            })
            .transpose()?;
        let prober = Arc::new(Prober::new(trust, identity, plugin.probe_timeout())?);
        for check in checks {
            let url = check
                .url
                .as_deref()
                .map(|text| allowed_url(plugin, &check.name, text))
                .transpose()?;
            planned.push(PlannedCheck::Probed(CheckPlan {
                lane: lane.clone(),
                name: check.name,
                url,
                interval: check.interval,
                prober: Arc::clone(&prober),
            }));
        }
    }
    Ok(planned)
}

/// `text` parsed, and admitted by the plugin's `allow-urls`.
fn allowed_url(
    plugin: &crate::plugin::Plugin,
    check: &str,
    text: &str,
) -> Result<Url, ReadinessError> {
    let refused = || ReadinessError::UrlNotAllowed {
        plugin: plugin.name().to_owned(),
        check: check.to_owned(),
        url: crate::terminal::clipped(text, 256),
        manifest: plugin.manifest_path(),
    };
    let url = parse_probe_url(text).map_err(|why| ReadinessError::PluginFailed {
        plugin: plugin.name().to_owned(),
        what: format!("check {check}"),
        reason: why,
    })?;
    if plugin.allow_urls().permits(&url) {
        Ok(url)
    } else {
        Err(refused())
    }
}

/// The journal's account of the phase: one entry per check, with how long
/// it took and how many observations were judged.
pub fn journal_entries(table: &Table, plugins: &PluginSet) -> Vec<Entry> {
    let elapsed = table.started.map(|started| started.elapsed());
    table
        .checks
        .iter()
        .map(|check| {
            let participant = match check.id.plugin() {
                Some(plugin) => plugin.to_owned(),
                None => format!("builtin:{}", check.id),
            };
            let verdict = match &check.state {
                State::Ready => Verdict::Allowed,
                State::Failed(failure) if failure.cause == FailureCause::Verdict => Verdict::Denied,
                _ => Verdict::Failed,
            };
            let mut entry = Entry::new(crate::phase::Phase::Readiness, participant, verdict)
                .took(check.took.or(elapsed).unwrap_or_default())
                .detail(serde_json::json!({
                    "check": check.id.to_string(),
                    "state": check.state.word(),
                    "reason": check.state.reason().map(|r| crate::terminal::clipped(r, render::MAX_SHOWN_REASON)),
                    "probes": check.probes,
                }));
            entry.sha256 = check
                .id
                .plugin()
                .and_then(|name| plugins.all().iter().find(|p| p.name() == name))
                .map(|plugin| plugin.sha256());
            entry
        })
        .collect()
}
