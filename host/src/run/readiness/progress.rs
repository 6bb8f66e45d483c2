//! What the operator sees while checks are not ready: on a terminal, a block
//! of one line per check redrawn in place; in a log (stderr not a terminal:
//! systemd, CI, a pipe), one line each time a check changes, as k3s logs only
//! when the error changes.

use super::board::{CheckId, State, Table};
use super::render;
use crate::console;

pub enum Progress {
    /// The live block; only when info lines are shown (not under `-q`).
    Terminal,
    /// Log lines; the state each check was last logged in.
    Log { logged: Vec<(CheckId, State)> },
}

impl Progress {
    pub fn for_stderr() -> Self {
        if console::stderr_is_terminal() && tracing::enabled!(tracing::Level::INFO) {
            Self::Terminal
        } else {
            Self::Log { logged: Vec::new() }
        }
    }

    pub fn update(&mut self, table: &Table) {
        match self {
            Self::Terminal => {
                let mut lines = vec![format!(
                    "readiness: {} of {} checks ready",
                    table.ready_count(),
                    table.checks.len()
                )];
                lines.extend(
                    table
                        .checks
                        .iter()
                        .map(|c| format!("  {}", render::check_line(c))),
                );
                console::show(&lines);
            }
            Self::Log { logged } => {
                for check in &table.checks {
                    let seen = logged.iter_mut().find(|(id, _)| *id == check.id);
                    if seen
                        .as_ref()
                        .is_some_and(|(_, state)| *state == check.state)
                    {
                        continue;
                    }
                    if check.state != State::Pending {
                        tracing::info!(check = %check.id, "{}", render::change_line(check));
                    }
                    match seen {
                        Some((_, state)) => *state = check.state.clone(),
                        None => logged.push((check.id.clone(), check.state.clone())),
                    }
                }
            }
        }
    }

    /// The phase is over: the block goes, and every check's outcome (how
    /// long it took, how many probes) stays in the log, once.
    pub fn finish(&mut self, table: &Table) {
        match self {
            Self::Terminal => {
                console::clear();
                for check in &table.checks {
                    tracing::info!(check = %check.id, "{}", render::change_line(check));
                }
            }
            Self::Log { .. } => self.update(table),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Self::Terminal = self {
            console::clear();
        }
    }
}
