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
//!
//! Taking the lock also checks that the data dir can be trusted as it is
//! ([`trust`]): a data dir another user could write, a link planted in it,
//! a file someone else owns is refused before anything is read or written.
//! Everything inside it is then reached through [`beneath`], which never
//! follows a link.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error_class::ErrorClass;

pub(crate) mod beneath;
pub mod trust;

pub use trust::Tightened;

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
    #[error("refusing the data dir: {path} {problem}")]
    Untrusted { path: PathBuf, problem: String },
}

impl DataDirError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Prepare { .. } => ErrorClass::Internal,
            Self::Busy { .. } => ErrorClass::Busy,
            Self::Untrusted { .. } => ErrorClass::Invalid,
        }
    }
}

/// The paths of a data dir, without its lock: what a command that runs
/// beside a controller reads. Every path Plinth uses in a data dir is named
/// here, in the table below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDirView {
    root: PathBuf,
}

impl DataDirView {
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

    /// The file `rel` (relative to the data dir), at most `limit` bytes,
    /// never read through a link; `None` when it does not exist.
    pub(crate) fn read(&self, rel: impl AsRef<Path>, limit: u64) -> io::Result<Option<Vec<u8>>> {
        beneath::read(&self.root, rel.as_ref(), limit)
    }

    /// Whether `rel` is a regular file of ours (a link is not).
    pub(crate) fn is_file(&self, rel: impl AsRef<Path>) -> bool {
        beneath::is_file(&self.root, rel.as_ref())
    }

    /// Whether embedded etcd has a write-ahead log here: a `*.wal` file in
    /// `etcd/member/wal`. This is how etcd itself tells a member that has
    /// run from a fresh one (`wal.Exist`). A `member/snap/db` alone is not:
    /// etcd creates it before it has reached its peers, and a joiner whose
    /// first start failed has a db and no WAL.
    pub(crate) fn has_etcd_wal(&self) -> bool {
        let Ok(dir) = beneath::open_dir(&self.root, Path::new(Self::ETCD_WAL), false) else {
            return false;
        };
        // The directory was reached without following a link; list it
        // through the descriptor so that nothing swapped in since counts.
        let listing = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        std::fs::read_dir(listing).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry.file_name().as_encoded_bytes().ends_with(b".wal")
                    && entry.file_type().is_ok_and(|kind| kind.is_file())
            })
        })
    }
}

/// Each path of the data dir once: a constant relative to the data dir (the
/// stage and the PKI work in relative paths) and a method giving it under
/// the root.
macro_rules! data_dir_paths {
    ($($(#[$doc:meta])* $method:ident: $constant:ident = $rel:literal;)*) => {
        impl DataDirView {
            $(
                $(#[$doc])*
                pub const $constant: &str = $rel;
            )*
            $(
                #[doc = concat!("`<data-dir>/", $rel, "`")]
                pub fn $method(&self) -> PathBuf {
                    self.path(Self::$constant)
                }
            )*
        }
    };
}

data_dir_paths! {
    /// The control-plane PKI (kubeadm's names inside).
    pki_dir: PKI = "pki";
    /// The audit log of every bootstrap, one JSON line per event.
    journal_file: JOURNAL = "journal/bootstrap.jsonl";
    /// Compiled plugins, keyed by the wasm's sha256 and the engine.
    plugin_cache_dir: PLUGIN_CACHE = "cache/plugins";
    /// What the user set, and only that (never a default).
    persisted_config: PERSISTED_CONFIG = "config/cluster.yaml";
    /// The images the last bootstrap resolved.
    images_lock: IMAGES_LOCK = "images.lock";
    /// The staging area of a commit in progress.
    stage_dir: STAGE = ".stage";
    /// Written last by a commit: the files of a bootstrap are all there.
    complete_marker: COMPLETE_MARKER = ".complete";
    /// Embedded etcd's data directory.
    etcd_dir: ETCD = "etcd";
    /// The directory whose `*.wal` files mean this machine's etcd has run
    /// as a member ([`DataDirView::has_etcd_wal`]). Deliberately storage
    /// state, not certificates: certificates can be copied onto a fresh
    /// machine (a CA handed over for joining), a write-ahead log cannot.
    etcd_wal_dir: ETCD_WAL = "etcd/member/wal";
    /// Committed with a joiner's cluster CAs: this data dir joined a
    /// cluster and never creates one ([`crate::join::Joined`]).
    joined_marker: JOINED_MARKER = "joined.json";
    /// The membership a joining controller recorded before it first started
    /// etcd, so a crash between "added" and "started" resumes it.
    join_record: JOIN_RECORD = "etcd/join.json";
}

/// A data dir this process holds the lock of, for as long as the value
/// lives. Dereferences to its [`DataDirView`] for the paths.
#[derive(Debug)]
pub struct DataDir {
    view: DataDirView,
    /// The directory itself, opened and `flock`ed; closing it releases the
    /// lock.
    _lock: File,
    /// Secrets whose modes were tightened when the lock was taken.
    tightened: Vec<Tightened>,
}

impl DataDir {
    /// Create the data dir (0700, with missing parents) if it does not
    /// exist, and take its lock without waiting: [`DataDirError::Busy`] when
    /// another process holds it. Then check that it can be trusted
    /// ([`trust::check`]): [`DataDirError::Untrusted`] names what is wrong.
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
        let tightened = trust::check(
            &view.root,
            Path::new(DataDirView::PKI),
            Path::new(DataDirView::PLUGIN_CACHE),
        )
        .map_err(|untrusted| DataDirError::Untrusted {
            path: untrusted.path,
            problem: untrusted.problem,
        })?;
        for file in &tightened {
            tracing::warn!(
                path = %file.path.display(),
                "readable by others (mode {:04o}), which it holds secrets: tightened to {:04o}; treat what it holds as exposed if others could log in here",
                file.old_mode,
                file.old_mode & 0o700
            );
        }
        Ok(Self {
            view,
            _lock: dir,
            tightened,
        })
    }

    /// Secrets (keys, kubeconfigs) that were readable by others when the
    /// lock was taken, and have been made private since.
    pub fn tightened(&self) -> &[Tightened] {
        &self.tightened
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
        assert_eq!(data_dir.etcd_wal_dir(), root.join("etcd/member/wal"));
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
