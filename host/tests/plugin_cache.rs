//! The compiled-plugin cache: a second run loads what the first compiled;
//! an entry that fails its checks is recompiled, never loaded.

mod common;

use std::path::{Path, PathBuf};

use common::{PluginDir, init_only, load_kinds};

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
