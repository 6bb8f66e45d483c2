//! The rules of quorum-guard, as plain Rust so that they are tested natively
//! (`cargo test -p quorum-guard`). `lib.rs` only converts to and from the
//! contract's types.

/// Name of the check that counts voters; always present.
pub const VOTERS: &str = "voters";
/// Name of the check for `required-kernel-modules`, when set.
pub const KERNEL_MODULES: &str = "kernel-modules";
/// Name of the check for `probe-url`, when set.
pub const PROBE: &str = "probe";

const DEFAULT_INTERVAL_MS: u32 = 500;

/// The longest reason the host accepts for `waiting` or `failed`. A longer
/// one is a malformed answer, which under `failure-policy = "fail"` stops
/// the controller: a slow probe must not turn into that.
pub const MAX_REASON_BYTES: usize = 1024;

/// The settings, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guard {
    /// Voting etcd members needed (`min-voters`, default 1).
    pub min_voters: u32,
    /// Kernel modules needed (`required-kernel-modules`), normalised.
    pub required_modules: Vec<String>,
    /// A URL that must answer 2xx (`probe-url`).
    pub probe_url: Option<String>,
    /// How often to look again while not ready (`interval-ms`).
    pub interval_ms: u32,
}

/// A check this plugin asks the host to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub url: Option<String>,
    pub interval_ms: u32,
}

/// What the host knows of the etcd cluster (a subset of the contract's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub voters: u32,
    pub learners: u32,
}

/// The verdict on one check. Make one with [`Verdict::waiting`] or
/// [`Verdict::failed`], which keep the reason within the host's limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Waiting(String),
    Failed(String),
}

impl Verdict {
    pub fn waiting(reason: String) -> Self {
        Self::Waiting(within_limit(reason))
    }

    pub fn failed(reason: String) -> Self {
        Self::Failed(within_limit(reason))
    }
}

/// `reason` cut to at most [`MAX_REASON_BYTES`], on a character boundary,
/// ending in `…` when it was cut. The reason embeds the probe URL and the
/// host's error text, which together can be longer than the limit.
fn within_limit(mut reason: String) -> String {
    const CUT: &str = "…";
    if reason.len() > MAX_REASON_BYTES {
        let end = reason.floor_char_boundary(MAX_REASON_BYTES - CUT.len());
        reason.truncate(end);
        reason.push_str(CUT);
    }
    reason
}

impl Guard {
    /// Read the settings through `setting`; one message per bad one.
    pub fn from_settings(setting: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let mut errors = Vec::new();
        let min_voters = match setting("min-voters") {
            None => 1,
            Some(text) => match text.trim().parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    errors.push(format!(
                        "min-voters: `{text}` is not valid; expected a whole number from 1 to 1000"
                    ));
                    1
                }
            },
        };
        let mut required_modules = Vec::new();
        if let Some(text) = setting("required-kernel-modules") {
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if is_module_name(name) {
                    required_modules.push(normalise(name));
                } else {
                    errors.push(format!(
                        "required-kernel-modules: `{name}` is not a kernel module name; \
                         expected letters, digits, `_` and `-`"
                    ));
                }
            }
        }
        let probe_url = setting("probe-url").map(|url| url.trim().to_owned());
        if let Some(url) = &probe_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(format!(
                "probe-url: `{url}` is not valid; expected an http:// or https:// URL, \
                 also listed in the manifest's allow-urls"
            ));
        }
        let interval_ms = match setting("interval-ms") {
            None => DEFAULT_INTERVAL_MS,
            Some(text) => text.trim().parse().unwrap_or_else(|_| {
                errors.push(format!(
                    "interval-ms: `{text}` is not valid; expected a whole number of milliseconds"
                ));
                DEFAULT_INTERVAL_MS
            }),
        };
        if errors.is_empty() {
            Ok(Self {
                min_voters,
                required_modules,
                probe_url,
                interval_ms,
            })
        } else {
            Err(errors)
        }
    }

    /// The checks: `voters` always, the others when their setting is given.
    pub fn checks(&self) -> Vec<Check> {
        let check = |name, url| Check {
            name,
            url,
            interval_ms: self.interval_ms,
        };
        let mut checks = vec![check(VOTERS, None)];
        if !self.required_modules.is_empty() {
            checks.push(check(KERNEL_MODULES, None));
        }
        if let Some(url) = &self.probe_url {
            checks.push(check(PROBE, Some(url.clone())));
        }
        checks
    }

    /// Enough voting members? A learner does not count: it cannot vote, so
    /// it adds nothing to the cluster's tolerance of a lost member.
    pub fn voters(&self, cluster: Option<Cluster>) -> Verdict {
        match cluster {
            None => Verdict::waiting("the etcd member list is not known yet".to_owned()),
            Some(c) if c.voters >= self.min_voters => Verdict::Ready,
            Some(c) => {
                let learners = match c.learners {
                    0 => String::new(),
                    1 => " (1 learner waiting to be promoted)".to_owned(),
                    n => format!(" ({n} learners waiting to be promoted)"),
                };
                Verdict::waiting(format!(
                    "{} of {} voters{learners}",
                    c.voters, self.min_voters
                ))
            }
        }
    }

    /// Every required module loaded or built in?
    pub fn kernel_modules(&self, loaded: Option<&[String]>) -> Verdict {
        let Some(loaded) = loaded else {
            return Verdict::waiting(
                "the host cannot read this node's kernel modules (no /proc/modules)".to_owned(),
            );
        };
        let missing: Vec<&str> = self
            .required_modules
            .iter()
            .filter(|module| !loaded.iter().any(|l| normalise(l) == **module))
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            Verdict::Ready
        } else {
            Verdict::waiting(format!("kernel modules not loaded: {}", missing.join(", ")))
        }
    }

    /// 2xx is ready; 5xx, 429 and no answer are worth waiting for; any other
    /// status (a redirect, 401, 404) will not fix itself.
    pub fn probe(&self, status: Option<u16>, error: Option<&str>) -> Verdict {
        let url = self.probe_url.as_deref().unwrap_or("probe-url");
        match status {
            Some(s) if (200..300).contains(&s) => Verdict::Ready,
            Some(s) if s >= 500 || s == 429 => Verdict::waiting(format!("{url} answered HTTP {s}")),
            Some(s) => Verdict::failed(format!(
                "{url} answered HTTP {s}, which waiting will not change; check probe-url"
            )),
            None => Verdict::waiting(format!(
                "{url} did not answer: {}",
                error.unwrap_or("no response")
            )),
        }
    }
}

fn is_module_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The kernel treats `-` and `_` in module names alike.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn guard(pairs: &[(&str, &str)]) -> Result<Guard, Vec<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Guard::from_settings(|key| map.get(key).cloned())
    }

    #[test]
    fn without_settings_one_voter_is_enough() {
        let g = guard(&[]).unwrap();
        assert_eq!(g.checks().len(), 1);
        assert_eq!(
            g.voters(Some(Cluster {
                voters: 1,
                learners: 0
            })),
            Verdict::Ready
        );
    }

    #[test]
    fn min_voters_counts_voters_not_learners() {
        let g = guard(&[("min-voters", "3")]).unwrap();
        assert_eq!(
            g.voters(Some(Cluster {
                voters: 2,
                learners: 1
            })),
            Verdict::Waiting("2 of 3 voters (1 learner waiting to be promoted)".into())
        );
        assert_eq!(
            g.voters(Some(Cluster {
                voters: 1,
                learners: 0
            })),
            Verdict::Waiting("1 of 3 voters".into())
        );
        assert_eq!(
            g.voters(Some(Cluster {
                voters: 3,
                learners: 0
            })),
            Verdict::Ready
        );
        assert!(matches!(g.voters(None), Verdict::Waiting(_)));
    }

    #[test]
    fn missing_kernel_modules_are_named() {
        let g = guard(&[(
            "required-kernel-modules",
            "overlay, nf-conntrack,br_netfilter",
        )])
        .unwrap();
        assert_eq!(
            g.checks().iter().map(|c| c.name).collect::<Vec<_>>(),
            [VOTERS, KERNEL_MODULES]
        );
        let loaded = vec!["overlay".to_owned(), "nf_conntrack".to_owned()];
        assert_eq!(
            g.kernel_modules(Some(&loaded)),
            Verdict::Waiting("kernel modules not loaded: br_netfilter".into())
        );
        let all = vec![
            "br-netfilter".to_owned(),
            "nf_conntrack".to_owned(),
            "overlay".to_owned(),
        ];
        assert_eq!(g.kernel_modules(Some(&all)), Verdict::Ready);
        assert!(matches!(g.kernel_modules(None), Verdict::Waiting(_)));
    }

    #[test]
    fn the_probe_waits_on_5xx_and_fails_on_what_will_not_change() {
        let g = guard(&[("probe-url", "https://127.0.0.1:6443/readyz")]).unwrap();
        let probe = g.checks().pop().unwrap();
        assert_eq!(
            (probe.name, probe.url.as_deref()),
            (PROBE, Some("https://127.0.0.1:6443/readyz"))
        );
        assert_eq!(g.probe(Some(200), None), Verdict::Ready);
        assert_eq!(
            g.probe(Some(503), None),
            Verdict::Waiting("https://127.0.0.1:6443/readyz answered HTTP 503".into())
        );
        assert!(
            matches!(g.probe(None, Some("refused")), Verdict::Waiting(m) if m.ends_with("refused"))
        );
        assert!(matches!(g.probe(Some(404), None), Verdict::Failed(_)));
    }

    #[test]
    fn a_reason_with_a_2_kib_url_is_cut_to_the_hosts_limit_on_a_character() {
        // 2 KiB of two-byte characters: a cut at an odd byte would split one.
        let url = format!("https://127.0.0.1:6443/{}", "é".repeat(1024));
        let g = guard(&[("probe-url", &url)]).unwrap();
        for verdict in [
            g.probe(None, Some("connection refused")),
            g.probe(Some(503), None),
            g.probe(Some(404), None),
        ] {
            let (Verdict::Waiting(reason) | Verdict::Failed(reason)) = verdict else {
                panic!("{verdict:?} is neither waiting nor failed");
            };
            assert!(reason.len() <= MAX_REASON_BYTES, "{} bytes", reason.len());
            assert!(
                reason.len() > MAX_REASON_BYTES - 8,
                "{} bytes",
                reason.len()
            );
            assert!(reason.starts_with("https://127.0.0.1:6443/éé"), "{reason}");
            assert!(reason.ends_with("é…"), "{reason}");
        }
        // A short reason is left whole.
        assert_eq!(
            guard(&[("probe-url", "http://127.0.0.1/x")])
                .unwrap()
                .probe(Some(503), None),
            Verdict::Waiting("http://127.0.0.1/x answered HTTP 503".into())
        );
    }

    #[test]
    fn bad_settings_are_each_named() {
        let errors = guard(&[
            ("min-voters", "0"),
            ("required-kernel-modules", "overlay,../x"),
            ("probe-url", "ftp://x"),
            ("interval-ms", "soon"),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:#?}");
        for key in [
            "min-voters",
            "required-kernel-modules",
            "probe-url",
            "interval-ms",
        ] {
            assert!(
                errors.iter().any(|e| e.starts_with(key)),
                "{key}: {errors:#?}"
            );
        }
    }
}
