//! Every documented exit code, each with its one line naming what and where.

mod common;

use common::{PluginDir, init_only, plinth, temp_file};

#[test]
fn exit_0_when_the_bootstrap_completes() {
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), None, &[]);
    run.expect_code(0);
    assert!(data.path().join(".complete").is_file());
    assert!(run.stdout.contains("commit"), "{}", run.stdout);
}

#[test]
fn exit_1_when_the_data_dir_cannot_be_made() {
    let (_dir, file) = temp_file("not-a-dir", "");
    let run = plinth(&[
        "controller",
        "--init-only",
        "--data-dir",
        &file.display().to_string(),
    ]);
    run.expect_code(1);
    assert!(
        run.error_line().contains("not-a-dir"),
        "{}",
        run.error_line()
    );
}

#[test]
fn exit_2_for_usage_and_invalid_input() {
    let data = tempfile::tempdir().unwrap();
    let (_dir, config) = temp_file("bad.yaml", "spec:\n  network:\n    provider: flannel\n");
    let run = init_only(
        data.path(),
        None,
        &["--config", &config.display().to_string()],
    );
    run.expect_code(2);
    assert!(
        run.error_line().contains("bad.yaml") && run.error_line().contains("flannel"),
        "{}",
        run.error_line()
    );

    // Run mode with an etcd that cannot be started: exit 2, naming it.
    let (_run_dir, run_config) = temp_file(
        "run.yaml",
        "spec:\n  api:\n    address: 127.26.0.1\n  storage:\n    etcd:\n      clientAddress: 127.26.0.1\n      binary: /nonexistent/etcd\n",
    );
    let run = plinth(&[
        "controller",
        "--data-dir",
        &data.path().display().to_string(),
        "--config",
        &run_config.display().to_string(),
    ]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("/nonexistent/etcd")
            && run.error_line().contains("spec.storage.etcd.binary"),
        "{}",
        run.error_line()
    );

    let run = init_only(data.path(), None, &["--plugins", "/nonexistent/plugins"]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("/nonexistent/plugins"),
        "{}",
        run.error_line()
    );

    let (_dir, token) = temp_file("token", "not a token");
    let run = init_only(
        data.path(),
        None,
        &["--token-file", &token.display().to_string()],
    );
    run.expect_code(2);
    assert!(
        run.error_line().contains("token") && run.error_line().contains("plinth-join-v1"),
        "{}",
        run.error_line()
    );

    plinth(&["controller", "--init-only", "--no-such-flag"]).expect_code(2);
}

#[test]
fn exit_3_when_a_plugin_denies() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-deny",
        "scripted",
        "hooks = [\"post-pki\"]\n[settings]\n\"post-pki.deny\" = \"admin\"\n",
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(3);
    assert!(
        run.error_line().contains("post-pki denied") && run.error_line().contains("admin"),
        "{}",
        run.error_line()
    );
    assert!(
        !data.path().join("pki").exists() && !data.path().join(".stage").exists(),
        "nothing staged survives"
    );
}

#[test]
fn exit_4_when_a_plugin_fails() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-panic",
        "scripted",
        "hooks = [\"image-resolve\"]\n[settings]\n\"hostile.image-resolve\" = \"panic\"\n",
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(4);
    assert!(
        run.error_line()
            .contains("10-panic failed in image-resolve"),
        "{}",
        run.error_line()
    );
}

/// `controller --init-only` on `data` with a join token for 127.0.0.1:1
/// (where nothing listens) pinning `ca_sha256`, giving up after 2 s.
fn join_with_token(data: &std::path::Path, ca_sha256: &str) -> common::Run {
    let token = format!("plinth-join-v1:127.0.0.1:1:{ca_sha256}:abc123.defghijklmnop012\n");
    let (_dir, token) = temp_file("token", &token);
    let (_config_dir, config) = temp_file(
        "cluster.yaml",
        "spec:\n  storage:\n    etcd:\n      joinTimeout: 2s\n",
    );
    init_only(
        data,
        None,
        &[
            "--token-file",
            &token.display().to_string(),
            "--config",
            &config.display().to_string(),
        ],
    )
}

#[test]
fn exit_5_when_no_join_api_answers_within_the_join_timeout() {
    let data = tempfile::tempdir().unwrap();
    let run = join_with_token(data.path(), &"ab".repeat(32));
    run.expect_code(5);
    let line = run.error_line();
    assert!(
        line.contains("127.0.0.1:1") && line.contains("no controller answered"),
        "{line}"
    );
    assert!(!data.path().join("pki").exists(), "nothing is published");
}

#[test]
fn a_join_token_pinning_another_ca_is_refused() {
    // A controller holding a copied CA that is not the one the token pins.
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), None, &[]).expect_code(0);
    let run = join_with_token(data.path(), &"ab".repeat(32));
    run.expect_code(2);
    assert!(
        run.error_line().contains("another cluster"),
        "{}",
        run.error_line()
    );
}

#[test]
fn a_join_token_pinning_the_copied_ca_joins() {
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), None, &[]).expect_code(0);
    let fingerprint = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(data.path().join("pki/ca.crt"))
        .output()
        .expect("openssl is needed for this test");
    let fingerprint = String::from_utf8_lossy(&fingerprint.stdout);
    let hex: String = fingerprint
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    let ca_before = std::fs::read(data.path().join("pki/ca.crt")).unwrap();
    let run = join_with_token(data.path(), &hex);
    run.expect_code(0);
    assert!(
        run.stdout.contains("join decision: join-cluster"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(data.path().join("pki/ca.crt")).unwrap(),
        ca_before,
        "the cluster CA is kept"
    );
}

#[test]
fn a_plugins_dir_with_nothing_in_it_is_fine() {
    let plugins = PluginDir::new();
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
}
