//! The normal (non-hostile) behaviour, as a function of the settings. The
//! settings are read through a closure so that tests can supply them.

use crate::exports::plinth::bootstrap::image_resolve::{Image, Origin, PullPolicy};
use crate::exports::plinth::bootstrap::join_decision::{
    JoinAction, JoinFacts, Proposal, StorageKind,
};
use crate::exports::plinth::bootstrap::post_pki::Certificate;
use crate::exports::plinth::bootstrap::pre_init::{NodeFacts, PreInitAnswer};
use crate::exports::plinth::bootstrap::readiness::{CheckSpec, Observation, ProbeResult};
use crate::plinth::bootstrap::types::{Finding, Level, Metadata, Severity};

pub const DEFAULT_NAME: &str = "scripted";

/// A hook, as named in `hostile.<hook>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Describe,
    ValidateSettings,
    PreInit,
    JoinDecision,
    PostPki,
    ImageResolve,
    Readiness,
    /// `evaluate` alone, so that `checks` answers and the host gets as far
    /// as evaluating.
    Evaluate,
}

impl Hook {
    pub const ALL: [Hook; 8] = [
        Hook::Describe,
        Hook::ValidateSettings,
        Hook::PreInit,
        Hook::JoinDecision,
        Hook::PostPki,
        Hook::ImageResolve,
        Hook::Readiness,
        Hook::Evaluate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Hook::Describe => "describe",
            Hook::ValidateSettings => "validate-settings",
            Hook::PreInit => "pre-init",
            Hook::JoinDecision => "join-decision",
            Hook::PostPki => "post-pki",
            Hook::ImageResolve => "image-resolve",
            Hook::Readiness => "readiness",
            Hook::Evaluate => "evaluate",
        }
    }
}

/// A value of `hostile.<hook>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    Loop,
    MemoryBomb,
    Recursion,
    Panic,
    Malformed,
    Oversized,
}

impl Hostile {
    const NAMES: &str = "loop, memory-bomb, recursion, panic, malformed, oversized";

    fn parse(s: &str) -> Option<Hostile> {
        Some(match s {
            "loop" => Hostile::Loop,
            "memory-bomb" => Hostile::MemoryBomb,
            "recursion" => Hostile::Recursion,
            "panic" => Hostile::Panic,
            "malformed" => Hostile::Malformed,
            "oversized" => Hostile::Oversized,
            _ => return None,
        })
    }
}

fn parse_action(s: &str) -> Option<JoinAction> {
    Some(match s {
        "create-cluster" => JoinAction::CreateCluster,
        "join-cluster" => JoinAction::JoinCluster,
        "already-member" => JoinAction::AlreadyMember,
        _ => return None,
    })
}

fn action_name(a: JoinAction) -> &'static str {
    match a {
        JoinAction::CreateCluster => "create-cluster",
        JoinAction::JoinCluster => "join-cluster",
        JoinAction::AlreadyMember => "already-member",
    }
}

fn parse_level(s: &str) -> Option<Level> {
    Some(match s {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => return None,
    })
}

fn list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn finding(severity: Severity, subject: &str, rule: &str, message: impl Into<String>) -> Finding {
    Finding {
        severity,
        subject: subject.to_string(),
        rule: rule.to_string(),
        message: message.into(),
    }
}

const BOOLEANS: [&str; 7] = [
    "pre-init.echo-config",
    "pre-init.echo-facts",
    "join.echo-facts",
    "post-pki.count",
    "post-pki.names",
    "post-pki.der-sizes",
    "readiness.echo-facts",
];

pub struct Script<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Script<'a> {
    pub fn new(get: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Script { get }
    }

    fn get(&self, key: &str) -> Option<String> {
        (self.get)(key)
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.trim() == "true")
    }

    pub fn name(&self) -> String {
        self.get("describe.name")
            .unwrap_or_else(|| DEFAULT_NAME.to_string())
    }

    /// `log.message`: host log, stdout and stderr, `log.repeat` times
    /// (default once).
    pub fn log_message(&self, log: &dyn Fn(Level, &str)) {
        if let Some(text) = self.get("log.message") {
            let level = self
                .get("log.level")
                .and_then(|l| parse_level(l.trim()))
                .unwrap_or(Level::Info);
            let repeat = self
                .get("log.repeat")
                .and_then(|n| n.trim().parse::<u32>().ok())
                .unwrap_or(1);
            for _ in 0..repeat {
                use std::io::Write;
                log(level, &text);
                // The host captures a bounded amount; past it a write
                // fails, which `println!` would turn into a panic.
                let _ = writeln!(std::io::stdout(), "stdout: {text}");
                let _ = writeln!(std::io::stderr(), "stderr: {text}");
            }
        }
    }

    /// The hostile behaviour scripted for `hook`, if any (an unknown value is
    /// ignored here; `validate-settings` reports it).
    pub fn hostile(&self, hook: Hook) -> Option<Hostile> {
        self.get(&format!("hostile.{}", hook.name()))
            .and_then(|v| Hostile::parse(v.trim()))
    }

    pub fn describe(&self) -> Metadata {
        Metadata {
            name: self.name(),
            version: self
                .get("describe.version")
                .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string()),
            description: self.get("describe.description").unwrap_or_else(|| {
                "Test guest whose behaviour is scripted by its settings.".to_string()
            }),
        }
    }

    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if let Some(v) = self.get("settings.invalid") {
            errors.push(format!(
                "settings.invalid: `{v}` is scripted to be rejected; expected the key to be absent"
            ));
        }
        if let Some(v) = self.get("join.action")
            && parse_action(v.trim()).is_none()
        {
            errors.push(format!(
                "join.action: `{v}` is not valid; expected create-cluster, join-cluster or \
                 already-member"
            ));
        }
        if let Some(v) = self.get("log.repeat")
            && v.trim().parse::<u32>().is_err()
        {
            errors.push(format!("log.repeat: `{v}` is not a count"));
        }
        if let Some(v) = self.get("log.level")
            && parse_level(v.trim()).is_none()
        {
            errors.push(format!(
                "log.level: `{v}` is not valid; expected trace, debug, info, warn or error"
            ));
        }
        for hook in Hook::ALL {
            let key = format!("hostile.{}", hook.name());
            if let Some(v) = self.get(&key)
                && Hostile::parse(v.trim()).is_none()
            {
                errors.push(format!(
                    "{key}: `{v}` is not valid; expected one of {}",
                    Hostile::NAMES
                ));
            }
        }
        for key in BOOLEANS {
            if let Some(v) = self.get(key)
                && !matches!(v.trim(), "true" | "false")
            {
                errors.push(format!(
                    "{key}: `{v}` is not valid; expected `true` or `false`"
                ));
            }
        }
        for key in ["readiness.ready-after", "readiness.interval-ms"] {
            if let Some(v) = self.get(key)
                && v.trim().parse::<u32>().is_err()
            {
                errors.push(format!(
                    "{key}: `{v}` is not valid; expected a whole number from 0 to {}",
                    u32::MAX
                ));
            }
        }
        if let Some(v) = self.get("readiness.checks") {
            let bad: Vec<&str> = list(&v)
                .filter(|item| match item.split_once('=') {
                    Some((name, url)) => name.trim().is_empty() || url.trim().is_empty(),
                    None => false,
                })
                .collect();
            if !bad.is_empty() {
                errors.push(format!(
                    "readiness.checks: `{}` is not valid; expected a comma-separated list of \
                     name=url or name",
                    bad.join("`, `")
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    pub fn pre_init(&self, config_json: &str, facts: &NodeFacts) -> PreInitAnswer {
        let mut findings = Vec::new();
        for (key, severity) in [
            ("pre-init.deny", Severity::Deny),
            ("pre-init.warn", Severity::Warning),
            ("pre-init.info", Severity::Info),
        ] {
            if let Some(msg) = self.get(key) {
                findings.push(finding(severity, "config", "scripted", msg));
            }
        }
        if let Some(key) = self.get("settings.echo") {
            let value = self.get(&key).unwrap_or_else(|| "<absent>".to_string());
            findings.push(finding(Severity::Warning, &key, "settings.echo", value));
        }
        if self.flag("pre-init.echo-config") {
            findings.push(finding(
                Severity::Info,
                "config",
                "echo-config",
                config_json,
            ));
        }
        if self.flag("pre-init.echo-facts") {
            findings.push(finding(
                Severity::Info,
                &facts.hostname,
                "echo-facts",
                format!(
                    "hostname={} addresses={} plinth-version={} data-dir={}",
                    facts.hostname,
                    facts.addresses.join(","),
                    facts.plinth_version,
                    facts.data_dir
                ),
            ));
        }
        PreInitAnswer {
            findings,
            patch: self.get("pre-init.patch"),
        }
    }

    pub fn join(&self, facts: &JoinFacts, current: Proposal) -> Result<Proposal, String> {
        if let Some(reason) = self.get("join.refuse") {
            return Err(reason);
        }
        let mut next = match self.get("join.action") {
            Some(a) => match parse_action(a.trim()) {
                Some(action) => Proposal {
                    action,
                    reason: format!("scripted by {}", self.name()),
                },
                None => return Err(format!("join.action: `{a}` is not a join action")),
            },
            None => current.clone(),
        };
        if self.flag("join.echo-facts") {
            next.reason = format!(
                "storage={} etcd-member-data={} join-token-present={} join-token-api={} \
                 recorded-member={} hostname={} current={} current-reason={}",
                match facts.storage {
                    StorageKind::EmbeddedEtcd => "embedded-etcd",
                    StorageKind::ExternalEtcd => "external-etcd",
                },
                facts.etcd_member_data,
                facts.join_token_present,
                facts.join_token_api.as_deref().unwrap_or("-"),
                facts
                    .recorded_membership
                    .as_ref()
                    .map_or("-", |m| m.member_id.as_str()),
                facts.hostname,
                action_name(current.action),
                current.reason
            );
        }
        Ok(next)
    }

    pub fn images(&self, mut images: Vec<Image>) -> Result<Vec<Image>, String> {
        if let Some(reason) = self.get("images.refuse") {
            return Err(reason);
        }
        if let Some(drop) = self.get("images.drop") {
            let drop: Vec<&str> = list(&drop).collect();
            images.retain(|i| !drop.contains(&i.component.as_str()));
        }
        if let Some(p) = self.get("images.prefix") {
            for i in &mut images {
                i.repository = format!("{p}/{}", i.repository);
            }
        }
        if let Some(t) = self.get("images.tag") {
            for i in &mut images {
                i.tag = t.clone();
            }
        }
        if let Some(d) = self.get("images.digest") {
            for i in &mut images {
                i.digest = Some(d.clone());
            }
        }
        if let Some(add) = self.get("images.add") {
            for item in list(&add) {
                let (component, repository, tag) = match item.split_once('=') {
                    None => (
                        item.to_string(),
                        format!("registry.example/scripted/{item}"),
                        "v0.0.0".to_string(),
                    ),
                    Some((c, reference)) => {
                        let (r, t) = match reference.rsplit_once(':') {
                            Some((r, t)) if !t.contains('/') => (r, t),
                            _ => (reference, "v0.0.0"),
                        };
                        (
                            c.trim().to_string(),
                            r.trim().to_string(),
                            t.trim().to_string(),
                        )
                    }
                };
                images.push(Image {
                    component,
                    repository,
                    tag,
                    digest: None,
                    origin: Origin::Default,
                    pull_policy: PullPolicy::IfNotPresent,
                });
            }
        }
        Ok(images)
    }

    pub fn post_pki(&self, certs: &[Certificate]) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(names) = self.get("post-pki.deny") {
            for name in list(&names) {
                let mut message = format!(
                    "certificate `{name}` denied by scripted plugin `{}`",
                    self.name()
                );
                if !certs.iter().any(|c| c.name == name) {
                    message.push_str(&format!(
                        " (no such certificate among the {} received)",
                        certs.len()
                    ));
                }
                findings.push(finding(Severity::Deny, name, "scripted", message));
            }
        }
        if let Some(msg) = self.get("post-pki.warn") {
            findings.push(finding(Severity::Warning, "pki", "scripted", msg));
        }
        if self.flag("post-pki.count") {
            findings.push(finding(
                Severity::Info,
                "pki",
                "post-pki.count",
                certs.len().to_string(),
            ));
        }
        if self.flag("post-pki.names") {
            let names: Vec<&str> = certs.iter().map(|c| c.name.as_str()).collect();
            findings.push(finding(
                Severity::Info,
                "pki",
                "post-pki.names",
                names.join(","),
            ));
        }
        if self.flag("post-pki.der-sizes") {
            let sizes: Vec<String> = certs
                .iter()
                .map(|c| format!("{}={}", c.name, c.der.len()))
                .collect();
            findings.push(finding(
                Severity::Info,
                "pki",
                "post-pki.der-sizes",
                sizes.join(","),
            ));
        }
        findings
    }

    pub fn checks(&self) -> Vec<CheckSpec> {
        let interval_ms = self
            .get("readiness.interval-ms")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(100);
        let Some(raw) = self.get("readiness.checks") else {
            return Vec::new();
        };
        list(&raw)
            .map(|item| match item.split_once('=') {
                Some((name, url)) => (name, Some(url.trim().to_string())),
                None => (item, None),
            })
            .map(|(name, url)| CheckSpec {
                name: name.trim().to_string(),
                url,
                interval_ms,
            })
            .collect()
    }

    pub fn evaluate(&self, _check: &str, seen: &Observation) -> ProbeResult {
        if let Some(reason) = self.get("readiness.fail") {
            return ProbeResult::Failed(reason);
        }
        if self.flag("readiness.echo-facts") {
            return ProbeResult::Waiting(echo_facts(seen));
        }
        if let Some(n) = self
            .get("readiness.ready-after")
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            return if seen.attempt >= n {
                ProbeResult::Ready
            } else {
                ProbeResult::Waiting(format!("attempt {} of {n}", seen.attempt))
            };
        }
        match seen.status {
            Some(s) if (200..300).contains(&s) => ProbeResult::Ready,
            Some(s) => ProbeResult::Waiting(format!("HTTP {s}")),
            None => ProbeResult::Waiting(
                seen.error
                    .clone()
                    .unwrap_or_else(|| "no response".to_string()),
            ),
        }
    }
}

/// `readiness.echo-facts`: the facts of an observation on one line.
fn echo_facts(seen: &Observation) -> String {
    let cluster = match &seen.cluster {
        Some(c) => format!(
            "members={} voters={} learners={} this-node-voter={} cluster-id={:016x}",
            c.members, c.voters, c.learners, c.this_node_voter, c.cluster_id
        ),
        None => "cluster=unknown".to_string(),
    };
    let modules = match &seen.kernel_modules {
        Some(m) => format!("kernel-modules={}", m.len()),
        None => "kernel-modules=unknown".to_string(),
    };
    format!("{cluster} {modules} attempt={}", seen.attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exports::plinth::bootstrap::readiness::ClusterFacts;
    use std::collections::HashMap;

    fn with<R>(pairs: &[(&str, &str)], f: impl FnOnce(&Script) -> R) -> R {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = move |k: &str| map.get(k).cloned();
        f(&Script::new(&get))
    }

    fn image(component: &str) -> Image {
        Image {
            component: component.into(),
            repository: format!("registry.k8s.io/{component}"),
            tag: "v1".into(),
            digest: None,
            origin: Origin::Default,
            pull_policy: PullPolicy::Always,
        }
    }

    fn facts() -> JoinFacts {
        JoinFacts {
            storage: StorageKind::EmbeddedEtcd,
            etcd_member_data: false,
            join_token_present: true,
            join_token_api: Some("10.0.0.1:6443".into()),
            recorded_membership: None,
            hostname: "n1".into(),
        }
    }

    fn proposal() -> Proposal {
        Proposal {
            action: JoinAction::JoinCluster,
            reason: "token given".into(),
        }
    }

    #[test]
    fn empty_script_agrees_with_everything() {
        with(&[], |s| {
            assert_eq!(s.describe().name, "scripted");
            assert!(s.validate().is_ok());
            let nf = NodeFacts {
                hostname: "h".into(),
                addresses: vec![],
                plinth_version: "0.1.0".into(),
                data_dir: "/d".into(),
            };
            let a = s.pre_init("{}", &nf);
            assert!(a.findings.is_empty() && a.patch.is_none());
            let p = s.join(&facts(), proposal()).unwrap();
            assert_eq!(
                (p.action, p.reason.as_str()),
                (JoinAction::JoinCluster, "token given")
            );
            let imgs = s.images(vec![image("a"), image("b")]).unwrap();
            assert_eq!(imgs.len(), 2);
            assert!(s.post_pki(&[]).is_empty());
            assert!(s.checks().is_empty());
            assert!(Hook::ALL.iter().all(|h| s.hostile(*h).is_none()));
        });
    }

    #[test]
    fn validation_names_each_bad_key() {
        with(
            &[
                ("settings.invalid", "x"),
                ("join.action", "merge"),
                ("hostile.post-pki", "explode"),
                ("post-pki.count", "yes"),
                ("readiness.ready-after", "-1"),
                ("readiness.checks", "api=http://x,broken="),
                ("log.level", "loud"),
            ],
            |s| {
                let e = s.validate().unwrap_err();
                assert_eq!(e.len(), 7, "{e:#?}");
                for (key, value) in [
                    ("settings.invalid", "x"),
                    ("join.action", "merge"),
                    ("log.level", "loud"),
                    ("hostile.post-pki", "explode"),
                    ("post-pki.count", "yes"),
                    ("readiness.ready-after", "-1"),
                    ("readiness.checks", "broken="),
                ] {
                    assert!(
                        e.iter().any(|m| m.starts_with(key) && m.contains(value)),
                        "{key}: {e:#?}"
                    );
                }
            },
        );
    }

    #[test]
    fn pre_init_findings_patch_and_echo() {
        with(
            &[
                ("pre-init.deny", "no"),
                ("pre-init.warn", "careful"),
                ("pre-init.patch", r#"{"spec":{"api":{"port":7443}}}"#),
                ("settings.echo", "color"),
                ("color", "blue"),
                ("pre-init.echo-facts", "true"),
            ],
            |s| {
                let nf = NodeFacts {
                    hostname: "h".into(),
                    addresses: vec!["10.0.0.1".into(), "fd00::1".into()],
                    plinth_version: "0.1.0".into(),
                    data_dir: "/d".into(),
                };
                let a = s.pre_init("{}", &nf);
                let got: Vec<(Severity, &str, &str, &str)> = a
                    .findings
                    .iter()
                    .map(|f| {
                        (
                            f.severity,
                            f.subject.as_str(),
                            f.rule.as_str(),
                            f.message.as_str(),
                        )
                    })
                    .collect();
                assert_eq!(
                    got,
                    vec![
                        (Severity::Deny, "config", "scripted", "no"),
                        (Severity::Warning, "config", "scripted", "careful"),
                        (Severity::Warning, "color", "settings.echo", "blue"),
                        (
                            Severity::Info,
                            "h",
                            "echo-facts",
                            "hostname=h addresses=10.0.0.1,fd00::1 plinth-version=0.1.0 data-dir=/d"
                        ),
                    ]
                );
                assert_eq!(
                    a.patch.as_deref(),
                    Some(r#"{"spec":{"api":{"port":7443}}}"#)
                );
            },
        );
        with(&[("settings.echo", "missing")], |s| {
            let nf = NodeFacts {
                hostname: "h".into(),
                addresses: vec![],
                plinth_version: "v".into(),
                data_dir: "/d".into(),
            };
            assert_eq!(s.pre_init("{}", &nf).findings[0].message, "<absent>");
        });
    }

    #[test]
    fn join_script() {
        with(
            &[("join.action", "create-cluster"), ("describe.name", "t1")],
            |s| {
                let p = s.join(&facts(), proposal()).unwrap();
                assert_eq!(p.action, JoinAction::CreateCluster);
                assert_eq!(p.reason, "scripted by t1");
            },
        );
        with(
            &[("join.refuse", "nope"), ("join.action", "create-cluster")],
            |s| {
                assert_eq!(s.join(&facts(), proposal()).unwrap_err(), "nope");
            },
        );
        with(&[("join.echo-facts", "true")], |s| {
            let p = s.join(&facts(), proposal()).unwrap();
            assert_eq!(p.action, JoinAction::JoinCluster);
            assert_eq!(
                p.reason,
                "storage=embedded-etcd etcd-member-data=false join-token-present=true \
                 join-token-api=10.0.0.1:6443 recorded-member=- hostname=n1 current=join-cluster \
                 current-reason=token given"
            );
        });
    }

    #[test]
    fn image_script_order() {
        with(
            &[
                ("images.drop", "b"),
                ("images.prefix", "mirror.local"),
                ("images.digest", "sha256:abc"),
                ("images.add", "extra, other=quay.io/x/y:2.0"),
            ],
            |s| {
                let out = s.images(vec![image("a"), image("b"), image("c")]).unwrap();
                let got: Vec<(&str, &str, &str, Option<&str>)> = out
                    .iter()
                    .map(|i| {
                        (
                            i.component.as_str(),
                            i.repository.as_str(),
                            i.tag.as_str(),
                            i.digest.as_deref(),
                        )
                    })
                    .collect();
                assert_eq!(
                    got,
                    vec![
                        (
                            "a",
                            "mirror.local/registry.k8s.io/a",
                            "v1",
                            Some("sha256:abc")
                        ),
                        (
                            "c",
                            "mirror.local/registry.k8s.io/c",
                            "v1",
                            Some("sha256:abc")
                        ),
                        ("extra", "registry.example/scripted/extra", "v0.0.0", None),
                        ("other", "quay.io/x/y", "2.0", None),
                    ]
                );
            },
        );
        with(&[("images.refuse", "no images")], |s| {
            assert_eq!(s.images(vec![]).unwrap_err(), "no images");
        });
    }

    fn cert(name: &str) -> Certificate {
        Certificate {
            name: name.into(),
            path: format!("pki/{name}.crt"),
            der: vec![0; 3],
            subject: String::new(),
            issuer: String::new(),
            serial: "01".into(),
            dns_sans: vec![],
            ip_sans: vec![],
            key_algorithm: crate::exports::plinth::bootstrap::post_pki::KeyAlgorithm::EcdsaP256,
            key_bits: 256,
            signature_algorithm: "ecdsa-with-SHA256".into(),
            not_before: 0,
            not_after: 1,
            is_ca: false,
            path_length: None,
            key_usages: vec![],
            extended_key_usages: vec![],
        }
    }

    #[test]
    fn post_pki_script() {
        with(
            &[
                ("post-pki.deny", "server, nope"),
                ("post-pki.count", "true"),
                ("post-pki.names", "true"),
                ("post-pki.der-sizes", "true"),
            ],
            |s| {
                let f = s.post_pki(&[cert("ca"), cert("server")]);
                assert_eq!(f.len(), 5);
                assert_eq!(
                    (f[0].severity, f[0].subject.as_str()),
                    (Severity::Deny, "server")
                );
                assert!(f[0].message.contains("`server`") && !f[0].message.contains("no such"));
                assert!(f[1].message.contains("no such certificate among the 2"));
                assert_eq!(
                    (f[2].rule.as_str(), f[2].message.as_str()),
                    ("post-pki.count", "2")
                );
                assert_eq!(f[3].message, "ca,server");
                assert_eq!(f[4].message, "ca=3,server=3");
            },
        );
    }

    #[test]
    fn readiness_script() {
        let seen = |status: Option<u16>, attempt: u32| Observation {
            status,
            body: String::new(),
            error: None,
            attempt,
            cluster: None,
            kernel_modules: None,
        };
        with(
            &[
                (
                    "readiness.checks",
                    "api=http://127.0.0.1:1/readyz, etcd = http://x/health, quorum",
                ),
                ("readiness.interval-ms", "5"),
            ],
            |s| {
                let c = s.checks();
                assert_eq!(c.len(), 3);
                assert_eq!(
                    (c[1].name.as_str(), c[1].url.as_deref(), c[1].interval_ms),
                    ("etcd", Some("http://x/health"), 5)
                );
                assert_eq!((c[2].name.as_str(), c[2].url.as_deref()), ("quorum", None));
                assert!(matches!(
                    s.evaluate("api", &seen(Some(200), 1)),
                    ProbeResult::Ready
                ));
                assert!(
                    matches!(s.evaluate("api", &seen(Some(503), 1)), ProbeResult::Waiting(m) if m == "HTTP 503")
                );
                assert!(
                    matches!(s.evaluate("api", &seen(None, 1)), ProbeResult::Waiting(m) if m == "no response")
                );
            },
        );
        with(&[("readiness.ready-after", "3")], |s| {
            assert!(
                matches!(s.evaluate("x", &seen(None, 2)), ProbeResult::Waiting(m) if m == "attempt 2 of 3")
            );
            assert!(matches!(
                s.evaluate("x", &seen(None, 3)),
                ProbeResult::Ready
            ));
        });
        with(&[("readiness.echo-facts", "true")], |s| {
            let facts = Observation {
                cluster: Some(ClusterFacts {
                    members: 3,
                    voters: 2,
                    learners: 1,
                    this_node_voter: true,
                    cluster_id: 0xabc,
                }),
                kernel_modules: Some(vec!["overlay".into()]),
                ..seen(None, 4)
            };
            assert!(matches!(
                s.evaluate("x", &facts),
                ProbeResult::Waiting(m) if m == "members=3 voters=2 learners=1 this-node-voter=true \
                    cluster-id=0000000000000abc kernel-modules=1 attempt=4"
            ));
        });
        with(&[("readiness.fail", "broken")], |s| {
            assert!(
                matches!(s.evaluate("x", &seen(Some(200), 1)), ProbeResult::Failed(m) if m == "broken")
            );
        });
    }

    #[test]
    fn hostile_parsing() {
        with(
            &[
                ("hostile.image-resolve", "oversized"),
                ("hostile.readiness", " loop "),
                ("hostile.evaluate", "panic"),
            ],
            |s| {
                assert_eq!(s.hostile(Hook::Evaluate), Some(Hostile::Panic));
                assert_eq!(s.hostile(Hook::ImageResolve), Some(Hostile::Oversized));
                assert_eq!(s.hostile(Hook::Readiness), Some(Hostile::Loop));
                assert_eq!(s.hostile(Hook::PreInit), None);
            },
        );
    }
}
