//! Helpers shared by the integration tests that drive the real `plinth`
//! binary with real WASM guests built by `cargo xtask plugins`.
#![allow(dead_code)] // each test crate uses its own subset

pub mod cluster;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Every hook of the contract, in bootstrap order, by its WIT name.
pub const HOOKS: [&str; 5] = [
    "pre-init",
    "join-decision",
    "post-pki",
    "image-resolve",
    "readiness",
];

/// The component built from guest package `package` (`cargo xtask plugins`).
pub fn guest(package: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let path = target
        .join("wasm32-wasip2/guest")
        .join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo xtask plugins` first (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// A plugin directory in a temporary folder.
pub struct PluginDir {
    dir: tempfile::TempDir,
}

impl PluginDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn arg(&self) -> String {
        self.path().display().to_string()
    }

    /// Install guest `package` as `<stem>.wasm`, with `manifest` as
    /// `<stem>.toml` unless it is empty.
    pub fn add(&self, stem: &str, package: &str, manifest: &str) -> PathBuf {
        let wasm = self.path().join(format!("{stem}.wasm"));
        std::fs::copy(guest(package), &wasm).expect("copy guest");
        if !manifest.is_empty() {
            std::fs::write(self.path().join(format!("{stem}.toml")), manifest)
                .expect("write manifest");
        }
        wasm
    }

    /// Install raw bytes as `<stem>.wasm`.
    pub fn add_bytes(&self, stem: &str, bytes: &[u8]) {
        std::fs::write(self.path().join(format!("{stem}.wasm")), bytes).expect("write wasm");
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Assert the exit code, showing the output when it is not the expected one.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The last line of stderr: the one-line error of a failed run.
    pub fn error_line(&self) -> &str {
        self.stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

/// Run `plinth` with `args`.
pub fn plinth(args: &[&str]) -> Run {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_plinth"))
        .args(args)
        .env("PLINTH_LOG", "warn,plinth=info")
        .output()
        .expect("run plinth");
    Run {
        code: output.status.code().expect("plinth was not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// `plinth controller --init-only --data-dir DATA [--plugins DIR] extra...`
pub fn init_only(data: &Path, plugins: Option<&PluginDir>, extra: &[&str]) -> Run {
    let data = data.display().to_string();
    let plugins_arg = plugins.map(PluginDir::arg);
    let mut args = vec!["controller", "--init-only", "--data-dir", &data];
    if let Some(dir) = &plugins_arg {
        args.extend(["--plugins", dir]);
    }
    args.extend(extra);
    plinth(&args)
}

/// Every file under `dir` with its bytes, except the journal and the
/// compiled-plugin cache: a failed run may add to those two, and to nothing
/// else.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            let relative = path.strip_prefix(root).expect("under root").to_owned();
            if relative.starts_with("journal") || relative.starts_with("cache") {
                continue;
            }
            if path.is_dir() {
                files.insert(relative.join(""), Vec::new());
                walk(root, &path, files);
            } else {
                files.insert(relative, std::fs::read(&path).expect("read file"));
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// The journal of a data dir, one JSON value per line.
pub fn journal(data: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(data.join("journal/bootstrap.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("journal lines are JSON"))
        .collect()
}

/// How each plugin of each run was loaded (`compiled`, `cached`, ...), in
/// journal order.
pub fn load_kinds(data: &Path) -> Vec<String> {
    journal(data)
        .into_iter()
        .filter(|e| e["phase"] == "plugins")
        .map(|e| e["detail"]["load"]["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Write `text` to a file in a fresh temporary dir; returns both.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    (dir, path)
}

/// etcd started by hand, the way an operator would, on the certificates in
/// `pki` (a data dir's `pki/`: client and peer mTLS on `etcd/*`): a new
/// one-member cluster `name` at these URLs. The caller picks its output and
/// owns the process.
pub fn etcd_by_hand(
    pki: &Path,
    name: &str,
    data: &Path,
    client_url: &str,
    peer_url: &str,
) -> Command {
    let mut command = Command::new("etcd");
    command
        .current_dir(pki)
        .args(["--name", name, "--data-dir"])
        .arg(data)
        .args(["--listen-client-urls", client_url])
        .args(["--advertise-client-urls", client_url])
        .args(["--listen-peer-urls", peer_url])
        .args(["--initial-advertise-peer-urls", peer_url])
        .args(["--initial-cluster", &format!("{name}={peer_url}")])
        .args(["--initial-cluster-state", "new"])
        .args(["--cert-file", "etcd/server.crt"])
        .args(["--key-file", "etcd/server.key"])
        .args(["--client-cert-auth", "--trusted-ca-file", "etcd/ca.crt"])
        .args(["--peer-cert-file", "etcd/peer.crt"])
        .args(["--peer-key-file", "etcd/peer.key"])
        .args([
            "--peer-client-cert-auth",
            "--peer-trusted-ca-file",
            "etcd/ca.crt",
        ])
        .stdin(std::process::Stdio::null());
    command
}
