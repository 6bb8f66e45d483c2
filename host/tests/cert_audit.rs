//! The shipped cert-audit plugin (plugins/cert-audit) in a real
//! `plinth controller --init-only --plugins DIR` run: each setting produces
//! its finding for the certificates that break it and only for them, a deny
//! ends with exit code 3 and leaves nothing of the PKI behind, a warning lets
//! the bootstrap finish and shows in the report and the journal.
//!
//! The plugin's rules are unit-tested natively in its own crate; these tests
//! check the whole path: manifest settings → component → host chain → exit
//! code, output, journal and data dir. They need the wasm built by
//! `cargo xtask plugins` and the openssl CLI (for a SHA-1 signed CA).

mod support_pki;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support_pki::{
    CAS, CERTIFICATES, LEAVES, assert_every_leaf_verifies, cert_audit_wasm, describe, init_only,
    openssl_ok, snapshot, write_config,
};

const PLUGIN: &str = "10-cert-audit";

/// One `init-only` run with cert-audit installed.
struct Run {
    /// Keeps the data and plugins dirs alive for the test's assertions.
    _tmp: tempfile::TempDir,
    data: PathBuf,
    /// The data dir (journal and cache aside) before the run.
    before: BTreeMap<PathBuf, Vec<u8>>,
    out: Output,
}

impl Run {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Every finding cert-audit returned, from the journal: (severity, rule,
    /// subject, message).
    fn findings(&self) -> Vec<(String, String, String, String)> {
        let journal = fs::read_to_string(self.data.join("journal/bootstrap.jsonl"))
            .unwrap_or_else(|e| panic!("no journal: {e}\n{}", describe(&self.out)));
        let mut findings = Vec::new();
        let mut calls = 0;
        for line in journal.lines() {
            let entry: serde_json::Value =
                serde_json::from_str(line).expect("journal line is JSON");
            if entry["phase"] != "post-pki" || entry["plugin"] != PLUGIN {
                continue;
            }
            calls += 1;
            for f in entry["findings"].as_array().into_iter().flatten() {
                let field = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                findings.push((
                    field("severity"),
                    field("rule"),
                    field("subject"),
                    field("message"),
                ));
            }
        }
        assert_eq!(
            calls, 1,
            "the journal should hold one post-pki call of {PLUGIN}"
        );
        findings
    }

    /// The subjects of the findings with this severity and rule.
    fn subjects(&self, severity: &str, rule: &str) -> BTreeSet<String> {
        self.findings()
            .into_iter()
            .filter(|(s, r, _, _)| s == severity && r == rule)
            .map(|(_, _, subject, _)| subject)
            .collect()
    }

    /// Exit code 3, each of `names` denied under `rule` (in the journal and
    /// on stderr) and no other certificate, and the data dir exactly as it
    /// was: the stage was discarded, no key was published.
    fn assert_denied(&self, rule: &str, names: &[&str]) {
        assert_eq!(
            self.out.status.code(),
            Some(3),
            "expected a deny\n{}",
            describe(&self.out)
        );
        let expected: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            self.subjects("Deny", rule),
            expected,
            "denied certificates under {rule}"
        );
        let stderr = self.stderr();
        for name in names {
            assert!(
                stderr.contains(&format!("{PLUGIN} [{rule}] {name}: ")),
                "stderr does not name {name} under {rule}:\n{stderr}"
            );
        }
        let after = snapshot(&self.data);
        let new: Vec<&PathBuf> = after
            .keys()
            .filter(|p| !self.before.contains_key(*p))
            .collect();
        assert!(new.is_empty(), "a denied run left new files: {new:?}");
        assert_eq!(after, self.before, "a denied run changed the data dir");
        assert!(
            !self.data.join(".stage").exists(),
            "a denied run left its stage"
        );
    }
}

/// Run init-only with cert-audit under `settings` (TOML lines of the
/// manifest's `[settings]` table), an optional ClusterConfig, and files put
/// in the data dir beforehand by `seed`.
fn run(settings: &str, config: Option<&str>, seed: impl FnOnce(&Path)) -> Run {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plugins = tmp.path().join("plugins.d");
    fs::create_dir(&plugins).expect("mkdir plugins.d");
    fs::copy(cert_audit_wasm(), plugins.join(format!("{PLUGIN}.wasm")))
        .expect("install cert-audit");
    fs::write(
        plugins.join(format!("{PLUGIN}.toml")),
        format!("[settings]\n{settings}\n"),
    )
    .expect("write manifest");
    let config = config.map(|yaml| write_config(tmp.path(), "cluster.yaml", yaml));
    let data = tmp.path().join("data");
    fs::create_dir(&data).expect("mkdir data");
    seed(&data);
    let before = snapshot(&data);
    let out = init_only(&data, config.as_deref(), Some(&plugins));
    Run {
        _tmp: tmp,
        data,
        before,
        out,
    }
}

fn leaves() -> Vec<&'static str> {
    LEAVES.iter().map(|(leaf, _)| *leaf).collect()
}

/// Every file under `dir` whose name ends in `.key`.
fn keys_under(dir: &Path) -> Vec<PathBuf> {
    snapshot(dir)
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect()
}

#[test]
fn demo_policy_accepts_the_default_pki() {
    let settings = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/cert-audit/demo.toml"),
    )
    .expect("plugins/cert-audit/demo.toml");
    let settings = settings
        .split_once("[settings]")
        .expect("demo.toml has [settings]")
        .1;
    let run = run(settings, None, |_| {});
    assert_eq!(run.out.status.code(), Some(0), "{}", describe(&run.out));
    assert_eq!(
        run.findings(),
        Vec::new(),
        "the default PKI breaks the demo policy"
    );
    assert!(run.data.join(".complete").exists());
    assert_every_leaf_verifies(&run.data);
}

#[test]
fn allowed_key_algorithms_denies_every_certificate_with_another_key() {
    let run = run(r#"allowed-key-algorithms = "ecdsa-p384""#, None, |_| {});
    run.assert_denied("allowed-key-algorithms", &CERTIFICATES);
    assert!(run.stderr().contains(
        "certificate `server` has a ecdsa-p256 key; allowed-key-algorithms allows only ecdsa-p384"
    ));
}

#[test]
fn min_rsa_bits_denies_an_rsa_2048_pki_and_publishes_no_key() {
    let run = run(
        r#"min-rsa-bits = "3072""#,
        Some("spec:\n  pki:\n    keyAlgorithm: rsa-2048\n"),
        |_| {},
    );
    run.assert_denied("min-rsa-bits", &CERTIFICATES);
    assert!(
        run.stderr()
            .contains("certificate `etcd/ca` has a 2048-bit RSA key; min-rsa-bits is 3072")
    );
    assert_eq!(
        keys_under(&run.data),
        Vec::<PathBuf>::new(),
        "a private key was left in the data dir"
    );
}

#[test]
fn max_leaf_validity_days_denies_every_leaf_and_no_ca() {
    // 9000h = 375 days (+ the 5 minutes of backdating), over a 300-day limit.
    let run = run(
        r#"max-leaf-validity-days = "300""#,
        Some("spec:\n  pki:\n    certValidity: 9000h\n"),
        |_| {},
    );
    run.assert_denied("max-leaf-validity-days", &leaves());
    assert!(
        run.stderr().contains(
            "leaf certificate `admin` is valid for 376 days; max-leaf-validity-days is 300"
        ),
        "{}",
        run.stderr()
    );
}

#[test]
fn max_ca_validity_days_denies_every_ca_and_no_leaf() {
    // The default CA validity is 87600h = 3650 days.
    let run = run(r#"max-ca-validity-days = "3000""#, None, |_| {});
    run.assert_denied("max-ca-validity-days", &CAS);
    assert!(
        run.stderr()
            .contains("CA certificate `front-proxy-ca` is valid for"),
        "{}",
        run.stderr()
    );
}

#[test]
fn required_server_sans_denies_server_for_each_missing_san_only() {
    let run = run(
        r#"required-server-sans = "kubernetes.default.svc,127.0.0.1,missing.example.com""#,
        None,
        |_| {},
    );
    run.assert_denied("required-server-sans", &["server"]);
    let messages: Vec<String> = run
        .findings()
        .into_iter()
        .map(|(_, _, _, message)| message)
        .collect();
    assert_eq!(
        messages.len(),
        1,
        "one finding per missing SAN: {messages:?}"
    );
    assert!(
        messages[0].contains("lacks the SAN `missing.example.com`")
            && messages[0].contains("kubernetes.default.svc"),
        "{}",
        messages[0]
    );
}

#[test]
fn expiry_warning_days_warns_in_report_and_journal_without_denying() {
    // Leaves valid 10 days, CAs 10 years; the renewal window must be shorter
    // than the leaf validity.
    let config = "spec:\n  pki:\n    certValidity: 240h\n    renewBefore: 24h\n";
    let run = run(r#"expiry-warning-days = "30""#, Some(config), |_| {});
    assert_eq!(
        run.out.status.code(),
        Some(0),
        "a warning must not deny\n{}",
        describe(&run.out)
    );
    assert!(
        run.data.join(".complete").exists(),
        "the bootstrap did not commit"
    );
    let warned = run.subjects("Warning", "expiry-warning-days");
    let expected: BTreeSet<String> = leaves().into_iter().map(String::from).collect();
    assert_eq!(warned, expected, "warned certificates (journal)");
    assert_eq!(
        run.findings().len(),
        expected.len(),
        "only warnings expected: {:?}",
        run.findings()
    );
    let stdout = run.stdout();
    for leaf in leaves() {
        let note = format!(
            "note: {PLUGIN} [expiry-warning-days] {leaf}: certificate `{leaf}` expires in 10 day(s)"
        );
        assert!(
            stdout.lines().any(|l| l.starts_with(&note)),
            "no `{note}` line in stdout:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("] ca: "),
        "a CA was warned about:\n{stdout}"
    );
}

#[test]
fn forbid_sha1_denies_a_user_provided_sha1_ca_and_keeps_it() {
    let run = run(r#"forbid-sha1 = "true""#, None, |data| {
        let pki = data.join("pki");
        fs::create_dir(&pki).expect("mkdir pki");
        openssl_ok(
            &[
                "req",
                "-x509",
                "-sha1",
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
                "/CN=sha1-root",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            ],
            &pki,
        );
    });
    // Only the CA is SHA-1: Plinth signs the leaves with SHA-256.
    run.assert_denied("forbid-sha1", &["ca"]);
    assert!(
        run.stderr()
            .contains("certificate `ca` is signed with sha1WithRSAEncryption; forbid-sha1 is true"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        keys_under(&run.data),
        vec![PathBuf::from("pki/ca.key")],
        "only the user's CA key may be there"
    );
}
