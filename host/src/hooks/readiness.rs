//! readiness: which checks a plugin wants run, and its verdict on each
//! observation. This is the contract's side only: the typed calls and the
//! rules an answer must meet. Scheduling, probing and reporting are run
//! mode's (`run/readiness/`).
//!
//! Unlike the other hooks, readiness is no chain: every check of every
//! plugin runs at once beside the built-in checks, and the controller is
//! ready when all of them are.

use std::collections::BTreeSet;
use std::time::Duration;

use super::chain::{Participant, is_dns_label};
use crate::plugin::contract::{CheckSpec, Observation, ProbeResult};
use crate::plugin::{CallFailure, Plugin};

/// The host's own checks, which run beside the plugins' (run mode only):
/// how `plugins plan` names them where other hooks name their built-in.
pub(crate) const BUILTIN: &str = "builtin:etcd,etcd-voter,plinth-api";

/// Most checks one plugin may ask for.
pub const MAX_CHECKS: usize = 16;
/// Longest reason a plugin may give for `waiting` or `failed`: it is shown
/// on a terminal line, in `STATUS=` and in `/readyz?verbose`.
pub const MAX_REASON_BYTES: usize = 1024;
/// Longest URL a check may name.
pub const MAX_URL_BYTES: usize = 2048;
/// The shortest interval between two probes of one check, whatever the
/// plugin asks: a buggy plugin must not hammer the server it probes.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest: a check probed less often would outlast most timeouts.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// A participant of readiness.
pub trait ReadinessJudge: Participant {
    fn checks(&self) -> Result<Vec<CheckSpec>, CallFailure>;
    fn evaluate(&self, check: &str, seen: &Observation) -> Result<ProbeResult, CallFailure>;
}

impl ReadinessJudge for Plugin {
    fn checks(&self) -> Result<Vec<CheckSpec>, CallFailure> {
        self.readiness_checks()
    }

    fn evaluate(&self, check: &str, seen: &Observation) -> Result<ProbeResult, CallFailure> {
        self.readiness_evaluate(check, seen)
    }
}

/// A check as the host runs it: a valid name, an interval within bounds,
/// and the URL still unparsed (whether it may be probed is the manifest's
/// `allow-urls` to say, run mode's to enforce).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginCheck {
    pub name: String,
    pub url: Option<String>,
    pub interval: Duration,
}

/// Ask `judge` for its checks and hold them to the contract: at most
/// [`MAX_CHECKS`], each name a DNS label used once, URLs of bounded length.
pub fn checks_of(judge: &dyn ReadinessJudge) -> Result<Vec<PluginCheck>, CallFailure> {
    let specs = judge.checks()?;
    if specs.len() > MAX_CHECKS {
        return Err(CallFailure::Malformed(format!(
            "{} checks; at most {MAX_CHECKS} are accepted",
            specs.len()
        )));
    }
    let mut names = BTreeSet::new();
    specs
        .into_iter()
        .map(|spec| {
            if !is_dns_label(&spec.name) {
                return Err(CallFailure::Malformed(format!(
                    "check name `{}` is not 1 to 63 lowercase letters, digits and inner `-`",
                    spec.name.escape_debug()
                )));
            }
            if !names.insert(spec.name.clone()) {
                return Err(CallFailure::Malformed(format!(
                    "two checks are named `{}`",
                    spec.name
                )));
            }
            if let Some(url) = &spec.url
                && url.len() > MAX_URL_BYTES
            {
                return Err(CallFailure::Malformed(format!(
                    "check `{}` names a URL of {} bytes; at most {MAX_URL_BYTES} are accepted",
                    spec.name,
                    url.len()
                )));
            }
            Ok(PluginCheck {
                interval: Duration::from_millis(spec.interval_ms.into())
                    .clamp(MIN_INTERVAL, MAX_INTERVAL),
                name: spec.name,
                url: spec.url,
            })
        })
        .collect()
}

/// Ask `judge` to judge one observation, and hold its answer to the
/// contract: a reason of 1 to [`MAX_REASON_BYTES`] bytes.
pub fn verdict_of(
    judge: &dyn ReadinessJudge,
    check: &str,
    seen: &Observation,
) -> Result<ProbeResult, CallFailure> {
    let verdict = judge.evaluate(check, seen)?;
    if let ProbeResult::Waiting(reason) | ProbeResult::Failed(reason) = &verdict
        && (reason.trim().is_empty() || reason.len() > MAX_REASON_BYTES)
    {
        return Err(CallFailure::Malformed(format!(
            "a reason of {} bytes; give 1 to {MAX_REASON_BYTES}",
            reason.len()
        )));
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A judge answering from fixed values, to test the contract rules.
    struct Fixed {
        checks: Vec<CheckSpec>,
        verdict: ProbeResult,
    }

    impl Participant for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
    }

    impl ReadinessJudge for Fixed {
        fn checks(&self) -> Result<Vec<CheckSpec>, CallFailure> {
            Ok(self.checks.clone())
        }
        fn evaluate(&self, _: &str, _: &Observation) -> Result<ProbeResult, CallFailure> {
            Ok(self.verdict.clone())
        }
    }

    fn spec(name: &str, interval_ms: u32) -> CheckSpec {
        CheckSpec {
            name: name.to_owned(),
            url: None,
            interval_ms,
        }
    }

    fn fixed(checks: Vec<CheckSpec>) -> Fixed {
        Fixed {
            checks,
            verdict: ProbeResult::Ready,
        }
    }

    fn seen() -> Observation {
        Observation {
            status: None,
            body: String::new(),
            error: None,
            attempt: 1,
            cluster: None,
            kernel_modules: None,
        }
    }

    #[test]
    fn intervals_are_held_between_the_floor_and_the_ceiling() {
        let checks = checks_of(&fixed(vec![
            spec("zero", 0),
            spec("fast", 5),
            spec("normal", 250),
            spec("slow", u32::MAX),
        ]))
        .unwrap();
        let intervals: Vec<_> = checks.iter().map(|c| c.interval).collect();
        assert_eq!(
            intervals,
            [
                MIN_INTERVAL,
                MIN_INTERVAL,
                Duration::from_millis(250),
                MAX_INTERVAL
            ]
        );
    }

    #[test]
    fn bad_names_duplicates_and_too_many_checks_are_malformed() {
        for checks in [
            vec![spec("", 100)],
            vec![spec("Upper", 100)],
            vec![spec("new\nline", 100)],
            vec![spec("twice", 100), spec("twice", 100)],
            (0..=MAX_CHECKS)
                .map(|i| spec(&format!("c{i}"), 100))
                .collect(),
        ] {
            assert!(
                matches!(
                    checks_of(&fixed(checks.clone())),
                    Err(CallFailure::Malformed(_))
                ),
                "{checks:?} was accepted"
            );
        }
        let long_url = CheckSpec {
            url: Some(format!("http://x/{}", "a".repeat(MAX_URL_BYTES))),
            ..spec("long", 100)
        };
        assert!(checks_of(&fixed(vec![long_url])).is_err());
    }

    #[test]
    fn a_reason_must_say_something_and_stay_short() {
        for verdict in [
            ProbeResult::Waiting(String::new()),
            ProbeResult::Failed("  ".to_owned()),
            ProbeResult::Waiting("x".repeat(MAX_REASON_BYTES + 1)),
        ] {
            let judge = Fixed {
                checks: Vec::new(),
                verdict,
            };
            assert!(matches!(
                verdict_of(&judge, "c", &seen()),
                Err(CallFailure::Malformed(_))
            ));
        }
        let judge = Fixed {
            checks: Vec::new(),
            verdict: ProbeResult::Waiting("2 of 3 voters".to_owned()),
        };
        assert_eq!(
            verdict_of(&judge, "c", &seen()).unwrap(),
            ProbeResult::Waiting("2 of 3 voters".to_owned())
        );
    }
}
