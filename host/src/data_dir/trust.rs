//! Whether an existing data dir can be trusted as it is, checked once when
//! its lock is taken and before anything is read or written in it: the bar
//! of OpenSSH's StrictModes and of etcd's own data-dir check.
//!
//! - The data dir and every directory inside it must be owned by this user
//!   and writable by no one else; its ancestors must be owned by root or
//!   this user and writable by no one else unless sticky (`/tmp`). Whoever
//!   can write one of them can plant a link or a key.
//! - Nothing inside it may be a symbolic link, a FIFO, a socket or a device,
//!   and every file must be owned by this user and writable by no one else.
//! - Private keys and kubeconfigs readable by group or others are tightened
//!   to 0600, and `pki/` and its directories to 0700, each reported: the
//!   key may already have been read.
//!
//! The compiled-plugin cache's entries are the exception: the cache checks
//! each one when it opens it (`plugin/cache.rs`) and recompiles one it
//! refuses, so a bad entry costs a compile, not the run.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::beneath::effective_uid;

/// How deep the walk goes; the data dir Plinth lays out is four levels
/// deep (`etcd/member/snap/db`), so anything far deeper was not made by it.
const MAX_DEPTH: usize = 16;

/// What makes a data dir untrustworthy, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    pub path: PathBuf,
    /// What is wrong and what to do, as one clause.
    pub problem: String,
}

/// A file whose mode was tightened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tightened {
    pub path: PathBuf,
    pub old_mode: u32,
}

/// Files that hold a secret: private keys and kubeconfigs (which embed one).
fn holds_secret(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("key" | "conf")
    )
}

/// Check `root` (an existing directory) and everything in it; tighten the
/// modes of secrets readable by others, and of every directory under `pki`
/// (relative to the root). The entries of `cache` are left to the cache.
/// See the module docs.
pub(crate) fn check(root: &Path, pki: &Path, cache: &Path) -> Result<Vec<Tightened>, Untrusted> {
    let untrusted = |path: &Path, problem: String| Untrusted {
        path: path.to_owned(),
        problem,
    };
    let io_problem =
        |path: &Path, error: io::Error| untrusted(path, format!("cannot inspect it: {error}"));
    check_ancestors(root)?;
    let metadata = std::fs::metadata(root).map_err(|e| io_problem(root, e))?;
    check_dir(root, &metadata)?;
    let (pki_dir, cache_dir) = (root.join(pki), root.join(cache));
    let mut tightened = Vec::new();
    let mut pending = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        if depth > MAX_DEPTH {
            return Err(untrusted(
                &dir,
                format!(
                    "is nested deeper than {MAX_DEPTH} levels, which Plinth never makes; remove it"
                ),
            ));
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| io_problem(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_problem(&dir, e))?;
            let path = entry.path();
            let metadata = std::fs::symlink_metadata(&path).map_err(|e| io_problem(&path, e))?;
            let kind = metadata.file_type();
            if kind.is_symlink() {
                return Err(untrusted(
                    &path,
                    "is a symbolic link, and Plinth never follows links inside its data dir; replace it with the directory or file itself".to_owned(),
                ));
            }
            if kind.is_dir() {
                check_dir(&path, &metadata)?;
                // The PKI's directories hold keys: nobody else lists them.
                if path.starts_with(&pki_dir) {
                    tighten(&path, &metadata, &mut tightened)?;
                }
                // The compiled cache checks each entry itself when it opens
                // it, and recompiles one it refuses: it is disposable.
                if path != cache_dir {
                    pending.push((path, depth + 1));
                }
                continue;
            }
            if !kind.is_file() {
                return Err(untrusted(
                    &path,
                    "is not a regular file or directory (a FIFO, socket or device); remove it"
                        .to_owned(),
                ));
            }
            if metadata.uid() != effective_uid() {
                return Err(untrusted(
                    &path,
                    format!(
                        "is owned by uid {}, not by this user (uid {}); remove it, or chown it after checking its content",
                        metadata.uid(),
                        effective_uid()
                    ),
                ));
            }
            let mode = metadata.mode() & 0o7777;
            if mode & 0o022 != 0 {
                return Err(untrusted(
                    &path,
                    format!(
                        "is writable by group or others (mode {mode:04o}), so its content cannot be trusted; check it, then run `chmod go-w` on it"
                    ),
                ));
            }
            if holds_secret(&path) {
                tighten(&path, &metadata, &mut tightened)?;
            }
        }
    }
    Ok(tightened)
}

/// Make `path` private to its owner if group or others may read it, and
/// say so.
fn tighten(
    path: &Path,
    metadata: &std::fs::Metadata,
    tightened: &mut Vec<Tightened>,
) -> Result<(), Untrusted> {
    let mode = metadata.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700)).map_err(
        |error| Untrusted {
            path: path.to_owned(),
            problem: format!("is readable by others and cannot be made private: {error}"),
        },
    )?;
    tightened.push(Tightened {
        path: path.to_owned(),
        old_mode: mode,
    });
    Ok(())
}

fn check_dir(path: &Path, metadata: &std::fs::Metadata) -> Result<(), Untrusted> {
    let untrusted = |problem: String| Untrusted {
        path: path.to_owned(),
        problem,
    };
    if metadata.uid() != effective_uid() {
        return Err(untrusted(format!(
            "is owned by uid {}, not by this user (uid {}); chown it to this user",
            metadata.uid(),
            effective_uid()
        )));
    }
    let mode = metadata.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(untrusted(format!(
            "is writable by group or others (mode {mode:04o}); run `chmod go-w` on it (Plinth makes its directories 0700)"
        )));
    }
    Ok(())
}

/// Every directory above the data dir must be owned by root or this user
/// and writable by no one else, unless sticky: otherwise someone could
/// rename the data dir away and put their own in its place.
fn check_ancestors(root: &Path) -> Result<(), Untrusted> {
    let resolved = std::fs::canonicalize(root).map_err(|error| Untrusted {
        path: root.to_owned(),
        problem: format!("cannot resolve it: {error}"),
    })?;
    for ancestor in resolved.ancestors().skip(1) {
        let metadata = std::fs::metadata(ancestor).map_err(|error| Untrusted {
            path: ancestor.to_owned(),
            problem: format!("cannot inspect it: {error}"),
        })?;
        let mode = metadata.mode();
        let owner_ok = metadata.uid() == 0 || metadata.uid() == effective_uid();
        let sticky = mode & 0o1000 != 0;
        if !owner_ok || (mode & 0o022 != 0 && !sticky) {
            return Err(Untrusted {
                path: ancestor.to_owned(),
                problem: format!(
                    "holds the data dir {} but is owned by uid {} with mode {:04o}: anyone who can write it can replace the data dir; use a data dir whose parents only root or this user can write",
                    root.display(),
                    metadata.uid(),
                    mode & 0o7777
                ),
            });
        }
    }
    Ok(())
}
