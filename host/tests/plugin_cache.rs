//! The compiled-plugin cache: a second run loads what the first compiled;
//! an entry that fails its checks is recompiled, never loaded.

mod common;

use std::path::{Path, PathBuf};

use common::{PluginDir, init_only, journal, load_kinds};

fn cache_entries(data: &Path) -> Vec<PathBuf> {
    let dir = data.join("cache/plugins");
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

#[test]
fn the_second_run_loads_the_cached_artifact() {
    let plugins = PluginDir::new();
    plugins.add("10-audit", "cert-audit", "");
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    assert_eq!(load_kinds(data.path()), ["compiled", "cached"]);
    let entries = cache_entries(data.path());
    assert_eq!(entries.len(), 1);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&entries[0]).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "cache entries are private");
}

#[test]
fn a_corrupted_or_truncated_cache_entry_is_recompiled_not_loaded() {
    let plugins = PluginDir::new();
    plugins.add("10-audit", "cert-audit", "");
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    let entry = cache_entries(data.path()).remove(0);
    let original = std::fs::read(&entry).unwrap();

    let mut corrupted = original.clone();
    let middle = corrupted.len() / 2;
    corrupted[middle] ^= 0xff;
    std::fs::write(&entry, &corrupted).unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);

    std::fs::write(&entry, &original[..original.len() / 3]).unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);

    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    assert_eq!(
        load_kinds(data.path()),
        ["compiled", "recompiled", "recompiled", "cached"]
    );
}

#[test]
fn a_world_writable_cache_entry_is_not_trusted() {
    let plugins = PluginDir::new();
    plugins.add("10-audit", "cert-audit", "");
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    let entry = cache_entries(data.path()).remove(0);
    std::fs::set_permissions(&entry, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    assert_eq!(load_kinds(data.path()), ["compiled", "recompiled"]);
}

/// The `describe` name each plugin was loaded with, by file stem.
fn loaded_names(data: &Path) -> std::collections::BTreeMap<String, String> {
    journal(data)
        .into_iter()
        .filter(|e| e["phase"] == "plugins")
        .map(|e| {
            (
                e["plugin"].as_str().unwrap().to_owned(),
                e["detail"]["metadata"]["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry_of(data: &Path, wasm: &Path) -> PathBuf {
    let sha256 = plinth::Sha256::of(&std::fs::read(wasm).unwrap()).to_string();
    cache_entries(data)
        .into_iter()
        .find(|entry| {
            entry
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&sha256)
        })
        .expect("an entry for the plugin")
}

#[test]
fn an_entry_copied_from_another_plugin_is_recompiled_not_loaded() {
    let plugins = PluginDir::new();
    let audit = plugins.add("10-audit", "cert-audit", "");
    let guard = plugins.add(
        "20-guard",
        "join-guard",
        "[settings]\nallow-create = \"true\"\n",
    );
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    let names = loaded_names(data.path());

    // Another plugin's valid artifact, under this plugin's entry name: its
    // own checksum holds, only the wasm it was compiled from differs.
    std::fs::copy(entry_of(data.path(), &guard), entry_of(data.path(), &audit)).unwrap();
    init_only(data.path(), Some(&plugins), &[]).expect_code(0);
    assert_eq!(
        load_kinds(data.path()),
        ["compiled", "compiled", "recompiled", "cached"]
    );
    assert_eq!(
        loaded_names(data.path()),
        names,
        "a plugin ran another's code"
    );
}

#[test]
fn a_link_swapped_under_an_entry_while_it_loads_is_never_followed() {
    use plinth::data_dir::DataDir;
    use plinth::plugin::{Cache, LoadKind, Plugin, Runtime, SignaturePolicy};
    use std::sync::atomic::{AtomicBool, Ordering};

    let plugins = PluginDir::new();
    let victim = plugins.add("10-victim", "join-guard", "");
    let other = PluginDir::new();
    let attacker = other.add("10-attacker", "rewrite", "");
    let data = tempfile::tempdir().unwrap();
    let data_dir = DataDir::lock(data.path().join("data")).unwrap();
    let runtime = Runtime::new().unwrap();
    let cache = Cache::in_data_dir(&data_dir, runtime.engine());
    let unsigned = SignaturePolicy::default();
    let victim_name = Plugin::load(&runtime, &cache, &victim, &unsigned)
        .unwrap()
        .metadata()
        .name
        .clone();
    let attacker_name = Plugin::load(&runtime, &cache, &attacker, &unsigned)
        .unwrap()
        .metadata()
        .name
        .clone();
    assert_ne!(victim_name, attacker_name);

    // The attacker's artifact, outside the data dir; the race of the issue
    // swaps a link to it and a sound entry under the victim's entry name.
    let entry = entry_of(data_dir.root(), &victim);
    let evil = tempfile::tempdir().unwrap();
    let evil_entry = evil.path().join("evil.cwasm");
    std::fs::copy(entry_of(data_dir.root(), &attacker), &evil_entry).unwrap();
    let sound = std::fs::read(&entry).unwrap();
    let stop = AtomicBool::new(false);
    /// Stops the swapper however the loop below ends, a failed assertion
    /// included: the scope waits for it.
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let (mut loads, mut refused) = (0, 0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let (link, copy) = (entry.with_extension("link"), entry.with_extension("copy"));
            while !stop.load(Ordering::Relaxed) {
                std::os::unix::fs::symlink(&evil_entry, &link).unwrap();
                std::fs::rename(&link, &entry).unwrap();
                std::fs::write(&copy, &sound).unwrap();
                std::fs::set_permissions(
                    &copy,
                    std::os::unix::fs::PermissionsExt::from_mode(0o600),
                )
                .unwrap();
                std::fs::rename(&copy, &entry).unwrap();
            }
        });
        let _stop = StopOnDrop(&stop);
        for _ in 0..60 {
            let plugin = Plugin::load(&runtime, &cache, &victim, &unsigned).unwrap();
            assert_eq!(
                plugin.metadata().name,
                victim_name,
                "the attacker's artifact was loaded"
            );
            loads += 1;
            if !matches!(plugin.load_kind(), LoadKind::Cached { .. }) {
                refused += 1;
            }
        }
    });
    assert_eq!(loads, 60);
    assert!(
        refused > 0,
        "the link was never in place during a load: the race was not run"
    );
}

#[test]
fn the_cache_and_every_directory_are_private_whatever_the_umask() {
    let plugins = PluginDir::new();
    plugins.add("10-audit", "cert-audit", "");
    let data = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_plinth"))
        .args(["-q", "controller", "--init-only", "--data-dir"])
        .arg(data.path())
        .arg("--plugins")
        .arg(plugins.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mode = |rel: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(data.path().join(rel))
                .unwrap()
                .permissions(),
        ) & 0o777
    };
    for dir in [
        "cache",
        "cache/plugins",
        "pki",
        "pki/etcd",
        "journal",
        "config",
    ] {
        assert_eq!(mode(dir), 0o700, "{dir}");
    }
    assert_eq!(mode(cache_entries(data.path())[0].to_str().unwrap()), 0o600);
    assert_eq!(mode("pki/ca.key"), 0o600);
    assert_eq!(mode("journal/bootstrap.jsonl"), 0o600);
}
