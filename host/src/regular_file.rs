//! Reading a file someone else handed over (a config, a token, a manifest,
//! a plugin, a certificate) without trusting what it is: only a regular
//! file is read, never a FIFO or a device (which would block or never end),
//! and never more than a cap chosen per kind of file.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The status of an open file: checks made on it are about the file that
/// is read, not about whatever a path names a moment later.
pub(crate) fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value; fstat fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `stat` is a valid out-pointer for the duration of the call.
    if unsafe { libc::fstat(fd, &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat)
}

/// Refuse anything but a regular file, naming what it is instead.
pub(crate) fn check_regular(stat: &libc::stat) -> io::Result<()> {
    let kind = match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG => return Ok(()),
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFLNK => "a symbolic link",
        _ => "of an unknown type",
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {kind}, not a regular file"),
    ))
}

/// Read an open file, at most `limit` bytes: a longer one is an error, not
/// a truncated read.
pub(crate) fn read_capped(file: File, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("is larger than the {limit} bytes allowed for it"),
        ));
    }
    Ok(bytes)
}

/// Read the regular file at `path` (links in the operator's own path are
/// followed), at most `limit` bytes. Opened non-blocking, so a FIFO is
/// refused at once rather than waited on.
pub(crate) fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    open_and_read(path, limit, 0)
}

/// [`read`], refusing a link as the last component of `path` (a file that
/// is not trusted to point elsewhere, like a plugin's signature).
pub(crate) fn read_no_link(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    open_and_read(path, limit, libc::O_NOFOLLOW)
}

fn open_and_read(path: &Path, limit: u64, flags: libc::c_int) -> io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | flags)
        .open(path)?;
    check_regular(&fstat(file.as_raw_fd())?)?;
    read_capped(file, limit)
}

/// [`read`], as UTF-8 text.
pub(crate) fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_fifos_and_oversized_files_are_refused() {
        let error = read(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = read(&fifo, 1024).unwrap_err();
        assert!(error.to_string().contains("FIFO"), "{error}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 1025]).unwrap();
        assert_eq!(
            read(&big, 1024).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
        assert_eq!(read(&big, 1025).unwrap().len(), 1025);
    }
}
