//! Crash-safe staging area for files destined for the data dir.
//!
//! A bootstrap phase never writes into the data dir directly: it writes every
//! new or changed file into a [`Stage`] at `<data-dir>/.stage/files/<rel>`.
//! [`Stage::commit`] publishes them:
//!
//! 1. every staged file and directory is fsynced, all at once (see
//!    [`fsync_together`]);
//! 2. a commit record (`.stage/commit`, JSON list of relative paths) is
//!    written to a temporary name, fsynced, and renamed into place — from
//!    this instant the commit is decided;
//! 3. each staged file is renamed to `<data-dir>/<rel>` (parent directories
//!    are created `0700`), and every affected directory is fsynced;
//! 4. `<data-dir>/.complete` is written (temporary name, fsync, rename,
//!    fsync of the data dir) once everything is published;
//! 5. the commit record and the stage directory are removed.
//!
//! [`Stage::open`] recovers from a crash at any point: a stage holding a
//! commit record is rolled forward (steps 3–5, idempotent: a path whose staged
//! copy is gone but whose destination exists counts as published); a stage
//! without one is deleted. So after a `kill -9` at any moment the data dir is
//! either as it was or complete once the next `Stage::open` returns.
//!
//! The stage directory is created lazily by the first [`Stage::write`]; an
//! empty stage leaves no trace in the data dir, and committing it only
//! writes `.complete` when that is missing.
//!
//! Every file and directory is reached through [`beneath`]: a link planted
//! as `.stage`, as a staged file or as a destination's directory is never
//! followed, and files are created afresh (`O_EXCL`), never written
//! through a name someone else made.
//!
//! A stage is opened from a [`DataDir`], whose lock keeps any other process
//! from recovering, staging or committing into the same data dir meanwhile.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data_dir::{DataDir, DataDirView, beneath};
use crate::error_class::ErrorClass;
use crate::journal::{Entry, Verdict};
use crate::phase::{Phase, Summarize};

/// Who the journal says published the files.
const JOURNAL_NAME: &str = "builtin:stage";
/// Sub-directory of the stage holding the staged files.
const FILES_DIR: &str = "files";
/// The commit record, inside the stage directory.
const COMMIT_RECORD: &str = "commit";
/// Temporary name of the commit record while it is written.
const COMMIT_RECORD_TMP: &str = "commit.tmp";
/// Content of the completion marker.
const COMPLETE_CONTENT: &[u8] = b"plinth: bootstrap files complete\n";
/// The largest file the stage compares or a commit record may be: far
/// above anything a bootstrap writes.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Errors of the staging area. Each names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error(
        "staging: cannot {action} {path}; check that the data dir is writable by this user and the disk is not full"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "staging: refusing path {path}: staged paths must be relative to the data dir, without `..` and outside {}",
        DataDirView::STAGE
    )]
    InvalidPath { path: PathBuf },
    #[error(
        "staging: commit record {path} is unreadable; the commit it describes cannot be finished — inspect the data dir, then remove {} to retry from scratch",
        DataDirView::STAGE
    )]
    BadRecord {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "staging: commit record {path} has version {version}, which this Plinth does not know; a newer Plinth began this commit — finish it with that one, or remove {} to retry from scratch",
        DataDirView::STAGE
    )]
    UnknownRecordVersion { path: PathBuf, version: u32 },
    #[error(
        "staging: commit record lists {path} but neither its staged copy nor its destination exists; the stage was tampered with — inspect the data dir, then remove {} to retry",
        DataDirView::STAGE
    )]
    MissingStagedFile { path: PathBuf },
}

impl StageError {
    /// A stage in a state Plinth did not leave it in is not the user's
    /// input either: every staging failure is internal.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Internal
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StageError + 'a {
    move |source| StageError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What a commit published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub files: usize,
}

impl Published {
    /// The journal line of the commit.
    pub(crate) fn journal_entry(&self) -> Entry {
        Entry::new(Phase::Commit, JOURNAL_NAME, Verdict::Event)
            .detail(serde_json::json!({ "files": self.files }))
    }
}

impl Summarize for Published {
    fn summary(&self) -> String {
        format!("{} file(s) published", self.files)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct CommitRecord {
    version: u32,
    files: Vec<PathBuf>,
}

/// A staging area at `<data-dir>/.stage`. See the module docs.
#[derive(Debug)]
pub struct Stage<'a> {
    data_dir: &'a DataDir,
    /// Relative paths staged so far, in the order first written.
    staged: Vec<PathBuf>,
    seen: BTreeSet<PathBuf>,
}

impl<'a> Stage<'a> {
    /// Recover from an earlier crash: a stage with a complete commit record is
    /// rolled forward (its remaining files renamed into place), one without
    /// is deleted. Then returns an empty stage.
    pub fn open(data_dir: &'a DataDir) -> Result<Self, StageError> {
        let stage = Stage {
            data_dir,
            staged: Vec::new(),
            seen: BTreeSet::new(),
        };
        let root = stage.data_dir.root();
        let stage_dir = stage.stage_dir();
        if stage.exists(Path::new(DataDirView::STAGE))? {
            let record_rel = Path::new(DataDirView::STAGE).join(COMMIT_RECORD);
            if stage.exists(&record_rel)? {
                let record = read_record(root, &record_rel)?;
                tracing::info!(
                    files = record.files.len(),
                    "rolling forward an interrupted commit"
                );
                stage.publish(&record.files)?;
                stage.finish()?;
            } else {
                tracing::info!(path = %stage_dir.display(), "discarding an uncommitted stage");
                remove_dir_all(&stage_dir)?;
                fsync_rel(root, Path::new(""))?;
            }
        }
        Ok(stage)
    }

    /// The data dir this stage publishes into.
    pub fn data_dir(&self) -> &DataDirView {
        self.data_dir
    }

    /// Write a file destined for `<data-dir>/<rel>` with that mode (creating
    /// parent dirs with 0700); it is made durable before the commit is
    /// decided. Writing the same path again replaces the staged content.
    pub fn write(
        &mut self,
        rel: impl AsRef<Path>,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), StageError> {
        let rel = rel.as_ref();
        check_rel(rel)?;
        create_file(self.data_dir.root(), &files_dir().join(rel), bytes, mode)?;
        if self.seen.insert(rel.to_path_buf()) {
            self.staged.push(rel.to_path_buf());
        }
        Ok(())
    }

    /// The bytes staged for `rel`, if it was staged (the PKI phase reads a
    /// joiner's staged cluster CAs through this).
    pub(crate) fn read_staged(&self, rel: &Path) -> Result<Option<Vec<u8>>, StageError> {
        if !self.seen.contains(rel) {
            return Ok(None);
        }
        let staged = files_dir().join(rel);
        let root = self.data_dir.root();
        let path = root.join(&staged);
        beneath::read(root, &staged, MAX_FILE_BYTES)
            .map_err(io_err("read", &path))?
            .ok_or_else(|| io_err("read", &path)(io::ErrorKind::NotFound.into()))
            .map(Some)
    }

    /// Relative paths staged so far, in the order first written.
    pub fn staged(&self) -> impl Iterator<Item = &Path> {
        self.staged.iter().map(PathBuf::as_path)
    }

    /// Stage `bytes` for `rel` unless the data dir already holds exactly
    /// them, so a re-run changes no byte and no modification time.
    pub(crate) fn write_if_changed(
        &mut self,
        rel: &str,
        bytes: &[u8],
        mode: u32,
    ) -> Result<(), StageError> {
        let current = beneath::read(self.data_dir.root(), Path::new(rel), MAX_FILE_BYTES)
            .ok()
            .flatten();
        if current.as_deref() == Some(bytes) {
            return Ok(());
        }
        self.write(rel, bytes, mode)
    }

    /// Publish: write and fsync a commit record, rename every staged file into
    /// place, fsync each affected directory, write `<data-dir>/.complete`
    /// (fsynced), then remove the record and the stage dir.
    pub fn commit(self) -> Result<Published, StageError> {
        let published = Published {
            files: self.staged.len(),
        };
        if self.staged.is_empty() {
            // Nothing to publish: at most the marker is missing (a restore
            // that skipped dotfiles), and the files it vouches for are all
            // there.
            if !self.exists(Path::new(DataDirView::COMPLETE_MARKER))? {
                self.finish()?;
            }
            return Ok(published);
        }
        self.write_record()?;
        self.publish(&self.staged)?;
        self.finish()?;
        Ok(published)
    }

    /// Throw the staged files away after a failure. Failing to is only
    /// logged: the next [`Stage::open`] removes an uncommitted stage anyway.
    pub(crate) fn abandon(self) {
        if let Err(error) = self.discard() {
            tracing::error!("could not remove the stage after a failure: {error}");
        }
    }

    /// Throw the staged files away.
    pub fn discard(self) -> Result<(), StageError> {
        if self.exists(Path::new(DataDirView::STAGE))? {
            remove_dir_all(&self.stage_dir())?;
            fsync_rel(self.data_dir.root(), Path::new(""))?;
        }
        Ok(())
    }

    /// Test hook: write the commit record and publish only the first `n`
    /// files, then stop as if the process had been killed.
    #[doc(hidden)]
    pub fn commit_partially(self, n: usize) -> Result<(), StageError> {
        self.write_record()?;
        let n = n.min(self.staged.len());
        self.publish(&self.staged[..n])
    }

    fn stage_dir(&self) -> PathBuf {
        self.data_dir.stage_dir()
    }

    /// Whether anything, a link included, is at `rel`.
    fn exists(&self, rel: &Path) -> Result<bool, StageError> {
        beneath::exists(self.data_dir.root(), rel)
            .map_err(io_err("inspect", &self.data_dir.path(rel)))
    }

    /// Make the staged tree durable, then decide the commit by renaming the
    /// fsynced record into place.
    fn write_record(&self) -> Result<(), StageError> {
        let root = self.data_dir.root();
        let stage_rel = Path::new(DataDirView::STAGE);
        // Staged files and their directory entries must be durable before
        // the record makes the commit decided.
        let files = self.staged.iter().map(|rel| files_dir().join(rel));
        fsync_together(
            root,
            files.chain(directories_of(&files_dir(), &self.staged)),
        )?;
        let record = CommitRecord {
            version: 1,
            files: self.staged.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&record).expect("a commit record serialises");
        write_durably(
            root,
            &stage_rel.join(COMMIT_RECORD_TMP),
            &stage_rel.join(COMMIT_RECORD),
            &bytes,
            0o600,
        )?;
        // The stage dir entry must survive in the data dir, and the data dir
        // (perhaps created just now) in its parent.
        fsync_rel(root, Path::new(""))?;
        match root.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io_err("fsync directory", parent)),
            _ => Ok(()),
        }
    }

    /// Rename each staged file into place (idempotent), then make the
    /// renames durable.
    fn publish(&self, files: &[PathBuf]) -> Result<(), StageError> {
        let root = self.data_dir.root();
        for rel in files {
            check_rel(rel)?;
            let from = files_dir().join(rel);
            if self.exists(&from)? {
                beneath::rename(root, &from, rel)
                    .map_err(io_err("rename into place", &self.data_dir.path(rel)))?;
            } else if !self.exists(rel)? {
                return Err(StageError::MissingStagedFile {
                    path: self.data_dir.path(rel),
                });
            }
            // Else it was already published before the crash.
        }
        // The new entries, and any directory created for them, must survive
        // a power loss before `.complete` claims they are there.
        fsync_together(root, directories_of(Path::new(""), files))
    }

    /// Write the completion marker, then remove the record (if any) and
    /// the stage.
    fn finish(&self) -> Result<(), StageError> {
        let root = self.data_dir.root();
        let stage_rel = Path::new(DataDirView::STAGE);
        write_durably(
            root,
            &stage_rel.join("complete.tmp"),
            Path::new(DataDirView::COMPLETE_MARKER),
            COMPLETE_CONTENT,
            0o644,
        )?;
        let record = self.stage_dir().join(COMMIT_RECORD);
        match std::fs::remove_file(&record) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &record)(e));
            }
            _ => {}
        }
        fsync_rel(root, stage_rel)?;
        remove_dir_all(&self.stage_dir())?;
        fsync_rel(root, Path::new(""))
    }
}

/// `.stage/files`, relative to the data dir.
fn files_dir() -> PathBuf {
    Path::new(DataDirView::STAGE).join(FILES_DIR)
}

fn read_record(root: &Path, rel: &Path) -> Result<CommitRecord, StageError> {
    let path = &root.join(rel);
    let bytes = beneath::read(root, rel, MAX_FILE_BYTES)
        .map_err(io_err("read", path))?
        .ok_or_else(|| io_err("read", path)(io::ErrorKind::NotFound.into()))?;
    let record: CommitRecord =
        serde_json::from_slice(&bytes).map_err(|source| StageError::BadRecord {
            path: path.to_path_buf(),
            source,
        })?;
    if record.version != 1 {
        return Err(StageError::UnknownRecordVersion {
            path: path.to_path_buf(),
            version: record.version,
        });
    }
    Ok(record)
}

/// A staged path must be a plain relative path that stays inside the data
/// dir and does not touch the stage or the completion marker.
fn check_rel(rel: &Path) -> Result<(), StageError> {
    let mut components = rel.components();
    let first_ok = match components.next() {
        Some(Component::Normal(first)) => {
            first != DataDirView::STAGE && first != DataDirView::COMPLETE_MARKER
        }
        _ => false,
    };
    if first_ok && components.all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(StageError::InvalidPath {
            path: rel.to_path_buf(),
        })
    }
}

/// Every directory from `base` (relative to the data dir, `""` for the
/// root) down to the parents of `files` (relative to `base`).
fn directories_of(base: &Path, files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut dirs = BTreeSet::from([base.to_path_buf()]);
    for rel in files {
        let mut dir = base.join(rel);
        while dir.pop() && dir.starts_with(base) {
            dirs.insert(dir.clone());
        }
    }
    dirs
}

/// fsync every path (files and directories) at once, from as many threads:
/// a journaling filesystem folds concurrent fsyncs into a few journal
/// commits, where one after the other each waits for its own (about 4 ms
/// apiece on a disk, which dominated a whole bootstrap). Unlike `syncfs`,
/// this never waits for unrelated dirty data on the same filesystem.
fn fsync_together(root: &Path, paths: impl IntoIterator<Item = PathBuf>) -> Result<(), StageError> {
    let paths: Vec<PathBuf> = paths.into_iter().collect();
    std::thread::scope(|scope| {
        let syncs: Vec<_> = paths
            .iter()
            .map(|rel| scope.spawn(move || fsync_rel(root, rel)))
            .collect();
        syncs
            .into_iter()
            .try_for_each(|sync| sync.join().expect("an fsync thread panicked"))
    })
}

/// fsync the file or directory `rel` of the data dir.
fn fsync_rel(root: &Path, rel: &Path) -> Result<(), StageError> {
    beneath::fsync(root, rel).map_err(io_err("fsync", &root.join(rel)))
}

/// Remove a directory tree; std's `remove_dir_all` never follows a link
/// (the tree's own top included: a link there is removed, not followed).
fn remove_dir_all(dir: &Path) -> Result<(), StageError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", dir)(e)),
        _ => Ok(()),
    }
}

/// Create `rel` afresh with exactly `mode` and write `bytes`, creating
/// parent directories 0700.
fn create_file(root: &Path, rel: &Path, bytes: &[u8], mode: u32) -> Result<File, StageError> {
    let path = &root.join(rel);
    let mut file = beneath::create(root, rel, mode).map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    Ok(file)
}

/// Write `bytes` to `tmp`, fsync, and rename it to `dest`, then fsync
/// `dest`'s directory.
fn write_durably(
    root: &Path,
    tmp: &Path,
    dest: &Path,
    bytes: &[u8],
    mode: u32,
) -> Result<(), StageError> {
    create_file(root, tmp, bytes, mode)?
        .sync_all()
        .map_err(io_err("fsync", &root.join(tmp)))?;
    beneath::rename(root, tmp, dest).map_err(io_err("rename into place", &root.join(dest)))?;
    fsync_rel(root, dest.parent().unwrap_or(Path::new("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_paths_escaping_the_data_dir() {
        for bad in [
            "../x",
            "/etc/passwd",
            ".stage/x",
            ".complete",
            "",
            "a/../../b",
        ] {
            assert!(check_rel(Path::new(bad)).is_err(), "{bad} accepted");
        }
        assert!(check_rel(Path::new("pki/etcd/ca.crt")).is_ok());
    }
}
