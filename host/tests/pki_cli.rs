//! The PKI through the real `plinth` binary: re-runs change nothing, a SAN
//! change reissues exactly the certificates that carry it, and a SIGKILL at
//! any moment of `controller --init-only` never leaves a half-written PKI nor
//! changes a committed CA.
//!
//! The library-level behaviour (`stage_pki`, `Stage`) is covered by
//! `pki_consumers.rs`; these tests check that the binary wires it up so that
//! the guarantees hold for a process that really dies. openssl must be
//! installed: a test that cannot run it fails saying so.

mod support_pki;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use support_pki::{
    CAS, CERTIFICATES, LEAVES, assert_every_leaf_verifies, changed, describe, init_command,
    init_only_ok, openssl_ok, snapshot, write_config,
};

type Snapshot = BTreeMap<PathBuf, Vec<u8>>;

/// A ClusterConfig with RSA-2048 keys (slow enough in a debug build for a
/// kill to land inside each phase) and `san` as the only extra API SAN.
fn rsa_config(san: &str) -> String {
    format!("spec:\n  api:\n    sans: [{san}]\n  pki:\n    keyAlgorithm: rsa-2048\n")
}

/// The SANs of `<data_dir>/pki/<name>.crt`, as openssl prints them.
fn sans_of(data_dir: &Path, name: &str) -> String {
    openssl_ok(
        &[
            "x509",
            "-noout",
            "-ext",
            "subjectAltName",
            "-in",
            &format!("{name}.crt"),
        ],
        &data_dir.join("pki"),
    )
}

/// Modification time of every file of a snapshot under `pki/`, `config/`
/// and `images.lock`: the files consumers read, whose mtime tools such as
/// kubelet's certificate manager or a config watcher react to. (`.complete`
/// is left out: it only marks that a commit finished.)
fn mtimes(data_dir: &Path, files: &Snapshot) -> BTreeMap<PathBuf, SystemTime> {
    files
        .keys()
        .filter(|rel| {
            rel.starts_with("pki") || rel.starts_with("config") || *rel == Path::new("images.lock")
        })
        .map(|rel| {
            let modified = fs::metadata(data_dir.join(rel))
                .and_then(|m| m.modified())
                .expect("mtime");
            (rel.clone(), modified)
        })
        .collect()
}

#[test]
fn rerunning_init_only_changes_no_byte_and_no_mtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = write_config(tmp.path(), "cluster.yaml", &rsa_config("api.example.com"));
    init_only_ok(&data, Some(&config), None);
    let first = snapshot(&data);
    for must in [
        "pki/ca.crt",
        "pki/server.key",
        "config/cluster.yaml",
        "images.lock",
    ] {
        assert!(
            first.contains_key(Path::new(must)),
            "first run made no {must}"
        );
    }
    let first_mtimes = mtimes(&data, &first);

    init_only_ok(&data, Some(&config), None);
    let second = snapshot(&data);
    assert_eq!(
        changed(&first, &second),
        Vec::<PathBuf>::new(),
        "a re-run with the same config changed files"
    );
    assert_eq!(
        mtimes(&data, &second),
        first_mtimes,
        "a re-run rewrote files with identical bytes"
    );
}

#[test]
fn changing_api_sans_reissues_exactly_server_and_plinth_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let before_config = write_config(tmp.path(), "before.yaml", &rsa_config("api.example.com"));
    let after_config = write_config(
        tmp.path(),
        "after.yaml",
        "spec:\n  api:\n    sans: [api.example.com, api2.example.com]\n  pki:\n    keyAlgorithm: rsa-2048\n",
    );
    init_only_ok(&data, Some(&before_config), None);
    let before = snapshot(&data);

    init_only_ok(&data, Some(&after_config), None);
    let pki_changes: Vec<PathBuf> = changed(&before, &snapshot(&data))
        .into_iter()
        .filter(|p| p.starts_with("pki"))
        .collect();
    let expected: Vec<PathBuf> = [
        "pki/plinth-api.crt",
        "pki/plinth-api.key",
        "pki/server.crt",
        "pki/server.key",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    assert_eq!(pki_changes, expected);
    for name in ["server", "plinth-api"] {
        let sans = sans_of(&data, name);
        assert!(
            sans.contains("DNS:api2.example.com") && sans.contains("DNS:api.example.com"),
            "{name} lacks the configured SANs: {sans}"
        );
    }
    assert_every_leaf_verifies(&data);
}

// ---------------------------------------------------------------------------
// SIGKILL at many points of a run.

/// When to kill a run.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This long after spawning the process.
    AfterStart(Duration),
    /// This long after the process logged that the commit phase starts.
    IntoCommit(Duration),
    /// This long after the commit record appeared on disk: the commit is
    /// decided from that instant, so a kill here exercises the roll-forward
    /// whatever the machine's fsync latency (a loaded machine can spend more
    /// than all of `INTO_COMMIT_MICROS` fsyncing the staged files first).
    OnceDecided(Duration),
}

/// What a kill left behind, judged before the next run recovers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Landing {
    /// Nothing visible changed (a stage without commit record is invisible:
    /// the next run deletes it).
    AsItWas,
    /// The commit record was on disk: the commit is decided, and every file
    /// it lists is either still staged or already published.
    CommitDecided,
    /// The new state was published in full.
    Complete,
}

/// Spawn `plinth controller --init-only` and SIGKILL it at `at`. Returns
/// whether the signal killed it (false: it had already exited 0).
fn run_and_kill(data: &Path, config: &Path, at: KillAt) -> bool {
    // `-v`: the phase lines the kill is aimed by are debug lines.
    let mut child = init_command(data, Some(config), None)
        .arg("--verbose")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn plinth");
    let stderr = child.stderr.take().expect("piped stderr");
    let (commit_started, commit_seen) = mpsc::channel();
    // The commit phase is a few milliseconds at the end of the run: the log
    // line announcing it is the only way to aim a kill into it.
    let reader = thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("starting") && line.contains("\"commit\"") {
                let _ = commit_started.send(());
            }
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let aimed_at_commit = !matches!(at, KillAt::AfterStart(_));
    if aimed_at_commit && commit_seen.recv_timeout(Duration::from_secs(120)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the run never reached the commit phase:\n{}",
            reader.join().unwrap_or_default()
        );
    }
    match at {
        KillAt::AfterStart(delay) | KillAt::IntoCommit(delay) => thread::sleep(delay),
        KillAt::OnceDecided(delay) => {
            let record = data.join(".stage/commit");
            let give_up = Instant::now() + Duration::from_secs(30);
            while !record.exists()
                && child.try_wait().expect("poll plinth").is_none()
                && Instant::now() < give_up
            {
                thread::sleep(Duration::from_micros(20));
            }
            thread::sleep(delay);
        }
    }
    // SIGKILL; a process that already exited is a zombie until waited for,
    // so this cannot hit another process.
    child.kill().expect("SIGKILL plinth");
    let status = child.wait().expect("wait for plinth");
    let log = reader.join().unwrap_or_default();
    match status.signal() {
        Some(libc::SIGKILL) => true,
        _ => {
            assert_eq!(
                status.code(),
                Some(0),
                "the run failed on its own before the kill at {at:?}:\n{log}"
            );
            false
        }
    }
}

fn is_staged(rel: &Path) -> bool {
    rel.starts_with(".stage")
}

/// The snapshot without the stage directory: what a reader of the data dir
/// that respects the stage protocol sees.
fn visible(files: &Snapshot) -> Snapshot {
    files
        .iter()
        .filter(|(rel, _)| !is_staged(rel))
        .map(|(rel, bytes)| (rel.clone(), bytes.clone()))
        .collect()
}

/// The bytes of every CA cert and key that are published, or decided to be
/// (staged under a commit record).
fn decided_cas(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let decided = data.join(".stage/commit").exists();
    let mut out = BTreeMap::new();
    for ca in CAS {
        for ext in ["crt", "key"] {
            let rel = format!("pki/{ca}.{ext}");
            let staged = data.join(".stage/files").join(&rel);
            let bytes = match fs::read(&staged) {
                Ok(bytes) if decided => Some(bytes),
                _ => fs::read(data.join(&rel)).ok(),
            };
            if let Some(bytes) = bytes {
                out.insert(rel, bytes);
            }
        }
    }
    out
}

/// Every file a complete init-only leaves in the data dir.
fn complete_files() -> Vec<String> {
    let mut files: Vec<String> = CERTIFICATES
        .iter()
        .flat_map(|name| [format!("pki/{name}.crt"), format!("pki/{name}.key")])
        .collect();
    files.extend(
        [
            "pki/sa.key",
            "pki/sa.pub",
            "pki/admin.conf",
            "pki/scheduler.conf",
            "pki/controller-manager.conf",
            "config/cluster.yaml",
            "images.lock",
            ".complete",
        ]
        .map(String::from),
    );
    files
}

/// The data dir holds a complete PKI for a config whose extra SAN is `san`:
/// every file, every leaf verifying against its CA, every key matching its
/// certificate (a torn leaf would pair a new cert with an old key).
fn assert_complete(data: &Path, san: &str, context: &str) {
    for rel in complete_files() {
        assert!(data.join(&rel).is_file(), "{context}: {rel} is missing");
    }
    assert_every_leaf_verifies(data);
    let pki = data.join("pki");
    for (leaf, _) in LEAVES {
        let from_cert = openssl_ok(
            &["x509", "-noout", "-pubkey", "-in", &format!("{leaf}.crt")],
            &pki,
        );
        let from_key = openssl_ok(&["pkey", "-pubout", "-in", &format!("{leaf}.key")], &pki);
        assert_eq!(
            from_cert, from_key,
            "{context}: {leaf}.key does not match {leaf}.crt"
        );
    }
    let sans = sans_of(data, "server");
    assert!(
        sans.contains(&format!("DNS:{san}")),
        "{context}: server.crt lacks {san}: {sans}"
    );
}

/// Judge the data dir right after a kill, before any recovery.
fn judge_kill(data: &Path, previous: &Snapshot, san: &str, context: &str) -> Landing {
    let now = snapshot(data);
    let record = data.join(".stage/commit");
    if record.exists() {
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(&record).expect("read commit record"))
                .expect("the commit record on disk is complete JSON");
        let files = record["files"]
            .as_array()
            .expect("commit record lists files");
        assert!(!files.is_empty(), "{context}: empty commit record");
        for file in files {
            let rel = file.as_str().expect("path in commit record");
            assert!(
                data.join(".stage/files").join(rel).exists() || data.join(rel).exists(),
                "{context}: {rel} is in the commit record but neither staged nor published"
            );
        }
        return Landing::CommitDecided;
    }
    if visible(&now) == *previous {
        return Landing::AsItWas;
    }
    assert_complete(data, san, context);
    Landing::Complete
}

/// After a normal run, nothing of the stage is left.
fn assert_no_stage(data: &Path, context: &str) {
    assert!(
        !data.join(".stage").exists(),
        "{context}: .stage left after a successful run"
    );
}

/// Kills a few hundred microseconds to a few milliseconds after the commit
/// phase announced itself.
const INTO_COMMIT_MICROS: [u64; 8] = [0, 200, 500, 1_000, 1_500, 2_500, 4_000, 8_000];

/// Kills right after, and shortly after, the commit record appeared.
const ONCE_DECIDED_MICROS: [u64; 3] = [0, 300, 1_000];

/// The commit phase lasts milliseconds and the log line that aims a kill at
/// it arrives with scheduling jitter: until a kill has landed inside it, its
/// sweep is repeated this many more times at most.
const EXTRA_COMMIT_SWEEPS: usize = 3;

/// Kill points spread over a run lasting about `run`: doubling delays from
/// 0 and 5 ms to past the end, points close to the end, and points into the
/// commit phase.
fn kill_points(run: Duration) -> Vec<KillAt> {
    let mut points = vec![KillAt::AfterStart(Duration::ZERO)];
    let mut delay = Duration::from_millis(5);
    while delay < run.mul_f64(1.3) {
        points.push(KillAt::AfterStart(delay));
        delay *= 2;
    }
    for fraction in [0.8, 0.95, 1.05] {
        points.push(KillAt::AfterStart(run.mul_f64(fraction)));
    }
    points.extend(commit_sweep());
    points
}

/// Kills timed from the commit line, then kills aimed at the decided
/// commit itself (see [`KillAt::OnceDecided`]).
fn commit_sweep() -> impl Iterator<Item = KillAt> {
    let timed = INTO_COMMIT_MICROS
        .into_iter()
        .map(|micros| KillAt::IntoCommit(Duration::from_micros(micros)));
    let decided = ONCE_DECIDED_MICROS
        .into_iter()
        .map(|micros| KillAt::OnceDecided(Duration::from_micros(micros)));
    timed.chain(decided)
}

/// Where the kills of a test landed.
#[derive(Debug, Default)]
struct Tally(BTreeMap<String, usize>);

impl Tally {
    fn add(&mut self, landing: Landing, killed: bool) {
        let key = format!("{landing:?}{}", if killed { "" } else { " (exited first)" });
        *self.0.entry(key).or_default() += 1;
    }

    fn count(&self, landing: Landing) -> usize {
        let name = format!("{landing:?}");
        self.0
            .iter()
            .filter(|(k, _)| k.split(' ').next() == Some(name.as_str()))
            .map(|(_, n)| n)
            .sum()
    }
}

/// The kill tests time their kill points from a probe run; running two of
/// them at once (each keeping both cores busy with RSA key generation) would
/// make the probe meaningless, so they take turns.
static ONE_KILL_TEST_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Run `iteration` (kill, judge, recover, check; returns where the kill
/// landed and whether it killed) at every kill point of a run lasting about
/// `run`, re-sweeping the commit phase until a kill has landed in it, then
/// check that kills landed both before and inside the commit.
fn kill_everywhere(run: Duration, mut iteration: impl FnMut(usize, KillAt) -> (Landing, bool)) {
    let points = kill_points(run);
    assert!(points.len() >= 15, "only {} kill points", points.len());
    let mut tally = Tally::default();
    let mut i = 0;
    let mut kill = |at: KillAt, tally: &mut Tally| {
        let (landing, killed) = iteration(i, at);
        tally.add(landing, killed);
        i += 1;
    };
    for at in points {
        kill(at, &mut tally);
    }
    for _ in 0..EXTRA_COMMIT_SWEEPS {
        if tally.count(Landing::CommitDecided) > 0 {
            break;
        }
        for at in commit_sweep() {
            kill(at, &mut tally);
        }
    }
    eprintln!("kills of a {run:?} run: {tally:?}");
    assert!(
        tally.count(Landing::CommitDecided) >= 1,
        "no kill landed inside the commit phase: {tally:?}"
    );
    assert!(
        tally.count(Landing::AsItWas) >= 1,
        "no kill landed before the commit: {tally:?}"
    );
}

#[test]
fn sigkill_during_a_first_run_leaves_nothing_or_a_pki_the_next_run_completes() {
    let _turn = ONE_KILL_TEST_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = write_config(tmp.path(), "cluster.yaml", &rsa_config("api.example.com"));

    // How long an uninterrupted first run lasts here, to spread the kills.
    let probe = tmp.path().join("probe");
    let started = Instant::now();
    init_only_ok(&probe, Some(&config), None);
    let run = started.elapsed();

    kill_everywhere(run, |i, at| {
        let data = tmp.path().join(format!("fresh-{i}"));
        let context = format!("fresh data dir, kill {i} at {at:?} of a {run:?} run");
        let killed = run_and_kill(&data, &config, at);
        let landing = judge_kill(&data, &Snapshot::new(), "api.example.com", &context);
        let cas_at_kill = decided_cas(&data);
        let out = init_only_ok(&data, Some(&config), None);
        assert_complete(&data, "api.example.com", &context);
        assert_no_stage(&data, &context);
        let cas = decided_cas(&data);
        assert_eq!(cas.len(), 6, "{context}: CA files missing");
        for (rel, bytes) in &cas_at_kill {
            assert!(
                cas.get(rel) == Some(bytes),
                "{context}: {rel}, decided before the kill ({landing:?}), changed in the next run\n{}",
                describe(&out)
            );
        }
        // Each fresh dir has served its purpose; keep the disk use flat.
        fs::remove_dir_all(&data).expect("remove data dir");
        (landing, killed)
    });
}

#[test]
fn sigkill_during_reissue_never_tears_the_pki_nor_changes_a_committed_ca() {
    let _turn = ONE_KILL_TEST_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let first = write_config(
        tmp.path(),
        "san-first.yaml",
        &rsa_config("first.example.com"),
    );
    init_only_ok(&data, Some(&first), None);
    let committed_cas = decided_cas(&data);
    assert_eq!(
        committed_cas.len(),
        6,
        "CA files missing after the first run"
    );

    // A SAN change reissues server and plinth-api: time one such run.
    let probe = write_config(
        tmp.path(),
        "san-probe.yaml",
        &rsa_config("probe.example.com"),
    );
    let started = Instant::now();
    init_only_ok(&data, Some(&probe), None);
    let run = started.elapsed();

    let mut previous = snapshot(&data);
    kill_everywhere(run, |i, at| {
        let san = format!("kill-{i}.example.com");
        let config = write_config(tmp.path(), &format!("san-{i}.yaml"), &rsa_config(&san));
        let context = format!("shared data dir, kill {i} at {at:?} of a {run:?} run");
        let killed = run_and_kill(&data, &config, at);
        let landing = judge_kill(&data, &previous, &san, &context);
        assert_eq!(
            decided_cas(&data),
            committed_cas,
            "{context}: a committed CA changed ({landing:?})"
        );
        init_only_ok(&data, Some(&config), None);
        assert_complete(&data, &san, &context);
        assert_no_stage(&data, &context);
        assert_eq!(
            decided_cas(&data),
            committed_cas,
            "{context}: a committed CA changed in the run after the kill"
        );
        previous = snapshot(&data);
        (landing, killed)
    });
}
