//! The audit log of a bootstrap: one JSON line per hook call or phase event
//! in `<data-dir>/journal/bootstrap.jsonl`.
//!
//! A failed bootstrap must be diagnosable from this file alone, so every
//! entry says what ran, on which input (a digest, never the input itself:
//! inputs may be large, and no entry may ever carry key material), what it
//! answered and how long it took.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::data_dir::{DataDir, DataDirView, Tightened};
use crate::error_class::ErrorClass;
use crate::phase::Phase;
use crate::sha256::Sha256;

mod digest;
pub use digest::digest;

/// Who wrote an entry about the bootstrap as a whole.
pub(crate) const HOST: &str = "plinth";
/// Who wrote an entry about the data dir's own state.
const DATA_DIR: &str = "builtin:data-dir";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal {path}; check that the data dir is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the thread that writes the journal")]
    Writer(#[source] std::io::Error),
}

impl JournalError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Internal
    }
}

/// What a participant's answer did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A mutating hook returned its next value, or a validating hook allowed.
    Allowed,
    /// Denied or refused.
    Denied,
    /// Trapped, timed out or answered malformed, under fail-closed.
    Failed,
    /// Failed, but the manifest says `failure-policy = "ignore"`.
    FailureIgnored,
    /// A phase event rather than a hook call (e.g. a certificate issued).
    Event,
}

/// Log lines a plugin wrote past its per-call budget, and were dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogDropped {
    pub lines: u64,
    pub bytes: u64,
}

/// One line of the journal.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub phase: Phase,
    /// `builtin:<name>` for built-ins, else the plugin's file stem.
    pub plugin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<serde_json::Value>,
    pub duration_us: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trap: Option<String>,
    /// Hook-specific detail: the proposal chosen, the image count, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
    /// Log lines the plugin wrote past its per-call budget, dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_dropped: Option<LogDropped>,
}

impl Entry {
    pub fn new(phase: Phase, plugin: impl Into<String>, verdict: Verdict) -> Self {
        Self {
            time: OffsetDateTime::now_utc(),
            phase,
            plugin: plugin.into(),
            sha256: None,
            input_digest: None,
            verdict,
            findings: Vec::new(),
            duration_us: 0,
            trap: None,
            detail: None,
            log_dropped: None,
        }
    }

    /// A secret of the data dir that was readable by others and has been
    /// made private (`DataDir::lock`).
    pub fn tightened(file: &Tightened) -> Self {
        Entry::new(Phase::Bootstrap, DATA_DIR, Verdict::Event).detail(serde_json::json!({
            "tightened": file.path,
            "old_mode": format!("{:04o}", file.old_mode),
            "new_mode": format!("{:04o}", file.old_mode & 0o700),
        }))
    }

    /// The last line of a failed bootstrap: why it stopped, so the journal
    /// alone explains the run.
    pub fn failure(reason: String) -> Self {
        Self {
            trap: Some(reason),
            ..Self::new(Phase::Bootstrap, HOST, Verdict::Failed)
        }
    }

    pub fn took(mut self, duration: Duration) -> Self {
        self.duration_us = duration.as_micros();
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// A handle on the journal: cheap to clone, and safe to write through from
/// several threads or tasks at once. Each entry is one `write` of one line,
/// made under a mutex in append mode, so entries never interleave and a
/// crash leaves at most the last line incomplete. Nothing is kept in memory.
#[derive(Clone, Debug)]
pub struct Journal {
    /// `None` for a journal that writes nowhere.
    file: Option<Arc<JournalFile>>,
}

#[derive(Debug)]
struct JournalFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl JournalFile {
    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The file, even if a writer panicked while holding it: every write is
    /// a whole line or nothing worse than a torn last line.
    fn lock(&self) -> std::sync::MutexGuard<'_, File> {
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Journal {
    /// Open (creating) the journal of a data dir this process holds.
    pub fn open(data_dir: &DataDir) -> Result<Self, JournalError> {
        let path = data_dir.journal_file();
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        // Never through a link: a `journal` or `bootstrap.jsonl` planted as
        // one would have Plinth append to a file of someone else's choosing.
        let file = crate::data_dir::beneath::open_append(
            data_dir.root(),
            std::path::Path::new(DataDirView::JOURNAL),
            0o600,
        )
        .map_err(io)?;
        let journal = Self {
            file: Some(Arc::new(JournalFile {
                path,
                file: Mutex::new(file),
            })),
        };
        if let Ok(mut slot) = PANIC_JOURNAL.lock() {
            *slot = Some(journal.clone());
        }
        Ok(journal)
    }

    /// A journal that writes nowhere: `airgap list-images` must not touch
    /// any data dir.
    pub fn discard() -> Self {
        Self { file: None }
    }

    pub fn record(&self, entry: Entry) -> Result<(), JournalError> {
        let Some(journal) = &self.file else {
            return Ok(());
        };
        let mut line = serde_json::to_vec(&entry).expect("journal entries serialise");
        line.push(b'\n');
        journal
            .lock()
            .write_all(&line)
            .map_err(|source| journal.io(source))
    }

    pub(crate) fn record_all(
        &self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(), JournalError> {
        entries.into_iter().try_for_each(|entry| self.record(entry))
    }

    /// Make what was written durable; called at the end of a run.
    pub fn sync(&self) -> Result<(), JournalError> {
        match &self.file {
            Some(journal) => journal
                .lock()
                .sync_data()
                .map_err(|source| journal.io(source)),
            None => Ok(()),
        }
    }
}

/// Entries from async tasks: run mode's supervisor, join and readiness
/// tasks hand entries to a queue, and a thread of its own writes and syncs
/// each one, so that a slow disk never stalls a runtime worker (of which
/// there are two). This is where async code records entries: cheap to
/// clone, never blocks.
#[derive(Clone, Debug)]
pub(crate) struct JournalQueue {
    sender: mpsc::Sender<Entry>,
}

/// The thread draining a [`JournalQueue`].
#[derive(Debug)]
pub(crate) struct JournalWriter {
    thread: JoinHandle<()>,
}

impl Journal {
    /// A queue onto this journal and the thread that drains it. The thread
    /// ends once every clone of the queue is dropped; [`JournalWriter::finish`]
    /// waits for that.
    pub(crate) fn queue(&self) -> Result<(JournalQueue, JournalWriter), JournalError> {
        let (sender, entries) = mpsc::channel::<Entry>();
        let journal = self.clone();
        let thread = std::thread::Builder::new()
            .name("plinth-journal".to_owned())
            .spawn(move || {
                for entry in entries {
                    if let Err(error) = journal.record(entry).and_then(|()| journal.sync()) {
                        tracing::warn!(
                            error = %crate::terminal::error_line(&error),
                            "cannot write the journal"
                        );
                    }
                }
            })
            .map_err(JournalError::Writer)?;
        Ok((JournalQueue { sender }, JournalWriter { thread }))
    }
}

impl JournalQueue {
    pub(crate) fn record(&self, entry: Entry) {
        if self.sender.send(entry).is_err() {
            tracing::warn!("the journal's writer has stopped; an entry is lost");
        }
    }
}

impl JournalWriter {
    /// Wait until every queued entry is written and synced. Call it once no
    /// clone of the queue is left, or it waits for ever.
    pub(crate) fn finish(self) {
        if self.thread.join().is_err() {
            tracing::warn!("the journal's writer panicked; its last entries may be lost");
        }
    }
}

/// The journal a panic is recorded in: the one this process opened.
static PANIC_JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

/// Append the failure line of a panic to the journal this process opened,
/// if any: the last resort of `main`'s panic hook. Never waits for a lock
/// (the panicking thread may hold it), so it may record nothing.
pub fn record_panic(message: &str) {
    let Ok(journal) = PANIC_JOURNAL.try_lock() else {
        return;
    };
    let Some(file) = journal.as_ref().and_then(|journal| journal.file.as_ref()) else {
        return;
    };
    let entry = Entry::failure(format!(
        "internal error (a bug in Plinth): panicked: {message}"
    ));
    let Ok(mut line) = serde_json::to_vec(&entry) else {
        return;
    };
    line.push(b'\n');
    if let Ok(mut file) = file.file.try_lock() {
        let _ = file.write_all(&line).and_then(|()| file.sync_data());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

    #[test]
    fn entries_written_from_many_threads_are_whole_lines() {
        assert_send_sync_clone::<Journal>();
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::lock(dir.path()).unwrap();
        let journal = Journal::open(&data_dir).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let journal = journal.clone();
                scope.spawn(move || {
                    for n in 0..50 {
                        let entry = Entry::new(Phase::Commit, format!("t{thread}"), Verdict::Event)
                            .detail(serde_json::json!({ "n": n, "pad": "x".repeat(4096) }));
                        journal.record(entry).unwrap();
                    }
                });
            }
        });
        journal.sync().unwrap();
        let text = std::fs::read_to_string(data_dir.journal_file()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("a whole JSON line"))
            .collect();
        assert_eq!(lines.len(), 200);
    }

    #[test]
    fn entries_queued_from_many_threads_are_all_written_by_finish() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDir::lock(dir.path()).unwrap();
        let journal = Journal::open(&data_dir).unwrap();
        let (queue, writer) = journal.queue().unwrap();
        std::thread::scope(|scope| {
            for thread in 0..3 {
                let queue = queue.clone();
                scope.spawn(move || {
                    for n in 0..20 {
                        queue.record(
                            Entry::new(Phase::Etcd, format!("t{thread}"), Verdict::Event)
                                .detail(serde_json::json!({ "n": n })),
                        );
                    }
                });
            }
        });
        drop(queue);
        writer.finish();
        let text = std::fs::read_to_string(data_dir.journal_file()).unwrap();
        assert_eq!(text.lines().count(), 60);
    }
}
