//! Guests that misbehave: each must fail the run with the documented exit
//! code, within its deadline plus a second, with a message naming the plugin
//! and the hook, and leave the data dir exactly as it was.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use common::{PluginDir, init_only, journal, snapshot};
use plinth::plugin::{Cache, CallFailure, Plugin, Runtime, SignaturePolicy};

/// Call-time hooks of `controller --init-only`.
const HOOKS: [&str; 4] = ["pre-init", "join-decision", "post-pki", "image-resolve"];
/// Deadline given to hostile plugins, to keep the suite quick.
const TIMEOUT_MS: u64 = 400;

/// A data dir holding a complete bootstrap made with the scripted guest, so
/// the compiled cache is warm and there is a state to keep intact.
fn prepared_data_dir(plugins: &PluginDir) -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    plugins.add("10-hostile", "scripted", "");
    init_only(data.path(), Some(plugins), &[]).expect_code(0);
    data
}

/// Make `10-hostile` behave as `mode` in `hook` only, and run.
fn run_hostile(
    data: &Path,
    plugins: &PluginDir,
    hook: &str,
    mode: &str,
    timeout_ms: Option<u64>,
) -> common::Run {
    let timeout = timeout_ms
        .map(|ms| format!("timeout-ms = {ms}\n"))
        .unwrap_or_default();
    let manifest =
        format!("{timeout}hooks = [\"{hook}\"]\n[settings]\n\"hostile.{hook}\" = \"{mode}\"\n");
    std::fs::write(plugins.path().join("10-hostile.toml"), manifest).unwrap();
    init_only(data, Some(plugins), &[])
}

/// Run `mode` in every hook under the deadline `timeout_ms` (the default of
/// 2 s when `None`) and check the run was contained.
fn assert_contained(mode: &str, timeout_ms: Option<u64>, reason: &str) {
    let plugins = PluginDir::new();
    let data = prepared_data_dir(&plugins);
    let before = snapshot(data.path());
    for hook in HOOKS {
        let run = run_hostile(data.path(), &plugins, hook, mode, timeout_ms);
        run.expect_code(4);
        let line = run.error_line();
        assert!(
            line.contains("10-hostile") && line.contains(hook),
            "{mode} in {hook}: {line}"
        );
        assert!(
            line.contains(reason),
            "{mode} in {hook}: expected `{reason}` in {line}"
        );
        let deadline = Duration::from_millis(timeout_ms.unwrap_or(2000)) + Duration::from_secs(1);
        assert!(
            run.elapsed < deadline,
            "{mode} in {hook} took {:?}",
            run.elapsed
        );
        assert_eq!(
            snapshot(data.path()),
            before,
            "{mode} in {hook} changed the data dir"
        );
        let last = journal(data.path())
            .into_iter()
            .rev()
            .find(|e| e["plugin"] == "10-hostile")
            .unwrap();
        assert_eq!(
            (last["phase"].as_str(), last["verdict"].as_str()),
            (Some(hook), Some("failed")),
            "{last}"
        );
        assert!(
            last["trap"].as_str().is_some_and(|t| t.contains(reason)),
            "{last}"
        );
    }
}

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    assert_contained(
        "loop",
        Some(TIMEOUT_MS),
        &format!("timed out after {TIMEOUT_MS} ms"),
    );
}

/// `plugins inspect` loads a plugin outside any bootstrap, and the runtime
/// it was loaded with is then held by the plugin alone: its epoch clock must
/// still run, or a spinning guest would never be stopped.
#[test]
fn a_plugin_loaded_outside_a_bootstrap_still_times_out_at_its_deadline() {
    let plugins = PluginDir::new();
    let wasm = plugins.add(
        "10-spin",
        "scripted",
        &format!("timeout-ms = {TIMEOUT_MS}\n[settings]\n\"hostile.image-resolve\" = \"loop\"\n"),
    );
    let plugin = {
        let runtime = Runtime::new().unwrap();
        Plugin::load(
            &runtime,
            &Cache::disabled(runtime.engine()),
            &wasm,
            &SignaturePolicy::default(),
        )
        .unwrap()
    };
    let (answer, answered) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = answer.send(plugin.image_resolve(&[]));
    });
    let outcome = answered
        .recv_timeout(Duration::from_secs(60))
        .expect("the call ends: without an epoch clock it would spin forever");
    assert_eq!(
        outcome,
        Err(CallFailure::Timeout(Duration::from_millis(TIMEOUT_MS)))
    );
}

#[test]
fn the_default_deadline_is_two_seconds() {
    let plugins = PluginDir::new();
    let data = prepared_data_dir(&plugins);
    let run = run_hostile(data.path(), &plugins, "pre-init", "loop", None);
    run.expect_code(4);
    assert!(
        run.error_line().contains("timed out after 2000 ms"),
        "{}",
        run.error_line()
    );
    // The call itself, as the journal timed it: the process around it also
    // starts, loads and stages, which a loaded machine makes slower.
    let failed = journal(data.path())
        .into_iter()
        .rev()
        .find(|e| e["plugin"] == "10-hostile" && e["verdict"] == "failed")
        .expect("the failed call is journaled");
    let call = Duration::from_micros(failed["duration_us"].as_u64().expect("a duration"));
    assert!(
        call >= Duration::from_secs(2) && call < Duration::from_secs(3),
        "{call:?}"
    );
    assert!(run.elapsed >= call, "{:?}", run.elapsed);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    assert_contained("memory-bomb", None, "memory cap of 64 MiB");
}

#[test]
fn deep_recursion_traps_on_stack_exhaustion() {
    assert_contained("recursion", None, "call stack exhausted");
}

#[test]
fn a_panic_is_a_trap() {
    assert_contained("panic", None, "trapped");
}

#[test]
fn a_malformed_answer_fails_the_plugin() {
    assert_contained("malformed", None, "malformed answer");
}

#[test]
fn an_oversized_answer_is_refused() {
    assert_contained("oversized", None, "at most");
}

#[test]
fn failure_policy_ignore_lets_the_bootstrap_go_on() {
    let plugins = PluginDir::new();
    let data = prepared_data_dir(&plugins);
    std::fs::write(
        plugins.path().join("10-hostile.toml"),
        "failure-policy = \"ignore\"\ntimeout-ms = 300\nhooks = [\"image-resolve\"]\n[settings]\n\"hostile.image-resolve\" = \"loop\"\n",
    )
    .unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    let last = journal(data.path())
        .into_iter()
        .rev()
        .find(|e| e["plugin"] == "10-hostile")
        .unwrap();
    assert_eq!(last["verdict"], "failure-ignored", "{last}");
}

#[test]
fn misbehaving_at_load_stops_the_run_before_any_phase() {
    for (hook, mode, reason) in [
        ("describe", "loop", "timed out"),
        ("describe", "malformed", "a name is required"),
        ("describe", "oversized", "at most 4 KiB"),
        ("validate-settings", "panic", "trapped"),
        ("validate-settings", "memory-bomb", "memory cap"),
        ("validate-settings", "oversized", "at most 1000 messages"),
        ("validate-settings", "malformed", "gave no reason"),
    ] {
        let plugins = PluginDir::new();
        plugins.add(
            "10-hostile",
            "scripted",
            &format!("timeout-ms = {TIMEOUT_MS}\n[settings]\n\"hostile.{hook}\" = \"{mode}\"\n"),
        );
        let data = tempfile::tempdir().unwrap();
        let run = init_only(data.path(), Some(&plugins), &[]);
        run.expect_code(2);
        let line = run.error_line();
        assert!(
            line.contains("10-hostile") && line.contains(reason),
            "{hook} {mode}: {line}"
        );
        assert!(
            snapshot(data.path()).is_empty(),
            "{hook} {mode} wrote into the data dir"
        );
    }
}

#[test]
fn files_that_are_not_plugins_of_this_contract_are_refused_at_load() {
    let other_contract = std::fs::read(common::guest("other-contract")).unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        ("10-empty", b"", "the file is empty"),
        (
            "10-garbage",
            b"#!/bin/sh\necho hi\n",
            "not a WebAssembly component",
        ),
        (
            "10-core-module",
            b"\0asm\x01\0\0\0",
            "not a WebAssembly component",
        ),
        (
            "10-other",
            &other_contract,
            "built against plinth:bootstrap@0.1.0; this Plinth speaks 0.2.0",
        ),
    ];
    for (what, bytes, reason) in cases {
        let plugins = PluginDir::new();
        plugins.add_bytes(what, bytes);
        let data = tempfile::tempdir().unwrap();
        let run = init_only(data.path(), Some(&plugins), &[]);
        run.expect_code(2);
        assert!(
            run.error_line().contains(reason) && run.error_line().contains(".wasm"),
            "{what}: {}",
            run.error_line()
        );
        assert!(
            snapshot(data.path()).is_empty(),
            "{what} wrote into the data dir"
        );
    }
}
