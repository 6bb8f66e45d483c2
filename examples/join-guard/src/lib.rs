//! `join-guard`: an example vendor policy for Plinth's join-decision hook,
//! shipped as `30-join-guard.wasm`.
//!
//! A site that already has a cluster must never get a second one because a
//! controller was started without its join token. So when the decision so far
//! is `create-cluster`, this plugin refuses, unless the manifest setting
//! `allow-create` is `true` (set it only on the first controller of a new
//! site). Every other proposal passes through unchanged.
//!
//! Settings: `allow-create` = `true` | `false` (optional, default `false`).

wit_bindgen::generate!({ world: "join-decider", path: "../../wit" });

use exports::plinth::bootstrap::join_decision::{
    Guest as JoinGuest, JoinAction, JoinFacts, Proposal,
};
use exports::plinth::bootstrap::plugin::Guest as PluginGuest;
use plinth::bootstrap::host::{log, setting};
use plinth::bootstrap::types::{Level, Metadata};

const ALLOW_CREATE: &str = "allow-create";

/// `Ok(true)` when creating a cluster is allowed.
fn allow_create(raw: Option<&str>) -> Result<bool, String> {
    match raw.map(str::trim) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(format!(
            "{ALLOW_CREATE}: `{other}` is not valid; expected `true` or `false`"
        )),
    }
}

/// The decision: pass `current` through, or refuse a cluster creation.
/// `recorded_member` is the member id of a join this machine recorded and
/// has not finished: creating a cluster then would split the one that
/// already added it, so not even `allow-create` permits it.
fn decide(
    current_is_create: bool,
    recorded_member: Option<&str>,
    hostname: &str,
    allow: bool,
) -> Result<(), String> {
    if let (true, Some(member)) = (current_is_create, recorded_member) {
        return Err(format!(
            "join-guard refuses to create a new cluster on `{hostname}`: this machine was \
             added to a cluster as member {member} (etcd/join.json) and must finish that join"
        ));
    }
    if current_is_create && !allow {
        return Err(format!(
            "join-guard refuses to create a new cluster on `{hostname}`: this site already has a \
             cluster; give a join token (--token-file) to join it, or set \
             {ALLOW_CREATE} = \"true\" in 30-join-guard.toml on the one controller that may \
             create a new cluster"
        ));
    }
    Ok(())
}

struct JoinGuard;

impl PluginGuest for JoinGuard {
    fn describe() -> Metadata {
        Metadata {
            name: "join-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Refuses to form a second cluster: a controller without a join token \
                          may not create one unless allow-create is set."
                .into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        allow_create(setting(ALLOW_CREATE).as_deref())
            .map(|_| ())
            .map_err(|e| vec![e])
    }
}

impl JoinGuest for JoinGuard {
    fn decide(facts: JoinFacts, current: Proposal) -> Result<Proposal, String> {
        let allow = allow_create(setting(ALLOW_CREATE).as_deref())?;
        let is_create = current.action == JoinAction::CreateCluster;
        let recorded = facts.recorded_membership.as_ref().map(|m| m.member_id.as_str());
        decide(is_create, recorded, &facts.hostname, allow)?;
        if is_create {
            log(
                Level::Warn,
                &format!(
                    "{ALLOW_CREATE} is true: letting `{}` create a cluster",
                    facts.hostname
                ),
            );
        }
        Ok(current)
    }
}

export!(JoinGuard);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_create_unless_allowed() {
        let err = decide(true, None, "node-a", false).unwrap_err();
        assert!(err.contains("this site already has a cluster"));
        assert!(err.contains("join token") && err.contains(ALLOW_CREATE));
        assert!(decide(true, None, "node-a", true).is_ok());
        assert!(decide(false, None, "node-a", false).is_ok());
    }

    #[test]
    fn refuses_create_over_a_recorded_join_even_when_allowed() {
        let err = decide(true, Some("00000000deadbeef"), "node-a", true).unwrap_err();
        assert!(err.contains("00000000deadbeef") && err.contains("finish that join"));
        assert!(decide(false, Some("00000000deadbeef"), "node-a", false).is_ok());
    }

    #[test]
    fn allow_create_setting() {
        assert_eq!(allow_create(None), Ok(false));
        assert_eq!(allow_create(Some("false")), Ok(false));
        assert_eq!(allow_create(Some(" true ")), Ok(true));
        let e = allow_create(Some("yes")).unwrap_err();
        assert!(e.starts_with(ALLOW_CREATE) && e.contains("yes") && e.contains("expected"));
    }
}
