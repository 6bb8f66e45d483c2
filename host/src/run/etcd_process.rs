//! embedded etcd as a supervised child process.
//!
//! - It dies with Plinth: `PR_SET_PDEATHSIG(SIGKILL)` is set between fork
//!   and exec, and the parent pid checked after, which closes the race of a
//!   parent that died before the `prctl`. (The signal follows the *thread*
//!   that forked; etcd is spawned from a runtime worker, which lives as long
//!   as the runtime.)
//! - It is in its own process group, so a terminal's Ctrl-C reaches only
//!   Plinth, which then stops etcd in order.
//! - `NOTIFY_SOCKET` is removed from its environment: readiness is
//!   Plinth's to announce, not etcd's.
//! - Its output (zap JSON lines, at the level Plinth's log shows) goes to
//!   the log under the target `etcd`, each line bounded and stripped of
//!   control characters; the pipe is read until etcd closes it.
//! - When it exits on its own it is started again after a capped backoff,
//!   and every exit is reported as a [`SupervisorEvent`].
//! - On cancellation it gets SIGTERM, then SIGKILL after the grace period.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error_class::ErrorClass;

/// SIGTERM first; SIGKILL when etcd has not exited after this.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
const RESTART_INITIAL: Duration = Duration::from_millis(500);
const RESTART_CAP: Duration = Duration::from_secs(30);
/// A child that ran this long before dying starts the backoff over.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
const MAX_LOG_LINE: usize = 16 * 1024;
/// How long the log reader waits after a read error before reading again.
const READ_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Longest part of an etcd log line repeated in Plinth's log.
const MAX_LOGGED_CHARS: usize = 2000;

/// Who the journal says started and stopped etcd.
pub(crate) const JOURNAL_NAME: &str = "builtin:etcd-supervisor";

#[derive(Debug, thiserror::Error)]
pub enum EtcdProcessError {
    #[error(
        "cannot start etcd `{binary}`: {source}; install etcd (Debian: etcd-server) or set spec.storage.etcd.binary"
    )]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
}

impl EtcdProcessError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Spawn { .. } => ErrorClass::Invalid,
        }
    }
}

/// How this member's etcd comes to know its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// A new cluster of this one member (`--initial-cluster-state new`).
    New,
    /// Joining a cluster that has added this member (`existing`), with
    /// the `--initial-cluster` its join recorded.
    Existing { initial_cluster: String },
    /// The data dir holds the membership already; etcd reads it there.
    /// Started with `existing` and an initial cluster of itself alone,
    /// which etcd ignores when its WAL is there and which fails closed when
    /// it is not (the only peer it could ask is itself): without flags, an
    /// etcd with no WAL would make itself a new single-member cluster.
    Member,
}

/// Everything etcd is started with.
#[derive(Clone, Debug)]
pub struct EtcdLaunch {
    pub binary: PathBuf,
    pub name: String,
    /// `<data-dir>/etcd`.
    pub data_dir: PathBuf,
    /// `<data-dir>/pki`.
    pub pki_dir: PathBuf,
    pub client_url: String,
    pub peer_url: String,
    pub cluster_token: String,
    pub state: ClusterState,
    /// etcd's `--log-level`, from [`log_level_shown`].
    pub log_level: &'static str,
}

/// The most detail of etcd's that Plinth's log shows (target `etcd`:
/// warnings, or more with `-v` or `PLINTH_LOG`). etcd is started at that
/// level rather than its default `info`: a line it writes only for Plinth
/// to drop still fills the pipe, and a full pipe blocks etcd's logger and
/// the raft loop behind it.
pub fn log_level_shown() -> &'static str {
    if tracing::enabled!(target: "etcd", tracing::Level::DEBUG) {
        "debug"
    } else if tracing::enabled!(target: "etcd", tracing::Level::INFO) {
        "info"
    } else {
        "warn"
    }
}

impl EtcdLaunch {
    /// The command line (tests and the benchmark start etcd by hand with it).
    pub fn args(&self) -> Vec<OsString> {
        let pki = |rel: &str| self.pki_dir.join(rel).into_os_string();
        let mut args: Vec<OsString> = vec![
            "--name".into(),
            self.name.clone().into(),
            "--data-dir".into(),
            self.data_dir.clone().into_os_string(),
            "--listen-client-urls".into(),
            self.client_url.clone().into(),
            "--advertise-client-urls".into(),
            self.client_url.clone().into(),
            "--listen-peer-urls".into(),
            self.peer_url.clone().into(),
            "--initial-advertise-peer-urls".into(),
            self.peer_url.clone().into(),
            "--cert-file".into(),
            pki("etcd/server.crt"),
            "--key-file".into(),
            pki("etcd/server.key"),
            "--client-cert-auth".into(),
            "--trusted-ca-file".into(),
            pki("etcd/ca.crt"),
            "--peer-cert-file".into(),
            pki("etcd/peer.crt"),
            "--peer-key-file".into(),
            pki("etcd/peer.key"),
            "--peer-client-cert-auth".into(),
            "--peer-trusted-ca-file".into(),
            pki("etcd/ca.crt"),
            "--logger".into(),
            "zap".into(),
            "--log-outputs".into(),
            "stderr".into(),
            "--log-level".into(),
            self.log_level.into(),
        ];
        let alone = || format!("{}={}", self.name, self.peer_url);
        let (initial_cluster, state) = match &self.state {
            ClusterState::New => (alone(), "new"),
            ClusterState::Existing { initial_cluster } => (initial_cluster.clone(), "existing"),
            ClusterState::Member => (alone(), "existing"),
        };
        args.extend([
            "--initial-cluster".into(),
            initial_cluster.into(),
            "--initial-cluster-state".into(),
            state.into(),
            "--initial-cluster-token".into(),
            self.cluster_token.clone().into(),
        ]);
        args
    }
}

/// What the supervisor reports, for the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SupervisorEvent {
    Started {
        pid: u32,
        restart: u32,
    },
    /// etcd exited on its own; it is started again after `restart_in`.
    Exited {
        status: String,
        restart_in: Duration,
    },
    /// etcd was stopped because Plinth is stopping.
    Stopped {
        status: String,
        killed: bool,
    },
}

pub type EventSink = Arc<dyn Fn(SupervisorEvent) + Send + Sync>;

/// Run etcd until `cancel`, restarting it when it dies. Fails only when
/// the binary cannot be started the first time.
pub async fn supervise(
    launch: EtcdLaunch,
    events: EventSink,
    cancel: CancellationToken,
) -> Result<(), EtcdProcessError> {
    let mut restarts = 0u32;
    let mut delay = RESTART_INITIAL;
    loop {
        let mut child = match spawn(&launch) {
            Ok(child) => child,
            Err(error) if restarts == 0 => return Err(error),
            Err(error) => {
                tracing::error!(%error, "etcd could not be started again");
                events(SupervisorEvent::Exited {
                    status: error.to_string(),
                    restart_in: delay,
                });
                if sleep_or_cancel(delay, &cancel).await {
                    return Ok(());
                }
                delay = (delay * 2).min(RESTART_CAP);
                continue;
            }
        };
        let pid = child.id().unwrap_or_default();
        tracing::info!(pid, restart = restarts, "etcd started");
        events(SupervisorEvent::Started {
            pid,
            restart: restarts,
        });
        let started = Instant::now();
        tokio::select! {
            status = child.wait() => {
                let status = describe(status);
                if started.elapsed() >= HEALTHY_RUN {
                    delay = RESTART_INITIAL;
                }
                tracing::warn!(pid, %status, restart_in_ms = delay.as_millis() as u64, "etcd exited; starting it again");
                events(SupervisorEvent::Exited { status, restart_in: delay });
                if sleep_or_cancel(delay, &cancel).await {
                    return Ok(());
                }
                delay = (delay * 2).min(RESTART_CAP);
                restarts += 1;
            }
            () = cancel.cancelled() => {
                let (status, killed) = stop(&mut child, pid).await;
                tracing::info!(pid, %status, killed, "etcd stopped");
                events(SupervisorEvent::Stopped { status, killed });
                return Ok(());
            }
        }
    }
}

/// `true` when cancelled during the sleep.
async fn sleep_or_cancel(delay: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => false,
        () = cancel.cancelled() => true,
    }
}

fn spawn(launch: &EtcdLaunch) -> Result<Child, EtcdProcessError> {
    let mut command = Command::new(&launch.binary);
    command
        .args(launch.args())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (prctl, getppid) between fork
    // and exec.
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::other("Plinth exited while starting etcd"));
            }
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| EtcdProcessError::Spawn {
        binary: launch.binary.clone(),
        source,
    })?;
    if let Some(stdout) = child.stdout.take() {
        tokio::spawn(forward_log(stdout));
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_log(stderr));
    }
    Ok(child)
}

/// SIGTERM, wait the grace period, SIGKILL. Returns the exit status and
/// whether the kill was needed.
async fn stop(child: &mut Child, pid: u32) -> (String, bool) {
    if let Ok(pid) = libc::pid_t::try_from(pid)
        && pid > 0
    {
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(status) => (describe(status), false),
        Err(_) => {
            tracing::warn!(
                pid,
                grace_s = STOP_GRACE.as_secs(),
                "etcd ignored SIGTERM; killing it"
            );
            let _ = child.start_kill();
            (describe(child.wait().await), true)
        }
    }
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("unknown ({error})"),
    }
}

/// Forward etcd's lines to the log, at the level etcd gave them.
async fn forward_log(stream: impl AsyncRead + Unpin) {
    forward_lines(stream, log_line).await;
}

/// Hand each line of `stream` to `each`, until end of file whatever else
/// happens: etcd (Go) dies of SIGPIPE when it writes to its stdout or
/// stderr after the reader has gone, so the reader never goes first.
/// Lines are decoded lossily (etcd quotes peers' and clients' bytes in its
/// messages); one longer than [`MAX_LOG_LINE`] is dropped with a warning.
async fn forward_lines(stream: impl AsyncRead + Unpin, mut each: impl FnMut(&str)) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // Inside a line too long to forward: drop bytes up to its end.
    let mut overlong = false;
    loop {
        let room = (MAX_LOG_LINE - line.len()) as u64;
        match (&mut reader).take(room).read_until(b'\n', &mut line).await {
            Ok(0) => {
                // End of file; a read error may have left part of a line.
                if !line.is_empty() && !overlong {
                    each(&String::from_utf8_lossy(&line));
                }
                return;
            }
            // A whole line, or the last one with no newline before EOF.
            Ok(_) if line.ends_with(b"\n") || line.len() < MAX_LOG_LINE => {
                if !overlong {
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    each(&String::from_utf8_lossy(text));
                }
                overlong = false;
                line.clear();
            }
            Ok(_) => {
                if !overlong {
                    tracing::warn!(target: "etcd", "etcd wrote a line longer than {MAX_LOG_LINE} bytes; dropped");
                }
                overlong = true;
                line.clear();
            }
            Err(error) => {
                // The pipe stays open and the bytes read so far are kept;
                // the pause keeps an error that repeats from spinning a
                // runtime worker.
                tracing::warn!(target: "etcd", %error, "cannot read etcd's output; reading on");
                if line.len() == MAX_LOG_LINE {
                    overlong = true;
                    line.clear();
                }
                tokio::time::sleep(READ_ERROR_PAUSE).await;
            }
        }
    }
}

fn log_line(line: &str) {
    let (level, message) = match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(mut fields)) => {
            let level = fields
                .remove("level")
                .and_then(|l| l.as_str().map(str::to_owned))
                .unwrap_or_default();
            let message = fields
                .remove("msg")
                .and_then(|m| m.as_str().map(str::to_owned))
                .unwrap_or_default();
            fields.remove("ts");
            fields.remove("caller");
            let rest = serde_json::Value::Object(fields).to_string();
            (level, format!("{message} {rest}"))
        }
        _ => (String::new(), line.to_owned()),
    };
    let message = crate::terminal::clipped(&message, MAX_LOGGED_CHARS);
    match level.as_str() {
        "debug" => tracing::debug!(target: "etcd", "{message}"),
        "warn" => tracing::warn!(target: "etcd", "{message}"),
        "error" | "dpanic" | "panic" | "fatal" => tracing::error!(target: "etcd", "{message}"),
        _ => tracing::info!(target: "etcd", "{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A real child's stdout through [`forward_lines`], every line it hands
    /// on sent back to the test.
    fn forwarded(
        script: &str,
    ) -> (
        Child,
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sh starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, lines) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(forward_lines(stdout, move |line| {
            let _ = sender.send(line.to_owned());
        }));
        (child, reader, lines)
    }

    #[tokio::test]
    async fn a_line_that_is_not_utf8_is_forwarded_and_the_pipe_stays_open() {
        // The second line is written only after the first was forwarded: a
        // reader that had given up by then would kill sh with SIGPIPE.
        let (mut child, reader, mut lines) =
            forwarded(r"printf 'bad \377\376 bytes\r\n'; read go; printf 'after\n'");
        assert_eq!(
            lines.recv().await.as_deref(),
            Some("bad \u{FFFD}\u{FFFD} bytes")
        );
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(b"go\n").await.expect("sh reads");
        assert_eq!(lines.recv().await.as_deref(), Some("after"));
        let status = child.wait().await.expect("sh exits");
        assert!(status.success(), "sh ended with {status}");
        reader.await.expect("the reader ends at end of file");
        assert_eq!(lines.recv().await, None);
    }

    #[tokio::test]
    async fn an_overlong_line_is_dropped_and_the_next_one_forwarded() {
        let script = format!(
            "head -c {} /dev/zero | tr '\\0' x; printf '\\nnext'",
            3 * MAX_LOG_LINE
        );
        let (mut child, reader, mut lines) = forwarded(&script);
        assert!(child.wait().await.expect("sh exits").success());
        reader.await.expect("the reader ends at end of file");
        assert_eq!(lines.recv().await.as_deref(), Some("next"));
        assert_eq!(lines.recv().await, None);
    }

    #[test]
    fn etcd_logs_only_as_much_as_plinths_filter_shows() {
        for (filter, expected) in [
            ("warn,plinth=info,etcd=warn", "warn"),
            ("warn,plinth=debug,etcd=info", "info"),
            ("debug", "debug"),
        ] {
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::sink)
                .finish();
            let level = tracing::subscriber::with_default(subscriber, log_level_shown);
            assert_eq!(level, expected, "under {filter}");
        }
    }
}
