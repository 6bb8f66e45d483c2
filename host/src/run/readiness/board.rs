//! The state of every readiness check, shared by the tasks that change it
//! and everything that shows it: `/readyz`, the terminal, `STATUS=` and the
//! journal. One `watch` channel carries the whole table, so a reader always
//! sees a consistent snapshot and a writer wakes every reader at once.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Which check; also its name in `/readyz?verbose`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CheckId {
    /// A linearizable read from this controller's etcd member.
    Etcd,
    /// This controller's etcd member votes (it is no longer a learner).
    EtcdVoter,
    /// The join API answers its own `/livez`.
    PlinthApi,
    /// A check a plugin asked for: `plugin/<plugin>/<check>`.
    Plugin { plugin: Arc<str>, check: String },
    /// A plugin whose `checks()` failed under `failure-policy = "ignore"`:
    /// its checks are unknown, so it is not ready (`plugin/<plugin>`).
    PluginWithoutChecks { plugin: Arc<str> },
}

impl CheckId {
    /// Whether the check keeps running once the phase concluded ready, so
    /// that `/readyz` tells the current state: the built-in etcd checks do.
    /// A plugin judges the bootstrap once, and a join API that answers
    /// `/readyz` is its own proof of `plinth-api`.
    pub fn stays_live(&self) -> bool {
        matches!(self, Self::Etcd | Self::EtcdVoter)
    }

    /// The plugin behind the check; `None` for the built-ins.
    pub fn plugin(&self) -> Option<&str> {
        match self {
            Self::Plugin { plugin, .. } | Self::PluginWithoutChecks { plugin } => Some(plugin),
            _ => None,
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Etcd => f.write_str("etcd"),
            Self::EtcdVoter => f.write_str("etcd-voter"),
            Self::PlinthApi => f.write_str("plinth-api"),
            Self::Plugin { plugin, check } => write!(f, "plugin/{plugin}/{check}"),
            Self::PluginWithoutChecks { plugin } => write!(f, "plugin/{plugin}"),
        }
    }
}

/// Where one check stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not probed yet.
    Pending,
    /// Not ready yet; transient until the readiness timeout.
    Waiting(String),
    /// Ready; final during the phase (see [`CheckId::stays_live`]).
    Ready,
    /// Will not become ready; final, and the controller stops.
    Failed(Failure),
}

impl State {
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Ready | Self::Failed(_))
    }

    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }

    /// `pending`, `waiting`, `ready` or `failed`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Waiting(_) => "waiting",
            Self::Ready => "ready",
            Self::Failed(_) => "failed",
        }
    }

    /// The reason given, as received: not yet fit for a terminal (see
    /// `terminal::clipped`).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Waiting(reason) => Some(reason),
            Self::Failed(failure) => Some(&failure.reason),
            Self::Pending | Self::Ready => None,
        }
    }
}

/// Why a check failed for good.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub cause: FailureCause,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// The plugin answered `failed` (exit code 3).
    Verdict,
    /// The plugin trapped, timed out or answered malformed, under
    /// `failure-policy = "fail"` (exit code 4).
    PluginBroke,
}

/// One check and its history so far.
#[derive(Clone, Debug)]
pub struct CheckStatus {
    pub id: CheckId,
    pub state: State,
    /// Observations judged so far.
    pub probes: u32,
    /// From the start of the phase to the final state, once reached.
    pub took: Option<Duration>,
}

/// How the phase as a whole stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// etcd is not started yet, or the phase has not begun.
    NotStarted,
    Checking,
    /// Every check was ready: `READY=1` was sent. `/readyz` answers 200
    /// while the checks that stay live are ready.
    Ready,
    /// A check failed, or the timeout passed: the controller is stopping.
    GaveUp,
    /// Shutdown began after the phase ended or was cut short: `/readyz`
    /// answers 503 until the join API has stopped.
    Stopping,
}

/// Every check, in the order they are shown.
#[derive(Clone, Debug)]
pub struct Table {
    pub phase: Phase,
    pub started: Option<Instant>,
    pub checks: Vec<CheckStatus>,
}

impl Table {
    /// What `/readyz` answers: the phase concluded ready, every check is
    /// ready now, and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.phase == Phase::Ready && self.all_ready()
    }

    pub fn all_ready(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.state.is_ready())
    }

    pub fn ready_count(&self) -> usize {
        self.checks.iter().filter(|c| c.state.is_ready()).count()
    }

    pub fn first_failure(&self) -> Option<(&CheckId, &Failure)> {
        self.checks.iter().find_map(|c| match &c.state {
            State::Failed(failure) => Some((&c.id, failure)),
            _ => None,
        })
    }

    pub fn not_ready(&self) -> impl Iterator<Item = &CheckStatus> {
        self.checks.iter().filter(|c| !c.state.is_ready())
    }
}

/// The writing side: the phase's coordinator and, through [`CheckHandle`],
/// each check's task.
#[derive(Clone)]
pub struct Board {
    table: watch::Sender<Table>,
}

/// The reading side, for `/readyz` and whoever else shows the table.
#[derive(Clone)]
pub struct View {
    table: watch::Receiver<Table>,
}

impl Board {
    /// An empty board (phase not started) and a view of it: the join API can
    /// answer `/readyz` (503) before etcd is even started.
    pub fn new() -> (Self, View) {
        let (table, reader) = watch::channel(Table {
            phase: Phase::NotStarted,
            started: None,
            checks: Vec::new(),
        });
        (Self { table }, View { table: reader })
    }

    /// Start the phase with `checks`, all pending; one handle per check, in
    /// the same order.
    pub fn begin(&self, checks: Vec<CheckId>) -> Vec<CheckHandle> {
        let started = Instant::now();
        let count = checks.len();
        self.table.send_replace(Table {
            phase: Phase::Checking,
            started: Some(started),
            checks: checks
                .into_iter()
                .map(|id| CheckStatus {
                    id,
                    state: State::Pending,
                    probes: 0,
                    took: None,
                })
                .collect(),
        });
        (0..count)
            .map(|index| CheckHandle {
                table: self.table.clone(),
                index,
                started,
            })
            .collect()
    }

    pub fn conclude(&self, phase: Phase) {
        self.table.send_modify(|table| table.phase = phase);
    }

    /// Shutdown began: `/readyz` answers 503 from now on. A phase that gave
    /// up keeps saying so.
    pub fn stop(&self) {
        self.table.send_if_modified(|table| {
            let stopping = table.phase != Phase::GaveUp;
            if stopping {
                table.phase = Phase::Stopping;
            }
            stopping
        });
    }

    pub fn view(&self) -> View {
        View {
            table: self.table.subscribe(),
        }
    }
}

impl View {
    pub fn snapshot(&self) -> Table {
        self.table.borrow().clone()
    }

    /// Wait until the table changed since this view last looked; `false`
    /// when the board is gone.
    pub async fn changed(&mut self) -> bool {
        self.table.changed().await.is_ok()
    }

    /// The table, marking it seen for [`View::changed`].
    pub fn seen(&mut self) -> Table {
        self.table.borrow_and_update().clone()
    }
}

/// One check's pen on the board.
pub struct CheckHandle {
    table: watch::Sender<Table>,
    index: usize,
    started: Instant,
}

impl CheckHandle {
    /// Record one judged observation. Readers are woken only when the state
    /// changed. During the phase a final state is never left; once it
    /// concluded ready, a check that [stays live](CheckId::stays_live)
    /// follows what it sees, each change logged.
    pub fn observe(&self, state: State) {
        let started = self.started;
        self.table.send_if_modified(|table| {
            let live = table.phase == Phase::Ready;
            let Some(check) = table.checks.get_mut(self.index) else {
                return false;
            };
            if check.state.is_final() && !(live && check.id.stays_live()) {
                return false;
            }
            check.probes = check.probes.saturating_add(1);
            if state.is_final() && check.took.is_none() {
                check.took = Some(started.elapsed());
            }
            let changed = check.state != state;
            check.state = state;
            if live && changed {
                let line = super::render::change_line(check);
                if check.state.is_ready() {
                    tracing::info!("{line}");
                } else {
                    tracing::warn!("{line}; /readyz answers 503");
                }
            }
            changed
        });
    }

    /// How the phase as a whole stands.
    pub fn phase(&self) -> Phase {
        self.table.borrow().phase
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kube_apiserver_style() {
        let plugin = CheckId::Plugin {
            plugin: Arc::from("quorum-guard"),
            check: "voters".to_owned(),
        };
        assert_eq!(plugin.to_string(), "plugin/quorum-guard/voters");
        assert_eq!(CheckId::EtcdVoter.to_string(), "etcd-voter");
        assert_eq!(plugin.plugin(), Some("quorum-guard"));
        assert_eq!(CheckId::Etcd.plugin(), None);
    }

    #[tokio::test]
    async fn a_final_state_is_kept_and_only_changes_wake_readers() {
        let (board, mut view) = Board::new();
        let handles = board.begin(vec![CheckId::Etcd, CheckId::PlinthApi]);
        assert!(view.changed().await);
        view.seen();

        handles[0].observe(State::Waiting("no leader".into()));
        assert!(view.table.has_changed().unwrap());
        view.seen();
        handles[0].observe(State::Waiting("no leader".into()));
        assert!(
            !view.table.has_changed().unwrap(),
            "same state woke readers"
        );

        handles[0].observe(State::Ready);
        handles[0].observe(State::Waiting("late".into()));
        let table = view.seen();
        assert_eq!(table.checks[0].state, State::Ready);
        assert_eq!(table.checks[0].probes, 3);
        assert!(table.checks[0].took.is_some());
        assert!(!table.all_ready());

        handles[1].observe(State::Ready);
        assert!(view.seen().all_ready());
    }

    #[test]
    fn after_ready_the_etcd_checks_follow_what_they_see_and_the_others_stay() {
        let (board, view) = Board::new();
        let handles = board.begin(vec![CheckId::Etcd, CheckId::PlinthApi]);
        for handle in &handles {
            handle.observe(State::Ready);
        }
        board.conclude(Phase::Ready);
        assert!(view.snapshot().is_ready());

        handles[0].observe(State::Waiting("etcd does not answer".into()));
        handles[1].observe(State::Waiting("ignored".into()));
        let table = view.snapshot();
        assert!(!table.is_ready());
        assert_eq!(
            table.checks[0].state,
            State::Waiting("etcd does not answer".into())
        );
        assert_eq!(table.checks[1].state, State::Ready);

        handles[0].observe(State::Ready);
        assert!(view.snapshot().is_ready());

        board.stop();
        assert_eq!(view.snapshot().phase, Phase::Stopping);
        assert!(!view.snapshot().is_ready());
    }

    #[test]
    fn a_phase_that_gave_up_says_so_through_shutdown() {
        let (board, view) = Board::new();
        board.begin(vec![CheckId::Etcd]);
        board.conclude(Phase::GaveUp);
        board.stop();
        assert_eq!(view.snapshot().phase, Phase::GaveUp);
    }
}
