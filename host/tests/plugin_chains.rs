//! Hook chains with real guests: order, aggregation of denials, config
//! patches, join overrides, settings and pins.

mod common;

use common::{PluginDir, init_only, journal, plinth, snapshot, temp_file};

/// A manifest serving only `hook`, with `settings` (TOML lines).
fn manifest(hook: &str, settings: &str) -> String {
    format!("hooks = [\"{hook}\"]\n[settings]\n{settings}\n")
}

fn list_images(plugins: &PluginDir) -> Vec<String> {
    let run = plinth(&["airgap", "list-images", "--plugins", &plugins.arg()]);
    run.expect_code(0);
    run.stdout.lines().map(str::to_owned).collect()
}

#[test]
fn chain_runs_in_file_name_order_without_manifest_order() {
    let plugins = PluginDir::new();
    plugins.add(
        "20-b",
        "scripted",
        &manifest("image-resolve", "\"images.prefix\" = \"b\""),
    );
    plugins.add(
        "10-a",
        "scripted",
        &manifest("image-resolve", "\"images.prefix\" = \"a\""),
    );
    let images = list_images(&plugins);
    assert!(!images.is_empty());
    assert!(
        images.iter().all(|image| image.starts_with("b/a/")),
        "10-a must run before 20-b: {images:?}"
    );
}

#[test]
fn manifest_order_overrides_file_name_order() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-a",
        "scripted",
        &format!(
            "order = 2\n{}",
            manifest("image-resolve", "\"images.prefix\" = \"a\"")
        ),
    );
    plugins.add(
        "20-b",
        "scripted",
        &format!(
            "order = 1\n{}",
            manifest("image-resolve", "\"images.prefix\" = \"b\"")
        ),
    );
    let images = list_images(&plugins);
    assert!(
        images.iter().all(|image| image.starts_with("a/b/")),
        "order 1 (20-b) must run first: {images:?}"
    );

    let plan = plinth(&["plugins", "plan", &plugins.arg(), "--output", "json"]);
    plan.expect_code(0);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let image_chain: Vec<&str> = plan["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hook"] == "image-resolve")
        .unwrap()["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["name"].as_str().unwrap())
        .collect();
    assert_eq!(image_chain, ["builtin:catalog", "20-b", "10-a"]);
}

#[test]
fn hooks_come_from_exports_and_a_manifest_narrows_them() {
    let plugins = PluginDir::new();
    plugins.add("10-full", "scripted", "");
    plugins.add("20-narrow", "scripted", "hooks = [\"post-pki\"]\n");
    plugins.add("30-audit", "cert-audit", "");
    let inspect = plinth(&[
        "plugins",
        "inspect",
        &plugins.path().join("30-audit.wasm").display().to_string(),
        "--output",
        "json",
    ]);
    inspect.expect_code(0);
    let inspect: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(inspect["exported_hooks"], serde_json::json!(["post-pki"]));
    assert_eq!(inspect["name"], "cert-audit");
    assert_eq!(inspect["contract"], "plinth:bootstrap@0.2.0");
    assert_eq!(inspect["sha256"].as_str().unwrap().len(), 64);

    let plan: serde_json::Value = serde_json::from_str(
        &plinth(&["plugins", "plan", &plugins.arg(), "--output", "json"]).stdout,
    )
    .unwrap();
    let names = |hook: &str| -> Vec<String> {
        plan["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["hook"] == hook)
            .unwrap()["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|link| link["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("pre-init"), ["builtin:node-addresses", "10-full"]);
    assert_eq!(
        names("post-pki"),
        ["builtin:validity", "10-full", "20-narrow", "30-audit"]
    );
    assert_eq!(names("image-resolve"), ["builtin:catalog", "10-full"]);
}

#[test]
fn every_denial_is_reported_and_nothing_is_written() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-a",
        "scripted",
        &manifest("pre-init", "\"pre-init.deny\" = \"no cluster on Fridays\""),
    );
    plugins.add(
        "20-b",
        "scripted",
        &manifest("pre-init", "\"pre-init.deny\" = \"api address not in DMZ\""),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(3);
    let line = run.error_line();
    for expected in [
        "pre-init denied",
        "10-a",
        "no cluster on Fridays",
        "20-b",
        "api address not in DMZ",
    ] {
        assert!(line.contains(expected), "`{expected}` missing from: {line}");
    }
    assert!(
        snapshot(data.path()).is_empty(),
        "a denied bootstrap wrote {:?}",
        snapshot(data.path()).keys()
    );
    let denied: Vec<_> = journal(data.path())
        .into_iter()
        .filter(|e| e["verdict"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "both denials are journaled");
}

#[test]
fn a_config_patch_is_applied_validated_and_seen_by_the_next_plugin() {
    let plugins = PluginDir::new();
    let patch = r#"{"spec":{"network":{"clusterDomain":"corp.example"}}}"#;
    plugins.add(
        "10-patch",
        "scripted",
        &manifest("pre-init", &format!("\"pre-init.patch\" = '{patch}'")),
    );
    plugins.add(
        "20-echo",
        "scripted",
        &manifest("pre-init", "\"pre-init.echo-config\" = \"true\""),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("20-echo") && run.stdout.contains("corp.example"),
        "{}",
        run.stdout
    );
    let persisted = std::fs::read_to_string(data.path().join("config/cluster.yaml")).unwrap();
    assert!(
        persisted.contains("clusterDomain: corp.example"),
        "{persisted}"
    );
    let san = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(data.path().join("pki/server.crt"))
        .output()
        .expect("openssl is needed for this test");
    assert!(String::from_utf8_lossy(&san.stdout).contains("kubernetes.default.svc.corp.example"));
}

#[test]
fn a_patch_that_breaks_the_config_fails_the_plugin() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-bad-patch",
        "scripted",
        &manifest(
            "pre-init",
            r#""pre-init.patch" = '{"spec":{"api":{"port":0}}}'"#,
        ),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(4);
    let line = run.error_line();
    assert!(
        line.contains("10-bad-patch")
            && line.contains("pre-init")
            && line.contains("spec.api.port"),
        "{line}"
    );
}

#[test]
fn a_plugin_overrides_the_join_decision() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-join",
        "scripted",
        &manifest("join-decision", "\"join.action\" = \"already-member\""),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("join decision: already-member (scripted by scripted)"),
        "{}",
        run.stdout
    );
    let decisions: Vec<_> = journal(data.path())
        .into_iter()
        .filter(|e| e["phase"] == "join-decision")
        .collect();
    assert_eq!(decisions[0]["plugin"], "builtin:storage-state");
    assert_eq!(decisions[0]["detail"]["action"], "create-cluster");
    assert_eq!(decisions[1]["plugin"], "10-join");
    assert_eq!(decisions[1]["detail"]["action"], "already-member");
    assert!(
        decisions[1]["sha256"]
            .as_str()
            .is_some_and(|s| s.len() == 64)
    );
}

#[test]
fn a_refused_join_decision_denies_with_the_reason() {
    let plugins = PluginDir::new();
    plugins.add("30-join-guard", "join-guard", "");
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(3);
    let line = run.error_line();
    assert!(
        line.contains("join-decision denied") && line.contains("30-join-guard"),
        "{line}"
    );
    assert!(snapshot(data.path()).is_empty());
}

#[test]
fn bad_settings_stop_the_run_before_any_phase() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-typo",
        "scripted",
        "[settings]\n\"join.action\" = \"create-clustr\"\n",
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(2);
    let line = run.error_line();
    assert!(
        line.contains("10-typo") && line.contains("join.action") && line.contains("create-clustr"),
        "{line}"
    );
    assert!(
        journal(data.path())
            .iter()
            .all(|e| e["phase"] != "pre-init"),
        "no phase ran"
    );
    assert!(snapshot(data.path()).is_empty());
}

#[test]
fn a_sha256_pin_must_match_the_file() {
    let plugins = PluginDir::new();
    let wasm = plugins.add("10-pinned", "scripted", "");
    let inspect = plinth(&[
        "plugins",
        "inspect",
        &wasm.display().to_string(),
        "--output",
        "json",
    ]);
    let sha256 = serde_json::from_str::<serde_json::Value>(&inspect.stdout).unwrap()["sha256"]
        .as_str()
        .unwrap()
        .to_owned();

    std::fs::write(
        plugins.path().join("10-pinned.toml"),
        format!("sha256 = \"{}\"\n", "0".repeat(64)),
    )
    .unwrap();
    let run = plinth(&["plugins", "plan", &plugins.arg()]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("10-pinned.wasm") && run.error_line().contains(&sha256),
        "{}",
        run.error_line()
    );

    std::fs::write(
        plugins.path().join("10-pinned.toml"),
        format!("sha256 = \"{sha256}\"\n"),
    )
    .unwrap();
    plinth(&["plugins", "plan", &plugins.arg()]).expect_code(0);
}

#[test]
fn guest_output_and_log_lines_reach_the_log_with_plugin_and_hook() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-chatty",
        "scripted",
        &manifest(
            "image-resolve",
            "\"log.message\" = \"hello from the guest\"",
        ),
    );
    let run = plinth(&["airgap", "list-images", "--plugins", &plugins.arg()]);
    run.expect_code(0);
    for stream in [
        "hello from the guest",
        "stdout: hello from the guest",
        "stderr: hello from the guest",
    ] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(stream) && l.contains("\"image-resolve\""));
        let line = line
            .unwrap_or_else(|| panic!("no `{stream}` line for image-resolve in:\n{}", run.stderr));
        assert!(line.contains("10-chatty"), "{line}");
    }
}

#[test]
fn settings_reach_the_plugin_through_the_host() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-echo",
        "scripted",
        &manifest("pre-init", "\"settings.echo\" = \"site\"\nsite = \"fra-1\""),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(0);
    assert!(
        run.stdout
            .contains("note: 10-echo [settings.echo] site: fra-1"),
        "{}",
        run.stdout
    );
}

#[test]
fn an_image_set_change_needs_the_manifest_s_permission() {
    let plugins = PluginDir::new();
    plugins.add(
        "10-drop",
        "scripted",
        &manifest("image-resolve", "\"images.drop\" = \"coredns\""),
    );
    let run = plinth(&["airgap", "list-images", "--plugins", &plugins.arg()]);
    run.expect_code(4);
    assert!(
        run.error_line().contains("10-drop") && run.error_line().contains("coredns"),
        "{}",
        run.error_line()
    );

    std::fs::write(
        plugins.path().join("10-drop.toml"),
        format!(
            "allow-image-set-change = true\n{}",
            manifest("image-resolve", "\"images.drop\" = \"coredns\"")
        ),
    )
    .unwrap();
    let images = list_images(&plugins);
    assert!(
        !images.iter().any(|i| i.contains("coredns")) && !images.is_empty(),
        "{images:?}"
    );
}

#[test]
fn config_errors_name_file_line_and_key() {
    let (_dir, config) = temp_file("cluster.yaml", "spec:\n  api:\n    adress: 10.0.0.1\n");
    let data = tempfile::tempdir().unwrap();
    let run = init_only(
        data.path(),
        None,
        &["--config", &config.display().to_string()],
    );
    run.expect_code(2);
    let line = run.error_line();
    assert!(
        line.contains("cluster.yaml:3:") && line.contains("adress"),
        "{line}"
    );
    assert_eq!(
        run.stderr.lines().filter(|l| l.contains("error")).count(),
        1,
        "one line: {}",
        run.stderr
    );
}
