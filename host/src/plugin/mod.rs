//! Loading WebAssembly plugins and calling them in a sandbox.
//!
//! A plugin is `NAME.wasm` (a component) with an optional `NAME.toml`
//! manifest in the `--plugins` directory. Loading compiles it once (or takes
//! it from the cache), checks its contract version, pre-links it against the
//! host imports, and calls `describe` and `validate-settings`, so that a bad
//! plugin stops the run before any phase. Each hook call then instantiates
//! the plugin afresh from its `InstancePre`.

mod allow_urls;
mod bindings;
mod cache;
pub mod contract;
mod engine;
mod error;
mod linked;
mod loaded;
mod manifest;
mod sandbox;
pub mod signature;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use allow_urls::{AllowUrls, parse_probe_url};
pub use cache::{Cache, LoadKind};
#[cfg(test)]
pub(crate) use engine::MAX_MEMORY_MIB;
pub use engine::{Allocation, Runtime};
pub use error::PluginError;
pub(crate) use loaded::MAX_WASM_BYTES;
pub use loaded::Plugin;
pub use manifest::{ClientCertificate, DEFAULT_PROBE_TIMEOUT, Manifest};
pub use sandbox::{CallFailure, CallRecord, Limits};
pub use signature::{SignaturePolicy, SignatureStatus};

use contract::Hook;

use crate::data_dir::DataDir;
use crate::journal::Entry;
use crate::phase::Summarize;

/// Every plugin of a directory, in chain order.
pub struct PluginSet {
    plugins: Vec<Plugin>,
}

impl std::fmt::Debug for PluginSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.plugins.iter().map(Plugin::name))
            .finish()
    }
}

impl PluginSet {
    /// The plugins of `dir`, none without one. With a data dir, compiled
    /// components are cached in it.
    pub fn open(
        dir: Option<&Path>,
        data_dir: Option<&DataDir>,
        signatures: &SignaturePolicy,
    ) -> Result<Self, PluginError> {
        let Some(dir) = dir else {
            return Ok(Self {
                plugins: Vec::new(),
            });
        };
        let runtime = Runtime::new()?;
        let cache = match data_dir {
            Some(data_dir) => Cache::in_data_dir(data_dir, runtime.engine()),
            None => Cache::disabled(runtime.engine()),
        };
        Self::load(&runtime, &cache, dir, signatures)
    }

    /// Load every `*.wasm` in `dir`. Order: the manifest's `order` first
    /// (lowest first), then plugins without one by file name.
    pub fn load(
        runtime: &Arc<Runtime>,
        cache: &Cache,
        dir: &Path,
        signatures: &SignaturePolicy,
    ) -> Result<Self, PluginError> {
        let mut plugins = discover(dir)?
            .iter()
            .map(|path| Plugin::load(runtime, cache, path, signatures))
            .collect::<Result<Vec<_>, _>>()?;
        plugins.sort_by(|a, b| chain_key(a).cmp(&chain_key(b)));
        Ok(Self { plugins })
    }

    pub fn all(&self) -> &[Plugin] {
        &self.plugins
    }

    /// One journal line per plugin, saying how it was loaded.
    pub(crate) fn load_entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.plugins.iter().map(Plugin::load_entry)
    }

    /// The plugins serving `hook`, in chain order.
    pub fn serving(&self, hook: Hook) -> impl Iterator<Item = &Plugin> {
        self.plugins
            .iter()
            .filter(move |plugin| plugin.hooks().contains(&hook))
    }

    /// The resolved chain of every hook, built-ins first.
    pub fn plan(&self) -> BTreeMap<Hook, Vec<&Plugin>> {
        Hook::ALL
            .iter()
            .map(|hook| (*hook, self.serving(*hook).collect()))
            .collect()
    }
}

impl Summarize for PluginSet {
    fn summary(&self) -> String {
        let cached = self
            .plugins
            .iter()
            .filter(|p| matches!(p.load_kind(), LoadKind::Cached { .. }))
            .count();
        format!(
            "{} plugin(s) loaded, {cached} from the compiled cache",
            self.plugins.len()
        )
    }
}

fn chain_key(plugin: &Plugin) -> (i64, &str) {
    (
        plugin.order().unwrap_or(i64::MAX),
        plugin
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(""),
    )
}

/// The files a plugin may have beside it, by suffix after its stem.
const COMPANIONS: [&str; 2] = [".toml", ".wasm.sig"];

/// The plugins of `dir`, sorted by name. Every entry of the directory must
/// be one of (README, "The plugin directory"):
///
/// - `NAME.wasm`, a plugin;
/// - `NAME.toml`, its manifest, or `NAME.wasm.sig`, its signature, beside
///   an existing `NAME.wasm`;
///
/// where NAME does not start with `.`, each a regular file (not a link).
/// Anything else is an error, never skipped: a policy that silently does
/// not load fails open.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    if !dir.is_dir() {
        return Err(PluginError::NoDirectory {
            path: dir.to_owned(),
        });
    }
    let io = |source| PluginError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let path = entry.path();
        let stray = |reason: &str| PluginError::StrayFile {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let kind = entry.file_type().map_err(io)?;
        if kind.is_symlink() {
            return Err(stray(
                "is a symbolic link; copy the file itself into the plugin directory",
            ));
        }
        if !kind.is_file() {
            return Err(stray(
                "is not a regular file (a directory, FIFO, socket or device)",
            ));
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(stray("has a name that is not UTF-8"));
        };
        if name.starts_with('.') {
            return Err(stray(
                "is a hidden file; a plugin's name may not start with `.`",
            ));
        }
        names.push(name);
    }
    let plugins: std::collections::BTreeSet<&str> = names
        .iter()
        .filter_map(|name| name.strip_suffix(".wasm"))
        .filter(|stem| !stem.is_empty())
        .collect();
    for name in &names {
        let belongs = name
            .strip_suffix(".wasm")
            .is_some_and(|stem| !stem.is_empty())
            || COMPANIONS.iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|stem| plugins.contains(stem))
            });
        if !belongs {
            let reason = if COMPANIONS.iter().any(|suffix| name.ends_with(suffix)) {
                "belongs to no plugin: there is no .wasm file of the same name beside it"
            } else {
                "is neither a plugin (NAME.wasm, lower case) nor a plugin's manifest (NAME.toml) or signature (NAME.wasm.sig); remove it or move it out of the plugin directory"
            };
            return Err(PluginError::StrayFile {
                path: dir.join(name),
                reason: reason.to_owned(),
            });
        }
    }
    Ok(plugins
        .iter()
        .map(|stem| dir.join(format!("{stem}.wasm")))
        .collect())
}

#[cfg(test)]
mod tests {
    fn shared_with_threads<T: Send + Sync>() {}

    /// Run mode calls plugins from tasks (readiness on a timer): a loaded
    /// plugin set must be shareable, which this fails to compile if not.
    #[test]
    fn plugins_can_be_shared_between_threads() {
        shared_with_threads::<super::Plugin>();
        shared_with_threads::<super::PluginSet>();
        shared_with_threads::<crate::data_dir::DataDir>();
    }
}
