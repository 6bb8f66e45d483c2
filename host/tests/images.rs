//! Component images: versioned catalogs, explicit-vs-default config, the
//! image-resolve chain, `airgap list-images` and the airgap-mirror plugin.

mod common;

use std::path::Path;

use common::{PluginDir, init_only, plinth, temp_file};
use plinth::controller::{self, InitOptions};
use plinth::images::{Activation, Catalog, CatalogEntry};
use plinth::node::NodeFacts;
use time::OffsetDateTime;

/// An older Plinth's catalog: every tag differs from the built-in one.
fn old_catalog() -> Catalog {
    let entries = Catalog::builtin()
        .entries()
        .iter()
        .map(|entry| CatalogEntry {
            tag: format!("{}-old", entry.tag),
            ..entry.clone()
        })
        .collect();
    Catalog::new("0.0.1", entries)
}

fn init(data: &Path, config: Option<&Path>, catalog: Catalog) -> plinth::controller::Bootstrap {
    let options = InitOptions {
        data_dir: data.to_owned(),
        plugins_dir: None,
        config_file: config.map(Path::to_owned),
        token_file: None,
        catalog,
        node: NodeFacts::discover(),
        now: OffsetDateTime::now_utc(),
    };
    controller::init(&options).expect("init-only succeeds")
}

fn lock(data: &Path) -> Vec<(String, String, String, String)> {
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("images.lock")).unwrap()).unwrap();
    lock["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let field = |k: &str| i[k].as_str().unwrap().to_owned();
            (
                field("component"),
                field("reference"),
                field("origin"),
                field("pullPolicy"),
            )
        })
        .collect()
}

/// Upgrade as a second controller would: the persisted config of a
/// controller running `old_catalog()` is all the new one is given.
fn upgrade(config: &str) -> Vec<(String, String, String, String)> {
    let (_dir, config) = temp_file("cluster.yaml", config);
    let old = tempfile::tempdir().unwrap();
    init(old.path(), Some(&config), old_catalog());
    let old_images = lock(old.path());
    assert!(
        old_images
            .iter()
            .filter(|(.., origin, _)| origin == "default")
            .all(|(_, r, ..)| r.ends_with("-old"))
    );
    let persisted = old.path().join("config/cluster.yaml");
    let new = tempfile::tempdir().unwrap();
    init(new.path(), Some(&persisted), Catalog::builtin());
    lock(new.path())
}

#[test]
fn k0s_5258_defaults_persisted_by_an_old_version_never_pin_its_images() {
    let images = upgrade(
        "spec:\n  network:\n    nodeLocalLoadBalancing:\n      enabled: true\n  images:\n    defaultPullPolicy: Never\n",
    );
    let builtin = Catalog::builtin();
    assert!(
        images.iter().any(|(component, ..)| component == "envoy"),
        "node-local load balancing needs envoy"
    );
    for (component, reference, origin, policy) in &images {
        let entry = builtin.get(component).unwrap();
        assert_eq!(
            reference,
            &format!("{}:{}", entry.repository, entry.tag),
            "{component} from the new catalog"
        );
        assert_eq!(
            (origin.as_str(), policy.as_str()),
            ("default", "Never"),
            "{component}"
        );
    }
}

#[test]
fn k0s_7708_a_persisted_repository_alone_pins_nothing() {
    let images = upgrade("spec:\n  images:\n    repository: mirror.corp:5000\n");
    let builtin = Catalog::builtin();
    for (component, reference, origin, _) in &images {
        let entry = builtin.get(component).unwrap();
        assert!(reference.starts_with("mirror.corp:5000/"), "{reference}");
        assert!(
            reference.ends_with(&format!(":{}", entry.tag)),
            "{component}: {reference} is not the new tag"
        );
        assert_eq!(origin, "default");
    }
}

#[test]
fn explicit_overrides_survive_an_upgrade_and_are_honoured() {
    let images = upgrade(
        "spec:\n  images:\n    coredns:\n      image: corp.example/dns/coredns\n      version: v1.12.0-corp\n      pullPolicy: Always\n",
    );
    let coredns = images
        .iter()
        .find(|(component, ..)| component == "coredns")
        .unwrap();
    assert_eq!(coredns.1, "corp.example/dns/coredns:v1.12.0-corp");
    assert_eq!(
        (coredns.2.as_str(), coredns.3.as_str()),
        ("explicit", "Always")
    );
    let pause = images
        .iter()
        .find(|(component, ..)| component == "pause")
        .unwrap();
    assert_eq!(pause.2, "default");
    assert!(!pause.1.ends_with("-old"));
}

#[test]
fn the_persisted_config_holds_only_what_the_user_set() {
    let (_dir, config) = temp_file(
        "cluster.yaml",
        "spec:\n  images:\n    repository: mirror.corp:5000\n",
    );
    let data = tempfile::tempdir().unwrap();
    init(data.path(), Some(&config), Catalog::builtin());
    let persisted = std::fs::read_to_string(data.path().join("config/cluster.yaml")).unwrap();
    assert!(persisted.contains("repository: mirror.corp:5000"));
    for leaked in ["registry.k8s.io", "3.10", "IfNotPresent", "coredns", "6443"] {
        assert!(
            !persisted.contains(leaked),
            "`{leaked}` leaked into the persisted config:\n{persisted}"
        );
    }
}

#[test]
fn the_network_provider_selects_its_images() {
    let (_dir, config) = temp_file("cluster.yaml", "spec:\n  network:\n    provider: calico\n");
    let calico = Catalog::builtin()
        .entries()
        .iter()
        .filter(|e| {
            matches!(
                e.activation,
                Activation::Network(plinth::config::NetworkProvider::Calico)
            )
        })
        .count();
    let run = plinth(&[
        "airgap",
        "list-images",
        "--config",
        &config.display().to_string(),
    ]);
    run.expect_code(0);
    assert_eq!(
        run.stdout.lines().filter(|l| l.contains("calico")).count(),
        calico
    );
    assert!(!run.stdout.contains("kube-router"));
    let all = plinth(&["airgap", "list-images", "--all"]);
    assert_eq!(
        all.stdout.lines().count(),
        Catalog::builtin().entries().len()
    );
}

#[test]
fn an_unknown_component_is_an_error_naming_the_key() {
    let (_dir, config) = temp_file(
        "cluster.yaml",
        "spec:\n  images:\n    corednz:\n      version: v1\n",
    );
    let run = plinth(&[
        "airgap",
        "list-images",
        "--config",
        &config.display().to_string(),
    ]);
    run.expect_code(2);
    assert!(
        run.error_line().contains("spec.images.corednz")
            && run.error_line().contains("cluster.yaml"),
        "{}",
        run.error_line()
    );
}

fn mirror(plugins: &PluginDir, settings: &str) {
    plugins.add(
        "20-mirror",
        "airgap-mirror",
        &format!("[settings]\n{settings}\n"),
    );
}

#[test]
fn list_images_prints_exactly_the_lock_of_an_init_only_run() {
    let plugins = PluginDir::new();
    mirror(
        &plugins,
        "registry = \"mirror.local:5000\"\nprefix = \"k8s\"",
    );
    let (_dir, config) = temp_file(
        "cluster.yaml",
        "spec:\n  network:\n    nodeLocalLoadBalancing:\n      enabled: true\n  images:\n    coredns:\n      version: v1.99.0\n",
    );
    let config = config.display().to_string();
    let listed = plinth(&[
        "airgap",
        "list-images",
        "--config",
        &config,
        "--plugins",
        &plugins.arg(),
    ]);
    listed.expect_code(0);
    let data = tempfile::tempdir().unwrap();
    init_only(data.path(), Some(&plugins), &["--config", &config]).expect_code(0);
    let mut locked: Vec<String> = lock(data.path())
        .into_iter()
        .map(|(_, reference, ..)| reference)
        .collect();
    let mut listed: Vec<String> = listed.stdout.lines().map(str::to_owned).collect();
    locked.sort();
    listed.sort();
    assert_eq!(listed, locked);
    assert!(
        listed
            .iter()
            .any(|r| r == "mirror.local:5000/k8s/coredns/coredns:v1.99.0"),
        "{listed:?}"
    );
}

#[test]
fn the_mirror_rewrites_every_image() {
    let plugins = PluginDir::new();
    mirror(&plugins, "registry = \"mirror.local:5000\"");
    let run = plinth(&[
        "airgap",
        "list-images",
        "--all",
        "--plugins",
        &plugins.arg(),
    ]);
    run.expect_code(0);
    assert_eq!(
        run.stdout.lines().count(),
        Catalog::builtin().entries().len()
    );
    assert!(
        run.stdout
            .lines()
            .all(|l| l.starts_with("mirror.local:5000/")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("mirror.local:5000/coredns/coredns:"));
    assert!(
        run.stdout
            .contains("mirror.local:5000/cloudnativelabs/kube-router:")
    );
}

#[test]
fn only_defaults_leaves_explicit_images_alone() {
    let plugins = PluginDir::new();
    mirror(
        &plugins,
        "registry = \"mirror.local:5000\"\n\"only-defaults\" = \"true\"",
    );
    let (_dir, config) = temp_file(
        "cluster.yaml",
        "spec:\n  images:\n    coredns:\n      image: corp.example/coredns\n",
    );
    let run = plinth(&[
        "airgap",
        "list-images",
        "--config",
        &config.display().to_string(),
        "--plugins",
        &plugins.arg(),
    ]);
    run.expect_code(0);
    let coredns: Vec<_> = run
        .stdout
        .lines()
        .filter(|l| l.contains("coredns"))
        .collect();
    assert_eq!(coredns.len(), 1);
    assert!(
        coredns[0].starts_with("corp.example/coredns:"),
        "{coredns:?}"
    );
    assert!(
        run.stdout
            .lines()
            .filter(|l| !l.contains("coredns"))
            .all(|l| l.starts_with("mirror.local:5000/"))
    );
}

/// `list-images` printed `image` as one of its lines.
fn assert_lists(stdout: &str, image: &str) {
    assert!(
        stdout.lines().any(|l| l == image),
        "{image} not in:\n{stdout}"
    );
}

#[test]
fn digest_pins_are_applied() {
    let plugins = PluginDir::new();
    let (pause, coredns) = (
        format!("sha256:{}", "a".repeat(64)),
        format!("sha256:{}", "b".repeat(64)),
    );
    mirror(
        &plugins,
        &format!(
            "registry = \"mirror.local\"\ndigests = \"registry.k8s.io/pause:3.10={pause}, coredns={coredns}\""
        ),
    );
    let run = plinth(&["airgap", "list-images", "--plugins", &plugins.arg()]);
    run.expect_code(0);
    assert_lists(&run.stdout, &format!("mirror.local/pause:3.10@{pause}"));
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("mirror.local/coredns/coredns:") && l.ends_with(&coredns))
    );
    assert_eq!(
        run.stdout.matches("@sha256:").count(),
        2,
        "only pinned images carry a digest"
    );
}

#[test]
fn a_site_pinning_a_thousand_images_gets_its_manifest_read() {
    let plugins = PluginDir::new();
    let pause = format!("sha256:{}", "c".repeat(64));
    let mut pins: Vec<String> = (0..999)
        .map(|i| format!("registry.example.com/team/app-{i}:1.0.{i}=sha256:{i:064x}"))
        .collect();
    pins.push(format!("registry.k8s.io/pause:3.10={pause}"));
    let settings = format!(
        "registry = \"mirror.local\"\ndigests = \"\"\"\n{}\n\"\"\"",
        pins.join("\n")
    );
    assert!(settings.len() > 64 << 10, "the manifest is past 64 KiB");
    mirror(&plugins, &settings);
    let run = plinth(&["airgap", "list-images", "--plugins", &plugins.arg()]);
    run.expect_code(0);
    assert_lists(&run.stdout, &format!("mirror.local/pause:3.10@{pause}"));
}

#[test]
fn a_bad_mirror_setting_fails_at_load() {
    for settings in [
        "prefix = \"k8s\"",
        "registry = \"https://mirror.local\"",
        "registry = \"mirror.local\"\ndigests = \"coredns=sha256:abc\"",
        "registry = \"mirror.local\"\n\"only-defaults\" = \"maybe\"",
    ] {
        let plugins = PluginDir::new();
        mirror(&plugins, settings);
        let run = plinth(&["airgap", "list-images", "--plugins", &plugins.arg()]);
        run.expect_code(2);
        assert!(
            run.error_line().contains("20-mirror rejected its settings"),
            "{settings}: {}",
            run.error_line()
        );
    }
}
