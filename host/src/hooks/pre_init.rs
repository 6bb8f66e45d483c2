//! pre-init: plugins see the effective configuration and the node's facts,
//! and may deny or patch it. A patch is a JSON merge patch over what the
//! user set; the patched configuration is validated again, and the next
//! plugin sees it.

use serde::{Serialize, Serializer};

use super::chain::{Answer, HookError, Outcome, Participant, run_chain};
use crate::config::Config;
use crate::data_dir::DataDirView;
use crate::journal::Journal;
use crate::node::NodeFacts;
use crate::phase::Summarize;
use crate::plugin::contract::{self, Finding, Hook, PreInitAnswer, Severity};
use crate::plugin::{CallFailure, Plugin, PluginSet};

/// The built-in that opens the chain: a check of the node's addresses.
pub(crate) const BUILTIN: &str = "builtin:node-addresses";

/// Largest patch accepted from a plugin.
pub(crate) const MAX_PATCH_BYTES: usize = 1 << 20;

/// A participant of pre-init.
pub(crate) trait ConfigValidator: Participant {
    fn check(
        &self,
        config_json: &str,
        facts: &contract::NodeFacts,
    ) -> Result<PreInitAnswer, CallFailure>;
}

impl ConfigValidator for Plugin {
    fn check(
        &self,
        config_json: &str,
        facts: &contract::NodeFacts,
    ) -> Result<PreInitAnswer, CallFailure> {
        self.pre_init(config_json, facts)
    }
}

/// The built-in: warns about addresses that will not reach this node.
pub(crate) struct NodeAddressCheck;

impl Participant for NodeAddressCheck {
    fn name(&self) -> &str {
        BUILTIN
    }
}

impl ConfigValidator for NodeAddressCheck {
    fn check(
        &self,
        config_json: &str,
        facts: &contract::NodeFacts,
    ) -> Result<PreInitAnswer, CallFailure> {
        let document: serde_json::Value =
            serde_json::from_str(config_json).map_err(|e| CallFailure::Malformed(e.to_string()))?;
        let mut findings = Vec::new();
        let known = |address: &str| {
            facts.addresses.iter().any(|a| a == address)
                || address
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        };
        for (key, pointer) in [
            ("spec.api.address", "/spec/api/address"),
            (
                "spec.storage.etcd.peerAddress",
                "/spec/storage/etcd/peerAddress",
            ),
        ] {
            if let Some(address) = document.pointer(pointer).and_then(|v| v.as_str())
                && !known(address)
            {
                findings.push(Finding {
                    severity: Severity::Warning,
                    subject: key.to_owned(),
                    rule: "node-address".to_owned(),
                    message: format!(
                        "{address} is not an address of this machine ({}); fine behind a load balancer, a typo otherwise",
                        facts.addresses.join(", ")
                    ),
                });
            }
        }
        Ok(PreInitAnswer {
            findings,
            patch: None,
        })
    }
}

/// The chain's value: the configuration as it stands, with its effective
/// document rendered once for both the plugins and the journal's digest.
struct Current {
    config: Config,
    json: String,
}

impl Current {
    fn new(config: Config) -> Self {
        let json = config.effective_json();
        Self { config, json }
    }
}

impl Serialize for Current {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.json)
    }
}

/// The contract's node facts; the data dir is empty when no bootstrap
/// writes one (`airgap list-images`).
fn wire_facts(node: &NodeFacts, data_dir: Option<&DataDirView>) -> contract::NodeFacts {
    contract::NodeFacts {
        hostname: node.hostname.clone(),
        addresses: node.addresses.iter().map(ToString::to_string).collect(),
        plinth_version: env!("CARGO_PKG_VERSION").to_owned(),
        data_dir: data_dir.map_or_else(String::new, |dir| dir.root().display().to_string()),
    }
}

impl Summarize for Outcome<Config> {
    fn summary(&self) -> String {
        "configuration accepted".to_owned()
    }
}

/// Run the chain and return the (possibly patched) configuration with the
/// findings that did not deny.
pub fn run(
    config: Config,
    node: &NodeFacts,
    data_dir: Option<&DataDirView>,
    plugins: &PluginSet,
    journal: &Journal,
) -> Result<Outcome<Config>, HookError> {
    let facts = wire_facts(node, data_dir);
    let mut chain: Vec<&dyn ConfigValidator> = vec![&NodeAddressCheck];
    chain.extend(
        plugins
            .serving(Hook::PreInit)
            .map(|p| p as &dyn ConfigValidator),
    );
    run_validators(&chain, config, &facts, node, journal)
}

/// Run an explicit chain of validators over `config`, with `facts` as the
/// plugins see them and `node` to validate a patched config against.
pub(crate) fn run_validators(
    chain: &[&dyn ConfigValidator],
    config: Config,
    facts: &contract::NodeFacts,
    node: &NodeFacts,
    journal: &Journal,
) -> Result<Outcome<Config>, HookError> {
    let outcome = run_chain(
        Hook::PreInit,
        journal,
        chain,
        Current::new(config),
        |participant, current| {
            let answer = participant.check(&current.json, facts)?;
            let Some(patch) = answer.patch else {
                return Ok(Answer {
                    next: Current {
                        config: current.config.clone(),
                        json: current.json.clone(),
                    },
                    findings: answer.findings,
                    detail: None,
                });
            };
            if patch.len() > MAX_PATCH_BYTES {
                return Err(CallFailure::Malformed(format!(
                    "a patch of {} bytes; at most {MAX_PATCH_BYTES} are accepted",
                    patch.len()
                )));
            }
            let value: serde_json::Value = serde_json::from_str(&patch).map_err(|error| {
                CallFailure::Malformed(format!("its patch is not JSON: {error}"))
            })?;
            let patched = current
                .config
                .patched(&value, participant.name(), node)
                .map_err(|error| {
                    CallFailure::Malformed(format!("its patch makes the config invalid: {error}"))
                })?;
            Ok(Answer {
                next: Current::new(patched),
                findings: answer.findings,
                detail: Some(serde_json::json!({"patch": value})),
            })
        },
    )?;
    Ok(Outcome {
        value: outcome.value.config,
        notes: outcome.notes,
    })
}
