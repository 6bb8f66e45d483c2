//! Hostile behaviour: what a broken or malicious plugin might do. See the
//! table in `lib.rs`.

use core::hint::black_box;

use crate::exports::plinth::bootstrap::image_resolve::{Image, Origin, PullPolicy};
use crate::exports::plinth::bootstrap::join_decision::Proposal;
use crate::exports::plinth::bootstrap::pre_init::PreInitAnswer;
use crate::exports::plinth::bootstrap::readiness::{CheckSpec, ProbeResult};
use crate::plinth::bootstrap::types::{Finding, Metadata, Severity};
use crate::script::Hostile;

/// Size of an oversized string answer: 16 MiB.
const BIG: usize = 16 << 20;
/// Length of an oversized list answer.
const MANY: usize = 200_000;

fn big_string() -> String {
    let mut s = String::with_capacity(BIG);
    while s.len() < BIG {
        s.push_str("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    s
}

/// The behaviours that never return an answer.
fn diverge(h: Hostile) -> ! {
    match h {
        Hostile::Loop => {
            let mut i = 0u64;
            loop {
                i = black_box(i.wrapping_add(1));
            }
        }
        Hostile::MemoryBomb => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut block = vec![0u8; 1 << 20];
                for page in block.iter_mut().step_by(4096) {
                    *page = 1;
                }
                hoard.push(black_box(block));
            }
        }
        Hostile::Recursion => {
            let n = recurse(black_box(0));
            panic!("recursion ended at {n}");
        }
        Hostile::Panic => panic!("scripted panic: hostile plugin"),
        Hostile::Malformed | Hostile::Oversized => unreachable!("answers, not divergence"),
    }
}

/// Unbounded recursion that the optimiser cannot turn into a loop: the
/// result of the call goes through an opaque function after it returns (no
/// tail call, no accumulator rewrite). The frames live on the wasm call stack,
/// not in linear memory, so the engine's stack limit is what stops it: a
/// "call stack exhausted" (stack overflow) trap.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    mix(recurse(depth + 1), depth)
}

#[inline(never)]
fn mix(a: u64, b: u64) -> u64 {
    black_box(a.rotate_left(5) ^ b)
}

pub fn describe(h: Hostile) -> Metadata {
    match h {
        Hostile::Malformed => Metadata {
            name: String::new(),
            version: String::new(),
            description: String::new(),
        },
        Hostile::Oversized => Metadata {
            name: big_string(),
            version: "0.1.0".into(),
            description: "oversized".into(),
        },
        other => diverge(other),
    }
}

pub fn validate_settings(h: Hostile) -> Result<(), Vec<String>> {
    match h {
        Hostile::Malformed => Err(Vec::new()),
        Hostile::Oversized => Err((0..MANY)
            .map(|i| format!("oversized message {i}"))
            .collect()),
        other => diverge(other),
    }
}

pub fn pre_init(h: Hostile) -> PreInitAnswer {
    match h {
        Hostile::Malformed => PreInitAnswer {
            findings: Vec::new(),
            patch: Some("{not json".into()),
        },
        Hostile::Oversized => {
            let mut patch = String::with_capacity(BIG + 16);
            patch.push_str(r#"{"scripted":""#);
            while patch.len() < BIG {
                patch.push_str("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            }
            patch.push_str(r#""}"#);
            PreInitAnswer {
                findings: Vec::new(),
                patch: Some(patch),
            }
        }
        other => diverge(other),
    }
}

pub fn join_decision(h: Hostile, current: Proposal) -> Result<Proposal, String> {
    match h {
        Hostile::Malformed => Ok(Proposal {
            action: current.action,
            reason: String::new(),
        }),
        Hostile::Oversized => Ok(Proposal {
            action: current.action,
            reason: big_string(),
        }),
        other => diverge(other),
    }
}

pub fn post_pki(h: Hostile) -> Vec<Finding> {
    match h {
        Hostile::Malformed => vec![Finding {
            severity: Severity::Deny,
            subject: String::new(),
            rule: String::new(),
            message: String::new(),
        }],
        Hostile::Oversized => {
            let mut v = Vec::with_capacity(MANY);
            for i in 0..MANY {
                v.push(Finding {
                    severity: Severity::Info,
                    subject: "pki".into(),
                    rule: "oversized".into(),
                    message: i.to_string(),
                });
            }
            v
        }
        other => diverge(other),
    }
}

pub fn image_resolve(h: Hostile, len: usize) -> Result<Vec<Image>, String> {
    match h {
        Hostile::Malformed => Ok((0..len.max(1))
            .map(|i| Image {
                component: format!("malformed-{i}"),
                repository: "UPPER CASE spaces!!".into(),
                tag: String::new(),
                digest: None,
                origin: Origin::Default,
                pull_policy: PullPolicy::IfNotPresent,
            })
            .collect()),
        Hostile::Oversized => {
            let mut v = Vec::with_capacity(MANY);
            for i in 0..MANY {
                v.push(Image {
                    component: i.to_string(),
                    repository: "example.invalid/x".into(),
                    tag: "v1".into(),
                    digest: None,
                    origin: Origin::Default,
                    pull_policy: PullPolicy::IfNotPresent,
                });
            }
            Ok(v)
        }
        other => diverge(other),
    }
}

pub fn checks(h: Hostile) -> Vec<CheckSpec> {
    match h {
        Hostile::Malformed => (0..2)
            .map(|_| CheckSpec {
                name: String::new(),
                url: Some("not a url".into()),
                interval_ms: 0,
            })
            .collect(),
        Hostile::Oversized => (0..MANY)
            .map(|i| CheckSpec {
                name: i.to_string(),
                url: Some("http://127.0.0.1:1/".into()),
                interval_ms: 100,
            })
            .collect(),
        other => diverge(other),
    }
}

pub fn evaluate(h: Hostile) -> ProbeResult {
    match h {
        Hostile::Malformed => ProbeResult::Waiting(String::new()),
        Hostile::Oversized => ProbeResult::Waiting(big_string()),
        other => diverge(other),
    }
}
