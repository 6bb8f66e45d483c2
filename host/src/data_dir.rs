//! The data dir: its lock, held for the life of the process, and the name of
//! every path in it.
//!
//! A controller takes the lock with [`DataDir::lock`] before it opens or
//! writes anything (the journal included), and holds it until it exits: for
//! `--init-only` a few seconds, in run mode days. A second process is refused
//! at once with [`DataDirError::Busy`], so it never appends to the first
//! one's journal nor touches its stage. The lock is an exclusive `flock` on
//! the directory itself; the kernel releases it however the process ends.
//!
//! Commands that run *beside* a running controller (`pki check-expiration`
//! today) only read: they take a [`DataDirView`], which names the same paths
//! and takes no lock. [`Stage`](crate::stage::Stage),
//! [`Journal`](crate::journal::Journal) and the compiled-plugin cache are
//! opened from a locked [`DataDir`], so they cannot exist without the lock.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error_class::ErrorClass;

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot prepare the data dir {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another Plinth process is working on the data dir {path}; wait for it to finish, or give this one another --data-dir"
    )]
    Busy { path: PathBuf },
}

impl DataDirError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Prepare { .. } => ErrorClass::Internal,
            Self::Busy { .. } => ErrorClass::Busy,
        }
    }
}

/// The paths of a data dir, without its lock: what a command that runs
/// beside a controller reads. Every path Plinth uses in a data dir is named
/// here, relative ones as constants (the stage and the PKI work in paths
/// relative to the data dir), absolute ones as methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDirView {
    root: PathBuf,
}

impl DataDirView {
    /// The control-plane PKI, `pki/` (kubeadm's names inside).
    pub const PKI: &str = "pki";
    /// The audit log of every bootstrap, one JSON line per event.
    pub const JOURNAL: &str = "journal/bootstrap.jsonl";
    /// Compiled plugins, keyed by the wasm's sha256 and the engine.
    pub const PLUGIN_CACHE: &str = "cache/plugins";
    /// What the user set, and only that (never a default).
    pub const PERSISTED_CONFIG: &str = "config/cluster.yaml";
    /// The images the last bootstrap resolved.
    pub const IMAGES_LOCK: &str = "images.lock";
    /// The staging area of a commit in progress.
    pub const STAGE: &str = ".stage";
    /// Written last by a commit: the files of a bootstrap are all there.
    pub const COMPLETE_MARKER: &str = ".complete";
    /// Embedded etcd's data directory.
    pub const ETCD: &str = "etcd";
    /// The file whose presence means this machine's etcd holds cluster
    /// data. Deliberately storage state, not certificates: certificates can
    /// be copied onto a fresh machine (a CA handed over for joining), data
    /// cannot.
    pub const ETCD_MEMBER_DB: &str = "etcd/member/snap/db";
    /// The membership a joining controller recorded before it first started
    /// etcd, so a crash between "added" and "started" resumes it.
    pub const JOIN_RECORD: &str = "etcd/join.json";

    /// A view of the data dir at `root`, which need not exist.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `rel`, a path relative to the data dir, made absolute.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.path(Self::PKI)
    }

    pub fn journal_file(&self) -> PathBuf {
        self.path(Self::JOURNAL)
    }

    pub fn plugin_cache_dir(&self) -> PathBuf {
        self.path(Self::PLUGIN_CACHE)
    }

    pub fn persisted_config(&self) -> PathBuf {
        self.path(Self::PERSISTED_CONFIG)
    }

    pub fn images_lock(&self) -> PathBuf {
        self.path(Self::IMAGES_LOCK)
    }

    pub fn stage_dir(&self) -> PathBuf {
        self.path(Self::STAGE)
    }

    pub fn complete_marker(&self) -> PathBuf {
        self.path(Self::COMPLETE_MARKER)
    }

    pub fn etcd_dir(&self) -> PathBuf {
        self.path(Self::ETCD)
    }

    pub fn etcd_member_db(&self) -> PathBuf {
        self.path(Self::ETCD_MEMBER_DB)
    }

    pub fn join_record(&self) -> PathBuf {
        self.path(Self::JOIN_RECORD)
    }
}

/// A data dir this process holds the lock of, for as long as the value
/// lives. Dereferences to its [`DataDirView`] for the paths.
#[derive(Debug)]
pub struct DataDir {
    view: DataDirView,
    /// The directory itself, opened and `flock`ed; closing it releases the
    /// lock.
    _lock: File,
}

impl DataDir {
    /// Create the data dir (0700, with missing parents) if it does not
    /// exist, and take its lock without waiting: [`DataDirError::Busy`] when
    /// another process holds it.
    pub fn lock(root: impl Into<PathBuf>) -> Result<Self, DataDirError> {
        let view = DataDirView::new(root);
        let prepare = |source| DataDirError::Prepare {
            path: view.root.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&view.root)
            .map_err(prepare)?;
        let dir = File::open(&view.root).map_err(prepare)?;
        // SAFETY: flock on a descriptor we own; no memory is shared.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::WouldBlock {
                return Err(DataDirError::Busy { path: view.root });
            }
            return Err(prepare(error));
        }
        Ok(Self { view, _lock: dir })
    }

    /// The paths, for code that only reads.
    pub fn view(&self) -> &DataDirView {
        &self.view
    }
}

impl std::ops::Deref for DataDir {
    type Target = DataDirView;

    fn deref(&self) -> &DataDirView {
        &self.view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_while_the_first_lives_and_granted_after() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("data");
        let first = DataDir::lock(&root).unwrap();
        assert!(matches!(
            DataDir::lock(&root),
            Err(DataDirError::Busy { path }) if path == root
        ));
        drop(first);
        // No test of this crate forks, so nothing else holds the lock now.
        DataDir::lock(&root).unwrap();
    }

    #[test]
    fn a_missing_data_dir_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("a/b");
        let data_dir = DataDir::lock(&root).unwrap();
        let mode = std::fs::metadata(data_dir.root())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(
            data_dir.journal_file(),
            root.join("journal/bootstrap.jsonl")
        );
        assert_eq!(data_dir.etcd_member_db(), root.join("etcd/member/snap/db"));
    }

    #[test]
    fn a_file_in_the_way_is_an_internal_error_naming_it() {
        let parent = tempfile::tempdir().unwrap();
        let file = parent.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let error = DataDir::lock(&file).unwrap_err();
        assert_eq!(error.class(), ErrorClass::Internal);
        assert!(error.to_string().contains("not-a-dir"), "{error}");
    }
}
