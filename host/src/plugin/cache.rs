//! Compiled plugins cached on disk, so that only the first run pays for
//! Cranelift.
//!
//! Loading a compiled artifact is `unsafe` in wasmtime (it is machine code
//! that runs outside the sandbox's checks), so an entry is trusted only as
//! far as these checks go:
//!
//! - it is named after the `.wasm` file's sha256 and the engine's
//!   compatibility hash, and its trailer holds the sha256 of the wasm it was
//!   compiled from and a BLAKE3 checksum of the artifact and that digest: an
//!   entry copied from another plugin, or a stale one, does not match and is
//!   never loaded;
//! - it is opened once, with `O_NOFOLLOW` (a link swapped in is refused),
//!   through directories checked to be ours alone, and the *open file* is
//!   checked (`fstat`: a regular file, owned by this user, mode 0600 or
//!   stricter) and checksummed through that descriptor;
//! - the cache directory (and `cache/` above it) is created 0700 whatever
//!   the umask.
//!
//! A mismatched, truncated, foreign or unsafe entry is recompiled and
//! replaced (created afresh with `O_EXCL`), never loaded.
//!
//! An entry is the artifact followed by the trailer, so that wasmtime can
//! map the file itself: a cached load then neither copies the artifact into
//! fresh memory nor faults in every page of the copy, which was most of its
//! time (`cargo xtask bench`, "cached load step by step"). wasmtime maps
//! the descriptor that was checked (`/proc/self/fd/N`), so the file checked
//! is the file loaded.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use super::error::PluginError;
use crate::data_dir::{DataDir, DataDirView, beneath};
use crate::sha256::Sha256;

const MAGIC: &[u8; 8] = b"PLINTHC3";
/// The sha256 of the wasm compiled, the checksum, then the magic, at the
/// end of an entry.
const TRAILER_LEN: usize = 32 + 32 + MAGIC.len();
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
    /// The data dir's root; entries live in its `cache/plugins`.
    data_dir: Option<PathBuf>,
    engine_key: String,
}

impl Cache {
    /// Compiled components cached in the data dir, which this process holds.
    pub fn in_data_dir(data_dir: &DataDir, engine: &Engine) -> Self {
        Self::new(Some(data_dir.root().to_owned()), engine)
    }

    /// No cache: every load compiles (`plugins inspect`, `airgap
    /// list-images`, which touch no data dir).
    pub fn disabled(engine: &Engine) -> Self {
        Self::new(None, engine)
    }

    fn new(data_dir: Option<PathBuf>, engine: &Engine) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            data_dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The entry for a wasm with this sha256, relative to the data dir.
    fn entry_rel(&self, wasm_sha256: &Sha256) -> PathBuf {
        Path::new(DataDirView::PLUGIN_CACHE)
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_key))
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
        let entry = self
            .data_dir
            .as_deref()
            .map(|root| (root, self.entry_rel(wasm_sha256)));
        let had_entry = match entry
            .as_ref()
            .map(|(root, rel)| Self::read_entry(engine, root, rel, wasm_sha256))
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
        if let Some((root, rel)) = &entry
            && let Err(source) = write_entry(root, rel, wasm_sha256, &compiled)
        {
            // A read-only data dir costs speed, not correctness.
            tracing::warn!(entry = %root.join(rel).display(), "cannot cache compiled plugin: {source}");
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
    fn read_entry(
        engine: &Engine,
        root: &Path,
        rel: &Path,
        wasm_sha256: &Sha256,
    ) -> Result<Option<Component>, String> {
        // One open, without following a link; every check below is of this
        // descriptor, and wasmtime maps this very file.
        let Some(file) = beneath::open_existing(root, rel).map_err(|error| error.to_string())?
        else {
            return Ok(None);
        };
        let stat =
            crate::regular_file::fstat(file.as_raw_fd()).map_err(|error| error.to_string())?;
        // SAFETY of what follows rests on nobody else being able to write it.
        if stat.st_mode & 0o077 != 0 {
            return Err(format!(
                "mode {:04o} lets others read or write it; entries are 0600",
                stat.st_mode & 0o7777
            ));
        }
        let length = usize::try_from(stat.st_size).map_err(|error| error.to_string())?;
        let Some(artifact_length) = length.checked_sub(TRAILER_LEN) else {
            return Err("not a Plinth cache entry (truncated)".to_owned());
        };
        let mut reader = (&file).take(length as u64);
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
        let (compiled_from, rest) = trailer.split_at(32);
        let (checksum, magic) = rest.split_at(32);
        if magic != MAGIC {
            return Err("not a Plinth cache entry of this version".to_owned());
        }
        hasher.update(compiled_from);
        if hasher.finalize().as_bytes() != checksum {
            return Err("checksum mismatch (corrupt or truncated)".to_owned());
        }
        if compiled_from != wasm_sha256.as_bytes() {
            return Err(
                "it was compiled from another wasm file (copied from another plugin?)".to_owned(),
            );
        }
        // SAFETY: the file was written by this cache for this very wasm (its
        // sha256 in the trailer, checksum checked over the content through
        // this descriptor, a regular file only we can write, reached through
        // directories only we can write) for an engine with the same
        // compatibility hash; wasmtime re-checks the engine settings.
        // `/proc/self/fd/N` is the inode checked, not whatever the path
        // names by now. The trailer after the ELF image is outside every
        // section, where wasmtime does not look.
        let checked = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        unsafe { Component::deserialize_file(engine, &checked) }
            .map(Some)
            .map_err(|error| format!("{error:#}"))
    }
}

/// Write an entry under a temporary name, created afresh, then rename it
/// into place.
fn write_entry(
    root: &Path,
    rel: &Path,
    wasm_sha256: &Sha256,
    artifact: &[u8],
) -> std::io::Result<()> {
    let temporary = rel.with_extension(format!("tmp{}", std::process::id()));
    let mut file = beneath::create(root, &temporary, 0o600)?;
    let mut checksum = blake3::Hasher::new();
    checksum.update(artifact);
    checksum.update(wasm_sha256.as_bytes());
    file.write_all(artifact)?;
    file.write_all(wasm_sha256.as_bytes())?;
    file.write_all(checksum.finalize().as_bytes())?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    beneath::rename(root, &temporary, rel)
}
