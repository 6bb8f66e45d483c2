//! Offline plugin signatures, end to end: keys and signatures made by the
//! real `ssh-keygen`, checked by `plinth controller`, `plugins inspect` and
//! `plugins verify`. A refused plugin stops the run at load with exit 2,
//! naming the file and the reason, before any phase writes anything.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{PluginDir, Run, init_only, journal, plinth};

const STEM: &str = "10-audit";

/// A site: a release key, its allowed-signers file, a config requiring
/// signatures, and a plugin directory holding cert-audit.
struct Site {
    dir: tempfile::TempDir,
    plugins: PluginDir,
    wasm: PathBuf,
}

impl Site {
    fn new() -> Self {
        let site = Self {
            dir: tempfile::tempdir().unwrap(),
            plugins: PluginDir::new(),
            wasm: PathBuf::new(),
        };
        let wasm = site.plugins.add(STEM, "cert-audit", "");
        let public = site.keygen("release");
        std::fs::write(
            site.allowed_signers(),
            format!("release@example.com namespaces=\"plinth-plugin\" {public}\n"),
        )
        .unwrap();
        std::fs::write(
            site.config(),
            format!(
                "spec:\n  plugins:\n    allowedSigners: {}\n    requireSignatures: true\n",
                site.allowed_signers().display()
            ),
        )
        .unwrap();
        Self { wasm, ..site }
    }

    fn allowed_signers(&self) -> PathBuf {
        self.dir.path().join("allowed_signers")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("cluster.yaml")
    }

    fn key(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A new ed25519 key; returns its public key line.
    fn keygen(&self, name: &str) -> String {
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(self.key(name))
            .status()
            .expect("ssh-keygen is installed (cargo xtask test installs it)");
        assert!(status.success());
        std::fs::read_to_string(self.key(name).with_extension("pub"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// `ssh-keygen -Y sign -n NAMESPACE -f KEY plugin.wasm`.
    fn sign(&self, key: &str, namespace: &str) {
        let output = Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", namespace, "-f"])
            .arg(self.key(key))
            .arg(&self.wasm)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }

    fn bootstrap(&self, data: &Path) -> Run {
        let config = self.config().display().to_string();
        init_only(data, Some(&self.plugins), &["--config", &config])
    }

    /// A bootstrap that must be refused at load for `reason`.
    fn assert_refused(&self, reason: &str) {
        let data = tempfile::tempdir().unwrap();
        let run = self.bootstrap(data.path());
        run.expect_code(2);
        let line = run.error_line();
        assert!(
            line.contains(&format!("{STEM}.wasm")) && line.contains(reason),
            "expected `{reason}` in {line}"
        );
        assert!(
            !data.path().join("pki").exists(),
            "a refused plugin let the PKI phase run"
        );
    }
}

fn signature_of_load(data: &Path) -> serde_json::Value {
    journal(data)
        .into_iter()
        .find(|e| e["phase"] == "plugins" && e["plugin"] == STEM)
        .unwrap()["detail"]["signature"]
        .clone()
}

#[test]
fn a_plugin_signed_by_an_allowed_signer_is_loaded_and_its_signer_journaled() {
    let site = Site::new();
    site.sign("release", "plinth-plugin");
    let data = tempfile::tempdir().unwrap();
    site.bootstrap(data.path()).expect_code(0);
    let signature = signature_of_load(data.path());
    assert_eq!(signature["status"], "verified", "{signature}");
    assert_eq!(signature["signer"]["principals"], "release@example.com");
    assert_eq!(signature["signer"]["algorithm"], "ssh-ed25519");
}

#[test]
fn an_unsigned_plugin_is_refused_when_signatures_are_required() {
    let site = Site::new();
    site.assert_refused("has no signature");
}

#[test]
fn a_plugin_changed_by_one_byte_after_signing_is_refused() {
    let site = Site::new();
    site.sign("release", "plinth-plugin");
    let mut bytes = std::fs::read(&site.wasm).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&site.wasm, bytes).unwrap();
    site.assert_refused("the file changed after it was signed");
}

#[test]
fn a_plugin_signed_for_another_namespace_is_refused() {
    let site = Site::new();
    site.sign("release", "file");
    site.assert_refused("was made for namespace `file`, not `plinth-plugin`");
}

#[test]
fn a_plugin_signed_by_a_key_not_in_the_allowed_signers_is_refused() {
    let site = Site::new();
    site.keygen("intruder");
    site.sign("intruder", "plinth-plugin");
    site.assert_refused("does not allow to sign plugins");
}

#[test]
fn required_signatures_without_an_allowed_signers_file_is_a_config_error() {
    let site = Site::new();
    std::fs::write(
        site.config(),
        "spec:\n  plugins:\n    requireSignatures: true\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let run = site.bootstrap(data.path());
    run.expect_code(2);
    assert!(
        run.error_line().contains(
            "spec.plugins.requireSignatures: is true but spec.plugins.allowedSigners is not set"
        ),
        "{}",
        run.error_line()
    );
}

#[test]
fn inspect_shows_the_signer_and_verify_checks_one_plugin_for_ci() {
    let site = Site::new();
    let wasm = site.wasm.display().to_string();
    let allowed = site.allowed_signers().display().to_string();
    plinth(&["plugins", "verify", &wasm, "--allowed-signers", &allowed])
        .expect_code(2)
        .error_line()
        .contains("has no signature")
        .then_some(())
        .expect("verify names the missing signature");
    site.sign("release", "plinth-plugin");
    let verified = plinth(&["plugins", "verify", &wasm, "--allowed-signers", &allowed]);
    verified.expect_code(0);
    assert!(
        verified
            .stdout
            .contains("signed by release@example.com (ssh-ed25519 SHA256:"),
        "{}",
        verified.stdout
    );
    let inspected = plinth(&["plugins", "inspect", &wasm, "--allowed-signers", &allowed]);
    inspected.expect_code(0);
    assert!(
        inspected
            .stdout
            .lines()
            .any(|line| line.starts_with("signature:") && line.contains("release@example.com")),
        "{}",
        inspected.stdout
    );
    let unchecked = plinth(&["plugins", "inspect", &wasm]);
    assert!(
        unchecked
            .stdout
            .contains("not checked: give --allowed-signers"),
        "{}",
        unchecked.stdout
    );
}
