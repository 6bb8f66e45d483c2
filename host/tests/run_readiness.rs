//! The readiness phase with real controllers, real etcd and real guests:
//! ready only when every check is, `/readyz` and `/readyz?verbose`,
//! `plinth status`, sd_notify through a real `NOTIFY_SOCKET`, `/readyz`
//! following etcd after ready (503 while it is stopped), quorum-guard
//! holding a controller until the cluster has three voters, a plugin's
//! `failed` (exit 3), hostile plugins contained within their deadline, and a
//! URL outside `allow-urls` never fetched.
//!
//! Address blocks `127.6x.0.x`; one controller test at a time
//! ([`cluster::heavy`]).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::PluginDir;
use common::cluster::{self, Controller, wait_for};
use plinth::run::readiness::{Prober, TrustedCas};

const START: Duration = Duration::from_secs(60);

/// `spec.readiness.timeout` for controllers that are meant to give up.
fn readiness_timeout(timeout: &str) -> String {
    format!("  readiness:\n    timeout: {timeout}\n")
}

/// The guests every test uses, compiled once into a cache that each
/// controller's data dir starts with: a debug host takes seconds per
/// compile, and the cache is keyed by content, not by data dir.
fn warm_cache() -> &'static Path {
    static WARM: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, cache) = WARM.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let plugins = PluginDir::new();
        plugins.add("scripted", "scripted", "");
        plugins.add("quorum-guard", "quorum-guard", "");
        let data = dir.path().join("data");
        common::init_only(&data, Some(&plugins), &[]).expect_code(0);
        let cache = data.join("cache/plugins");
        (dir, cache)
    });
    cache
}

/// A controller with `plugins` (file stem, guest package, manifest), its
/// data dir's plugin cache already warm; the plugin dir lives as long as
/// the second value.
fn controller(
    base: &Path,
    block: u8,
    index: u8,
    extra: &str,
    plugins: &[(&str, &str, &str)],
) -> (Controller, PluginDir) {
    let dir = PluginDir::new();
    for (stem, package, manifest) in plugins {
        dir.add(stem, package, manifest);
    }
    let mut controller = Controller::new(base, block, index, extra);
    let cache = controller.data.join("cache/plugins");
    std::fs::create_dir_all(&cache).unwrap();
    for entry in std::fs::read_dir(warm_cache()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), cache.join(entry.file_name())).unwrap();
    }
    controller.plugins = Some(dir.path().to_owned());
    (controller, dir)
}

/// Wait for `controller` to exit by itself: its exit code, and its last
/// line, the one-line error.
fn exit_of(controller: &mut Controller) -> (i32, String) {
    let code = controller.wait_exit(START);
    let log = controller.log_text();
    let error = log
        .lines()
        .rev()
        .find(|line| line.starts_with("plinth: error:"))
        .unwrap_or_else(|| panic!("no error line (exit {code}) in\n{log}"))
        .to_owned();
    (code, error)
}

/// `GET https://<controller>:9443<path>`, verified against its CA: status
/// and body, `None` while nothing answers.
fn get(controller: &Controller, path: &str) -> Option<(u16, String)> {
    let pki = controller.data.join("pki");
    if !pki.join("ca.crt").exists() {
        return None;
    }
    let trust = TrustedCas::from_files(&[pki.join("ca.crt")]).unwrap();
    let prober = Prober::new(&trust, None, Duration::from_secs(5)).unwrap();
    let url = url::Url::parse(&format!("https://{}:9443{path}", controller.ip)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seen = runtime.block_on(prober.get(&url));
    seen.status.map(|status| (status, seen.body))
}

fn readyz_verbose(controller: &Controller) -> Option<(u16, String)> {
    get(controller, "/readyz?verbose")
}

/// A `NOTIFY_SOCKET` of our own. Until [`NotifySocket::listen`] nobody
/// reads it, like a service manager that is stuck: its queue fills after
/// ten datagrams and a blocking sender would hang. Then it is read as
/// systemd reads it, each datagram kept in order.
struct NotifySocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    socket: Mutex<Option<UnixDatagram>>,
    received: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        Self {
            _dir: dir,
            path,
            socket: Mutex::new(Some(socket)),
            received: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Start reading (once).
    fn listen(&self) {
        let Some(socket) = self.socket.lock().unwrap().take() else {
            return;
        };
        let sink = Arc::clone(&self.received);
        // Ends with the test process; holds nothing but the socket.
        std::thread::spawn(move || {
            let mut buffer = [0u8; 8192];
            while let Ok(n) = socket.recv(&mut buffer) {
                let datagram = String::from_utf8_lossy(&buffer[..n]).into_owned();
                sink.lock().unwrap().push(datagram);
            }
        });
    }

    fn env(&self) -> (String, String) {
        ("NOTIFY_SOCKET".to_owned(), self.path.display().to_string())
    }

    fn datagrams(&self) -> Vec<String> {
        self.received.lock().unwrap().clone()
    }

    fn readies(&self) -> usize {
        self.datagrams()
            .iter()
            .filter(|d| d.lines().any(|line| line == "READY=1"))
            .count()
    }
}

fn journal_readiness(controller: &Controller) -> Vec<serde_json::Value> {
    std::fs::read_to_string(controller.data.join("journal/bootstrap.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|entry| entry["phase"] == "readiness")
        .collect()
}

#[test]
fn a_controller_is_ready_only_once_every_check_is_and_tells_systemd_once() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    // Ready at its 20th evaluation: about two seconds at the 100 ms floor.
    let (mut c1, _plugins) = controller(
        base.path(),
        60,
        1,
        "",
        &[(
            "50-slow",
            "scripted",
            "[settings]\n\"readiness.checks\" = \"gate\"\n\"readiness.ready-after\" = \"20\"\n",
        )],
    );
    c1.env.push(notify.env());
    c1.start(None);

    let mut seen_not_ready = None;
    let mut ready = None;
    wait_for("/readyz to answer 200", START, || {
        match readyz_verbose(&c1) {
            Some((200, body)) => ready = Some(body),
            Some((503, body)) if body.contains("[-]plugin/50-slow/gate waiting: attempt") => {
                seen_not_ready.get_or_insert(body);
            }
            _ => {}
        }
        ready.is_some()
    });
    let not_ready = seen_not_ready.expect("a 503 while the plugin's check was waiting");
    for name in ["etcd", "etcd-voter", "plinth-api", "plugin/50-slow/gate"] {
        assert!(
            not_ready.contains(&format!("]{name} ")),
            "{name} missing from\n{not_ready}"
        );
    }
    assert!(not_ready.ends_with("readyz check failed\n"), "{not_ready}");
    let ready = ready.unwrap();
    assert_eq!(
        ready,
        "[+]etcd ok\n[+]etcd-voter ok\n[+]plinth-api ok\n[+]plugin/50-slow/gate ok\n\
         readyz check passed\n"
    );
    assert_eq!(get(&c1, "/readyz"), Some((200, "ok\n".to_owned())));

    // Nobody read the socket so far, and readiness went on regardless. Once
    // read, it holds STATUS= lines from the checking, then READY=1 once.
    notify.listen();
    wait_for("READY=1", Duration::from_secs(5), || notify.readies() > 0);
    let datagrams = notify.datagrams();
    let ready_at = datagrams
        .iter()
        .position(|d| d.lines().any(|line| line == "READY=1"))
        .unwrap();
    assert!(
        datagrams[..ready_at]
            .iter()
            .any(|d| d.contains("STATUS=Readiness:") && d.contains("plugin/50-slow/gate waiting")),
        "{datagrams:#?}"
    );
    assert!(
        datagrams[ready_at].contains("STATUS=Ready: 4 readiness checks passed"),
        "{datagrams:#?}"
    );

    // `plinth status` and the journal agree.
    let status = c1.plinth(&["status"]);
    status.expect_code(0);
    assert!(
        status.stdout.contains("[+]plugin/50-slow/gate ready"),
        "{}",
        status.stdout
    );
    let journal = journal_readiness(&c1);
    assert_eq!(journal.len(), 4, "{journal:#?}");
    let gate = journal
        .iter()
        .find(|e| e["detail"]["check"] == "plugin/50-slow/gate")
        .expect("a journal entry for the plugin's check");
    assert_eq!(gate["plugin"], "50-slow");
    assert_eq!(gate["verdict"], "allowed");
    assert_eq!(gate["detail"]["probes"], 20);
    assert!(gate["duration_us"].as_u64().unwrap() >= 1_900_000, "{gate}");
    assert_eq!(c1.stop(), 0);
    assert_eq!(notify.readies(), 1, "{:#?}", notify.datagrams());
}

#[test]
fn after_ready_readyz_follows_etcd_and_ready_is_still_sent_once() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    notify.listen();
    let mut c1 = Controller::new(base.path(), 67, 1, "");
    c1.env.push(notify.env());
    c1.start(None);
    let ok = Some((200, "ok\n".to_owned()));
    wait_for("/readyz to answer 200", START, || get(&c1, "/readyz") == ok);
    wait_for("READY=1", START, || notify.readies() == 1);

    // etcd stopped under a ready controller: /readyz turns 503 and names
    // it, and `plinth status` says not ready.
    let [etcd] = c1.etcd_pids()[..] else {
        panic!("one etcd expected: {:?}", c1.etcd_pids())
    };
    // Readiness is Plinth's to announce: etcd was started without the
    // controller's NOTIFY_SOCKET.
    let environ = std::fs::read(format!("/proc/{etcd}/environ")).unwrap();
    assert!(
        !environ
            .split(|b| *b == 0)
            .any(|var| var.starts_with(b"NOTIFY_SOCKET=")),
        "etcd sees NOTIFY_SOCKET"
    );
    // SAFETY: the etcd this test's controller started.
    unsafe { libc::kill(etcd, libc::SIGSTOP) };
    let mut down = None;
    wait_for("/readyz to answer 503 naming etcd", START, || {
        down = readyz_verbose(&c1)
            .filter(|(code, body)| *code == 503 && body.contains("[-]etcd waiting: "));
        down.is_some()
    });
    let (_, body) = down.unwrap();
    assert!(body.contains("[+]plinth-api ok"), "{body}");
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let status = c1.plinth(&["status"]);
    assert_eq!(status.code, 5, "{}", status.stdout);
    assert!(
        status.stdout.contains("[-]etcd waiting"),
        "{}",
        status.stdout
    );

    // etcd going on: 200 again, the same etcd, and still one READY=1.
    // SAFETY: as above.
    unsafe { libc::kill(etcd, libc::SIGCONT) };
    wait_for("/readyz to answer 200 again", START, || {
        get(&c1, "/readyz") == ok
    });
    assert_eq!(c1.etcd_pids(), [etcd], "etcd was started again");
    let log = c1.log_text();
    assert!(
        log.contains("readiness: [-]etcd waiting") && log.contains("/readyz answers 503"),
        "{log}"
    );
    assert_eq!(c1.stop(), 0, "{log}");
    assert_eq!(notify.readies(), 1, "{:#?}", notify.datagrams());
}

#[test]
fn quorum_guard_holds_the_first_controller_until_two_more_have_joined() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let (mut c1, _guard) = controller(
        base.path(),
        61,
        1,
        "",
        &[(
            "quorum-guard",
            "quorum-guard",
            "hooks = [\"readiness\"]\n[settings]\nmin-voters = \"3\"\n",
        )],
    );
    c1.start(None);
    wait_for("the guard to wait for voters", START, || {
        readyz_verbose(&c1).is_some_and(|(code, body)| {
            code == 503 && body.contains("[-]plugin/quorum-guard/voters waiting: 1 of 3 voters\n")
        })
    });
    let status = c1.plinth(&["status"]);
    status.expect_code(5);
    assert!(
        status
            .stdout
            .contains("[-]plugin/quorum-guard/voters waiting: 1 of 3 voters"),
        "{}",
        status.stdout
    );
    let json = c1.plinth(&["status", "--output", "json"]);
    json.expect_code(5);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["ready"], false);

    let mut joiners: Vec<(Controller, PluginDir)> = (2..=3)
        .map(|i| controller(base.path(), 61, i, "", &[]))
        .collect();
    let token = c1.token_file(&[]);
    for (joiner, _) in &mut joiners {
        joiner.start(Some(&token));
    }
    wait_for(
        "controller 1 to be ready with three voters",
        START * 2,
        || readyz_verbose(&c1).is_some_and(|(code, _)| code == 200),
    );
    c1.plinth(&["status"]).expect_code(0);
    for (joiner, _) in &joiners {
        wait_for(&format!("{} to be ready", joiner.name), START, || {
            readyz_verbose(joiner).is_some_and(|(code, _)| code == 200)
        });
    }
    let members = c1.members();
    assert_eq!(members.iter().filter(|m| m["learner"] == false).count(), 3);
}

#[test]
fn a_plugin_answering_failed_stops_the_controller_with_exit_3_naming_it() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let notify = NotifySocket::new();
    notify.listen();
    let (mut c1, _plugins) = controller(
        base.path(),
        62,
        1,
        "",
        &[(
            "50-gate",
            "scripted",
            "[settings]\n\"readiness.checks\" = \"disk\"\n\"readiness.fail\" = \"disk too small\\nREADY=1\"\n",
        )],
    );
    c1.env.push(notify.env());
    c1.start(None);
    let (code, error) = exit_of(&mut c1);
    assert_eq!(code, 3, "{error}");
    assert!(
        error.contains("plugin/50-gate/disk failed: disk too small\\nREADY=1"),
        "{error}"
    );
    c1.wait_no_etcd();
    assert_eq!(notify.readies(), 0, "{:#?}", notify.datagrams());
    let journal = journal_readiness(&c1);
    let disk = journal
        .iter()
        .find(|e| e["detail"]["check"] == "plugin/50-gate/disk")
        .unwrap();
    assert_eq!(disk["verdict"], "denied");
}

#[test]
fn a_hostile_readiness_plugin_is_stopped_at_its_deadline() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();

    // Fail-closed: a loop in evaluate fails the run (exit 4) at 300 ms.
    let (mut c1, _looping) = controller(
        base.path(),
        63,
        1,
        "",
        &[(
            "50-loop",
            "scripted",
            "timeout-ms = 300\n[settings]\n\"readiness.checks\" = \"spin\"\n\"hostile.evaluate\" = \"loop\"\n",
        )],
    );
    c1.start(None);
    let (code, error) = exit_of(&mut c1);
    assert_eq!(code, 4, "{error}");
    assert!(error.contains("plugin 50-loop"), "{error}");
    assert!(error.contains("timed out after 300 ms"), "{error}");
    c1.wait_no_etcd();

    // Ignored: a trap on every evaluation is "not ready", the controller
    // keeps answering, and the readiness timeout ends it (exit 5).
    let (mut c2, _trapping) = controller(
        base.path(),
        63,
        2,
        &readiness_timeout("8s"),
        &[(
            "50-trap",
            "scripted",
            "failure-policy = \"ignore\"\n[settings]\n\"readiness.checks\" = \"crash\"\n\"hostile.evaluate\" = \"panic\"\n",
        )],
    );
    c2.start(None);
    wait_for("the trapping check to show as not ready", START, || {
        readyz_verbose(&c2).is_some_and(|(code, body)| {
            code == 503
                && body.contains("[+]etcd ok")
                && body.contains("[-]plugin/50-trap/crash waiting: evaluate trapped")
        })
    });
    let (code, error) = exit_of(&mut c2);
    assert_eq!(code, 5, "{error}");
    assert!(error.contains("readiness timed out after 8s"), "{error}");
    assert!(
        error.contains("plugin/50-trap/crash waiting: evaluate trapped"),
        "{error}"
    );
}

/// An HTTP server on `address` answering 200 to everything; counts the
/// connections it accepted.
fn counting_server(address: &str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(format!("{address}:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, count)
}

#[test]
fn a_url_outside_allow_urls_is_never_fetched() {
    let _heavy = cluster::heavy();
    let base = tempfile::tempdir().unwrap();
    let (port, connections) = counting_server("127.64.0.9");
    let url = format!("http://127.64.0.9:{port}/health");
    let manifest = |allow: &str| {
        format!("allow-urls = [\"{allow}\"]\n[settings]\n\"readiness.checks\" = \"probe={url}\"\n")
    };

    // Same host, another port: a text prefix would admit it, a URL prefix
    // does not.
    let refused = manifest(&format!("http://127.64.0.9:{}", port / 10));
    let (mut c1, _refused) = controller(
        base.path(),
        64,
        1,
        "",
        &[("50-probe", "scripted", &refused)],
    );
    c1.start(None);
    let (code, error) = exit_of(&mut c1);
    assert_eq!(code, 2, "{error}");
    assert!(
        error.contains(&url) && error.contains("allow-urls"),
        "{error}"
    );
    assert!(error.contains("50-probe.toml"), "{error}");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    c1.wait_no_etcd();

    // The same check, admitted: the server is probed and the check ready.
    // Beside it, quorum-guard probes this controller's own etcd `/health`
    // over HTTPS: verified against the cluster's etcd CA, and answered only
    // because the manifest has the host present etcd/healthcheck-client.
    let admitted = manifest(&format!("http://127.64.0.9:{port}/"));
    let etcd_health = "https://127.64.0.2:2379/health";
    let guard = format!(
        "allow-urls = [\"{etcd_health}\"]\nclient-certificate = \"etcd/healthcheck-client\"\n\
         [settings]\nprobe-url = \"{etcd_health}\"\n"
    );
    let (mut c2, _admitted) = controller(
        base.path(),
        64,
        2,
        "",
        &[
            ("50-probe", "scripted", &admitted),
            ("60-guard", "quorum-guard", &guard),
        ],
    );
    c2.start(None);
    wait_for(
        "the admitted probes to make the controller ready",
        START,
        || readyz_verbose(&c2).is_some_and(|(code, _)| code == 200),
    );
    assert!(connections.load(Ordering::SeqCst) >= 1);
    let report = c2.plinth(&["status", "--output", "json"]);
    report.expect_code(0);
    assert!(
        report.stdout.contains("plugin/60-guard/probe"),
        "{}",
        report.stdout
    );
}
