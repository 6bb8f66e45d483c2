use std::net::IpAddr;

use super::*;

fn node() -> NodeFacts {
    NodeFacts {
        hostname: "cp-1".to_owned(),
        addresses: vec!["10.0.0.10".parse().unwrap()],
    }
}

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(yaml, "test.yaml", &node())
}

/// The error of `result` as the operator reads it: with its causes.
fn message<T: std::fmt::Debug>(result: Result<T, ConfigError>) -> String {
    crate::terminal::error_line(&result.unwrap_err())
}

#[test]
fn unknown_keys_are_errors_naming_the_file_line_and_key() {
    let error = message(parse("spec:\n  api:\n    adress: 10.0.0.1\n"));
    assert!(error.contains("test.yaml"), "{error}");
    assert!(error.contains("adress"), "{error}");
    assert!(error.contains("test.yaml:3:"), "{error}");
}

#[test]
fn malformed_values_are_errors_naming_the_key() {
    let error = message(parse("spec:\n  network:\n    serviceCIDR: 10.96.0.1/12\n"));
    assert!(
        error.contains("host bits") && error.contains("test.yaml:3:"),
        "{error}"
    );
    let error = message(parse("spec:\n  pki:\n    keyAlgorithm: dsa\n"));
    assert!(
        error.contains("spec.pki.keyAlgorithm") && error.contains("dsa"),
        "{error}"
    );
    let error = message(parse("spec:\n  pki:\n    caValidity: 10d\n"));
    assert!(
        error.contains("10d") && error.contains("test.yaml:3:"),
        "{error}"
    );
}

#[test]
fn an_empty_document_takes_every_default() {
    let config = parse("").unwrap();
    let effective = &config.effective;
    assert_eq!(
        effective.api.address,
        "10.0.0.10".parse::<IpAddr>().unwrap(),
        "the node's address"
    );
    assert_eq!(effective.api.port, 6443);
    assert_eq!(
        effective.network.service_cidr.first_host().to_string(),
        "10.96.0.1"
    );
    assert_eq!(effective.pki.validity.ca(), time::Duration::hours(87_600));
    assert_eq!(effective.api.plinth_api_port, 9443);
    assert_eq!(
        effective.storage,
        Storage::Embedded(EmbeddedEtcd {
            name: "cp-1".to_owned(),
            peer_address: effective.api.address,
            peer_port: 2380,
            client_address: "127.0.0.1".parse().unwrap(),
            client_port: 2379,
            binary: "etcd".into(),
        })
    );
    assert_eq!(effective.join_timeout, "5m".parse().unwrap());
    assert_eq!(config.user, ClusterConfig::default());
}

#[test]
fn only_what_the_user_set_is_persisted() {
    let config = parse("spec:\n  images:\n    repository: mirror.local\n").unwrap();
    let persisted = config.persisted_yaml();
    assert!(
        persisted.contains("repository: mirror.local"),
        "{persisted}"
    );
    for defaulted in [
        "6443",
        "kube-router",
        "defaultPullPolicy",
        "ecdsa-p256",
        "cluster.local",
    ] {
        assert!(
            !persisted.contains(defaulted),
            "{defaulted} leaked into {persisted}"
        );
    }
    let reloaded = parse(&persisted).unwrap();
    assert_eq!(reloaded.user.spec, config.user.spec);
    assert_eq!(reloaded.effective, config.effective);
}

#[test]
fn a_patch_counts_as_set_and_is_validated_again() {
    let config = parse("").unwrap();
    let patched = config.patched(
        &serde_json::json!({"spec": {"network": {"clusterDomain": "corp.example"}}}),
        "p",
        &node(),
    );
    let patched = patched.unwrap();
    assert_eq!(patched.effective.network.cluster_domain, "corp.example");
    assert!(
        patched
            .persisted_yaml()
            .contains("clusterDomain: corp.example")
    );

    let invalid = config.patched(
        &serde_json::json!({"spec": {"api": {"port": 0}}}),
        "p",
        &node(),
    );
    assert!(message(invalid).contains("spec.api.port"));
    let unknown = config.patched(&serde_json::json!({"spec": {"bogus": 1}}), "p", &node());
    assert!(message(unknown).contains("bogus"));
    let removed = patched
        .patched(
            &serde_json::json!({"spec": {"network": null}}),
            "p",
            &node(),
        )
        .unwrap();
    assert_eq!(
        removed.effective.network.cluster_domain, "cluster.local",
        "null reverts to the default"
    );
}

#[test]
fn effective_json_fills_node_derived_values() {
    let config = parse("").unwrap();
    let document: serde_json::Value = serde_json::from_str(&config.effective_json()).unwrap();
    assert_eq!(document.pointer("/spec/api/address").unwrap(), "10.0.0.10");
    assert_eq!(
        document.pointer("/spec/storage/etcd/peerAddress").unwrap(),
        "10.0.0.10"
    );
    assert_eq!(
        document.pointer("/spec/network/serviceCIDR").unwrap(),
        "10.96.0.0/12"
    );
}

#[test]
fn external_storage_needs_endpoints_and_embedded_refuses_them() {
    let error = message(parse("spec:\n  storage:\n    type: external\n"));
    assert!(error.contains("endpoints"), "{error}");
    let error = parse(
        "spec:\n  storage:\n    etcd:\n      externalCluster:\n        endpoints: [https://e:2379]\n",
    );
    assert!(message(error).contains("externalCluster"));
    let external =
        parse("spec:\n  storage:\n    type: external\n    etcd:\n      externalCluster:\n        endpoints: [https://e:2379]\n")
            .unwrap();
    assert_eq!(
        external.effective.storage,
        Storage::External(ExternalEtcd {
            endpoints: vec!["https://e:2379".to_owned()],
            ca_file: None,
            cert_file: None,
            key_file: None,
        })
    );
    let error = parse("spec:\n  storage:\n    type: external\n    etcd:\n      externalCluster:\n        endpoints: [e:2379]\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("is not an etcd endpoint"), "{error}");
}

#[test]
fn run_mode_addresses_ports_and_names_are_config() {
    let config = parse(
        "spec:\n  api:\n    address: 127.0.0.3\n    plinthApiPort: 19443\n  storage:\n    etcd:\n      name: c3\n      peerPort: 12380\n      clientAddress: 127.0.0.3\n      clientPort: 12379\n      joinTimeout: 90s\n",
    )
    .unwrap();
    let effective = &config.effective;
    assert_eq!(effective.api.plinth_api_port, 19443);
    let Storage::Embedded(etcd) = &effective.storage else {
        panic!("embedded")
    };
    assert_eq!(etcd.name, "c3");
    assert_eq!(etcd.peer_url(), "https://127.0.0.3:12380");
    assert_eq!(etcd.client_url(), "https://127.0.0.3:12379");
    assert_eq!(effective.join_timeout, "90s".parse().unwrap());
    for (yaml, key) in [
        (
            "spec:\n  api:\n    plinthApiPort: 0\n",
            "spec.api.plinthApiPort",
        ),
        (
            "spec:\n  storage:\n    etcd:\n      peerPort: 0\n",
            "spec.storage.etcd.peerPort",
        ),
        (
            "spec:\n  storage:\n    etcd:\n      name: a=b\n",
            "spec.storage.etcd.name",
        ),
    ] {
        let error = parse(yaml).unwrap_err().to_string();
        assert!(error.contains(key), "{error}");
    }
}

#[test]
fn image_overrides_are_read_per_component() {
    let config =
        parse("spec:\n  images:\n    defaultPullPolicy: Never\n    coredns:\n      image: my/coredns\n      version: v9\n")
            .unwrap();
    let images = &config.effective.images;
    assert_eq!(images.default_pull_policy, PullPolicy::Never);
    assert_eq!(
        images.overrides["coredns"].image.as_deref(),
        Some("my/coredns")
    );
    let error = message(parse("spec:\n  images:\n    coredns:\n      tag: v9\n"));
    assert!(
        error.contains("tag") && error.contains("test.yaml:4:"),
        "{error}"
    );
}

#[test]
fn validity_rules_name_the_key_that_breaks_them() {
    let error = message(parse("spec:\n  pki:\n    certValidity: 87600h\n"));
    assert!(
        error.contains("spec.pki.certValidity") && error.contains("87600h"),
        "{error}"
    );
    let error = message(parse("spec:\n  pki:\n    renewBefore: 8760h\n"));
    assert!(
        error.contains("spec.pki.renewBefore") && error.contains("every run would reissue"),
        "{error}"
    );
    let shortest = parse("spec:\n  pki:\n    certValidity: 721h\n").unwrap();
    assert_eq!(
        shortest.effective.pki.validity.cert(),
        time::Duration::hours(721)
    );
}

#[test]
fn member_names_are_what_a_host_name_can_be() {
    assert!(valid_member_name("controller-1.example_2"));
    for bad in ["", "a b", "a=b", "a,b", &"x".repeat(64)] {
        assert!(!valid_member_name(bad), "{bad}");
    }
}

#[test]
fn weak_or_dangerous_values_are_refused_naming_the_key() {
    for (yaml, key) in [
        ("metadata:\n  name: \"a\\0b\"\n", "metadata.name"),
        (
            "metadata:\n  name: \"a\\nplinth: error: x\"\n",
            "metadata.name",
        ),
        ("metadata:\n  name: Prod\n", "metadata.name"),
        (
            "spec:\n  network:\n    clusterDomain: \"*.local\"\n",
            "spec.network.clusterDomain",
        ),
        (
            "spec:\n  network:\n    serviceCIDR: 0.0.0.0/0\n",
            "spec.network.serviceCIDR",
        ),
        (
            "spec:\n  network:\n    serviceCIDR: 10.0.0.0/8\n",
            "spec.network.serviceCIDR",
        ),
        (
            "spec:\n  network:\n    serviceCIDR: 127.0.0.0/16\n",
            "spec.network.serviceCIDR",
        ),
        (
            "spec:\n  network:\n    podCIDR: 10.96.0.0/16\n",
            "spec.network.podCIDR",
        ),
        (
            "spec:\n  network:\n    podCIDR: \"fd00:10::/48\"\n",
            "spec.network.podCIDR",
        ),
        ("spec:\n  api:\n    address: 0.0.0.0\n", "spec.api.address"),
        ("spec:\n  api:\n    address: \"::\"\n", "spec.api.address"),
        (
            "spec:\n  api:\n    address: 224.0.0.1\n",
            "spec.api.address",
        ),
        (
            "spec:\n  storage:\n    etcd:\n      peerAddress: 0.0.0.0\n",
            "spec.storage.etcd.peerAddress",
        ),
        (
            "spec:\n  storage:\n    type: external\n    etcd:\n      externalCluster:\n        endpoints: [\"file:///etc/shadow\"]\n",
            "spec.storage.etcd.externalCluster.endpoints",
        ),
        (
            "spec:\n  pki:\n    caValidity: 100000000h\n",
            "spec.pki.caValidity",
        ),
    ] {
        let error = message(parse(yaml));
        assert!(error.contains(key), "{yaml:?}: {error}");
        assert!(!error.contains('\0') && !error.contains('\n'), "{error:?}");
    }
    // What a demanding user does write still passes.
    parse("metadata:\n  name: prod-eu.example\nspec:\n  network:\n    serviceCIDR: 10.96.0.0/12\n    podCIDR: 10.244.0.0/16\n    clusterDomain: cluster.local\n  api:\n    address: 127.0.0.2\n").unwrap();
    parse("spec:\n  network:\n    serviceCIDR: \"fd00:10:96::/108\"\n    podCIDR: \"fd00:10:244::/56\"\n  api:\n    address: \"fd00::10\"\n").unwrap();
}

#[test]
fn huge_values_are_never_echoed_whole() {
    let error = message(parse(&format!(
        "metadata:\n  name: \"{}\"\n",
        "x".repeat(500_000)
    )));
    assert!(
        error.len() < 400 && error.contains("metadata.name"),
        "{} bytes",
        error.len()
    );
    let error = message(parse(&format!(
        "spec:\n  api:\n    port: \"{}\"\n",
        "9".repeat(500_000)
    )));
    assert!(
        error.len() < 400,
        "{} bytes: {}",
        error.len(),
        &error[..200]
    );
}
