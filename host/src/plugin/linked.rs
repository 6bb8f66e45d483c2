//! A compiled component linked against the host imports, with the indices
//! of its exports resolved once, so a call only instantiates it (in a fresh
//! sandbox, [`sandbox::call`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{Component, InstancePre};

use super::bindings::exports::plinth::bootstrap as exports;
use super::contract::{Hook, Metadata};
use super::engine::Runtime;
use super::error::PluginError;
use super::sandbox::{self, CallFailure, CallTarget, Sandbox};

/// A component linked against the host imports, with its exports resolved
/// once, so a call only instantiates.
pub(super) struct Linked {
    pub(super) pre: InstancePre<Sandbox>,
    pub(super) target: CallTarget,
    plugin: exports::plugin::GuestIndices,
    pub(super) pre_init: Option<exports::pre_init::GuestIndices>,
    pub(super) join_decision: Option<exports::join_decision::GuestIndices>,
    pub(super) post_pki: Option<exports::post_pki::GuestIndices>,
    pub(super) image_resolve: Option<exports::image_resolve::GuestIndices>,
    /// Both readiness calls (`checks`, `evaluate`) go through these.
    pub(super) readiness: Option<exports::readiness::GuestIndices>,
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
        Ok(Self {
            plugin: exports::plugin::GuestIndices::new(&pre).map_err(LinkError::Exports)?,
            pre_init: if_exported(has(Hook::PreInit), || {
                exports::pre_init::GuestIndices::new(&pre)
            })?,
            join_decision: if_exported(has(Hook::JoinDecision), || {
                exports::join_decision::GuestIndices::new(&pre)
            })?,
            post_pki: if_exported(has(Hook::PostPki), || {
                exports::post_pki::GuestIndices::new(&pre)
            })?,
            image_resolve: if_exported(has(Hook::ImageResolve), || {
                exports::image_resolve::GuestIndices::new(&pre)
            })?,
            readiness: if_exported(has(Hook::Readiness), || {
                exports::readiness::GuestIndices::new(&pre)
            })?,
            pre,
            target,
            _runtime: Arc::clone(runtime),
        })
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

/// The indices of an export the component declares, resolved.
fn if_exported<T>(
    exported: bool,
    resolve: impl FnOnce() -> wasmtime::Result<T>,
) -> Result<Option<T>, LinkError> {
    exported
        .then(resolve)
        .transpose()
        .map_err(LinkError::Exports)
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
