//! Real controllers on loopback addresses, for the run-mode tests.
//!
//! Each [`Controller`] is a `plinth controller` process in its own process
//! group, on its own address `127.<block>.0.<index>` with the default ports,
//! so tests in other blocks never share an address:port. Dropping it kills
//! the group; its etcd dies with it (`PR_SET_PDEATHSIG`), and the drop
//! waits until no etcd of its data dir is left.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Distributed tests share two cores; one at a time keeps etcd's 100 ms
/// heartbeats honest.
pub static HEAVY: Mutex<()> = Mutex::new(());

pub fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Poll `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(
        poll_until(timeout, condition),
        "timed out waiting for {what}"
    );
}

/// Poll `condition` every 50 ms; whether it held within `timeout`.
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

pub struct Controller {
    pub name: String,
    pub ip: String,
    pub data: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// `--plugins` for `start`.
    pub plugins: Option<PathBuf>,
    /// Extra environment for `start` (`NOTIFY_SOCKET`, ...).
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Controller {
    /// Write the config of controller `index` of `block` under `base`.
    pub fn new(base: &Path, block: u8, index: u8, extra_etcd_yaml: &str) -> Self {
        let name = format!("c{index}");
        let ip = format!("127.{block}.0.{index}");
        let dir = base.join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("cluster.yaml");
        std::fs::write(
            &config,
            format!(
                "spec:\n  api:\n    address: {ip}\n  storage:\n    etcd:\n      name: {name}\n      clientAddress: {ip}\n      joinTimeout: 2m\n{extra_etcd_yaml}"
            ),
        )
        .unwrap();
        Self {
            name,
            ip,
            data: dir.join("data"),
            config,
            log: dir.join("plinth.log"),
            plugins: None,
            env: Vec::new(),
            child: None,
        }
    }

    /// Start `plinth controller` (with `token` when given).
    pub fn start(&mut self, token: Option<&Path>) -> &mut Self {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_plinth"));
        command
            .arg("controller")
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .env("PLINTH_LOG", "warn,plinth=debug,etcd=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(token) = token {
            command.arg("--token-file").arg(token);
        }
        if let Some(plugins) = &self.plugins {
            command.arg("--plugins").arg(plugins);
        }
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        self.child = Some(command.spawn().expect("start plinth"));
        self
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), signal) };
    }

    /// SIGTERM, then the exit code (within 30 s).
    pub fn stop(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(30))
    }

    /// SIGKILL, then wait for its etcd to be gone too.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(10));
        self.wait_no_etcd();
    }

    /// Wait for the process to exit on its own; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not exit in time\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn client_url(&self) -> String {
        format!("https://{}:2379", self.ip)
    }

    /// `etcdctl` against this controller's etcd with its healthcheck client.
    pub fn etcdctl(&self, args: &[&str]) -> std::process::Output {
        let pki = self.data.join("pki");
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(self.client_url())
            .arg("--cacert")
            .arg(pki.join("etcd/ca.crt"))
            .arg("--cert")
            .arg(pki.join("etcd/healthcheck-client.crt"))
            .arg("--key")
            .arg(pki.join("etcd/healthcheck-client.key"))
            .arg("--command-timeout=3s")
            .args(args)
            .output()
            .expect("etcdctl (etcd-client) is needed for this test")
    }

    pub fn healthy(&self) -> bool {
        self.etcdctl(&["endpoint", "health"]).status.success()
    }

    pub fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.healthy() {
            assert!(
                Instant::now() < deadline,
                "{} never became healthy\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `etcdctl endpoint status` as JSON: (member id, cluster id, leader, learner).
    pub fn endpoint_status(&self) -> Option<(u64, u64, u64, bool)> {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"]);
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let status = &value[0]["Status"];
        Some((
            status["header"]["member_id"].as_u64()?,
            status["header"]["cluster_id"].as_u64()?,
            status["leader"].as_u64()?,
            status["isLearner"].as_bool().unwrap_or(false),
        ))
    }

    /// `plinth <args> --data-dir <this data dir>`.
    pub fn plinth(&self, args: &[&str]) -> super::Run {
        let data = self.data.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--data-dir", &data]);
        super::plinth(&all)
    }

    /// `plinth controller --init-only` on this controller's config and data
    /// dir, with `token` when given; its exit code must be 0.
    pub fn init_only(&self, token: Option<&Path>) {
        let config = self.config.display().to_string();
        let mut args = vec!["controller", "--init-only", "--config", &config];
        let token = token.map(|t| t.display().to_string());
        if let Some(token) = &token {
            args.extend(["--token-file", token]);
        }
        self.plinth(&args).expect_code(0);
    }

    /// `plinth etcd members --output json`, parsed.
    pub fn members(&self) -> Vec<serde_json::Value> {
        let run = self.plinth(&["etcd", "members", "--output", "json"]);
        run.expect_code(0);
        serde_json::from_str(&run.stdout).expect("members JSON")
    }

    /// A token made on this controller, written to a file under its dir.
    pub fn token_file(&self, extra: &[&str]) -> PathBuf {
        let mut args = vec!["token", "create", "--role", "controller"];
        args.extend(extra);
        let run = self.plinth(&args);
        run.expect_code(0);
        let path = self
            .data
            .parent()
            .unwrap()
            .join(format!("token-{}", std::process::id()));
        let path = unique(path);
        std::fs::write(&path, run.stdout.trim()).unwrap();
        path
    }

    /// Pids of etcd processes serving this data dir.
    pub fn etcd_pids(&self) -> Vec<i32> {
        etcd_pids_of(&self.data.join("etcd"))
    }

    pub fn wait_no_etcd(&self) {
        wait_for(
            &format!("no etcd of {} left", self.name),
            Duration::from_secs(15),
            || self.etcd_pids().is_empty(),
        );
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: the group we made for our own child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
        }
        // etcd follows through PR_SET_PDEATHSIG; make sure of it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.etcd_pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in self.etcd_pids() {
            // SAFETY: an etcd this test started, orphaned against all odds.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A TCP forwarder from one address to another, as an L4 load balancer or
/// a port forward in front of a controller: TLS passes through untouched,
/// so a client sees the target's certificate under the forwarder's
/// address. Dropping it stops accepting; connections in flight end when
/// their ends close them.
pub struct Forwarder {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    accepting: Option<JoinHandle<()>>,
}

impl Forwarder {
    pub fn start(listen: &str, target: &str) -> Self {
        let listener = TcpListener::bind(listen).unwrap();
        let address = listener.local_addr().unwrap();
        let target: SocketAddr = target.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let accepting = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(target)) else {
                    continue;
                };
                copy_until_eof(client.try_clone().unwrap(), server.try_clone().unwrap());
                copy_until_eof(server, client);
            }
        });
        Self {
            address,
            stop,
            accepting: Some(accepting),
        }
    }
}

fn copy_until_eof(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept, which then sees `stop`.
        let _ = TcpStream::connect(self.address);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
    }
}

/// An etcd run by someone else, as `storage.type: external` expects: one
/// member on `controller`'s address and certificates (made by an
/// init-only run), with no Plinth around it. Killed on drop.
pub struct ExternalEtcd {
    child: Child,
}

impl ExternalEtcd {
    pub fn start(controller: &Controller) -> Self {
        let pki = controller.data.join("pki");
        let peer = format!("https://{}:2380", controller.ip);
        let client = controller.client_url();
        let child = super::etcd_by_hand(
            &pki,
            "external",
            &controller.data.parent().unwrap().join("external-etcd"),
            &client,
            &peer,
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcd (etcd-server) is needed for this test");
        controller.wait_healthy(Duration::from_secs(30));
        Self { child }
    }
}

impl Drop for ExternalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique(path: PathBuf) -> PathBuf {
    let mut n = 0;
    loop {
        let candidate = path.with_extension(n.to_string());
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

/// Pids of processes whose command line has `--data-dir <dir>`.
pub fn etcd_pids_of(dir: &Path) -> Vec<i32> {
    let want = dir.as_os_str().as_encoded_bytes().to_vec();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.first()
                .is_some_and(|program| program.ends_with(b"etcd"))
                && args
                    .windows(2)
                    .any(|w| w[0] == b"--data-dir" && w[1] == want.as_slice())
        })
        .collect()
}
