//! A join-decision plugin: it sees what the host observed (etcd data on
//! disk, a join token) and the proposal so far, and returns the next
//! proposal or refuses. This one agrees with every proposal, except that
//! it refuses to create a new cluster when the setting `forbid-create` is
//! `true` (a site whose cluster exists: every new controller must join).

wit_bindgen::generate!({ world: "join-decider", path: "wit" });

use exports::plinth::bootstrap::join_decision::{
    Guest as JoinDecision, JoinAction, JoinFacts, Proposal,
};
use exports::plinth::bootstrap::plugin::Guest as Plugin;
use plinth::bootstrap::host::{log, setting};
use plinth::bootstrap::types::{Level, Metadata};

struct Component;

fn forbid_create() -> bool {
    setting("forbid-create").as_deref() == Some("true")
}

impl Plugin for Component {
    fn describe() -> Metadata {
        Metadata {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Agrees with the join decision; refuses a new cluster if told to.".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        match setting("forbid-create").as_deref() {
            None | Some("true" | "false") => Ok(()),
            Some(other) => Err(vec![format!(
                "forbid-create = {other:?}: expected `true` or `false`"
            )]),
        }
    }
}

impl JoinDecision for Component {
    fn decide(facts: JoinFacts, current: Proposal) -> Result<Proposal, String> {
        log(
            Level::Info,
            &format!("{}: proposal so far: {}", facts.hostname, current.reason),
        );
        if matches!(current.action, JoinAction::CreateCluster) && forbid_create() {
            return Err("this site forbids creating a cluster (forbid-create); \
                        give the controller a join token"
                .into());
        }
        Ok(current)
    }
}

export!(Component);
