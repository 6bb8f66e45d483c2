//! Plugins written in Python (componentize-py), loaded and called like the
//! Rust ones: `examples/python-image-policy` denies and passes as its
//! settings say, its second load comes from the compiled cache, and a
//! Python plugin that never returns is stopped at its deadline.
//!
//! A Python component is 18 MB and compiles in seconds even with the
//! optimised Cranelift of the test profile, so the example is compiled
//! once per test run (by the bootstrap that checks the cache) and the other
//! tests start from a copy of that compiled cache.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{PluginDir, Run, init_only, journal, load_kinds};

const EXAMPLE: &str = "python-image-policy";
const STEM: &str = "40-image-policy";

/// The two runs of the seed data dir: a first and a second bootstrap with
/// tag-only images allowed.
struct Seed {
    data: PathBuf,
    runs: [Run; 2],
}

fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Seeds of earlier runs (a static is never dropped) are removed here.
        if let Ok(entries) = std::fs::read_dir(tmp) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("python-seed-")
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let data = tmp.join(format!("python-seed-{}", std::process::id()));
        let plugins = PluginDir::new();
        plugins.add(STEM, EXAMPLE, "[settings]\nallow-tags = \"true\"\n");
        let first = init_only(&data, Some(&plugins), &[]);
        let second = init_only(&data, Some(&plugins), &[]);
        Seed {
            data,
            runs: [first, second],
        }
    })
}

/// A fresh data dir whose compiled cache holds the example.
fn warm_data_dir() -> tempfile::TempDir {
    let seed = seed();
    let data = tempfile::tempdir().unwrap();
    let cache = data.path().join("cache/plugins");
    std::fs::create_dir_all(&cache).unwrap();
    for entry in std::fs::read_dir(seed.data.join("cache/plugins")).unwrap() {
        let entry = entry.unwrap().path();
        std::fs::copy(&entry, cache.join(entry.file_name().unwrap())).unwrap();
    }
    data
}

/// Run the example with `settings` (TOML lines) in a warm data dir.
fn run_example(settings: &str) -> (tempfile::TempDir, Run) {
    let data = warm_data_dir();
    let plugins = PluginDir::new();
    plugins.add(STEM, EXAMPLE, &format!("[settings]\n{settings}\n"));
    let run = init_only(data.path(), Some(&plugins), &[]);
    (data, run)
}

#[test]
fn the_python_example_passes_tag_only_images_when_allowed_and_loads_from_the_cache_the_second_time()
{
    let seed = seed();
    for run in &seed.runs {
        run.expect_code(0);
    }
    assert_eq!(load_kinds(&seed.data), ["compiled", "cached"]);
    let warning = seed.runs[1]
        .stderr
        .lines()
        .find(|line| line.contains("not pinned to a digest"))
        .unwrap_or_else(|| panic!("no warning in\n{}", seed.runs[1].stderr));
    assert!(warning.contains(STEM), "{warning}");
    let calls: Vec<_> = journal(&seed.data)
        .into_iter()
        .filter(|e| e["plugin"] == STEM && e["phase"] != "plugins")
        .map(|e| (e["phase"].clone(), e["verdict"].clone()))
        .collect();
    let allowed = serde_json::json!("allowed");
    assert_eq!(
        calls,
        [
            (serde_json::json!("post-pki"), allowed.clone()),
            (serde_json::json!("image-resolve"), allowed.clone()),
            (serde_json::json!("post-pki"), allowed.clone()),
            (serde_json::json!("image-resolve"), allowed),
        ]
    );
}

#[test]
fn the_python_example_refuses_images_without_a_digest() {
    let (data, run) = run_example("");
    run.expect_code(3);
    let line = run.error_line();
    assert!(
        line.contains("image-resolve")
            && line.contains(STEM)
            && line.contains("not pinned to a digest")
            && line.contains("allow-tags"),
        "{line}"
    );
    assert_eq!(load_kinds(data.path()), ["cached"]);
    assert!(!data.path().join(".complete").exists());
}

#[test]
fn the_python_example_denies_a_leaf_certificate_valid_longer_than_max_leaf_days() {
    let (_data, run) = run_example("allow-tags = \"true\"\nmax-leaf-days = \"30\"");
    run.expect_code(3);
    let line = run.error_line();
    assert!(
        line.contains("post-pki")
            && line.contains("[max-leaf-days]")
            && line.contains("leaf certificate `server` is valid for")
            && line.contains("days; max-leaf-days is 30")
            && !line.contains("certificate `ca`"),
        "{line}"
    );
}

#[test]
fn bad_settings_of_the_python_example_stop_the_run_at_load() {
    let (_data, run) = run_example("allow-tags = \"yes\"\nmax-leaf-days = \"-1\"");
    run.expect_code(2);
    let line = run.error_line();
    assert!(
        line.contains(STEM)
            && line.contains("allow-tags = 'yes': expected `true` or `false`")
            && line.contains("max-leaf-days = '-1'"),
        "{line}"
    );
}

#[test]
fn a_python_plugin_in_an_infinite_loop_is_stopped_at_its_deadline() {
    const TIMEOUT_MS: u64 = 500;
    let plugins = PluginDir::new();
    plugins.add(
        "10-hostile",
        "python-hostile",
        &format!("timeout-ms = {TIMEOUT_MS}\n"),
    );
    let data = tempfile::tempdir().unwrap();
    let run = init_only(data.path(), Some(&plugins), &[]);
    run.expect_code(4);
    let line = run.error_line();
    assert!(
        line.contains("10-hostile")
            && line.contains("image-resolve")
            && line.contains(&format!("timed out after {TIMEOUT_MS} ms")),
        "{line}"
    );
    let call = journal(data.path())
        .into_iter()
        .find(|e| e["plugin"] == "10-hostile" && e["phase"] == "image-resolve")
        .unwrap();
    assert_eq!(call["verdict"], "failed", "{call}");
    // Stopped at the deadline, not long after it: one epoch tick (10 ms)
    // late at best; a loaded machine gets a second of slack.
    let took_ms = call["duration_us"].as_u64().unwrap() / 1000;
    assert!(
        (TIMEOUT_MS..TIMEOUT_MS + 1000).contains(&took_ms),
        "the call took {took_ms} ms"
    );
    assert!(!data.path().join(".complete").exists());
}
