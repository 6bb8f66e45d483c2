//! Files and directories inside the data dir, reached without following a
//! symbolic link.
//!
//! Every operation starts from the data dir's root and walks down one
//! component at a time with `openat(O_NOFOLLOW)`, checking that each
//! directory it passes is one of ours (owned by this user, writable by no
//! one else). A link anywhere on the way, or as the final component, is an
//! error and is never followed, so nothing Plinth reads or writes through
//! here can land outside the data dir, whatever was planted in it. Files are
//! created with `O_EXCL` after the old name is unlinked: a name cannot be
//! pre-created by someone else and then written through.
//!
//! Paths are relative to the data dir (`pki/ca.key`); errors carry the
//! absolute path for messages.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::regular_file::{check_regular, fstat};

/// The running user, whose data dir this is.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn cstring(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path holds a NUL byte"))
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn openat(dir: RawFd, name: &OsStr, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let name = cstring(name)?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call.
    let fd = check(unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Why an `openat(O_NOFOLLOW)` of `name` failed: a link gets a message of
/// its own, since the kernel says only ELOOP or ENOTDIR.
fn explain(dir: RawFd, name: &OsStr, error: io::Error) -> io::Error {
    let is_link = matches!(error.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
        && cstring(name).is_ok_and(|name| {
            // SAFETY: as in `fstat`; `name` outlives the call.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            let found =
                unsafe { libc::fstatat(dir, name.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) };
            found == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFLNK
        });
    if is_link {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link, and Plinth never follows links inside its data dir; replace it with the directory or file itself",
        )
    } else {
        error
    }
}

/// A directory of the data dir must be ours alone: owned by this user and
/// writable by nobody else, or whoever can write it can plant files in it.
pub(crate) fn check_private_dir(stat: &libc::stat) -> io::Result<()> {
    if stat.st_uid != effective_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "is owned by uid {}, not by this user (uid {}); chown it to this user",
                stat.st_uid,
                effective_uid()
            ),
        ));
    }
    if stat.st_mode & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "is writable by group or others (mode {:04o}); run `chmod go-w` on it",
                stat.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The components of a relative path inside the data dir; anything else
/// (`..`, an absolute path, an empty one) is refused.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let names: Vec<&OsStr> = rel
        .components()
        .map(|component| match component {
            Component::Normal(name) => Ok(name),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is not a plain path inside the data dir",
            )),
        })
        .collect::<io::Result<_>>()?;
    if names.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a plain path inside the data dir",
        ));
    }
    Ok(names)
}

/// The data dir's root, opened as a directory. The root itself may be a
/// link the operator made (`--data-dir` is theirs); `DataDir::lock` checked
/// what it points to.
fn open_root(root: &Path) -> io::Result<OwnedFd> {
    let path = cstring(root.as_os_str())?;
    // SAFETY: `path` is NUL-terminated and outlives the call.
    let fd = check(unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Walk from `root` down `dirs`, creating missing ones (0700) when asked.
fn walk(root: &Path, dirs: &[&OsStr], create: bool) -> io::Result<OwnedFd> {
    let mut dir = open_root(root)?;
    for name in dirs {
        if create {
            let c_name = cstring(name)?;
            // SAFETY: `c_name` outlives the call; mkdirat creates or fails.
            let made = unsafe { libc::mkdirat(dir.as_raw_fd(), c_name.as_ptr(), 0o700) };
            if made < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::AlreadyExists {
                    return Err(error);
                }
            }
        }
        let next = openat(dir.as_raw_fd(), name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(|error| explain(dir.as_raw_fd(), name, error))?;
        check_private_dir(&fstat(next.as_raw_fd())?)?;
        dir = next;
    }
    Ok(dir)
}

/// The directory `rel` (the root itself when `rel` is empty), created with
/// its missing parents (0700) when `create`.
pub(crate) fn open_dir(root: &Path, rel: &Path, create: bool) -> io::Result<File> {
    let dirs: Vec<&OsStr> = if rel.as_os_str().is_empty() {
        Vec::new()
    } else {
        components(rel)?
    };
    walk(root, &dirs, create).map(File::from)
}

/// The parent of `rel` (created when `create`) and `rel`'s last name.
fn parent_of<'a>(root: &Path, rel: &'a Path, create: bool) -> io::Result<(OwnedFd, &'a OsStr)> {
    let names = components(rel)?;
    let (name, dirs) = names.split_last().expect("components are never empty");
    Ok((walk(root, dirs, create)?, name))
}

/// Open the existing file `rel` for reading: a regular file of ours, never
/// through a link, never blocking (a FIFO is refused, not waited on).
/// `Ok(None)` when it (or a directory on the way) does not exist.
pub(crate) fn open_existing(root: &Path, rel: &Path) -> io::Result<Option<File>> {
    let (dir, name) = match parent_of(root, rel, false) {
        Ok(found) => found,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let fd = match openat(dir.as_raw_fd(), name, libc::O_RDONLY | libc::O_NONBLOCK, 0) {
        Ok(fd) => fd,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(explain(dir.as_raw_fd(), name, error)),
    };
    let stat = fstat(fd.as_raw_fd())?;
    check_regular(&stat)?;
    if stat.st_uid != effective_uid() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "is owned by uid {}, not by this user; remove it, or chown it after checking its content",
                stat.st_uid
            ),
        ));
    }
    Ok(Some(File::from(fd)))
}

/// Read the file `rel`, at most `limit` bytes (more is an error); `None`
/// when it does not exist.
pub(crate) fn read(root: &Path, rel: &Path, limit: u64) -> io::Result<Option<Vec<u8>>> {
    match open_existing(root, rel)? {
        Some(file) => crate::regular_file::read_capped(file, limit).map(Some),
        None => Ok(None),
    }
}

/// Whether `rel` exists as a regular file of ours (a link is not one).
pub(crate) fn is_file(root: &Path, rel: &Path) -> bool {
    matches!(open_existing(root, rel), Ok(Some(_)))
}

/// Create `rel` afresh with exactly `mode`, its missing parents 0700: any
/// old file of that name is unlinked first and the new one made with
/// `O_EXCL`, so nothing planted under the name is written through.
pub(crate) fn create(root: &Path, rel: &Path, mode: u32) -> io::Result<File> {
    let (dir, name) = parent_of(root, rel, true)?;
    let c_name = cstring(name)?;
    // SAFETY: `c_name` outlives the call; unlinkat never follows a link.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c_name.as_ptr(), 0) } < 0 {
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::NotFound {
            return Err(error);
        }
    }
    let fd = openat(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode,
    )?;
    // The mode given to openat is filtered by the umask; set it exactly.
    // SAFETY: fchmod on a descriptor we own.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })?;
    Ok(File::from(fd))
}

/// Open `rel` for appending, creating it with `mode` if missing: a regular
/// file of ours, never through a link.
pub(crate) fn open_append(root: &Path, rel: &Path, mode: u32) -> io::Result<File> {
    let (dir, name) = parent_of(root, rel, true)?;
    let fd = openat(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NONBLOCK,
        mode,
    )
    .map_err(|error| explain(dir.as_raw_fd(), name, error))?;
    let stat = fstat(fd.as_raw_fd())?;
    check_regular(&stat)?;
    if stat.st_uid != effective_uid() || stat.st_mode & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "is not owned by this user alone",
        ));
    }
    Ok(File::from(fd))
}

/// Rename `from` to `to` (both relative; `to`'s parents created 0700),
/// replacing whatever `to` was (a link there is replaced, not followed).
pub(crate) fn rename(root: &Path, from: &Path, to: &Path) -> io::Result<()> {
    let (from_dir, from_name) = parent_of(root, from, false)?;
    let (to_dir, to_name) = parent_of(root, to, true)?;
    let (from_name, to_name) = (cstring(from_name)?, cstring(to_name)?);
    // SAFETY: both names outlive the call; renameat never follows the last
    // component of either path.
    check(unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            from_name.as_ptr(),
            to_dir.as_raw_fd(),
            to_name.as_ptr(),
        )
    })?;
    Ok(())
}

/// Whether anything (a link included) is at `rel`.
pub(crate) fn exists(root: &Path, rel: &Path) -> io::Result<bool> {
    let (dir, name) = match parent_of(root, rel, false) {
        Ok(found) => found,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error),
    };
    let c_name = cstring(name)?;
    // SAFETY: as in `fstat`; `c_name` outlives the call.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    let found = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            &mut stat,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if found == 0 {
        return Ok(true);
    }
    let error = io::Error::last_os_error();
    if error.kind() == io::ErrorKind::NotFound {
        Ok(false)
    } else {
        Err(error)
    }
}

/// fsync the file or directory `rel` (the root when empty).
pub(crate) fn fsync(root: &Path, rel: &Path) -> io::Result<()> {
    if rel.as_os_str().is_empty() {
        return open_dir(root, rel, false)?.sync_all();
    }
    let (dir, name) = parent_of(root, rel, false)?;
    let fd = openat(dir.as_raw_fd(), name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|error| explain(dir.as_raw_fd(), name, error))?;
    File::from(fd).sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn private_root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_link_on_the_way_or_at_the_end_is_never_followed() {
        let root = private_root();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("ca.key"), "outside").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("pki")).unwrap();
        let error = read(root.path(), Path::new("pki/ca.key"), 100).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(create(root.path(), Path::new("pki/new.key"), 0o600).is_err());
        assert!(!outside.path().join("new.key").exists());

        std::fs::create_dir(root.path().join("journal")).unwrap();
        std::fs::set_permissions(
            root.path().join("journal"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        let target = outside.path().join("log");
        std::os::unix::fs::symlink(&target, root.path().join("journal/bootstrap.jsonl")).unwrap();
        let error =
            open_append(root.path(), Path::new("journal/bootstrap.jsonl"), 0o600).unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert!(!target.exists());
    }

    #[test]
    fn create_replaces_a_planted_file_instead_of_writing_through_it() {
        let root = private_root();
        let planted = root.path().join("ca.key");
        std::fs::write(&planted, "planted").unwrap();
        let hard_link = root.path().join("kept");
        std::fs::hard_link(&planted, &hard_link).unwrap();
        let mut file = create(root.path(), Path::new("ca.key"), 0o600).unwrap();
        file.write_all(b"secret").unwrap();
        assert_eq!(std::fs::read_to_string(&hard_link).unwrap(), "planted");
        assert_eq!(std::fs::read_to_string(&planted).unwrap(), "secret");
        let mode = std::fs::metadata(&planted).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_directory_others_can_write_is_refused_on_the_way() {
        let root = private_root();
        std::fs::create_dir(root.path().join("pki")).unwrap();
        std::fs::set_permissions(
            root.path().join("pki"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let error = read(root.path(), Path::new("pki/ca.crt"), 100).unwrap_err();
        assert!(
            error.to_string().contains("writable by group or others"),
            "{error}"
        );
    }

    #[test]
    fn reads_are_capped_and_only_of_regular_files() {
        let root = private_root();
        std::fs::write(root.path().join("big"), vec![b'x'; 101]).unwrap();
        let error = read(root.path(), Path::new("big"), 100).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
        let fifo = CString::new(root.path().join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let error = read(root.path(), Path::new("fifo"), 100).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
        assert_eq!(read(root.path(), Path::new("absent/x"), 100).unwrap(), None);
    }
}
