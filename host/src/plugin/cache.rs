//! Compiled plugins cached on disk, so that only the first run pays for
//! Cranelift.
//!
//! An entry is named after the `.wasm` file's sha256 and the engine's
//! compatibility hash, so a new wasm or a new Plinth never loads a stale
//! artifact. Loading a compiled artifact is `unsafe` in wasmtime (it is
//! machine code), so each entry carries a sha256 of itself, written by us,
//! and the exact bytes checked are the bytes deserialised. A mismatched,
//! truncated or foreign entry is recompiled and replaced, never loaded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

use super::error::PluginError;
use crate::data_dir::DataDir;
use crate::sha256::Sha256;

const MAGIC: &[u8; 8] = b"PLINTHC1";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// How a component came to be ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum LoadKind {
    /// Compiled from the wasm; the artifact was then cached.
    Compiled { micros: u128 },
    /// Loaded from the cache.
    Cached { micros: u128 },
    /// The cache entry failed its checks; compiled again and replaced.
    Recompiled { micros: u128 },
}

impl LoadKind {
    pub fn elapsed(self) -> Duration {
        let (LoadKind::Compiled { micros }
        | LoadKind::Cached { micros }
        | LoadKind::Recompiled { micros }) = self;
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }
}

/// A directory of compiled components; without one, every load compiles.
pub struct Cache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl Cache {
    /// Compiled components cached in the data dir, which this process holds.
    pub fn in_data_dir(data_dir: &DataDir, engine: &Engine) -> Self {
        Self::new(Some(data_dir.plugin_cache_dir()), engine)
    }

    /// No cache: every load compiles (`plugins inspect`, `airgap
    /// list-images`, which touch no data dir).
    pub fn disabled(engine: &Engine) -> Self {
        Self::new(None, engine)
    }

    fn new(dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// Where the entry for a wasm with this sha256 lives, if caching is on.
    pub(crate) fn entry_path(&self, wasm_sha256: &Sha256) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{wasm_sha256}-{}.cwasm", self.engine_key)))
    }

    /// The component for `wasm` (whose sha256 is `wasm_sha256`), from the
    /// cache when a sound entry exists, compiled and cached otherwise.
    pub fn load(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha256: &Sha256,
        origin: &Path,
    ) -> Result<(Component, LoadKind), PluginError> {
        let started = Instant::now();
        let entry = self.entry_path(wasm_sha256);
        let had_entry = match entry
            .as_deref()
            .map(|entry| Self::read_entry(engine, entry))
        {
            Some(Ok(Some(component))) => {
                return Ok((
                    component,
                    LoadKind::Cached {
                        micros: started.elapsed().as_micros(),
                    },
                ));
            }
            Some(Ok(None)) | None => false,
            Some(Err(reason)) => {
                tracing::warn!(plugin = %origin.display(), "ignoring cached compiled plugin: {reason}; recompiling");
                true
            }
        };
        let compiled =
            engine
                .precompile_component(wasm)
                .map_err(|error| PluginError::NotAComponent {
                    path: origin.to_owned(),
                    source: error.into(),
                })?;
        // SAFETY: these bytes were produced by this engine a moment ago.
        let component = unsafe { Component::deserialize(engine, &compiled) }.map_err(|error| {
            PluginError::NotAComponent {
                path: origin.to_owned(),
                source: error.into(),
            }
        })?;
        if let (Some(dir), Some(entry)) = (&self.dir, &entry)
            && let Err(source) = write_entry(dir, entry, &compiled)
        {
            // A read-only data dir costs speed, not correctness.
            tracing::warn!(entry = %entry.display(), "cannot cache compiled plugin: {source}");
        }
        let micros = started.elapsed().as_micros();
        Ok((
            component,
            if had_entry {
                LoadKind::Recompiled { micros }
            } else {
                LoadKind::Compiled { micros }
            },
        ))
    }

    /// `Ok(None)` when there is no entry; `Err` when there is one we refuse.
    fn read_entry(engine: &Engine, entry: &Path) -> Result<Option<Component>, String> {
        let bytes = match std::fs::read(entry) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        let metadata = std::fs::metadata(entry).map_err(|error| error.to_string())?;
        // SAFETY of what follows rests on nobody else being able to write it.
        if metadata.mode() & 0o022 != 0 || metadata.uid() != effective_uid() {
            return Err(format!(
                "mode {:o} or owner is not ours",
                metadata.mode() & 0o777
            ));
        }
        if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
            return Err("not a Plinth cache entry".to_owned());
        }
        let (header, artifact) = bytes.split_at(HEADER_LEN);
        if Sha256::of(artifact).as_bytes() != &header[MAGIC.len()..] {
            return Err("checksum mismatch (corrupt or truncated)".to_owned());
        }
        if Engine::detect_precompiled(artifact) != Some(Precompiled::Component) {
            return Err("not a compiled component for this engine".to_owned());
        }
        // SAFETY: the artifact was written by this cache (checksum over the
        // exact bytes loaded, file only writable by us) for an engine with the
        // same compatibility hash; wasmtime re-checks the engine settings.
        unsafe { Component::deserialize(engine, artifact) }
            .map(Some)
            .map_err(|error| error.to_string())
    }
}

fn write_entry(dir: &Path, entry: &Path, artifact: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let temporary = entry.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(MAGIC)?;
    file.write_all(Sha256::of(artifact).as_bytes())?;
    file.write_all(artifact)?;
    file.sync_all()?;
    std::fs::rename(&temporary, entry)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
