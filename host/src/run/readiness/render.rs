//! How the table of checks is shown: `/readyz` (kube-apiserver's format),
//! its JSON form for `plinth status`, systemd's `STATUS=`, and the lines of
//! the terminal and the log.
//!
//! Reasons come from plugins and from servers' error messages, so they are
//! hostile text: every rendering passes them through
//! [`clipped`](crate::terminal::clipped), which escapes control characters
//! (no terminal escape sequence, no newline that could add a `READY=1` to an
//! sd_notify datagram) and bounds the length.

use std::fmt::Write;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::board::{CheckStatus, Phase, State, Table};
use crate::terminal::clipped;

/// Longest reason shown anywhere, in characters.
pub const MAX_SHOWN_REASON: usize = 200;

/// A check as `state[: reason]`, reason made safe.
fn state_text(state: &State) -> String {
    match state.reason() {
        Some(reason) => format!("{}: {}", state.word(), clipped(reason, MAX_SHOWN_REASON)),
        None => state.word().to_owned(),
    }
}

/// The `/readyz` answer: status code and body, from the current state as
/// kube-apiserver's is ([`Table::is_ready`]): 200 once the phase concluded
/// ready, so that `/readyz` turns 200 together with `READY=1`; 503 again
/// while a check that stays live (etcd) is not ready, and from the moment
/// shutdown begins. Without `verbose`, a ready controller answers `ok` and
/// a failing one lists its checks with reasons withheld, as kube-apiserver
/// does.
pub fn readyz(table: &Table, verbose: bool) -> (u16, String) {
    let ready = table.is_ready();
    let code = if ready { 200 } else { 503 };
    if ready && !verbose {
        return (code, "ok\n".to_owned());
    }
    let mut body = String::new();
    if table.checks.is_empty() {
        body.push_str("[-]readiness pending: etcd has not started\n");
    }
    if table.phase == Phase::Stopping {
        body.push_str(if verbose {
            "[-]shutdown failed: this controller is stopping\n"
        } else {
            "[-]shutdown failed: reason withheld\n"
        });
    }
    for check in &table.checks {
        match (&check.state, verbose) {
            (State::Ready, _) => writeln!(body, "[+]{} ok", check.id),
            (state, true) => writeln!(body, "[-]{} {}", check.id, state_text(state)),
            (state, false) => writeln!(body, "[-]{} {}: reason withheld", check.id, state.word()),
        }
        .expect("writing to a String");
    }
    body.push_str(if ready {
        "readyz check passed\n"
    } else {
        "readyz check failed\n"
    });
    (code, body)
}

/// The JSON form of `/readyz?verbose`, asked for with
/// `Accept: application/json`; what `plinth status --output json` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub ready: bool,
    /// `not-started`, `checking`, `ready` or `gave-up`.
    pub phase: String,
    pub checks: Vec<CheckReport>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub name: String,
    /// `pending`, `waiting`, `ready` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub probes: u32,
    /// Time from the start of the phase to ready or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
}

impl Report {
    pub fn of(table: &Table) -> Self {
        Self {
            ready: table.is_ready(),
            phase: match table.phase {
                Phase::NotStarted => "not-started",
                Phase::Checking => "checking",
                Phase::Ready => "ready",
                Phase::GaveUp => "gave-up",
                Phase::Stopping => "stopping",
            }
            .to_owned(),
            checks: table
                .checks
                .iter()
                .map(|check| CheckReport {
                    name: check.id.to_string(),
                    state: check.state.word().to_owned(),
                    reason: check
                        .state
                        .reason()
                        .map(|reason| clipped(reason, MAX_SHOWN_REASON)),
                    probes: check.probes,
                    took_ms: check.took.map(millis),
                })
                .collect(),
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// What `STATUS=` tells systemd while checking.
pub fn status_line(table: &Table) -> String {
    if table.phase == Phase::Ready {
        return format!("Ready: {} readiness checks passed", table.checks.len());
    }
    let mut line = format!(
        "Readiness: {} of {} checks ready",
        table.ready_count(),
        table.checks.len()
    );
    let mut separator = "; not ready: ";
    for check in table.not_ready() {
        let _ = write!(line, "{separator}{} {}", check.id, state_text(&check.state));
        separator = ", ";
        if line.len() > 1024 {
            line.push_str(", …");
            break;
        }
    }
    line
}

/// One line per check, for the terminal's live block: `[+]`/`[-]`, the name,
/// and the state with its reason or, once final, how long it took.
pub fn check_line(check: &CheckStatus) -> String {
    let mark = if check.state.is_ready() { '+' } else { '-' };
    let took = match check.took {
        Some(took) => format!(" in {} ({})", seconds(took), probes(check.probes)),
        None => String::new(),
    };
    format!("[{mark}]{} {}{took}", check.id, state_text(&check.state))
}

/// A log line for a check that just changed.
pub fn change_line(check: &CheckStatus) -> String {
    format!("readiness: {}", check_line(check))
}

pub fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

pub fn probes(count: u32) -> String {
    match count {
        1 => "1 probe".to_owned(),
        n => format!("{n} probes"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::run::readiness::board::{CheckId, Failure, FailureCause};

    fn table(phase: Phase, states: Vec<(CheckId, State)>) -> Table {
        Table {
            phase,
            started: None,
            checks: states
                .into_iter()
                .map(|(id, state)| CheckStatus {
                    id,
                    state,
                    probes: 2,
                    took: None,
                })
                .collect(),
        }
    }

    fn guard() -> CheckId {
        CheckId::Plugin {
            plugin: Arc::from("quorum-guard"),
            check: "voters".to_owned(),
        }
    }

    #[test]
    fn verbose_readyz_lists_every_check_as_kube_apiserver_does() {
        let waiting = table(
            Phase::Checking,
            vec![
                (CheckId::Etcd, State::Ready),
                (guard(), State::Waiting("2 of 3 voters".to_owned())),
                (CheckId::PlinthApi, State::Pending),
            ],
        );
        let (code, body) = readyz(&waiting, true);
        assert_eq!(code, 503);
        assert_eq!(
            body,
            "[+]etcd ok\n[-]plugin/quorum-guard/voters waiting: 2 of 3 voters\n\
             [-]plinth-api pending\nreadyz check failed\n"
        );
        let (_, terse) = readyz(&waiting, false);
        assert!(terse.contains("[-]plugin/quorum-guard/voters waiting: reason withheld"));
        assert!(!terse.contains("voters waiting: 2"));
    }

    #[test]
    fn readyz_is_200_only_once_the_phase_concluded_ready() {
        let all_ready = |phase| table(phase, vec![(CheckId::Etcd, State::Ready)]);
        assert_eq!(readyz(&all_ready(Phase::Checking), false).0, 503);
        assert_eq!(
            readyz(&all_ready(Phase::Ready), false),
            (200, "ok\n".to_owned())
        );
        assert_eq!(
            readyz(&all_ready(Phase::Ready), true),
            (200, "[+]etcd ok\nreadyz check passed\n".to_owned())
        );
        let (code, body) = readyz(&table(Phase::NotStarted, vec![]), true);
        assert_eq!(code, 503);
        assert!(body.starts_with("[-]readiness pending"), "{body}");
    }

    #[test]
    fn after_ready_readyz_tells_the_current_state_and_503_from_shutdown() {
        let etcd_down = table(
            Phase::Ready,
            vec![
                (
                    CheckId::Etcd,
                    State::Waiting("etcd does not answer".to_owned()),
                ),
                (CheckId::PlinthApi, State::Ready),
            ],
        );
        assert_eq!(
            readyz(&etcd_down, true),
            (
                503,
                "[-]etcd waiting: etcd does not answer\n[+]plinth-api ok\nreadyz check failed\n"
                    .to_owned()
            )
        );
        assert!(!Report::of(&etcd_down).ready);

        let stopping = table(Phase::Stopping, vec![(CheckId::Etcd, State::Ready)]);
        assert_eq!(
            readyz(&stopping, false),
            (
                503,
                "[-]shutdown failed: reason withheld\n[+]etcd ok\nreadyz check failed\n".to_owned()
            )
        );
        assert!(
            readyz(&stopping, true)
                .1
                .starts_with("[-]shutdown failed: this controller is stopping\n")
        );
        assert_eq!(Report::of(&stopping).phase, "stopping");
    }

    #[test]
    fn hostile_reasons_cannot_break_lines_or_drive_the_terminal() {
        let reason = "x\nREADY=1\r\u{1b}[2J\u{202e}evil";
        let t = table(
            Phase::Checking,
            vec![(
                guard(),
                State::Failed(Failure {
                    reason: reason.to_owned(),
                    cause: FailureCause::Verdict,
                }),
            )],
        );
        for text in [
            readyz(&t, true).1,
            status_line(&t),
            check_line(&t.checks[0]),
        ] {
            assert!(!text.contains("\nREADY=1"), "{text:?}");
            assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
            assert!(!text.contains('\u{202e}'), "{text:?}");
        }
    }

    #[test]
    fn the_status_line_names_what_is_not_ready() {
        let t = table(
            Phase::Checking,
            vec![
                (CheckId::Etcd, State::Ready),
                (CheckId::EtcdVoter, State::Waiting("learner".to_owned())),
            ],
        );
        assert_eq!(
            status_line(&t),
            "Readiness: 1 of 2 checks ready; not ready: etcd-voter waiting: learner"
        );
        let report = Report::of(&t);
        assert_eq!(report.checks[1].reason.as_deref(), Some("learner"));
        assert!(!report.ready);
    }
}
