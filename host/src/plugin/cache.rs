//! Compiled plugins cached on disk, so that only the first run pays for
//! Cranelift.
//!
//! An entry is named after the `.wasm` file's sha256 and the engine's
//! compatibility hash, so a new wasm or a new Plinth never loads a stale
//! artifact. Loading a compiled artifact is `unsafe` in wasmtime (it is
//! machine code), so each entry ends with a BLAKE3 checksum of itself,
//! written by us, and is loaded only from a file only we can write. A
//! mismatched, truncated or foreign entry is recompiled and replaced, never
//! loaded.
//!
//! An entry is the artifact followed by a trailer (checksum, magic), so
//! that wasmtime can map the file itself: a cached load then neither
//! copies the artifact into fresh memory nor faults in every page of the
//! copy, which was most of its time (`cargo xtask bench`,
//! "cached load step by step"). The checksum is read through the same open
//! file that wasmtime maps (`/proc/self/fd/N`), so the file checked is the
//! file loaded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginError;
use crate::data_dir::DataDir;
use crate::sha256::Sha256;

const MAGIC: &[u8; 8] = b"PLINTHC2";
/// The checksum, then the magic, at the end of an entry.
const TRAILER_LEN: usize = 32 + MAGIC.len();
/// Bytes read at a time while checksumming an entry: small enough that the
/// buffer's own page faults cost nothing (a 1 MiB buffer, faulted in anew
/// on every load, was half the time of a cached load of a Rust plugin).
const CHUNK: usize = 64 << 10;

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
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(entry)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        let metadata = file.metadata().map_err(|error| error.to_string())?;
        // SAFETY of what follows rests on nobody else being able to write it.
        if !metadata.is_file() || metadata.mode() & 0o022 != 0 || metadata.uid() != effective_uid()
        {
            return Err(format!(
                "mode {:o} or owner is not ours",
                metadata.mode() & 0o777
            ));
        }
        let length = usize::try_from(metadata.len()).map_err(|error| error.to_string())?;
        let Some(artifact_length) = length.checked_sub(TRAILER_LEN) else {
            return Err("not a Plinth cache entry (truncated)".to_owned());
        };
        let mut reader = (&file).take(metadata.len());
        let mut hasher = blake3::Hasher::new();
        let mut chunk = vec![0; CHUNK];
        let mut remaining = artifact_length;
        while remaining > 0 {
            let wanted = remaining.min(CHUNK);
            reader
                .read_exact(&mut chunk[..wanted])
                .map_err(|error| format!("cannot read it: {error}"))?;
            hasher.update(&chunk[..wanted]);
            remaining -= wanted;
        }
        let mut trailer = [0; TRAILER_LEN];
        reader
            .read_exact(&mut trailer)
            .map_err(|error| format!("cannot read it: {error}"))?;
        if &trailer[32..] != MAGIC {
            return Err("not a Plinth cache entry".to_owned());
        }
        if hasher.finalize().as_bytes() != &trailer[..32] {
            return Err("checksum mismatch (corrupt or truncated)".to_owned());
        }
        // SAFETY: the file was written by this cache (checksum checked over
        // its content through this descriptor, file only writable by us) for
        // an engine with the same compatibility hash; wasmtime re-checks the
        // engine settings. `/proc/self/fd/N` is the inode checked, not
        // whatever the path names by now. The trailer after the ELF image
        // is outside every section, where wasmtime does not look.
        let checked = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        unsafe { Component::deserialize_file(engine, &checked) }
            .map(Some)
            .map_err(|error| format!("{error:#}"))
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
    file.write_all(artifact)?;
    file.write_all(blake3::hash(artifact).as_bytes())?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    std::fs::rename(&temporary, entry)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
