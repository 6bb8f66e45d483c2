//! A loaded plugin: loading it (read, pin, compile or take from the cache,
//! check the contract, link, describe, validate its settings) and calling
//! it, one typed call per hook.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::allow_urls::AllowUrls;
use super::cache::{Cache, LoadKind};
use super::contract::{
    CONTRACT_VERSION, Certificate, CheckSpec, FailurePolicy, Finding, Hook, Image, JoinFacts,
    Metadata, NodeFacts, Observation, PreInitAnswer, ProbeResult, Proposal,
};
use super::engine::Runtime;
use super::error::PluginError;
use super::linked::Linked;
use super::manifest::{ClientCertificate, Manifest};
use super::sandbox::{self, CallFailure, CallRecord, CallTarget, Limits};
use super::signature::{SignaturePolicy, SignatureStatus};
use crate::journal::{Entry, LogDropped, Verdict};
use crate::phase::Phase;
use crate::sha256::Sha256;

/// The largest plugin file read: a componentize-py plugin, the Python
/// interpreter inside, is about 40 MiB.
pub(crate) const MAX_WASM_BYTES: u64 = 256 << 20;
/// Longest metadata field or settings message accepted at load.
const MAX_METADATA_BYTES: usize = 4096;
/// Most settings messages accepted from `validate-settings`.
const MAX_SETTING_MESSAGES: usize = 1000;

/// A loaded plugin that described itself and accepted its settings.
pub struct Plugin {
    /// The file stem, e.g. `10-cert-audit`; names the plugin in logs.
    name: String,
    path: PathBuf,
    sha256: Sha256,
    size: u64,
    manifest: Manifest,
    metadata: Metadata,
    /// Hooks the component exports.
    exported: BTreeSet<Hook>,
    /// Hooks it serves: the exported ones, narrowed by the manifest.
    hooks: BTreeSet<Hook>,
    load: LoadKind,
    /// Log lines `describe` and `validate-settings` wrote past their budget.
    load_log_dropped: Option<LogDropped>,
    signature: SignatureStatus,
    linked: Linked,
}

impl Plugin {
    /// Load one plugin file, with its manifest beside it: compile it (or
    /// take it from `cache`), check its contract, link it, and ask it to
    /// describe itself and validate its settings. Its signature is checked
    /// against `signatures` before anything else is done with its bytes.
    /// The plugin keeps `runtime` alive, and with it the clock that
    /// enforces its deadlines.
    pub fn load(
        runtime: &Arc<Runtime>,
        cache: &Cache,
        path: &Path,
        signatures: &SignaturePolicy,
    ) -> Result<Self, PluginError> {
        Self::load_with_manifest(
            runtime,
            cache,
            path,
            &path.with_extension("toml"),
            signatures,
        )
    }

    /// [`Plugin::load`] with the manifest read from `manifest` rather than
    /// from beside the file (`plugins invoke --manifest`).
    pub fn load_with_manifest(
        runtime: &Arc<Runtime>,
        cache: &Cache,
        path: &Path,
        manifest: &Path,
        signatures: &SignaturePolicy,
    ) -> Result<Self, PluginError> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = Manifest::read(manifest)?;
        let wasm =
            crate::regular_file::read(path, MAX_WASM_BYTES).map_err(|source| PluginError::Io {
                path: path.to_owned(),
                source,
            })?;
        let signature = signatures.check(path, &wasm)?;
        let sha256 = Sha256::of(&wasm);
        if let Some(expected) = manifest.sha256
            && expected != sha256
        {
            return Err(PluginError::PinMismatch {
                path: path.to_owned(),
                expected,
                actual: sha256,
            });
        }
        if wasm.is_empty() {
            return Err(PluginError::Empty {
                path: path.to_owned(),
            });
        }
        let (component, load) = cache.load(runtime.engine(), &wasm, &sha256, path)?;
        let exported = exported_hooks(runtime.engine(), &component, path)?;
        let hooks = match &manifest.hooks {
            Some(narrowed) => exported.intersection(narrowed).copied().collect(),
            None => exported.clone(),
        };
        let target = CallTarget::new(&name, manifest.settings.clone(), manifest.limits());
        let linked =
            Linked::new(runtime, &component, &exported, target).map_err(|error| error.at(path))?;
        let metadata = describe(&linked)?;
        validate_settings(&linked)?;
        let load_log_dropped = linked.target.take_log_dropped();
        Ok(Self {
            name,
            path: path.to_owned(),
            sha256,
            size: wasm.len() as u64,
            manifest,
            metadata,
            exported,
            hooks,
            load,
            load_log_dropped,
            signature,
            linked,
        })
    }

    /// The file stem, e.g. `10-cert-audit`: how logs, the journal and
    /// errors name the plugin.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The digest of the `.wasm` file.
    pub fn sha256(&self) -> Sha256 {
        self.sha256
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// What the plugin's `describe` answered.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Hooks the component exports.
    pub(crate) fn exported(&self) -> &BTreeSet<Hook> {
        &self.exported
    }

    /// Hooks it serves: the exported ones, narrowed by the manifest.
    pub fn hooks(&self) -> &BTreeSet<Hook> {
        &self.hooks
    }

    /// How the component came to be ready, and how long it took.
    pub fn load_kind(&self) -> LoadKind {
        self.load
    }

    /// What the last call of any of its exports cost.
    pub fn last_call(&self) -> Option<CallRecord> {
        *self
            .linked
            .target
            .last_call
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Who signed the file, if anyone was asked to.
    pub fn signature(&self) -> &SignatureStatus {
        &self.signature
    }

    /// Its position in every chain, when the manifest sets one.
    pub fn order(&self) -> Option<i64> {
        self.manifest.order
    }

    pub(crate) fn failure_policy(&self) -> FailurePolicy {
        self.manifest.failure_policy.unwrap_or_default()
    }

    pub(crate) fn limits(&self) -> Limits {
        self.linked.target.limits
    }

    /// Log lines its calls wrote past their budget since this was last
    /// asked: the chain journals them with the call.
    pub(crate) fn take_log_dropped(&self) -> Option<LogDropped> {
        self.linked.target.take_log_dropped()
    }

    /// Whether the manifest lets this plugin add or drop images.
    pub fn may_change_image_set(&self) -> bool {
        self.manifest.allow_image_set_change.unwrap_or(false)
    }

    /// The URLs the manifest lets this plugin's readiness checks probe.
    pub(crate) fn allow_urls(&self) -> &AllowUrls {
        &self.manifest.allow_urls
    }

    /// The client certificate the host presents on this plugin's probes.
    pub(crate) fn client_certificate(&self) -> Option<ClientCertificate> {
        self.manifest.client_certificate
    }

    /// How long one probe of this plugin's readiness checks may take.
    pub(crate) fn probe_timeout(&self) -> std::time::Duration {
        self.manifest.probe_timeout()
    }

    /// The manifest beside the plugin (which may not exist).
    pub(crate) fn manifest_path(&self) -> PathBuf {
        self.path.with_extension("toml")
    }

    /// The journal line saying how this plugin was loaded.
    pub(crate) fn load_entry(&self) -> Entry {
        let mut entry = Entry::new(Phase::Plugins, self.name.as_str(), Verdict::Event)
            .took(self.load.elapsed());
        entry.sha256 = Some(self.sha256);
        entry.log_dropped = self.load_log_dropped;
        let hooks: Vec<_> = self.hooks.iter().map(|hook| hook.as_str()).collect();
        entry.detail(
            serde_json::json!({"load": self.load, "hooks": hooks, "metadata": self.metadata, "signature": self.signature}),
        )
    }
}

/// Ask a freshly linked plugin who it is; a name is required and no field
/// may be huge.
fn describe(linked: &Linked) -> Result<Metadata, PluginError> {
    let metadata = linked
        .describe()
        .map_err(|failure| failed(linked, "describe", failure))?;
    let fields = [&metadata.name, &metadata.version, &metadata.description];
    if metadata.name.trim().is_empty()
        || fields.iter().any(|field| field.len() > MAX_METADATA_BYTES)
    {
        return Err(malformed(
            linked,
            "describe",
            "a name is required, and each field may have at most 4 KiB",
        ));
    }
    Ok(metadata)
}

/// Have a freshly linked plugin check its settings, so a bad one stops the
/// run at load rather than mid-bootstrap.
fn validate_settings(linked: &Linked) -> Result<(), PluginError> {
    let verdict = linked
        .validate_settings()
        .map_err(|failure| failed(linked, "validate-settings", failure))?;
    let plugin = || linked.target.plugin.to_string();
    match verdict {
        Ok(()) => Ok(()),
        Err(messages)
            if messages.len() > MAX_SETTING_MESSAGES
                || messages.iter().any(|m| m.len() > MAX_METADATA_BYTES) =>
        {
            Err(malformed(
                linked,
                "validate-settings",
                "at most 1000 messages of at most 4 KiB each are accepted",
            ))
        }
        Err(messages) if messages.is_empty() => Err(PluginError::BadSettings {
            plugin: plugin(),
            messages: vec!["(the plugin gave no reason)".to_owned()],
        }),
        Err(messages) => Err(PluginError::BadSettings {
            plugin: plugin(),
            messages,
        }),
    }
}

fn failed(linked: &Linked, function: &'static str, failure: CallFailure) -> PluginError {
    PluginError::Failed {
        plugin: linked.target.plugin.to_string(),
        function,
        failure,
    }
}

fn malformed(linked: &Linked, function: &'static str, message: &str) -> PluginError {
    failed(linked, function, CallFailure::Malformed(message.to_owned()))
}

/// The hooks `component` exports, after checking that it is a plugin of
/// this contract version.
fn exported_hooks(
    engine: &Engine,
    component: &Component,
    path: &Path,
) -> Result<BTreeSet<Hook>, PluginError> {
    const PACKAGE: &str = "plinth:bootstrap/";
    let mut hooks = BTreeSet::new();
    let mut is_plugin = false;
    for (name, _) in component.component_type().exports(engine) {
        let Some(qualified) = name.strip_prefix(PACKAGE) else {
            continue;
        };
        let (interface, version) = qualified.split_once('@').unwrap_or((qualified, ""));
        if version != CONTRACT_VERSION {
            return Err(PluginError::ContractMismatch {
                path: path.to_owned(),
                found: version.to_owned(),
            });
        }
        match interface.parse::<Hook>() {
            Ok(hook) => {
                hooks.insert(hook);
            }
            Err(_) if interface == "plugin" => is_plugin = true,
            Err(_) => {}
        }
    }
    if !is_plugin {
        return Err(PluginError::NotAPlugin {
            path: path.to_owned(),
        });
    }
    Ok(hooks)
}

/// One method on [`Plugin`] per call of a hook: the export indices it goes
/// through (one set per hook), the export it calls, its arguments and its
/// answer. A hook the plugin does not export is [`CallFailure::NotExported`];
/// chains never ask for one, as they call only the plugins serving the hook.
macro_rules! typed_calls {
    ($(
        $(#[$doc:meta])*
        $method:ident($($arg:ident: $type:ty),*) -> $answer:ty = $hook:ident: $indices:ident . $export:ident;
    )*) => {
        impl Plugin {
            $(
                $(#[$doc])*
                pub fn $method(&self, $($arg: $type),*) -> Result<$answer, CallFailure> {
                    let linked = &self.linked;
                    let indices = linked
                        .$indices
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
    pre_init(config_json: &str, facts: &NodeFacts) -> PreInitAnswer =
        PreInit: pre_init.call_check;
    /// join-decision `decide`: the next proposal after `current`, or a
    /// refusal of every outcome.
    join_decision(facts: &JoinFacts, current: &Proposal) -> Result<Proposal, String> =
        JoinDecision: join_decision.call_decide;
    /// post-pki `audit`: findings about the certificate set.
    post_pki(certificates: &[Certificate]) -> Vec<Finding> = PostPki: post_pki.call_audit;
    /// image-resolve `resolve`: the next image list, or a refusal.
    image_resolve(images: &[Image]) -> Result<Vec<Image>, String> =
        ImageResolve: image_resolve.call_resolve;
    /// readiness `checks`: the checks the plugin wants run (once per run).
    readiness_checks() -> Vec<CheckSpec> = Readiness: readiness.call_checks;
    /// readiness `evaluate`: the plugin's verdict on one observation of
    /// its check `check`.
    readiness_evaluate(check: &str, seen: &Observation) -> ProbeResult =
        Readiness: readiness.call_evaluate;
}
