//! The audit log of a bootstrap: one JSON line per hook call or phase event
//! in `<data-dir>/journal/bootstrap.jsonl`.
//!
//! A failed bootstrap must be diagnosable from this file alone, so every
//! entry says what ran, on which input (a digest, never the input itself:
//! inputs may be large, and no entry may ever carry key material), what it
//! answered and how long it took.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

mod digest;
pub use digest::digest;

/// Where the journal lives, relative to the data dir.
pub const JOURNAL_PATH: &str = "journal/bootstrap.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal {path}: {source}; check that the data dir is writable")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
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

/// One line of the journal.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub phase: &'static str,
    /// `builtin:<name>` for built-ins, else the plugin's file stem.
    pub plugin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
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
}

impl Entry {
    pub fn new(phase: &'static str, plugin: impl Into<String>, verdict: Verdict) -> Self {
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

/// An open journal. Each entry is one `write` of one line in append mode,
/// so a crash leaves at most the last line incomplete.
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    entries: Vec<Entry>,
}

impl Journal {
    /// Open (creating) the journal under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, JournalError> {
        let path = data_dir.join(JOURNAL_PATH);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let parent = path.parent().expect("the journal path has a parent");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        Ok(Self {
            path,
            file: Some(file),
            entries: Vec::new(),
        })
    }

    /// A journal that keeps entries in memory only (`airgap list-images`,
    /// which must not write to any data dir).
    pub fn in_memory() -> Self {
        Self {
            path: PathBuf::new(),
            file: None,
            entries: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn record(&mut self, entry: Entry) -> Result<(), JournalError> {
        if let Some(file) = &mut self.file {
            let mut line = serde_json::to_vec(&entry).expect("journal entries serialise");
            line.push(b'\n');
            file.write_all(&line).map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Everything recorded through this handle, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Make what was written durable; called at the end of a run.
    pub fn sync(&self) -> Result<(), JournalError> {
        match &self.file {
            Some(file) => file.sync_data().map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}
