//! The PKI as real consumers see it (openssl, kubectl, etcd), idempotence of
//! `stage_pki`, and crash safety of the stage.
//!
//! openssl, kubectl, etcd and etcdctl must be installed: a test that cannot
//! find one fails with a message saying which.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use plinth::config::Config;
use plinth::data_dir::DataDir;
use plinth::node::NodeFacts;
use plinth::pki::{
    self, CertificateFacts, DecisionKind, EtcdMode, KeyAlgorithm, PkiOutcome, PkiSpec,
    PublicKeyAlgorithm, ReissueReason,
};
use plinth::stage::Stage;
use time::OffsetDateTime;

const CAS: [&str; 3] = ["ca", "front-proxy-ca", "etcd/ca"];
/// Leaf → the CA that must sign it, and the openssl purpose it must pass.
const LEAVES: [(&str, &str, &str); 11] = [
    ("server", "ca", "sslserver"),
    ("apiserver-kubelet-client", "ca", "sslclient"),
    ("admin", "ca", "sslclient"),
    ("scheduler", "ca", "sslclient"),
    ("controller-manager", "ca", "sslclient"),
    ("plinth-api", "ca", "sslserver"),
    ("front-proxy-client", "front-proxy-ca", "sslclient"),
    ("etcd/server", "etcd/ca", "sslserver"),
    ("etcd/peer", "etcd/ca", "sslclient"),
    ("etcd/healthcheck-client", "etcd/ca", "sslclient"),
    ("apiserver-etcd-client", "etcd/ca", "sslclient"),
];
const KUBECONFIGS: [(&str, &str); 3] = [
    ("admin.conf", "admin"),
    ("scheduler.conf", "scheduler"),
    ("controller-manager.conf", "controller-manager"),
];

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP literal")
}

/// The spec the real config gives for an API at 10.0.0.5 with two extra
/// SANs, on a node `node1` with an IPv4 and an IPv6 address: every other
/// value (service IP, validities, etcd peer address) is the default.
fn spec(alg: KeyAlgorithm) -> PkiSpec {
    let node = NodeFacts {
        hostname: "node1".to_owned(),
        addresses: vec![ip("10.0.0.5"), ip("fd00::5")],
    };
    let yaml = format!(
        "spec:\n  api:\n    address: 10.0.0.5\n    sans: [api.example.com, 192.168.10.10]\n  pki:\n    keyAlgorithm: {alg}\n"
    );
    Config::from_yaml(&yaml, "test config", &node)
        .expect("test config")
        .pki_spec(&node)
}

/// Stage the PKI and commit it.
fn init(data_dir: &DataDir, spec: &PkiSpec, now: OffsetDateTime) -> PkiOutcome {
    let mut stage = Stage::open(data_dir).expect("open stage");
    let outcome = pki::stage_pki(spec, &mut stage, now).expect("stage_pki");
    stage.commit().expect("commit");
    outcome
}

fn kind_of<'a>(outcome: &'a PkiOutcome, name: &str) -> &'a DecisionKind {
    &outcome
        .decisions
        .iter()
        .find(|d| d.name == name)
        .unwrap_or_else(|| panic!("no decision for {name}: {:?}", outcome.decisions))
        .kind
}

fn facts<'a>(outcome: &'a PkiOutcome, name: &str) -> &'a CertificateFacts {
    outcome
        .certificates
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no certificate facts for {name}"))
}

/// Every file under `dir`, relative, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, fs::read(&path).expect("read file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

/// Names of the files whose bytes differ between two snapshots.
fn changed(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) -> Vec<String> {
    let mut names: Vec<String> = after
        .iter()
        .filter(|(p, bytes)| before.get(*p) != Some(*bytes))
        .map(|(p, _)| p.display().to_string())
        .chain(
            before
                .keys()
                .filter(|p| !after.contains_key(*p))
                .map(|p| format!("-{}", p.display())),
        )
        .collect();
    names.sort();
    names
}

/// Run a required external tool; fail (never skip) if it is not installed.
fn run(tool: &str, args: &[&str], cwd: &Path) -> Output {
    Command::new(tool)
        .args(args)
        .current_dir(cwd)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap_or_else(|e| {
            panic!("required tool `{tool}` could not be run ({e}); install it (openssl, kubectl, etcd-server, etcd-client) to run these tests")
        })
}

fn run_ok(tool: &str, args: &[&str], cwd: &Path) -> String {
    let out = run(tool, args, cwd);
    assert!(
        out.status.success(),
        "`{tool} {}` failed: {}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// A data dir in a temporary directory, locked for the whole test. A crash
/// is a Stage dropped while the lock stays held: the lock is never taken
/// twice, so a child another test forks (which holds the lock's descriptor
/// until it execs) cannot make a test see its own data dir busy.
struct TempDataDir {
    data_dir: DataDir,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TempDataDir {
    type Target = DataDir;

    fn deref(&self) -> &DataDir {
        &self.data_dir
    }
}

fn tmp() -> TempDataDir {
    let dir = tempfile::tempdir().expect("temp dir");
    TempDataDir {
        data_dir: DataDir::lock(dir.path()).expect("lock the data dir"),
        _dir: dir,
    }
}

fn assert_chains_verify(pki: &Path, external_etcd: bool) {
    for (leaf, ca, purpose) in LEAVES {
        if external_etcd && ca == "etcd/ca" {
            continue;
        }
        let out = run_ok(
            "openssl",
            &[
                "verify",
                "-purpose",
                purpose,
                "-CAfile",
                &format!("{ca}.crt"),
                &format!("{leaf}.crt"),
            ],
            pki,
        );
        assert!(out.contains(": OK"), "{leaf}: {out}");
        // …and no other CA of the set verifies it.
        for other in CAS.iter().filter(|c| **c != ca) {
            if external_etcd && *other == "etcd/ca" {
                continue;
            }
            let out = run(
                "openssl",
                &[
                    "verify",
                    "-CAfile",
                    &format!("{other}.crt"),
                    &format!("{leaf}.crt"),
                ],
                pki,
            );
            assert!(!out.status.success(), "{leaf} verifies with {other}");
        }
    }
}

fn openssl_text(pki: &Path, name: &str) -> String {
    run_ok(
        "openssl",
        &["x509", "-noout", "-text", "-in", &format!("{name}.crt")],
        pki,
    )
}

#[test]
fn every_chain_verifies_with_openssl_and_shows_kubeadm_extensions() {
    let dir = tmp();
    let now = now();
    let outcome = init(&dir, &spec(KeyAlgorithm::EcdsaP256), now);
    let pki = dir.root().join("pki");
    assert_chains_verify(&pki, false);

    let server = openssl_text(&pki, "server");
    for san in [
        "DNS:kubernetes,",
        "DNS:kubernetes.default,",
        "DNS:kubernetes.default.svc,",
        "DNS:kubernetes.default.svc.cluster.local",
        "DNS:localhost",
        "DNS:node1",
        "DNS:api.example.com",
        "IP Address:127.0.0.1",
        "IP Address:10.96.0.1",
        "IP Address:10.0.0.5",
        "IP Address:FD00:0:0:0:0:0:0:5",
        "IP Address:192.168.10.10",
    ] {
        assert!(server.contains(san), "server lacks {san}:\n{server}");
    }
    for want in [
        "Subject: CN = kube-apiserver",
        "Digital Signature",
        "TLS Web Server Authentication",
        "CA:FALSE",
        "ecdsa-with-SHA256",
    ] {
        assert!(server.contains(want), "server lacks {want}:\n{server}");
    }
    assert!(
        !server.contains("Key Encipherment"),
        "ECDSA leaf with keyEncipherment"
    );
    assert!(!server.contains("Client Authentication"));

    let api = openssl_text(&pki, "plinth-api");
    assert!(api.contains("DNS:api.example.com") && api.contains("IP Address:192.168.10.10"));
    assert!(api.contains("TLS Web Server Authentication"));

    let peer = openssl_text(&pki, "etcd/peer");
    for want in [
        "DNS:node1",
        "DNS:localhost",
        "IP Address:10.0.0.5",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication, TLS Web Client Authentication",
    ] {
        assert!(peer.contains(want), "etcd/peer lacks {want}:\n{peer}");
    }

    let admin = openssl_text(&pki, "admin");
    assert!(
        admin.contains("Subject: O = system:masters, CN = kubernetes-admin"),
        "{admin}"
    );
    assert!(admin.contains("TLS Web Client Authentication"));
    assert!(!admin.contains("Subject Alternative Name"));

    for ca in CAS {
        let text = openssl_text(&pki, ca);
        assert!(text.contains("CA:TRUE"), "{ca}:\n{text}");
        assert!(
            text.contains("Digital Signature, Certificate Sign, CRL Sign"),
            "{ca}:\n{text}"
        );
        let bc = run_ok(
            "openssl",
            &[
                "x509",
                "-noout",
                "-ext",
                "basicConstraints",
                "-in",
                &format!("{ca}.crt"),
            ],
            &pki,
        );
        assert!(bc.contains("critical"), "{ca}: {bc}");
    }

    // Validity: leaves 1 year, CAs 10 years, backdated 5 minutes.
    let start = now.unix_timestamp() - 300;
    for c in &outcome.certificates {
        let days = if c.is_ca { 3650 } else { 365 };
        assert!((c.not_before - start).abs() <= 1, "{}", c.name);
        assert!(
            (c.not_after - (now.unix_timestamp() + days * 86_400)).abs() <= 1,
            "{}",
            c.name
        );
    }
    let end = run_ok(
        "openssl",
        &["x509", "-noout", "-enddate", "-in", "server.crt"],
        &pki,
    );
    let year = (now + time::Duration::days(365)).year().to_string();
    assert!(end.contains(&year), "{end}");
}

#[test]
fn keys_are_0600_certs_0644_and_pki_dirs_0700() {
    let dir = tmp();
    init(&dir, &spec(KeyAlgorithm::EcdsaP256), now());
    let mode = |rel: &str| {
        fs::metadata(dir.root().join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("pki"), 0o700);
    assert_eq!(mode("pki/etcd"), 0o700);
    for name in CAS.iter().chain(LEAVES.iter().map(|(l, _, _)| l)) {
        assert_eq!(mode(&format!("pki/{name}.crt")), 0o644, "{name}.crt");
        assert_eq!(mode(&format!("pki/{name}.key")), 0o600, "{name}.key");
    }
    assert_eq!(mode("pki/sa.key"), 0o600);
    assert_eq!(mode("pki/sa.pub"), 0o644);
    for (kc, _) in KUBECONFIGS {
        assert_eq!(mode(&format!("pki/{kc}")), 0o600, "{kc}");
    }
    assert!(dir.root().join(".complete").exists());
    assert!(!dir.root().join(".stage").exists());
    // sa.pub is the public half of sa.key.
    let pki = dir.root().join("pki");
    let derived = run_ok("openssl", &["pkey", "-in", "sa.key", "-pubout"], &pki);
    assert_eq!(
        derived,
        fs::read_to_string(pki.join("sa.pub")).expect("sa.pub")
    );
}

fn b64_decode(tool_dir: &Path, text: &str) -> Vec<u8> {
    let file = tool_dir.join("b64.txt");
    fs::write(&file, text).expect("write b64");
    let out = run(
        "openssl",
        &["base64", "-d", "-A", "-in", "b64.txt"],
        tool_dir,
    );
    assert!(out.status.success(), "openssl base64 -d failed");
    out.stdout
}

#[test]
fn kubectl_parses_each_kubeconfig_and_its_data_matches_pki() {
    let dir = tmp();
    let mut spec = spec(KeyAlgorithm::EcdsaP256);
    spec.api_port = 16443;
    init(&dir, &spec, now());
    let pki = dir.root().join("pki");
    for (kc, leaf) in KUBECONFIGS {
        let json = run_ok(
            "kubectl",
            &[
                "--kubeconfig",
                &format!("pki/{kc}"),
                "config",
                "view",
                "--raw",
                "-o",
                "json",
            ],
            dir.root(),
        );
        let v: serde_json::Value = serde_json::from_str(&json).expect("kubectl JSON");
        let cluster = &v["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://10.0.0.5:16443", "{kc}");
        let user = &v["users"][0]["user"];
        let field = |value: &serde_json::Value| {
            b64_decode(
                dir.root(),
                value
                    .as_str()
                    .unwrap_or_else(|| panic!("{kc}: missing field in {json}")),
            )
        };
        assert_eq!(
            field(&cluster["certificate-authority-data"]),
            fs::read(pki.join("ca.crt")).expect("ca.crt"),
            "{kc}"
        );
        assert_eq!(
            field(&user["client-certificate-data"]),
            fs::read(pki.join(format!("{leaf}.crt"))).expect("leaf crt"),
            "{kc}"
        );
        assert_eq!(
            field(&user["client-key-data"]),
            fs::read(pki.join(format!("{leaf}.key"))).expect("leaf key"),
            "{kc}"
        );
        let context = run_ok(
            "kubectl",
            &[
                "--kubeconfig",
                &format!("pki/{kc}"),
                "config",
                "current-context",
            ],
            dir.root(),
        );
        assert!(!context.trim().is_empty());
    }
}

/// An etcd process killed when dropped.
struct EtcdGuard {
    child: Child,
    log: PathBuf,
}

impl Drop for EtcdGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

fn etcd_serves_with_generated_certs(alg: KeyAlgorithm) {
    let dir = tmp();
    let mut spec = spec(alg);
    spec.etcd = EtcdMode::Embedded {
        peer_address: ip("127.0.0.1"),
        client_address: ip("127.0.0.1"),
    };
    init(&dir, &spec, now());
    let pki = dir.root().join("pki");
    let (client, peer) = (free_port(), free_port());
    let client_url = format!("https://127.0.0.1:{client}");
    let peer_url = format!("https://127.0.0.1:{peer}");
    let log = dir.root().join("etcd.log");
    let child = common::etcd_by_hand(
        &pki,
        "node1",
        &dir.root().join("etcd-data"),
        &client_url,
        &peer_url,
    )
    .stdout(Stdio::null())
    .stderr(fs::File::create(&log).expect("etcd log"))
    .spawn()
    .unwrap_or_else(|e| {
        panic!("required tool `etcd` could not be run ({e}); install etcd-server to run this test")
    });
    let guard = EtcdGuard { child, log };
    let ctl = |extra: &[&str], cert: &str| {
        let mut args = vec![
            "--endpoints",
            &client_url,
            "--cacert",
            "etcd/ca.crt",
            "--cert",
            cert,
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "3s",
        ];
        let key = cert.replace(".crt", ".key");
        args.extend(["--key", key.as_str()]);
        args.extend(extra);
        run("etcdctl", &args, &pki)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ctl(&["endpoint", "health"], "etcd/healthcheck-client.crt");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "etcd ({alg}) never became healthy: {}\netcd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(&guard.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let put = ctl(
        &["put", "/plinth/probe", "hello"],
        "apiserver-etcd-client.crt",
    );
    assert!(
        put.status.success(),
        "put: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let get = ctl(
        &["get", "/plinth/probe", "--print-value-only"],
        "apiserver-etcd-client.crt",
    );
    assert!(
        get.status.success(),
        "get: {}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");
    // A client cert from another CA is refused.
    let refused = ctl(&["get", "/plinth/probe"], "admin.crt");
    assert!(
        !refused.status.success(),
        "etcd accepted a client cert signed by the Kubernetes CA"
    );
    drop(guard);
}

#[test]
fn etcd_serves_with_generated_ecdsa_p256_certs() {
    etcd_serves_with_generated_certs(KeyAlgorithm::EcdsaP256);
}

#[test]
fn etcd_serves_with_generated_rsa_2048_certs() {
    etcd_serves_with_generated_certs(KeyAlgorithm::Rsa2048);
}

#[test]
fn staging_twice_with_the_same_spec_leaves_every_byte_identical() {
    let dir = tmp();
    let spec = spec(KeyAlgorithm::EcdsaP256);
    let first = init(&dir, &spec, now());
    let before = snapshot(dir.root());
    let mut stage = Stage::open(&dir).expect("open");
    let second = pki::stage_pki(&spec, &mut stage, now()).expect("stage");
    assert_eq!(
        stage.staged().count(),
        0,
        "staged {:?}",
        stage.staged().collect::<Vec<_>>()
    );
    stage.commit().expect("commit");
    assert_eq!(
        changed(&before, &snapshot(dir.root())),
        Vec::<String>::new()
    );
    assert!(
        second.decisions.iter().all(|d| !d.changed()),
        "{:?}",
        second.decisions
    );
    assert_eq!(first.certificates, second.certificates);
}

#[test]
fn changing_extra_sans_reissues_server_and_plinth_api_only() {
    let dir = tmp();
    let mut spec = spec(KeyAlgorithm::EcdsaP256);
    init(&dir, &spec, now());
    let before = snapshot(dir.root());
    spec.extra_sans.push("api2.example.com".into());
    let outcome = init(&dir, &spec, now());
    assert_eq!(
        changed(&before, &snapshot(dir.root())),
        [
            "pki/plinth-api.crt",
            "pki/plinth-api.key",
            "pki/server.crt",
            "pki/server.key"
        ]
    );
    for name in ["server", "plinth-api"] {
        let kind = kind_of(&outcome, name);
        assert_eq!(
            kind,
            &DecisionKind::Reissued(ReissueReason::SansChanged {
                added: vec!["api2.example.com".into()],
                removed: vec![],
            })
        );
        assert_eq!(
            kind.to_string(),
            "reissued (SANs changed: added api2.example.com)"
        );
    }
    assert!(
        facts(&outcome, "server")
            .dns_sans
            .contains(&"api2.example.com".to_string())
    );
}

#[test]
fn deleting_front_proxy_client_cert_reissues_that_leaf_only() {
    let dir = tmp();
    let spec = spec(KeyAlgorithm::EcdsaP256);
    init(&dir, &spec, now());
    fs::remove_file(dir.root().join("pki/front-proxy-client.crt")).expect("rm");
    let before = snapshot(dir.root());
    let outcome = init(&dir, &spec, now());
    assert_eq!(
        changed(&before, &snapshot(dir.root())),
        ["pki/front-proxy-client.crt", "pki/front-proxy-client.key"]
    );
    assert_eq!(
        kind_of(&outcome, "front-proxy-client"),
        &DecisionKind::Issued
    );
    assert_chains_verify(&dir.root().join("pki"), false);
}

#[test]
fn leaf_expiring_within_the_renewal_window_is_reissued() {
    let dir = tmp();
    let spec = spec(KeyAlgorithm::EcdsaP256);
    // Issued 340 days ago: the leaves expire in 25 days, within the 30-day
    // window; the CAs have 9 years left.
    let past = now() - time::Duration::days(340);
    init(&dir, &spec, past);
    let before = snapshot(dir.root());
    let outcome = init(&dir, &spec, now());
    let changed = changed(&before, &snapshot(dir.root()));
    for (leaf, _, _) in LEAVES {
        assert!(
            matches!(
                kind_of(&outcome, leaf),
                DecisionKind::Reissued(ReissueReason::Expiring { .. })
            ),
            "{leaf}: {}",
            kind_of(&outcome, leaf)
        );
        assert!(changed.contains(&format!("pki/{leaf}.crt")));
    }
    for ca in CAS {
        assert_eq!(kind_of(&outcome, ca), &DecisionKind::CaKept);
        assert!(!changed.contains(&format!("pki/{ca}.crt")));
    }
    // Kubeconfigs follow their client certs.
    for (kc, _) in KUBECONFIGS {
        assert!(changed.contains(&format!("pki/{kc}")), "{kc}");
    }
    assert_chains_verify(&dir.root().join("pki"), false);
}

#[test]
fn user_provided_ca_signs_the_leaves_and_is_not_changed() {
    let dir = tmp();
    let pki = dir.root().join("pki");
    fs::create_dir_all(&pki).expect("mkdir");
    run_ok(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "3650",
            "-subj",
            "/O=Example Corp/CN=example-root",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
        &pki,
    );
    let ca_before = (
        fs::read(pki.join("ca.crt")).expect("ca"),
        fs::read(pki.join("ca.key")).expect("key"),
    );
    let outcome = init(&dir, &spec(KeyAlgorithm::EcdsaP256), now());
    assert_eq!(kind_of(&outcome, "ca"), &DecisionKind::CaKept);
    assert_eq!(
        kind_of(&outcome, "front-proxy-ca"),
        &DecisionKind::CaCreated
    );
    assert_eq!(
        (
            fs::read(pki.join("ca.crt")).expect("ca"),
            fs::read(pki.join("ca.key")).expect("key")
        ),
        ca_before
    );
    assert_chains_verify(&pki, false);
    let server = facts(&outcome, "server");
    assert_eq!(server.issuer, "CN=example-root,O=Example Corp");
    assert_eq!(server.signature_algorithm, "sha256WithRSAEncryption");
    assert_eq!(server.key_algorithm, PublicKeyAlgorithm::EcdsaP256);
    assert_eq!(facts(&outcome, "ca").key_bits, 2048);
    // And a second run keeps everything.
    let before = snapshot(dir.root());
    init(&dir, &spec(KeyAlgorithm::EcdsaP256), now());
    assert_eq!(
        changed(&before, &snapshot(dir.root())),
        Vec::<String>::new()
    );
}

#[test]
fn changing_key_algorithm_reissues_leaves_but_not_cas() {
    let dir = tmp();
    init(&dir, &spec(KeyAlgorithm::EcdsaP256), now());
    let before = snapshot(dir.root());
    let outcome = init(&dir, &spec(KeyAlgorithm::Rsa2048), now());
    let changed = changed(&before, &snapshot(dir.root()));
    for ca in CAS {
        assert_eq!(kind_of(&outcome, ca), &DecisionKind::CaKept);
        assert!(
            !changed.iter().any(|c| c.starts_with(&format!("pki/{ca}."))),
            "{ca}"
        );
        assert_eq!(
            facts(&outcome, ca).key_algorithm,
            PublicKeyAlgorithm::EcdsaP256
        );
    }
    assert_eq!(kind_of(&outcome, "sa"), &DecisionKind::KeyPairKept);
    for (leaf, _, _) in LEAVES {
        assert_eq!(
            kind_of(&outcome, leaf),
            &DecisionKind::Reissued(ReissueReason::KeyAlgorithmChanged {
                old: "ecdsa-p256".into(),
                new: "rsa-2048".into()
            })
        );
        let f = facts(&outcome, leaf);
        assert_eq!(
            (f.key_algorithm, f.key_bits),
            (PublicKeyAlgorithm::Rsa, 2048),
            "{leaf}"
        );
        assert_eq!(
            f.key_usages,
            ["digitalSignature", "keyEncipherment"],
            "{leaf}"
        );
        // Signed by the (ECDSA) CA.
        assert_eq!(f.signature_algorithm, "ecdsa-with-SHA256");
    }
    assert_chains_verify(&dir.root().join("pki"), false);
}

#[test]
fn external_etcd_has_no_etcd_ca_server_peer_or_clients() {
    let dir = tmp();
    let mut spec = spec(KeyAlgorithm::EcdsaP256);
    spec.etcd = EtcdMode::External;
    let outcome = init(&dir, &spec, now());
    let files = snapshot(dir.root());
    assert!(
        !files.keys().any(|p| p.to_string_lossy().contains("etcd")),
        "{:?}",
        files.keys()
    );
    assert!(
        outcome
            .certificates
            .iter()
            .all(|c| !c.name.contains("etcd"))
    );
    assert_eq!(outcome.certificates.len(), 2 + 7);
    assert_chains_verify(&dir.root().join("pki"), true);
    let report = pki::check_expiration(&dir, now()).expect("report");
    assert!(report.rows.iter().all(|r| !r.name.contains("etcd")));
    assert!(!report.any_missing_or_invalid(), "{report}");
}

#[test]
fn certificate_facts_describe_each_certificate_without_secrets() {
    let dir = tmp();
    let outcome = init(&dir, &spec(KeyAlgorithm::Rsa2048), now());
    assert_eq!(outcome.certificates.len(), 3 + 11);
    let admin = facts(&outcome, "admin");
    assert_eq!(admin.subject, "CN=kubernetes-admin,O=system:masters");
    assert_eq!(admin.issuer, "CN=kubernetes");
    assert_eq!(admin.path, Path::new("pki/admin.crt"));
    assert_eq!(admin.extended_key_usages, ["clientAuth"]);
    assert_eq!(admin.signature_algorithm, "sha256WithRSAEncryption");
    assert!(!admin.is_ca);
    let pki = dir.root().join("pki");
    let serial = run_ok(
        "openssl",
        &["x509", "-noout", "-serial", "-in", "admin.crt"],
        &pki,
    );
    assert_eq!(
        serial.trim().trim_start_matches("serial="),
        admin.serial.to_uppercase()
    );
    let peer = facts(&outcome, "etcd/peer");
    assert_eq!(peer.extended_key_usages, ["serverAuth", "clientAuth"]);
    assert!(peer.ip_sans.contains(&"::1".to_string()));
    let ca = facts(&outcome, "etcd/ca");
    assert!(ca.is_ca);
    assert_eq!(ca.path_length, None);
    assert_eq!(
        ca.key_usages,
        ["digitalSignature", "keyCertSign", "cRLSign"]
    );
    assert_eq!(ca.subject, "CN=etcd-ca");
    // The DER is the file's.
    let der = run(
        "openssl",
        &["x509", "-in", "admin.crt", "-outform", "DER"],
        &pki,
    )
    .stdout;
    assert_eq!(admin.der, der);
    let debug = format!("{outcome:?}");
    assert!(!debug.contains("PRIVATE KEY"));
    let json = serde_json::to_string(&outcome.decisions).expect("json");
    assert!(!json.contains("PRIVATE KEY"));
}

#[test]
fn check_expiration_lists_leaves_kubeconfigs_and_cas_and_flags_missing() {
    let dir = tmp();
    let now = now();
    init(&dir, &spec(KeyAlgorithm::EcdsaP256), now);
    let report = pki::check_expiration(&dir, now).expect("report");
    assert_eq!(report.rows.len(), 11 + 3 + 3);
    assert!(!report.any_expired() && !report.any_missing_or_invalid());
    let row = |r: &pki::ExpirationReport, name: &str| {
        r.rows
            .iter()
            .find(|row| row.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no row {name}"))
    };
    let admin = row(&report, "admin.conf");
    assert_eq!(admin.residual.as_deref(), Some("364d"));
    assert_eq!(admin.certificate_authority.as_deref(), Some("ca"));
    assert_eq!(
        row(&report, "etcd/peer").certificate_authority.as_deref(),
        Some("etcd/ca")
    );
    let ca = row(&report, "ca");
    assert!(ca.is_ca);
    assert_eq!(ca.residual.as_deref(), Some("9y"));
    let text = report.to_string();
    assert!(
        text.contains("CERTIFICATE AUTHORITY") && text.contains("admin.conf"),
        "{text}"
    );
    serde_json::to_value(&report).expect("json");

    fs::remove_file(dir.root().join("pki/scheduler.crt")).expect("rm");
    let later = pki::check_expiration(&dir, now + time::Duration::days(400)).expect("report");
    assert!(later.any_expired());
    assert_eq!(row(&later, "scheduler").status, pki::RowStatus::Missing);
    assert_eq!(row(&later, "server").residual.as_deref(), Some("expired"));
    assert!(!row(&later, "ca").expired);
}

#[test]
fn stage_dropped_without_commit_leaves_the_data_dir_unchanged() {
    let dir = tmp();
    let mut spec = spec(KeyAlgorithm::EcdsaP256);
    init(&dir, &spec, now());
    let before = snapshot(dir.root());
    spec.extra_sans.push("api2.example.com".into());
    let mut stage = Stage::open(&dir).expect("open");
    pki::stage_pki(&spec, &mut stage, now()).expect("stage");
    assert!(stage.staged().count() > 0);
    // A crash: no commit, no cleanup.
    drop(stage); // Stage has no Drop cleanup: like a killed process (the data dir stays locked).
    assert!(dir.root().join(".stage").exists());
    let stage = Stage::open(&dir).expect("reopen");
    assert_eq!(
        changed(&before, &snapshot(dir.root())),
        Vec::<String>::new()
    );
    stage.discard().expect("discard");

    // On a fresh data dir too: nothing is left after recovery.
    let fresh = tmp();
    let mut stage = Stage::open(&fresh).expect("open");
    pki::stage_pki(&spec, &mut stage, now()).expect("stage");
    drop(stage);
    Stage::open(&fresh).expect("reopen");
    assert!(snapshot(fresh.root()).is_empty());
}

#[test]
fn crash_at_any_point_of_commit_rolls_forward_on_open() {
    let spec = spec(KeyAlgorithm::EcdsaP256);
    let now = now();
    // Reference: the same PKI committed without a crash.
    let reference = tmp();
    let mut stage = Stage::open(&reference).expect("open");
    pki::stage_pki(&spec, &mut stage, now).expect("stage");
    let count = stage.staged().count();
    stage.commit().expect("commit");
    let files: Vec<PathBuf> = snapshot(reference.root()).into_keys().collect();
    for n in [0, 1, count / 2, count - 1, count] {
        let dir = tmp();
        let mut stage = Stage::open(&dir).expect("open");
        pki::stage_pki(&spec, &mut stage, now).expect("stage");
        stage.commit_partially(n).expect("partial commit");
        let ca_published = fs::read(dir.root().join("pki/ca.crt")).ok();
        Stage::open(&dir).expect("roll forward");
        let after = snapshot(dir.root());
        assert_eq!(
            after.keys().cloned().collect::<Vec<_>>(),
            files,
            "crash after {n} renames"
        );
        assert!(!dir.root().join(".stage").exists());
        if let Some(ca) = ca_published {
            assert_eq!(
                after[Path::new("pki/ca.crt")],
                ca,
                "CA changed by roll forward"
            );
        }
        assert_chains_verify(&dir.root().join("pki"), false);
    }
}

#[test]
fn commit_record_on_disk_is_rolled_forward_and_a_torn_record_is_discarded() {
    let spec = spec(KeyAlgorithm::EcdsaP256);
    // A crash right after the commit record was renamed into place: built by
    // hand from the documented on-disk layout.
    let dir = tmp();
    let mut stage = Stage::open(&dir).expect("open");
    pki::stage_pki(&spec, &mut stage, now()).expect("stage");
    let staged: Vec<PathBuf> = stage.staged().map(Path::to_path_buf).collect();
    let ca = fs::read(dir.root().join(".stage/files/pki/ca.crt")).expect("staged ca");
    drop(stage); // Stage has no Drop cleanup: like a killed process (the data dir stays locked).
    let record = serde_json::json!({ "version": 1, "files": staged });
    fs::write(dir.root().join(".stage/commit"), record.to_string()).expect("record");
    // Two files were already renamed before the crash.
    for rel in &staged[..2] {
        fs::create_dir_all(dir.root().join(rel).parent().expect("parent")).expect("mkdir");
        fs::rename(
            dir.root().join(".stage/files").join(rel),
            dir.root().join(rel),
        )
        .expect("mv");
    }
    Stage::open(&dir).expect("roll forward");
    for rel in &staged {
        assert!(
            dir.root().join(rel).exists(),
            "{} not published",
            rel.display()
        );
    }
    assert_eq!(fs::read(dir.root().join("pki/ca.crt")).expect("ca"), ca);
    assert!(dir.root().join(".complete").exists());
    assert_chains_verify(&dir.root().join("pki"), false);

    // A record still at its temporary name is not a commit: the stage goes.
    let dir = tmp();
    let mut stage = Stage::open(&dir).expect("open");
    pki::stage_pki(&spec, &mut stage, now()).expect("stage");
    drop(stage); // Stage has no Drop cleanup: like a killed process (the data dir stays locked).
    fs::write(dir.root().join(".stage/commit.tmp"), "{\"version\":1,\"fi").expect("torn");
    Stage::open(&dir).expect("discard");
    assert!(snapshot(dir.root()).is_empty());
}
