//! Hook chains: how a decision passes from the built-in default through
//! every plugin serving the hook.
//!
//! The model is Kubernetes' Initializers: the built-in runs first, then each
//! plugin in chain order sees the previous result and returns the next; the
//! outcome is final only when every participant has been heard. Findings of
//! severity `deny` (and refusals, which are denials of a mutating hook) are
//! collected from every participant and fail the phase together, so the
//! operator sees every reason at once. A participant that traps, times out
//! or answers malformed stops the chain (exit 4) unless its manifest says
//! `failure-policy = "ignore"`.
//!
//! Built-ins and plugins implement the same per-hook trait (see each hook's
//! file), so either can stand anywhere in a chain.

mod chain;
pub mod image_resolve;
pub mod join_decision;
pub mod post_pki;
pub mod pre_init;
pub mod readiness;

pub use chain::{
    Answer, Attributed, HookError, MAX_FINDINGS, MAX_TEXT_BYTES, Outcome, Participant,
};

use crate::plugin::contract::Hook;

/// The built-in that opens `hook`'s chain. Readiness is no chain: its
/// built-in checks run beside the plugins' (run mode only).
pub(crate) fn builtin_of(hook: Hook) -> Option<&'static str> {
    match hook {
        Hook::PreInit => Some(pre_init::BUILTIN),
        Hook::JoinDecision => Some(join_decision::BUILTIN),
        Hook::PostPki => Some(post_pki::BUILTIN),
        Hook::ImageResolve => Some(image_resolve::BUILTIN),
        Hook::Readiness => Some(readiness::BUILTIN),
    }
}
