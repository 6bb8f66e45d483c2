//! `plinth plugins invoke`: one hook of one plugin on a JSON fixture, with
//! the answer checks, sandbox and limits of a bootstrap.

mod common;

use std::path::Path;

use common::{HOOKS, PluginDir, Run, plinth, temp_file};

fn example(hook: &str) -> String {
    let run = plinth(&["plugins", "invoke", "--hook", hook, "--example"]);
    run.expect_code(0);
    run.stdout
}

fn invoke(wasm: &Path, hook: &str, fixture: &Path, extra: &[&str]) -> Run {
    let (wasm, fixture) = (wasm.display().to_string(), fixture.display().to_string());
    let mut args = vec![
        "plugins", "invoke", &wasm, "--hook", hook, "--input", &fixture,
    ];
    args.extend(extra);
    plinth(&args)
}

#[test]
fn every_example_fixture_is_accepted_by_a_plugin_that_agrees_with_everything() {
    let plugins = PluginDir::new();
    let wasm = plugins.add("10-scripted", "scripted", "");
    for hook in HOOKS {
        let (_dir, fixture) = temp_file("fixture.json", &example(hook));
        let run = invoke(&wasm, hook, &fixture, &[]);
        run.expect_code(0);
        assert!(
            run.stdout.contains("verdict: allowed") && run.stdout.contains("memory:  peak"),
            "{hook}: {}",
            run.stdout
        );
    }
}

#[test]
fn a_refusal_is_printed_and_exits_3() {
    let plugins = PluginDir::new();
    let wasm = plugins.add(
        "10-refuse",
        "scripted",
        "[settings]\n\"images.refuse\" = \"not from this registry\"\n",
    );
    let (_dir, fixture) = temp_file("images.json", &example("image-resolve"));
    let run = invoke(&wasm, "image-resolve", &fixture, &[]);
    run.expect_code(3);
    assert!(
        run.stdout.contains("verdict: denied") && run.stdout.contains("not from this registry"),
        "{}",
        run.stdout
    );
}

#[test]
fn repeated_calls_report_their_spread_and_the_peak_memory_as_json() {
    let plugins = PluginDir::new();
    let wasm = plugins.add(
        "20-mirror",
        "airgap-mirror",
        "[settings]\nregistry = \"mirror.local\"\n",
    );
    let (_dir, fixture) = temp_file("images.json", &example("image-resolve"));
    let run = invoke(
        &wasm,
        "image-resolve",
        &fixture,
        &["--repeat", "5", "--output", "json"],
    );
    run.expect_code(0);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["calls"], 5);
    let (min, median, max) = (
        report["min"].as_f64().unwrap(),
        report["median"].as_f64().unwrap(),
        report["max"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= median && median <= max, "{report}");
    assert!(
        report["peak_memory_bytes"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(report["memory_cap_mib"], 64);
    let repositories: Vec<_> = report["answer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| image["repository"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        repositories.iter().all(|r| r.starts_with("mirror.local/")),
        "{repositories:?}"
    );
}

#[test]
fn a_hostile_plugin_is_contained_as_in_a_bootstrap() {
    let plugins = PluginDir::new();
    let (_dir, fixture) = temp_file("images.json", &example("image-resolve"));
    for (mode, reason) in [
        ("loop", "timed out after 300 ms"),
        ("memory-bomb", "exceeded its memory cap of 64 MiB"),
        ("malformed", "gave a malformed answer"),
    ] {
        let wasm = plugins.add(
            "10-hostile",
            "scripted",
            &format!("timeout-ms = 300\n[settings]\n\"hostile.image-resolve\" = \"{mode}\"\n"),
        );
        let run = invoke(&wasm, "image-resolve", &fixture, &[]);
        run.expect_code(4);
        let line = run.error_line();
        assert!(
            line.contains("10-hostile") && line.contains(reason),
            "{mode}: {line}"
        );
    }
}

#[test]
fn a_manifest_given_on_the_command_line_replaces_the_one_beside_the_file() {
    let plugins = PluginDir::new();
    let wasm = plugins.add(
        "10-tag",
        "scripted",
        "[settings]\n\"images.tag\" = \"beside\"\n",
    );
    let (dir, fixture) = temp_file("images.json", &example("image-resolve"));
    let manifest = dir.path().join("other.toml");
    std::fs::write(&manifest, "[settings]\n\"images.tag\" = \"given\"\n").unwrap();
    let manifest = manifest.display().to_string();
    let run = invoke(&wasm, "image-resolve", &fixture, &["--manifest", &manifest]);
    run.expect_code(0);
    assert!(run.stdout.contains("\"tag\": \"given\""), "{}", run.stdout);
}

#[test]
fn a_bad_fixture_or_an_unserved_hook_is_a_usage_error() {
    let plugins = PluginDir::new();
    let wasm = plugins.add("10-audit", "cert-audit", "");
    let (_dir, fixture) = temp_file("bad.json", "{\"images\": [{\"component\": 1}]}");
    let run = invoke(&wasm, "post-pki", &fixture, &[]);
    run.expect_code(2);
    assert!(
        run.error_line()
            .contains("bad.json is not a post-pki input")
            && run.error_line().contains("--example"),
        "{}",
        run.error_line()
    );
    let (_dir, images) = temp_file("images.json", &example("image-resolve"));
    let run = invoke(&wasm, "image-resolve", &images, &[]);
    run.expect_code(2);
    assert!(
        run.error_line()
            .contains("does not serve image-resolve (it serves: post-pki)"),
        "{}",
        run.error_line()
    );
}
