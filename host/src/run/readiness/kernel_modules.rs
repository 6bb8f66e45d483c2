//! The kernel modules of this node, for readiness plugins: k3s checks
//! `overlay` and `nf_conntrack` before it starts its container runtime, and
//! a plugin cannot open `/proc/modules` itself.
//!
//! A module counts when it is loaded (`/proc/modules`) or built into the
//! kernel (`/lib/modules/<release>/modules.builtin`), since a built-in
//! `overlay` never shows in `/proc/modules`. Names are normalised as the
//! kernel does (`-` and `_` are the same), to `_`.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read from either file at most; both are a few KiB on a real node.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Longest module name accepted (the kernel's limit is 56).
const MAX_NAME_BYTES: usize = 64;

/// Where this node lists its modules.
#[derive(Clone, Debug)]
pub struct KernelModules {
    /// Read again for each observation: modules load while the node runs.
    loaded: PathBuf,
    /// Read once: what is built in changes only with the kernel (the file
    /// has thousands of lines on a distribution kernel).
    builtin: Option<Vec<String>>,
}

impl KernelModules {
    /// The running kernel's `/proc/modules` and `modules.builtin`.
    pub fn of_this_node() -> Self {
        let builtin = kernel_release().map(|release| {
            Path::new("/lib/modules")
                .join(release)
                .join("modules.builtin")
        });
        Self::at(PathBuf::from("/proc/modules"), builtin)
    }

    /// Lists kept elsewhere (tests).
    pub fn at(loaded: PathBuf, builtin: Option<PathBuf>) -> Self {
        let builtin = builtin
            .as_deref()
            .and_then(read_bounded)
            .map(|text| builtin_names(&text));
        Self { loaded, builtin }
    }

    /// The module names, sorted and unique; `None` when neither list can be
    /// read (a container without `/proc/modules`, say).
    pub fn read(&self) -> Option<Vec<String>> {
        let loaded = read_bounded(&self.loaded).map(|text| loaded_names(&text));
        if loaded.is_none() && self.builtin.is_none() {
            return None;
        }
        let mut names: Vec<String> = loaded
            .into_iter()
            .flatten()
            .chain(self.builtin.iter().flatten().cloned())
            .collect();
        names.sort_unstable();
        names.dedup();
        Some(names)
    }
}

/// A module name as the kernel compares them: `-` folded into `_`.
pub fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

fn valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `/proc/modules`: one module per line, its name first.
fn loaded_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| valid(name))
        .map(normalise)
        .collect()
}

/// `modules.builtin`: one path per line, `kernel/fs/overlayfs/overlay.ko`.
fn builtin_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.trim().rsplit('/').next())
        .filter_map(|file| file.strip_suffix(".ko"))
        .filter(|name| valid(name))
        .map(normalise)
        .collect()
}

fn read_bounded(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// `uname -r`.
fn kernel_release() -> Option<String> {
    // SAFETY: `uname` fills the struct it is given and nothing else; a zeroed
    // `utsname` is a valid value of it.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return None;
    }
    let release: Vec<u8> = name
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let release = String::from_utf8(release).ok()?;
    // It names a directory: no separator, no `..`.
    (!release.is_empty() && !release.contains('/') && release != "..").then_some(release)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_MODULES: &str = "\
nf_conntrack 176128 3 xt_conntrack,nf_nat, Live 0x0000000000000000
overlay 151552 0 - Live 0x0000000000000000
br-netfilter 32768 0 - Live 0x0000000000000000
\u{1b}[2J 1 0 - Live 0x0
";

    #[test]
    fn loaded_and_builtin_modules_are_merged_and_normalised() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = dir.path().join("modules");
        let builtin = dir.path().join("modules.builtin");
        std::fs::write(&loaded, PROC_MODULES).unwrap();
        std::fs::write(
            &builtin,
            "kernel/fs/ext4/ext4.ko\nkernel/fs/overlayfs/overlay.ko\nkernel/net/ipv4/tcp-bbr.ko\n",
        )
        .unwrap();
        let modules = KernelModules::at(loaded.clone(), Some(builtin))
            .read()
            .unwrap();
        assert_eq!(
            modules,
            ["br_netfilter", "ext4", "nf_conntrack", "overlay", "tcp_bbr"]
        );
        let only_loaded = KernelModules::at(loaded, Some(dir.path().join("absent")));
        assert_eq!(only_loaded.read().unwrap().len(), 3);
    }

    #[test]
    fn no_readable_list_is_unknown_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        let modules = KernelModules::at(dir.path().join("absent"), None);
        assert_eq!(modules.read(), None);
        assert!(kernel_release().is_some());
    }
}
