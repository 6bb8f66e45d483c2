//! The programs the tests check Plinth's output with: real consumers, not
//! our own parser. Missing ones are installed from Debian when we can.

use std::process::Command;

use anyhow::{Result, bail};

use crate::exec;

/// (program, Debian package providing it)
const TEST_TOOLS: &[(&str, &str)] = &[
    ("openssl", "openssl"),
    ("etcd", "etcd-server"),
    ("etcdctl", "etcd-client"),
    ("kubectl", "kubernetes-client"),
    // Makes the keys and signatures the plugin-signature tests check.
    ("ssh-keygen", "openssh-client"),
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

pub fn ensure_test_tools() -> Result<()> {
    let missing: Vec<_> = TEST_TOOLS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if !root || !on_path("apt-get") {
        bail!(
            "the tests need {}; install them with: apt-get install -y {}",
            packages.join(", "),
            packages.join(" ")
        );
    }
    exec(Command::new("apt-get").args(["update", "-qq"]))?;
    exec(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}
