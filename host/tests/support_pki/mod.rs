//! Helpers shared by the CLI-level PKI tests (`pki_cli`, `cert_audit`): they
//! drive the real `plinth` binary and check its output with the openssl CLI,
//! never with our own parser.
//!
//! Each test crate uses a different subset of these helpers, so unused ones
//! are expected in any single crate.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The CAs of the PKI, relative to `pki/`.
pub const CAS: [&str; 3] = ["ca", "front-proxy-ca", "etcd/ca"];

/// Every certificate of the default PKI (CAs first), as named in findings.
pub const CERTIFICATES: [&str; 14] = [
    "ca",
    "front-proxy-ca",
    "etcd/ca",
    "server",
    "apiserver-kubelet-client",
    "admin",
    "scheduler",
    "controller-manager",
    "plinth-api",
    "front-proxy-client",
    "etcd/server",
    "etcd/peer",
    "etcd/healthcheck-client",
    "apiserver-etcd-client",
];

/// Leaf → the CA that must sign it.
pub const LEAVES: [(&str, &str); 11] = [
    ("server", "ca"),
    ("apiserver-kubelet-client", "ca"),
    ("admin", "ca"),
    ("scheduler", "ca"),
    ("controller-manager", "ca"),
    ("plinth-api", "ca"),
    ("front-proxy-client", "front-proxy-ca"),
    ("etcd/server", "etcd/ca"),
    ("etcd/peer", "etcd/ca"),
    ("etcd/healthcheck-client", "etcd/ca"),
    ("apiserver-etcd-client", "etcd/ca"),
];

/// Top-level entries of the data dir that change on every run by design
/// (the append-only journal, the compiled-plugin cache) and so are left out
/// of byte comparisons.
pub const VOLATILE: [&str; 2] = ["journal", "cache"];

/// The `plinth` binary cargo built for these tests.
pub fn plinth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_plinth"))
}

/// `plinth controller --init-only` on `data_dir`, with optional config and
/// plugins dir; returns its output whatever the exit code.
pub fn init_only(data_dir: &Path, config: Option<&Path>, plugins: Option<&Path>) -> Output {
    init_command(data_dir, config, plugins)
        .output()
        .expect("run the plinth binary")
}

/// The command [`init_only`] runs, for callers that spawn it themselves.
pub fn init_command(data_dir: &Path, config: Option<&Path>, plugins: Option<&Path>) -> Command {
    let mut command = plinth();
    command
        .args(["controller", "--init-only", "--data-dir"])
        .arg(data_dir);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    if let Some(plugins) = plugins {
        command.arg("--plugins").arg(plugins);
    }
    // Plain log lines, so that tests can match on them.
    command.env("NO_COLOR", "1").env_remove("PLINTH_LOG");
    command
}

/// Like [`init_only`], failing the test unless plinth exits 0.
pub fn init_only_ok(data_dir: &Path, config: Option<&Path>, plugins: Option<&Path>) -> Output {
    let out = init_only(data_dir, config, plugins);
    assert_eq!(
        out.status.code(),
        Some(0),
        "plinth controller --init-only failed\n{}",
        describe(&out)
    );
    out
}

/// Exit status, stdout and stderr of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Write `yaml` as a ClusterConfig file in `dir`.
pub fn write_config(dir: &Path, name: &str, yaml: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, yaml).expect("write config file");
    path
}

/// Every file under `dir` (recursively) with its bytes, keyed by path
/// relative to `dir`, leaving out the [`VOLATILE`] top-level entries. A
/// missing `dir` is an empty snapshot.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("read dir entry").path();
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            if dir == root && VOLATILE.iter().any(|v| rel == Path::new(v)) {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                // A file can vanish between read_dir and read when a killed
                // run's stage is involved; only a read of an existing file
                // may fail the test.
                match fs::read(&path) {
                    Ok(bytes) => {
                        out.insert(rel, bytes);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => panic!("read {}: {e}", path.display()),
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Paths added, removed or modified between two snapshots, sorted.
pub fn changed(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Run the openssl CLI in `cwd`. A missing openssl fails the test with a
/// message saying so: these tests check the PKI with a real consumer.
pub fn openssl(args: &[&str], cwd: &Path) -> Output {
    Command::new("openssl")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "openssl could not be run ({e}); these tests check the PKI with the openssl CLI: install it (apt-get install openssl)"
            )
        })
}

/// Like [`openssl`], failing the test unless it exits 0; returns stdout.
pub fn openssl_ok(args: &[&str], cwd: &Path) -> String {
    let out = openssl(args, cwd);
    assert!(
        out.status.success(),
        "openssl {} failed\n{}",
        args.join(" "),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl verify` every leaf of `<data_dir>/pki` against its CA.
pub fn assert_every_leaf_verifies(data_dir: &Path) {
    let pki = data_dir.join("pki");
    for (leaf, ca) in LEAVES {
        let out = openssl(
            &[
                "verify",
                "-CAfile",
                &format!("{ca}.crt"),
                &format!("{leaf}.crt"),
            ],
            &pki,
        );
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(": OK"),
            "{leaf} does not verify against {ca} in {}\n{}",
            pki.display(),
            describe(&out)
        );
    }
}

/// The cargo target directory, as cargo and `cargo xtask` resolve it.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

/// The cert-audit component built by `cargo xtask plugins`.
pub fn cert_audit_wasm() -> PathBuf {
    let path = target_dir().join("wasm32-wasip2/guest/cert_audit.wasm");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask plugins` first (cargo xtask test does)",
        path.display()
    );
    path
}
