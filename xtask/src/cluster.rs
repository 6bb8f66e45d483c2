//! Controllers and bare etcds on loopback addresses, for the demo and the
//! benchmark. Every process is killed when its value is dropped (Plinth's
//! etcd follows through `PR_SET_PDEATHSIG`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A child process killed on drop.
pub struct Guard {
    pub child: Child,
}

impl Guard {
    pub fn spawn(command: &mut Command) -> Result<Self> {
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {:?}", command.get_program()))?;
        Ok(Self { child })
    }

    /// SIGTERM and wait (at most `timeout`); the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("process {pid} did not stop within {timeout:?}")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One controller of a loopback cluster: `c<index>` on `127.<block>.0.<index>`.
pub struct Node {
    pub name: String,
    pub ip: String,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// `--plugins` for `start`.
    pub plugins: Option<PathBuf>,
    /// Extra environment for `start` (`NOTIFY_SOCKET`).
    pub env: Vec<(String, String)>,
}

impl Node {
    pub fn new(base: &Path, block: u8, index: u8) -> Result<Self> {
        let name = format!("c{index}");
        let ip = format!("127.{block}.0.{index}");
        let dir = base.join(&name);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("cluster.yaml");
        std::fs::write(
            &config,
            format!(
                "spec:\n  api:\n    address: {ip}\n  storage:\n    etcd:\n      name: {name}\n      clientAddress: {ip}\n"
            ),
        )?;
        Ok(Self {
            name,
            ip,
            data: dir.join("data"),
            config,
            log: dir.join("plinth.log"),
            plugins: None,
            env: Vec::new(),
        })
    }

    /// `plinth controller` for this node, its log in its dir.
    pub fn start(&self, plinth: &Path, token: Option<&Path>, log_filter: &str) -> Result<Guard> {
        let log = std::fs::File::create(&self.log)?;
        let mut command = Command::new(plinth);
        command
            .arg("controller")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .env("PLINTH_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(token) = token {
            command.arg("--token-file").arg(token);
        }
        if let Some(plugins) = &self.plugins {
            command.arg("--plugins").arg(plugins);
        }
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        Guard::spawn(&mut command)
    }

    pub fn client_url(&self) -> String {
        format!("https://{}:2379", self.ip)
    }

    pub fn peer_url(&self) -> String {
        format!("https://{}:2380", self.ip)
    }

    pub fn etcdctl(&self, args: &[&str]) -> Result<std::process::Output> {
        etcdctl(&self.data.join("pki"), &self.client_url(), args)
    }

    pub fn healthy(&self) -> bool {
        self.etcdctl(&["endpoint", "health"])
            .is_ok_and(|out| out.status.success())
    }

    /// (voters, members) as this node's etcd lists them.
    pub fn voters(&self) -> Option<(usize, usize)> {
        let out = self.etcdctl(&["member", "list", "-w", "json"]).ok()?;
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let members = list["members"].as_array()?;
        let voters = members
            .iter()
            .filter(|m| m["isLearner"] != true && m["name"].as_str().is_some_and(|n| !n.is_empty()))
            .count();
        Some((voters, members.len()))
    }

    pub fn plinth(&self, plinth: &Path, args: &[&str]) -> Result<String> {
        let out = self.plinth_output(plinth, args)?;
        if !out.status.success() {
            bail!(
                "plinth {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `plinth <args> --data-dir <this node's>`, whatever its exit code.
    pub fn plinth_output(&self, plinth: &Path, args: &[&str]) -> Result<std::process::Output> {
        Ok(Command::new(plinth)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data)
            .env("PLINTH_LOG", "warn")
            .output()?)
    }

    /// A controller token made on this node, in a file beside its data.
    pub fn token_file(&self, plinth: &Path) -> Result<PathBuf> {
        let token = self.plinth(plinth, &["token", "create", "--role", "controller"])?;
        let path = self.data.parent().expect("node dir").join("token");
        std::fs::write(&path, token.trim())?;
        Ok(path)
    }
}

/// `etcdctl` with the healthcheck client of the PKI at `pki`.
pub fn etcdctl(pki: &Path, endpoint: &str, args: &[&str]) -> Result<std::process::Output> {
    Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .arg("--cacert")
        .arg(pki.join("etcd/ca.crt"))
        .arg("--cert")
        .arg(pki.join("etcd/healthcheck-client.crt"))
        .arg("--key")
        .arg(pki.join("etcd/healthcheck-client.key"))
        .arg("--command-timeout=2s")
        .args(args)
        .output()
        .context("etcdctl (Debian: etcd-client) is needed")
}

/// Poll `condition` every 20 ms until it holds; fail after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("plinth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
