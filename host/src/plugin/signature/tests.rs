//! Signatures made by the real `ssh-keygen`, checked by [`SignaturePolicy`].

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A key pair made by `ssh-keygen -t kind` in `dir`; returns the private
/// key's path and the public key line.
fn keygen(dir: &Path, name: &str, kind: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen is installed (cargo xtask test installs it)");
    assert!(status.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_owned())
}

/// `ssh-keygen -Y sign -n namespace -f key file`, which writes `file.sig`.
fn sign(key: &Path, namespace: &str, file: &Path) {
    let output = Command::new("ssh-keygen")
        .args(["-Y", "sign", "-n", namespace, "-f"])
        .arg(key)
        .arg(file)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

struct Fixture {
    dir: tempfile::TempDir,
    wasm: PathBuf,
    bytes: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("20-mirror.wasm");
        let bytes = b"\0asm plugin bytes standing for a component".to_vec();
        std::fs::write(&wasm, &bytes).unwrap();
        Self { dir, wasm, bytes }
    }

    fn allowed(&self, lines: &[String]) -> AllowedSigners {
        let path = self.dir.path().join("allowed_signers");
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        AllowedSigners::read(&path).unwrap()
    }

    fn check(&self, allowed: AllowedSigners) -> Result<SignatureStatus, SignatureError> {
        SignaturePolicy {
            allowed: Some(allowed),
            required: true,
        }
        .check(&self.wasm, &self.bytes)
    }
}

#[test]
fn a_plugin_signed_by_an_allowed_signer_is_verified_for_each_key_type() {
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let fixture = Fixture::new();
        let (key, public) = keygen(fixture.dir.path(), "release", kind);
        sign(&key, NAMESPACE, &fixture.wasm);
        let allowed = fixture.allowed(&[format!("release@example.com {public}")]);
        let SignatureStatus::Verified { signer } = fixture.check(allowed).unwrap() else {
            panic!("{kind}: not verified");
        };
        assert_eq!(signer.principals, "release@example.com", "{kind}");
        assert!(signer.fingerprint.starts_with("SHA256:"), "{kind}");
        let fingerprint = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(key.with_extension("pub"))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&fingerprint.stdout).contains(&signer.fingerprint),
            "{kind}: ssh-keygen -l disagrees with {}",
            signer.fingerprint
        );
    }
}

#[test]
fn an_unsigned_plugin_is_refused_when_signatures_are_required_and_accepted_otherwise() {
    let fixture = Fixture::new();
    let (_, public) = keygen(fixture.dir.path(), "release", "ed25519");
    let error = fixture
        .check(fixture.allowed(&[format!("release {public}")]))
        .unwrap_err();
    assert!(matches!(error, SignatureError::Unsigned { .. }), "{error}");
    assert!(error.to_string().contains("20-mirror.wasm.sig"), "{error}");
    let optional = SignaturePolicy {
        allowed: Some(fixture.allowed(&[format!("release {public}")])),
        required: false,
    };
    assert_eq!(
        optional.check(&fixture.wasm, &fixture.bytes).unwrap(),
        SignatureStatus::Unsigned
    );
}

#[test]
fn a_plugin_changed_by_one_byte_after_signing_is_refused() {
    let mut fixture = Fixture::new();
    let (key, public) = keygen(fixture.dir.path(), "release", "ed25519");
    sign(&key, NAMESPACE, &fixture.wasm);
    fixture.bytes[10] ^= 1;
    let error = fixture
        .check(fixture.allowed(&[format!("release {public}")]))
        .unwrap_err();
    assert!(matches!(error, SignatureError::Mismatch { .. }), "{error}");
}

#[test]
fn a_signature_made_for_another_namespace_is_refused() {
    let fixture = Fixture::new();
    let (key, public) = keygen(fixture.dir.path(), "release", "ed25519");
    sign(&key, "git", &fixture.wasm);
    let error = fixture
        .check(fixture.allowed(&[format!("release {public}")]))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("namespace `git`, not `plinth-plugin`"),
        "{error}"
    );
}

#[test]
fn a_signer_missing_from_the_allowed_signers_is_refused() {
    let fixture = Fixture::new();
    let (key, _) = keygen(fixture.dir.path(), "intruder", "ed25519");
    let (_, public) = keygen(fixture.dir.path(), "release", "ed25519");
    sign(&key, NAMESPACE, &fixture.wasm);
    let error = fixture
        .check(fixture.allowed(&[format!("release {public}")]))
        .unwrap_err();
    assert!(
        matches!(error, SignatureError::SignerNotAllowed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("SHA256:"), "{error}");
}

#[test]
fn an_allowed_signer_limited_to_other_namespaces_or_times_does_not_allow() {
    let fixture = Fixture::new();
    let (key, public) = keygen(fixture.dir.path(), "release", "ed25519");
    sign(&key, NAMESPACE, &fixture.wasm);
    for options in [
        "namespaces=\"git,file\"",
        "valid-before=20200101",
        "valid-after=29991231Z",
    ] {
        let error = fixture
            .check(fixture.allowed(&[format!("release {options} {public}")]))
            .unwrap_err();
        assert!(
            matches!(error, SignatureError::SignerNotAllowed { .. }),
            "{options}: {error}"
        );
    }
    let allowed = fixture.allowed(&[format!(
        "\"release team,ops@example.com\" namespaces=\"git,plinth-plugin\",valid-after=20200101 {public}"
    )]);
    let SignatureStatus::Verified { signer } = fixture.check(allowed).unwrap() else {
        panic!("not verified");
    };
    assert_eq!(signer.principals, "release team,ops@example.com");
}

#[test]
fn ssh_keygen_agrees_with_the_allowed_signers_this_module_accepts() {
    let fixture = Fixture::new();
    let (key, public) = keygen(fixture.dir.path(), "release", "ed25519");
    sign(&key, NAMESPACE, &fixture.wasm);
    let line = format!("release namespaces=\"plinth-plugin\" {public}");
    let allowed = fixture.allowed(std::slice::from_ref(&line));
    assert!(matches!(
        fixture.check(allowed).unwrap(),
        SignatureStatus::Verified { .. }
    ));
    let output = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", NAMESPACE, "-I", "release", "-f"])
        .arg(fixture.dir.path().join("allowed_signers"))
        .arg("-s")
        .arg(signature_path(&fixture.wasm))
        .stdin(std::fs::File::open(&fixture.wasm).unwrap())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn a_bad_allowed_signers_line_is_reported_with_its_number() {
    let fixture = Fixture::new();
    let (_, public) = keygen(fixture.dir.path(), "release", "ed25519");
    let path = fixture.dir.path().join("allowed_signers");
    for (line, expected) in [
        (
            "release ssh-ed25519 AAAAnotbase64".to_owned(),
            "not an OpenSSH public key",
        ),
        (format!("release cert-authority {public}"), "cert-authority"),
        (
            format!("release colour=\"blue\" {public}"),
            "unknown option `colour`",
        ),
        (format!("release valid-after=2020 {public}"), "YYYYMMDD"),
        ("release".to_owned(), "expected `principals"),
    ] {
        std::fs::write(&path, format!("# site signers\n\n{line}\n")).unwrap();
        let error = AllowedSigners::read(&path).unwrap_err().to_string();
        assert!(
            error.contains("line 3") && error.contains(expected),
            "{line}: {error}"
        );
    }
}

#[test]
fn without_an_allowed_signers_file_a_signature_is_not_checked() {
    let fixture = Fixture::new();
    let (key, _) = keygen(fixture.dir.path(), "release", "ed25519");
    sign(&key, NAMESPACE, &fixture.wasm);
    let policy = SignaturePolicy::default();
    assert_eq!(
        policy.check(&fixture.wasm, &fixture.bytes).unwrap(),
        SignatureStatus::NotChecked
    );
}

#[test]
fn a_signature_that_is_a_symbolic_link_is_refused() {
    let fixture = Fixture::new();
    let (key, public) = keygen(fixture.dir.path(), "release", "ed25519");
    let elsewhere = fixture.dir.path().join("elsewhere.wasm");
    std::fs::write(&elsewhere, &fixture.bytes).unwrap();
    sign(&key, NAMESPACE, &elsewhere);
    std::os::unix::fs::symlink(signature_path(&elsewhere), signature_path(&fixture.wasm)).unwrap();
    let error = fixture
        .check(fixture.allowed(&[format!("release {public}")]))
        .unwrap_err();
    assert!(matches!(error, SignatureError::Io { .. }), "{error}");
}

#[test]
fn a_garbled_signature_file_is_malformed() {
    let fixture = Fixture::new();
    let (_, public) = keygen(fixture.dir.path(), "release", "ed25519");
    std::fs::write(
        signature_path(&fixture.wasm),
        "-----BEGIN SSH SIGNATURE-----\nnot base64\n-----END SSH SIGNATURE-----\n",
    )
    .unwrap();
    let error = fixture
        .check(fixture.allowed(&[format!("release {public}")]))
        .unwrap_err();
    assert!(matches!(error, SignatureError::Malformed { .. }), "{error}");
}
