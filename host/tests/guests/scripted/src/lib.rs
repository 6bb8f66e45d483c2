//! `scripted`: a test guest for the Plinth host's integration tests. It
//! exports every hook (world `full`) and does whatever its manifest settings
//! say, so that one component serves many tests. It is never shipped.
//!
//! # Settings language
//!
//! Every key is optional; with no settings the plugin agrees with everything
//! (empty findings, no patch, the current join proposal, the image list
//! unchanged, no readiness checks). Lists are comma-separated, items trimmed.
//! Booleans are `true` / `false`.
//!
//! ## General
//! | key | effect |
//! |---|---|
//! | `describe.name` | metadata name (default `scripted`) |
//! | `describe.version` | metadata version (default the crate version) |
//! | `describe.description` | metadata description |
//! | `log.message` = text | on **every** call of **every** exported function, first thing: `host::log(level, text)`, then `stdout: text` on stdout and `stderr: text` on stderr (one line each) |
//! | `log.level` | level for `log.message`: `trace` `debug` `info` (default) `warn` `error` |
//! | `log.repeat` | how many times `log.message` is written on each call (default 1) |
//! | `settings.invalid` = anything | `validate-settings` returns `err`, one message naming `settings.invalid` and the value |
//! | `settings.echo` = KEY | in `pre-init`: a warning finding, subject KEY, rule `settings.echo`, message = the value of `setting(KEY)`, or `<absent>` when none |
//!
//! `validate-settings` also checks every enumerated value below (`join.action`,
//! `log.level`, every `hostile.<hook>`, the booleans, `readiness.ready-after`,
//! `readiness.interval-ms`, `readiness.checks`) and returns one message per bad
//! setting, naming the key, the value and what is expected. Free-text values
//! (`pre-init.patch`, `images.digest`, ...) are not checked, so a test can feed
//! the host a bad patch or digest through them.
//!
//! ## pre-init (`check`)
//! Findings, in this order:
//! | key | finding |
//! |---|---|
//! | `pre-init.deny` = reason | deny, subject `config`, rule `scripted`, message = reason |
//! | `pre-init.warn` = message | warning, subject `config`, rule `scripted` |
//! | `pre-init.info` = message | info, subject `config`, rule `scripted` |
//! | `settings.echo` = KEY | see above |
//! | `pre-init.echo-config` = `true` | info, subject `config`, rule `echo-config`, message = the config JSON received, verbatim |
//! | `pre-init.echo-facts` = `true` | info, subject = hostname, rule `echo-facts`, message = `hostname=H addresses=A,B plinth-version=V data-dir=D` |
//!
//! `pre-init.patch` = JSON text → returned verbatim as the merge patch.
//!
//! ## join-decision (`decide`)
//! 1. `join.refuse` = reason → `err(reason)`.
//! 2. `join.action` = `create-cluster` | `join-cluster` | `already-member` →
//!    that proposal, reason `scripted by <name>` (`<name>` = `describe.name`).
//! 3. Otherwise the current proposal, unchanged.
//! 4. `join.echo-facts` = `true` → the returned reason is replaced with
//!    `storage=embedded-etcd|external-etcd etcd-member-data=B join-token-present=B
//!    join-token-api=API|- hostname=H current=ACTION current-reason=R`.
//!
//! ## image-resolve (`resolve`), applied in this order
//! 1. `images.refuse` = reason → `err(reason)`.
//! 2. `images.drop` = component list → those images removed.
//! 3. `images.prefix` = P → every repository becomes `P/<repository>`.
//! 4. `images.tag` = T → every tag becomes T.
//! 5. `images.digest` = D → every digest becomes `D` (not checked: any text).
//! 6. `images.add` = list of `component` or `component=repository:tag` →
//!    each appended (default repository `registry.example/scripted/<component>`,
//!    tag `v0.0.0`), no digest, origin `default`, pull policy `if-not-present`.
//!
//! ## post-pki (`audit`), findings in this order
//! | key | finding |
//! |---|---|
//! | `post-pki.deny` = certificate name list | per name: deny, subject = name, rule `scripted`, message naming it (and saying so when no such certificate was received) |
//! | `post-pki.warn` = message | warning, subject `pki`, rule `scripted` |
//! | `post-pki.count` = `true` | info, subject `pki`, rule `post-pki.count`, message = number of certificates received (decimal digits only) |
//! | `post-pki.names` = `true` | info, subject `pki`, rule `post-pki.names`, message = the names received, in order, joined by `,` |
//! | `post-pki.der-sizes` = `true` | info, subject `pki`, rule `post-pki.der-sizes`, message = `name=bytes` per certificate, joined by `,` |
//!
//! ## readiness
//! * `checks`: `readiness.checks` = list of `name=url`, or `name` alone for a
//!   check without a URL (default none), each with interval
//!   `readiness.interval-ms` (default 100).
//! * `evaluate`: `readiness.fail` = reason → `failed(reason)`; else
//!   `readiness.echo-facts` = `true` → `waiting("members=M voters=V
//!   learners=L this-node-voter=B cluster-id=HEX16 kernel-modules=COUNT
//!   attempt=K")` (`cluster=unknown`, `kernel-modules=unknown` when absent);
//!   else `readiness.ready-after` = N → `waiting("attempt K of N")` while the
//!   attempt K < N, then `ready`; else `ready` for an HTTP 2xx status,
//!   `waiting("HTTP S")` for another status, `waiting(error or "no response")`
//!   when none arrived.
//!
//! ## Hostile behaviour
//! `hostile.<hook>` = behaviour, where hook is `describe`, `validate-settings`,
//! `pre-init`, `join-decision`, `post-pki`, `image-resolve` or `readiness`
//! (`readiness` covers both `checks` and `evaluate`), or `evaluate` (that
//! function alone: `checks` answers normally). It runs right after
//! `log.message`, instead of the normal behaviour.
//!
//! | behaviour | what the guest does |
//! |---|---|
//! | `loop` | spins forever (`black_box` keeps the loop) → epoch deadline (`interrupt` trap) |
//! | `memory-bomb` | allocates 1 MiB blocks, touches every page, keeps them all, forever → memory cap (a host error with `trap_on_grow_failure`, else the allocator aborts: a trap) |
//! | `recursion` | unbounded non-tail recursion on the wasm call stack → `call stack exhausted` (stack overflow) trap |
//! | `panic` | `panic!` (the guest profile aborts: a trap) |
//! | `malformed` | a well-typed but meaningless answer, see below |
//! | `oversized` | an answer far beyond any sane size, see below |
//!
//! Malformed answers: `describe` → name, version and description all empty;
//! `validate-settings` → `err([])` (a refusal with no message); `pre-init` →
//! no findings and the patch `{not json`; `join-decision` → the current
//! action with an empty reason; `image-resolve` → the same number of images,
//! each with repository `UPPER CASE spaces!!` and an empty tag (one such
//! image for an empty input); `post-pki` → one deny finding whose subject,
//! rule and message are empty; `readiness` → `checks` returns two checks both
//! named `` with URL `not a url` and interval 0, `evaluate` returns
//! `waiting("")`.
//!
//! Oversized answers (all within a 64 MiB memory cap): `describe` → a 16 MiB
//! name; `validate-settings` → `err` with 200,000 messages; `pre-init` → a
//! valid JSON patch of 16 MiB (`{"scripted":"xxx…"}`); `join-decision` → a
//! 16 MiB reason; `image-resolve` → 200,000 images; `post-pki` → 200,000
//! info findings; `readiness` → 200,000 checks / `waiting` with a 16 MiB
//! message.

mod hostile;
mod script;

wit_bindgen::generate!({ world: "full", path: "../../../../wit" });

use exports::plinth::bootstrap::image_resolve::{Guest as ResolveGuest, Image};
use exports::plinth::bootstrap::join_decision::{Guest as JoinGuest, JoinFacts, Proposal};
use exports::plinth::bootstrap::plugin::Guest as PluginGuest;
use exports::plinth::bootstrap::post_pki::{Certificate, Guest as PostPkiGuest};
use exports::plinth::bootstrap::pre_init::{Guest as PreInitGuest, NodeFacts, PreInitAnswer};
use exports::plinth::bootstrap::readiness::{
    CheckSpec, Guest as ReadinessGuest, Observation, ProbeResult,
};
use plinth::bootstrap::types::{Finding, Metadata};
use script::{Hook, Script};

struct Scripted;

/// The script, read through the host's `setting` import; runs `log.message`
/// first, as every exported function does.
fn script(_hook: Hook) -> Script<'static> {
    let s = Script::new(&plinth::bootstrap::host::setting);
    s.log_message(&|level, msg| plinth::bootstrap::host::log(level, msg));
    s
}

impl PluginGuest for Scripted {
    fn describe() -> Metadata {
        let s = script(Hook::Describe);
        if let Some(h) = s.hostile(Hook::Describe) {
            return hostile::describe(h);
        }
        s.describe()
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        let s = script(Hook::ValidateSettings);
        if let Some(h) = s.hostile(Hook::ValidateSettings) {
            return hostile::validate_settings(h);
        }
        s.validate()
    }
}

impl PreInitGuest for Scripted {
    fn check(config_json: String, facts: NodeFacts) -> PreInitAnswer {
        let s = script(Hook::PreInit);
        if let Some(h) = s.hostile(Hook::PreInit) {
            return hostile::pre_init(h);
        }
        s.pre_init(&config_json, &facts)
    }
}

impl JoinGuest for Scripted {
    fn decide(facts: JoinFacts, current: Proposal) -> Result<Proposal, String> {
        let s = script(Hook::JoinDecision);
        if let Some(h) = s.hostile(Hook::JoinDecision) {
            return hostile::join_decision(h, current);
        }
        s.join(&facts, current)
    }
}

impl PostPkiGuest for Scripted {
    fn audit(certificates: Vec<Certificate>) -> Vec<Finding> {
        let s = script(Hook::PostPki);
        if let Some(h) = s.hostile(Hook::PostPki) {
            return hostile::post_pki(h);
        }
        s.post_pki(&certificates)
    }
}

impl ResolveGuest for Scripted {
    fn resolve(images: Vec<Image>) -> Result<Vec<Image>, String> {
        let s = script(Hook::ImageResolve);
        if let Some(h) = s.hostile(Hook::ImageResolve) {
            return hostile::image_resolve(h, images.len());
        }
        s.images(images)
    }
}

impl ReadinessGuest for Scripted {
    fn checks() -> Vec<CheckSpec> {
        let s = script(Hook::Readiness);
        if let Some(h) = s.hostile(Hook::Readiness) {
            return hostile::checks(h);
        }
        s.checks()
    }

    fn evaluate(check: String, seen: Observation) -> ProbeResult {
        let s = script(Hook::Readiness);
        if let Some(h) = s.hostile(Hook::Readiness).or(s.hostile(Hook::Evaluate)) {
            return hostile::evaluate(h);
        }
        s.evaluate(&check, &seen)
    }
}

export!(Scripted);
