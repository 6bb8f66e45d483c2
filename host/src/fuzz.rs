//! Fuzzing the three parsers that read text an attacker may write: the
//! cluster config, a plugin's manifest and a join token (proptest, run by
//! `cargo test` like any test).
//!
//! Inputs are drawn from each format's own vocabulary (keys, values, YAML's
//! anchors, aliases, tags and flow brackets, TOML's tables, a token's
//! fields) mixed with arbitrary text and control characters, so that most
//! cases get past the lexer. Each target checks what must hold for *any*
//! input: no panic; an error is one line of bounded length with no raw
//! control character; what parses is sound (a config round-trips through
//! its persisted form, a manifest's limits are in range, a token's address
//! is one host:port and its secret shows nowhere).
//!
//! Cases per target: `PLINTH_FUZZ_CASES` (default 300, for CI); a local
//! run of a few minutes: `PLINTH_FUZZ_CASES=200000 cargo test -p plinth
//! --lib fuzz -- --nocapture`.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use crate::config::Config;
use crate::join::JoinToken;
use crate::node::NodeFacts;
use crate::plugin::Manifest;

fn cases() -> u32 {
    std::env::var("PLINTH_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300)
}

fn runner() -> TestRunner {
    TestRunner::new(RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    })
}

/// A document of `tokens` glued together.
fn glued(tokens: impl Strategy<Value = String>, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tokens, 0..max).prop_map(|parts| parts.concat())
}

/// Text a hostile writer might slip into any field.
fn nasty_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,12}",
        "[ -~]{0,16}",
        "\\PC{0,8}",
        Just("\u{1b}[2J".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\r\n".to_owned()),
        Just("\u{202e}".to_owned()),
        (1usize..5000).prop_map(|n| "x".repeat(n)),
    ]
}

fn yaml_token() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "apiVersion",
        "kind",
        "metadata",
        "name",
        "spec",
        "api",
        "address",
        "port",
        "sans",
        "network",
        "provider",
        "serviceCIDR",
        "podCIDR",
        "clusterDomain",
        "nodeLocalLoadBalancing",
        "enabled",
        "storage",
        "type",
        "etcd",
        "peerAddress",
        "externalCluster",
        "endpoints",
        "pki",
        "keyAlgorithm",
        "caValidity",
        "certValidity",
        "renewBefore",
        "images",
        "repository",
        "defaultPullPolicy",
        "coredns",
        "image",
        "version",
        "digest",
        "pullPolicy",
    ]);
    let values = prop::sample::select(vec![
        "plinth.dev/v1beta1",
        "ClusterConfig",
        "10.96.0.0/12",
        "10.244.0.0/16",
        "0.0.0.0/0",
        "fd00::/108",
        "10.0.0.1",
        "::",
        "0.0.0.0",
        "6443",
        "0",
        "65536",
        "-1",
        "8760h",
        "100000000h",
        "1h30m",
        "0s",
        "cluster.local",
        "*.local",
        "ecdsa-p256",
        "rsa-4096",
        "etcd",
        "external",
        "https://10.0.0.5:2379",
        "file:///etc/shadow",
        "kube-router",
        "IfNotPresent",
        "true",
        "null",
        "~",
        "[]",
        "{}",
    ]);
    let syntax = prop::sample::select(vec![
        ": ",
        "\n",
        "  ",
        "    ",
        "- ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "&a ",
        "*a",
        "&b ",
        "*b",
        "!!str ",
        "!!binary ",
        "'",
        "\"",
        "# ",
        "---\n",
        "...\n",
        "|\n",
        ">\n",
        "? ",
        "<<: ",
        "%YAML 1.2\n",
        "\t",
    ]);
    prop_oneof![
        4 => keys.prop_map(str::to_owned),
        3 => values.prop_map(str::to_owned),
        6 => syntax.prop_map(str::to_owned),
        1 => nasty_text(),
    ]
}

/// What every error the operator sees must be.
fn assert_one_bounded_line(message: &str, input: &str) {
    assert!(
        !message.chars().any(|c| c.is_control()),
        "a raw control character in {message:?} for {input:?}"
    );
    assert!(
        message.len() <= 4096,
        "an error of {} bytes for an input of {}",
        message.len(),
        input.len()
    );
}

fn node() -> NodeFacts {
    NodeFacts {
        hostname: "cp-1".to_owned(),
        addresses: vec!["10.0.0.10".parse().unwrap()],
    }
}

#[test]
fn fuzz_the_config_parser() {
    let documents = prop_oneof![
        4 => glued(yaml_token(), 120),
        1 => "\\PC{0,400}",
        1 => prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    ];
    let node = node();
    runner()
        .run(&documents, |text| {
            match Config::from_yaml(&text, "fuzz.yaml", &node) {
                Err(error) => assert_one_bounded_line(&crate::terminal::error_line(&error), &text),
                Ok(config) => {
                    // What is persisted reads back as the same configuration.
                    let persisted = config.persisted_yaml();
                    let again = Config::from_yaml(&persisted, "persisted", &node)
                        .unwrap_or_else(|e| panic!("{text:?} persisted as {persisted:?}: {e}"));
                    assert_eq!(again.effective(), config.effective(), "{text:?}");
                    serde_json::from_str::<serde_json::Value>(&config.effective_json())
                        .expect("the effective JSON parses");
                }
            }
            Ok(())
        })
        .unwrap();
}

fn toml_token() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "order",
        "hooks",
        "timeout-ms",
        "memory-mib",
        "failure-policy",
        "sha256",
        "allow-image-set-change",
        "settings",
        "allow-urls",
        "\"log.message\"",
    ]);
    let values = prop::sample::select(vec![
        "1",
        "0",
        "-1",
        "9223372036854775807",
        "60001",
        "99999999999999999999",
        "true",
        "\"ignore\"",
        "\"fail\"",
        "[\"pre-init\", \"post-pki\"]",
        "[\"nope\"]",
        "\"ab\"",
        "1.5",
        "1979-05-27T07:32:00Z",
        "{}",
        "[]",
    ]);
    let syntax = prop::sample::select(vec![
        " = ",
        "\n",
        "[settings]\n",
        "[[x]]\n",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "\"",
        "'",
        "'''",
        "\"\"\"",
        "# ",
        "\\u0000",
        "\\",
        ".",
    ]);
    prop_oneof![
        4 => keys.prop_map(str::to_owned),
        3 => values.prop_map(str::to_owned),
        5 => syntax.prop_map(str::to_owned),
        1 => nasty_text(),
        1 => "[0-9a-f]{64}".prop_map(|hex| format!("\"{hex}\"")),
    ]
}

#[test]
fn fuzz_the_manifest_parser() {
    let manifests = prop_oneof![
        4 => glued(toml_token(), 80),
        1 => "\\PC{0,300}",
    ];
    let path = std::path::Path::new("fuzz.toml");
    runner()
        .run(&manifests, |text| {
            match Manifest::parse(&text, path) {
                Err(error) => assert_one_bounded_line(&crate::terminal::error_line(&error), &text),
                Ok(manifest) => {
                    let limits = manifest.limits();
                    assert!(
                        (1..=60_000).contains(&limits.timeout.as_millis()),
                        "{text:?}"
                    );
                    assert!(
                        (1..=crate::plugin::MAX_MEMORY_MIB).contains(&limits.memory_mib),
                        "{text:?}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A token, well-formed or broken field by field, and the secret it holds.
fn token() -> impl Strategy<Value = (String, String)> {
    let prefix = prop_oneof![
        6 => Just("plinth-join-v1:".to_owned()),
        1 => Just("plinth-join-v2:".to_owned()),
        1 => Just(String::new()),
    ];
    let host = prop_oneof![
        "10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "\\[fd00::[0-9a-f]{1,4}\\]",
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}",
        nasty_text(),
    ];
    let port = prop_oneof!["[1-9][0-9]{0,4}", Just("0".to_owned()), nasty_text()];
    let ca = prop_oneof![
        4 => "[0-9a-f]{64}",
        1 => "[0-9A-Fa-f]{0,70}",
    ];
    let credential = prop_oneof![
        4 => "[a-z0-9]{6}\\.[a-z0-9]{16}",
        1 => "[a-zA-Z0-9.]{0,40}",
    ];
    let separator = prop_oneof![8 => Just(":".to_owned()), 1 => Just("\n".to_owned()), 1 => Just(" ".to_owned())];
    let tail = prop_oneof![6 => Just(String::new()), 1 => Just("\n".to_owned()), 1 => nasty_text()];
    (prefix, host, port, separator, ca, credential, tail).prop_map(
        |(prefix, host, port, separator, ca, credential, tail)| {
            let secret = credential
                .rsplit_once('.')
                .map_or(credential.as_str(), |(_, secret)| secret)
                .to_owned();
            (
                format!("{prefix}{host}:{port}{separator}{ca}:{credential}{tail}"),
                secret,
            )
        },
    )
}

#[test]
fn fuzz_the_token_parser() {
    let inputs = prop_oneof![
        6 => token(),
        1 => "\\PC{0,200}".prop_map(|text| (text, String::new())),
        1 => (token(), token()).prop_map(|((first, secret), (second, _))| {
            // Two tokens in one file: the first one's secret must not end
            // up anywhere.
            (format!("{first}\n{second}"), secret)
        }),
    ];
    runner()
        .run(&inputs, |(text, secret)| {
            // A secret short enough to occur by chance in the rest of the
            // text says nothing about leaks.
            let meaningful = secret.len() >= 12 && text.matches(secret.as_str()).count() == 1;
            match JoinToken::parse(&text) {
                Err(message) => {
                    assert_one_bounded_line(&message, &text);
                    assert!(
                        !meaningful || !message.contains(&secret),
                        "the error {message:?} quotes the secret of {text:?}"
                    );
                }
                Ok(token) => {
                    assert!(
                        !token
                            .api
                            .chars()
                            .any(|c| c.is_control() || c.is_whitespace()),
                        "{text:?} gave the address {:?}",
                        token.api
                    );
                    assert!(
                        !meaningful || !token.api.contains(&secret),
                        "{text:?}: the secret is in the address"
                    );
                    assert!(
                        !meaningful || !format!("{token:?}").contains(&secret),
                        "{text:?}: Debug shows the secret"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
