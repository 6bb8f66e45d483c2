//! `quorum-guard`: a Plinth readiness plugin that holds a controller not
//! ready until the etcd cluster has at least `min-voters` voting members, so
//! that a vendor can keep the first controller out of a load balancer until
//! the control plane is highly available. Optionally it also waits for
//! kernel modules and for a URL to answer 2xx. See README.md; the rules live
//! in [`guard`].

pub mod guard;

wit_bindgen::generate!({ world: "readiness-checker", path: "../../wit" });

use exports::plinth::bootstrap::plugin::Guest as PluginGuest;
use exports::plinth::bootstrap::readiness::{
    CheckSpec, Guest as ReadinessGuest, Observation, ProbeResult,
};
use guard::{Cluster, Guard, Verdict};
use plinth::bootstrap::host::setting;
use plinth::bootstrap::types::Metadata;

struct QuorumGuard;

fn settings() -> Result<Guard, Vec<String>> {
    Guard::from_settings(setting)
}

impl PluginGuest for QuorumGuard {
    fn describe() -> Metadata {
        Metadata {
            name: "quorum-guard".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Not ready until etcd has min-voters voting members, the required \
                          kernel modules are loaded and the probe URL answers 2xx."
                .into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        settings().map(|_| ())
    }
}

impl ReadinessGuest for QuorumGuard {
    fn checks() -> Vec<CheckSpec> {
        // validate-settings stopped bad settings at load; none here means
        // no checks, never a check that passes by mistake.
        let Ok(guard) = settings() else {
            return Vec::new();
        };
        guard
            .checks()
            .into_iter()
            .map(|check| CheckSpec {
                name: check.name.into(),
                url: check.url,
                interval_ms: check.interval_ms,
            })
            .collect()
    }

    fn evaluate(check: String, seen: Observation) -> ProbeResult {
        let verdict = match settings() {
            Err(errors) => Verdict::failed(errors.join("; ")),
            Ok(guard) => match check.as_str() {
                guard::VOTERS => guard.voters(seen.cluster.map(|c| Cluster {
                    voters: c.voters,
                    learners: c.learners,
                })),
                guard::KERNEL_MODULES => guard.kernel_modules(seen.kernel_modules.as_deref()),
                guard::PROBE => guard.probe(seen.status, seen.error.as_deref()),
                other => Verdict::failed(format!("quorum-guard has no check named `{other}`")),
            },
        };
        match verdict {
            Verdict::Ready => ProbeResult::Ready,
            Verdict::Waiting(reason) => ProbeResult::Waiting(reason),
            Verdict::Failed(reason) => ProbeResult::Failed(reason),
        }
    }
}

export!(QuorumGuard);
