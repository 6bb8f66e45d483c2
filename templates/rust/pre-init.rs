//! A pre-init plugin: it sees the effective cluster configuration (as JSON)
//! and facts about the node before anything is created, and may deny or
//! return a JSON merge patch. This one warns when the node has no address
//! but loopback (other controllers could not reach it), and denies instead
//! when the setting `require-address` is `true`.

wit_bindgen::generate!({ world: "config-validator", path: "wit" });

use exports::plinth::bootstrap::plugin::Guest as Plugin;
use exports::plinth::bootstrap::pre_init::{Guest as PreInit, NodeFacts, PreInitAnswer};
use plinth::bootstrap::host::setting;
use plinth::bootstrap::types::{Finding, Metadata, Severity};

struct Component;

impl Plugin for Component {
    fn describe() -> Metadata {
        Metadata {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Warns (or denies) when the node has no address but loopback.".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        match setting("require-address").as_deref() {
            None | Some("true" | "false") => Ok(()),
            Some(other) => Err(vec![format!(
                "require-address = {other:?}: expected `true` or `false`"
            )]),
        }
    }
}

impl PreInit for Component {
    fn check(_config_json: String, facts: NodeFacts) -> PreInitAnswer {
        let mut findings = Vec::new();
        if facts.addresses.is_empty() {
            let severity = if setting("require-address").as_deref() == Some("true") {
                Severity::Deny
            } else {
                Severity::Warning
            };
            findings.push(Finding {
                severity,
                subject: "node".into(),
                rule: "require-address".into(),
                message: format!(
                    "node {} has no address but loopback; other controllers cannot reach it",
                    facts.hostname
                ),
            });
        }
        PreInitAnswer {
            findings,
            patch: None,
        }
    }
}

export!(Component);
