//! Loading WebAssembly plugins and calling them in a sandbox.
//!
//! A plugin is `NAME.wasm` (a component) with an optional `NAME.toml`
//! manifest in the `--plugins` directory. Loading compiles it once (or takes
//! it from the cache), checks its contract version, pre-links it against the
//! host imports, and calls `describe` and `validate-settings`, so that a bad
//! plugin stops the run before any phase. Each hook call then instantiates
//! the plugin afresh from its `InstancePre`.

pub mod bindings;
mod cache;
mod contract;
mod engine;
mod manifest;
mod sandbox;
pub mod signature;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Store;
use wasmtime::component::{Instance, InstancePre};

pub use bindings::plinth::bootstrap::types::{Finding, Metadata, Severity};
pub use cache::{Cache, LoadKind};
pub use contract::CONTRACT_VERSION;
pub use engine::{Allocation, Runtime};
pub use manifest::Manifest;
pub use sandbox::{CallFailure, Limits};

use bindings::exports::plinth::bootstrap as exports;
use sandbox::{CallTarget, Sandbox};

use crate::hooks::{FailurePolicy, Hook};
use crate::journal::{Entry, Verdict};

/// Longest metadata field or settings message accepted at load.
const MAX_METADATA_BYTES: usize = 4096;
/// Most settings messages accepted from `validate-settings`.
const MAX_SETTING_MESSAGES: usize = 1000;

/// Where compiled plugins are cached, relative to the data dir.
pub const CACHE_DIR: &str = "cache/plugins";

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("plugin directory {path} does not exist or is not a directory; check --plugins")]
    NoDirectory { path: PathBuf },
    #[error("invalid plugin manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error(
        "{path} is not a WebAssembly component: {message}; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
    )]
    NotAComponent { path: PathBuf, message: String },
    #[error(
        "{path} does not export plinth:bootstrap/plugin@{CONTRACT_VERSION}, so it is not a Plinth plugin"
    )]
    NotAPlugin { path: PathBuf },
    #[error(
        "{path} was built against plinth:bootstrap@{found}; this Plinth speaks {CONTRACT_VERSION}: rebuild the plugin against wit/ of this version"
    )]
    ContractMismatch { path: PathBuf, found: String },
    #[error("{path} needs imports this host does not grant: {message}")]
    Link { path: PathBuf, message: String },
    #[error("{path} has sha256 {actual} but its manifest pins {expected}; refusing to load it")]
    PinMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("plugin {plugin} rejected its settings: {}", messages.join("; "))]
    BadSettings {
        plugin: String,
        messages: Vec<String>,
    },
    #[error("plugin {plugin} failed in {hook}: {failure}")]
    Failed {
        plugin: String,
        hook: &'static str,
        failure: CallFailure,
    },
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

impl PluginError {
    fn engine(error: wasmtime::Error) -> Self {
        Self::Engine(error.to_string())
    }

    pub fn exit_code(&self) -> crate::ExitCode {
        use crate::ExitCode;
        match self {
            // Everything else, a failure in describe or validate-settings
            // included, happens at load: the plugin directory is unusable as
            // given, which is the operator's to fix before any phase runs.
            Self::Engine(_) => ExitCode::Internal,
            _ => ExitCode::Usage,
        }
    }
}

/// Export indices resolved once per plugin, so a call only instantiates.
struct Exports {
    plugin: exports::plugin::GuestIndices,
    pre_init: Option<exports::pre_init::GuestIndices>,
    join_decision: Option<exports::join_decision::GuestIndices>,
    post_pki: Option<exports::post_pki::GuestIndices>,
    image_resolve: Option<exports::image_resolve::GuestIndices>,
    // Readiness runs in run mode, which this build does not have: its
    // export is recognised (for `plugins plan`) but never called.
}

/// A loaded, validated plugin.
pub struct Plugin {
    /// The file stem, e.g. `10-cert-audit`; names the plugin in logs.
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub manifest: Manifest,
    pub metadata: Metadata,
    /// Hooks the component exports.
    pub exported: BTreeSet<Hook>,
    /// Hooks it serves: the exported ones, narrowed by the manifest.
    pub hooks: BTreeSet<Hook>,
    pub load: LoadKind,
    target: CallTarget,
    pre: InstancePre<Sandbox>,
    exports: Exports,
}

impl Plugin {
    /// Load one plugin file, with its manifest beside it.
    pub fn load(runtime: &Runtime, cache: &Cache, path: &Path) -> Result<Self, PluginError> {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = Manifest::read(&path.with_extension("toml"))?;
        let wasm = std::fs::read(path).map_err(|source| PluginError::Io {
            path: path.to_owned(),
            source,
        })?;
        let sha256 = hex::encode(Sha256::digest(&wasm));
        if let Some(expected) = &manifest.sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(PluginError::PinMismatch {
                path: path.to_owned(),
                expected: expected.clone(),
                actual: sha256,
            });
        }
        if wasm.is_empty() {
            return Err(PluginError::NotAComponent {
                path: path.to_owned(),
                message: "the file is empty".to_owned(),
            });
        }
        let (component, load) = cache.load(runtime.engine(), &wasm, &sha256, path)?;
        let exported = contract::exported_hooks(runtime.engine(), &component, path)?;
        let pre = runtime
            .linker()
            .instantiate_pre(&component)
            .map_err(|error| PluginError::Link {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
        let exports =
            Exports::resolve(&pre, &exported).map_err(|error| PluginError::NotAComponent {
                path: path.to_owned(),
                message: error.to_string(),
            })?;
        let hooks = match &manifest.hooks {
            Some(narrowed) => exported.intersection(narrowed).copied().collect(),
            None => exported.clone(),
        };
        let target = CallTarget {
            plugin: Arc::from(name.as_str()),
            settings: Arc::new(manifest.settings.clone()),
            limits: manifest.limits(),
        };
        let mut plugin = Self {
            name,
            path: path.to_owned(),
            sha256,
            size: wasm.len() as u64,
            manifest,
            metadata: Metadata {
                name: String::new(),
                version: String::new(),
                description: String::new(),
            },
            exported,
            hooks,
            load,
            target,
            pre,
            exports,
        };
        plugin.metadata = plugin.describe()?;
        plugin.validate_settings()?;
        Ok(plugin)
    }

    /// The journal line saying how this plugin was loaded.
    pub fn load_entry(&self) -> Entry {
        let mut entry =
            Entry::new("plugins", self.name.as_str(), Verdict::Event).took(self.load.elapsed());
        entry.sha256 = Some(self.sha256.clone());
        let hooks: Vec<_> = self.hooks.iter().map(|hook| hook.as_str()).collect();
        entry.detail(
            serde_json::json!({"load": self.load, "hooks": hooks, "metadata": self.metadata}),
        )
    }

    pub fn failure_policy(&self) -> FailurePolicy {
        self.manifest.failure_policy.unwrap_or_default()
    }

    pub fn limits(&self) -> Limits {
        self.target.limits
    }

    /// Whether the manifest lets this plugin add or drop images.
    pub fn may_change_image_set(&self) -> bool {
        self.manifest.allow_image_set_change.unwrap_or(false)
    }

    fn describe(&self) -> Result<Metadata, PluginError> {
        let metadata = self.call_plugin("describe", |store, instance, exports| {
            exports
                .plugin
                .load(&mut *store, instance)?
                .call_describe(&mut *store)
        })?;
        let fields = [&metadata.name, &metadata.version, &metadata.description];
        if metadata.name.trim().is_empty()
            || fields.iter().any(|field| field.len() > MAX_METADATA_BYTES)
        {
            return Err(self.malformed(
                "describe",
                "a name is required, and each field may have at most 4 KiB",
            ));
        }
        Ok(metadata)
    }

    fn validate_settings(&self) -> Result<(), PluginError> {
        let verdict = self.call_plugin("validate-settings", |store, instance, exports| {
            exports
                .plugin
                .load(&mut *store, instance)?
                .call_validate_settings(&mut *store)
        })?;
        match verdict {
            Ok(()) => Ok(()),
            Err(messages)
                if messages.len() > MAX_SETTING_MESSAGES
                    || messages.iter().any(|m| m.len() > MAX_METADATA_BYTES) =>
            {
                Err(self.malformed(
                    "validate-settings",
                    "at most 1000 messages of at most 4 KiB each are accepted",
                ))
            }
            Err(messages) if messages.is_empty() => Err(PluginError::BadSettings {
                plugin: self.name.clone(),
                messages: vec!["(the plugin gave no reason)".to_owned()],
            }),
            Err(messages) => Err(PluginError::BadSettings {
                plugin: self.name.clone(),
                messages,
            }),
        }
    }

    fn malformed(&self, hook: &'static str, message: &str) -> PluginError {
        PluginError::Failed {
            plugin: self.name.clone(),
            hook,
            failure: CallFailure::Malformed(message.to_owned()),
        }
    }

    fn call_plugin<R>(
        &self,
        function: &'static str,
        body: impl FnOnce(&mut Store<Sandbox>, &Instance, &Exports) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        sandbox::call(&self.pre, &self.target, function, |store, instance| {
            body(store, instance, &self.exports)
        })
        .map_err(|failure| PluginError::Failed {
            plugin: self.name.clone(),
            hook: function,
            failure,
        })
    }

    /// Call one hook export in a fresh instance.
    pub(crate) fn call_hook<R>(
        &self,
        hook: Hook,
        body: impl FnOnce(&mut Store<Sandbox>, &Instance, &HookExports<'_>) -> wasmtime::Result<R>,
    ) -> Result<R, CallFailure> {
        let exports = HookExports(&self.exports);
        sandbox::call(&self.pre, &self.target, hook.as_str(), |store, instance| {
            body(store, instance, &exports)
        })
    }
}

/// The hook exports of a plugin, for the adapters in `hooks/`. A hook that
/// is not exported yields an error, which the chain never asks for because it
/// only calls plugins serving the hook.
pub(crate) struct HookExports<'a>(&'a Exports);

macro_rules! hook_export {
    ($method:ident, $field:ident, $module:ident, $hook:expr) => {
        pub(crate) fn $method(
            &self,
            store: &mut Store<Sandbox>,
            instance: &Instance,
        ) -> wasmtime::Result<exports::$module::Guest> {
            let indices = self
                .0
                .$field
                .as_ref()
                .ok_or_else(|| wasmtime::format_err!("does not export {}", $hook))?;
            indices.load(store, instance)
        }
    };
}

impl HookExports<'_> {
    hook_export!(pre_init, pre_init, pre_init, "pre-init");
    hook_export!(join_decision, join_decision, join_decision, "join-decision");
    hook_export!(post_pki, post_pki, post_pki, "post-pki");
    hook_export!(image_resolve, image_resolve, image_resolve, "image-resolve");
}

impl Exports {
    fn resolve(pre: &InstancePre<Sandbox>, exported: &BTreeSet<Hook>) -> wasmtime::Result<Self> {
        let has = |hook| exported.contains(&hook);
        Ok(Self {
            plugin: exports::plugin::GuestIndices::new(pre)?,
            pre_init: has(Hook::PreInit)
                .then(|| exports::pre_init::GuestIndices::new(pre))
                .transpose()?,
            join_decision: has(Hook::JoinDecision)
                .then(|| exports::join_decision::GuestIndices::new(pre))
                .transpose()?,
            post_pki: has(Hook::PostPki)
                .then(|| exports::post_pki::GuestIndices::new(pre))
                .transpose()?,
            image_resolve: has(Hook::ImageResolve)
                .then(|| exports::image_resolve::GuestIndices::new(pre))
                .transpose()?,
        })
    }
}

/// Every plugin of a directory, in chain order.
pub struct PluginSet {
    plugins: Vec<Plugin>,
    /// Kept alive with the plugins: its epoch thread enforces their deadlines.
    _runtime: Option<Runtime>,
}

impl PluginSet {
    pub fn empty() -> Self {
        Self {
            plugins: Vec::new(),
            _runtime: None,
        }
    }

    /// Load every `*.wasm` in `dir`. Order: the manifest's `order` first
    /// (lowest first), then plugins without one by file name.
    pub fn load(runtime: Runtime, cache: &Cache, dir: &Path) -> Result<Self, PluginError> {
        let mut plugins = discover(dir)?
            .iter()
            .map(|path| Plugin::load(&runtime, cache, path))
            .collect::<Result<Vec<_>, _>>()?;
        plugins.sort_by(|a, b| chain_key(a).cmp(&chain_key(b)));
        Ok(Self {
            plugins,
            _runtime: Some(runtime),
        })
    }

    pub fn all(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The plugins serving `hook`, in chain order.
    pub fn serving(&self, hook: Hook) -> impl Iterator<Item = &Plugin> {
        self.plugins
            .iter()
            .filter(move |plugin| plugin.hooks.contains(&hook))
    }

    /// The resolved chain of every hook, built-ins first.
    pub fn plan(&self) -> BTreeMap<Hook, Vec<&Plugin>> {
        Hook::ALL
            .iter()
            .map(|hook| (*hook, self.serving(*hook).collect()))
            .collect()
    }
}

fn chain_key(plugin: &Plugin) -> (i64, &str) {
    (
        plugin.manifest.order.unwrap_or(i64::MAX),
        plugin
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(""),
    )
}

/// The `*.wasm` files of `dir`, sorted by name.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    if !dir.is_dir() {
        return Err(PluginError::NoDirectory {
            path: dir.to_owned(),
        });
    }
    let entries = std::fs::read_dir(dir).map_err(|source| PluginError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| PluginError::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|ext| ext == "wasm") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
