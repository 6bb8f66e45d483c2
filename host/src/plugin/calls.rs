//! Calling a plugin: one typed call per hook, and the two calls made at
//! load. Every call instantiates the component afresh in a sandbox
//! ([`sandbox::call`]) and names the export it calls; nothing outside this
//! file touches an instance.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{Component, InstancePre};

use super::Plugin;
use super::bindings::exports::plinth::bootstrap as exports;
use super::contract::{
    Certificate, Finding, Hook, Image, JoinFacts, Metadata, NodeFacts, PreInitAnswer, Proposal,
};
use super::engine::Runtime;
use super::error::PluginError;
use super::sandbox::{self, CallFailure, CallTarget, Sandbox};

/// A component linked against the host imports, with its exports resolved
/// once, so a call only instantiates.
pub(super) struct Linked {
    pre: InstancePre<Sandbox>,
    target: CallTarget,
    plugin: exports::plugin::GuestIndices,
    pre_init: Option<exports::pre_init::GuestIndices>,
    join_decision: Option<exports::join_decision::GuestIndices>,
    post_pki: Option<exports::post_pki::GuestIndices>,
    image_resolve: Option<exports::image_resolve::GuestIndices>,
    // Readiness runs in run mode, which this build does not have: its
    // export is recognised (for `plugins plan`) but never called.
    /// The runtime whose epoch thread enforces this plugin's deadlines: a
    /// linked component keeps it running for as long as it can be called.
    _runtime: Arc<Runtime>,
}

impl Linked {
    pub(super) fn new(
        runtime: &Arc<Runtime>,
        component: &Component,
        exported: &BTreeSet<Hook>,
        target: CallTarget,
    ) -> Result<Self, LinkError> {
        let pre = runtime
            .linker()
            .instantiate_pre(component)
            .map_err(LinkError::Imports)?;
        let has = |hook| exported.contains(&hook);
        let indices = |error| LinkError::Exports(error);
        Ok(Self {
            plugin: exports::plugin::GuestIndices::new(&pre).map_err(indices)?,
            pre_init: has(Hook::PreInit)
                .then(|| exports::pre_init::GuestIndices::new(&pre))
                .transpose()
                .map_err(indices)?,
            join_decision: has(Hook::JoinDecision)
                .then(|| exports::join_decision::GuestIndices::new(&pre))
                .transpose()
                .map_err(indices)?,
            post_pki: has(Hook::PostPki)
                .then(|| exports::post_pki::GuestIndices::new(&pre))
                .transpose()
                .map_err(indices)?,
            image_resolve: has(Hook::ImageResolve)
                .then(|| exports::image_resolve::GuestIndices::new(&pre))
                .transpose()
                .map_err(indices)?,
            pre,
            target,
            _runtime: Arc::clone(runtime),
        })
    }

    pub(super) fn target(&self) -> &CallTarget {
        &self.target
    }

    /// `describe`: who the plugin says it is.
    pub(super) fn describe(&self) -> Result<Metadata, CallFailure> {
        sandbox::call(&self.pre, &self.target, "describe", |store, instance| {
            self.plugin
                .load(&mut *store, instance)?
                .call_describe(&mut *store)
        })
    }

    /// `validate-settings`: whether the plugin accepts its manifest's
    /// settings, and why not.
    pub(super) fn validate_settings(&self) -> Result<Result<(), Vec<String>>, CallFailure> {
        sandbox::call(
            &self.pre,
            &self.target,
            "validate-settings",
            |store, instance| {
                self.plugin
                    .load(&mut *store, instance)?
                    .call_validate_settings(&mut *store)
            },
        )
    }
}

/// Why a compiled component cannot be linked.
pub(super) enum LinkError {
    /// It imports what the host does not grant.
    Imports(wasmtime::Error),
    /// An export it declares does not have the contract's shape.
    Exports(wasmtime::Error),
}

impl LinkError {
    pub(super) fn at(self, path: &std::path::Path) -> PluginError {
        match self {
            LinkError::Imports(error) => PluginError::Link {
                path: path.to_owned(),
                source: error.into(),
            },
            LinkError::Exports(error) => PluginError::NotAComponent {
                path: path.to_owned(),
                source: error.into(),
            },
        }
    }
}

/// One method on [`Plugin`] per hook: the export it calls, its arguments
/// and its answer. A hook the plugin does not export is
/// [`CallFailure::NotExported`]; chains never ask for one, as they call only
/// the plugins serving the hook.
macro_rules! typed_calls {
    ($(
        $(#[$doc:meta])*
        $method:ident($($arg:ident: $type:ty),*) -> $answer:ty = $hook:ident . $export:ident;
    )*) => {
        impl Plugin {
            $(
                $(#[$doc])*
                pub fn $method(&self, $($arg: $type),*) -> Result<$answer, CallFailure> {
                    let linked = &self.linked;
                    let indices = linked
                        .$method
                        .as_ref()
                        .ok_or(CallFailure::NotExported(Hook::$hook))?;
                    sandbox::call(&linked.pre, &linked.target, Hook::$hook.as_str(), |store, instance| {
                        indices.load(&mut *store, instance)?.$export(&mut *store, $($arg),*)
                    })
                }
            )*
        }
    };
}

typed_calls! {
    /// pre-init `check`: findings about the effective configuration (as
    /// JSON) on this node, and perhaps a merge patch.
    pre_init(config_json: &str, facts: &NodeFacts) -> PreInitAnswer = PreInit.call_check;
    /// join-decision `decide`: the next proposal after `current`, or a
    /// refusal of every outcome.
    join_decision(facts: &JoinFacts, current: &Proposal) -> Result<Proposal, String> =
        JoinDecision.call_decide;
    /// post-pki `audit`: findings about the certificate set.
    post_pki(certificates: &[Certificate]) -> Vec<Finding> = PostPki.call_audit;
    /// image-resolve `resolve`: the next image list, or a refusal.
    image_resolve(images: &[Image]) -> Result<Vec<Image>, String> = ImageResolve.call_resolve;
}
