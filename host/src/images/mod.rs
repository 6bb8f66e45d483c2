//! Component images: the catalog of defaults, explicit overrides, and the
//! lock file of what a bootstrap resolved.

mod catalog;
pub mod reference;

pub use catalog::{Activation, Catalog, CatalogEntry};

use crate::config::{Config, ImageOverride, PullPolicy};
use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::journal::{Entry, Verdict};
use crate::phase::Phase;
use crate::plugin::contract::{Image, Origin, PullPolicy as WirePullPolicy};
use crate::stage::{Stage, StageError};

#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(
        "invalid config {origin}: spec.images.{component}: no such component in the image catalog of Plinth {version}; known: {known}"
    )]
    UnknownComponent {
        origin: String,
        component: String,
        version: String,
        known: String,
    },
    #[error("invalid config {origin}: spec.images.{component}.{field}: {message}")]
    BadOverride {
        origin: String,
        component: String,
        field: &'static str,
        message: String,
    },
}

impl ImagesError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Invalid
    }
}

/// Which catalog images to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Those the configuration activates.
    Active,
    /// Every image of the catalog (`airgap list-images --all`).
    All,
}

/// Check that every override names a catalog component and is well formed,
/// so a typo fails at start with exit 2, before any phase.
pub(crate) fn check_overrides(catalog: &Catalog, config: &Config) -> Result<(), ImagesError> {
    for (component, image_override) in &config.effective().images.overrides {
        if catalog.get(component).is_none() {
            let known = catalog
                .entries()
                .iter()
                .map(|e| e.component.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ImagesError::UnknownComponent {
                origin: config.origin().to_owned(),
                component: component.clone(),
                version: catalog.plinth_version.clone(),
                known,
            });
        }
        let bad = |field, message: String| ImagesError::BadOverride {
            origin: config.origin().to_owned(),
            component: component.clone(),
            field,
            message,
        };
        if let Some(image) = &image_override.image {
            reference::check_repository(image).map_err(|message| bad("image", message))?;
        }
        if let Some(version) = &image_override.version {
            reference::check_tag(version).map_err(|message| bad("version", message))?;
        }
        if let Some(digest) = &image_override.digest {
            reference::check_digest(digest).map_err(|message| bad("digest", message))?;
        }
    }
    Ok(())
}

/// The catalog's images for `config`, overrides applied: the built-in
/// default of the image-resolve chain. Defaults stay defaults (the global
/// repository rewrites their registry here, at every resolve, and nowhere
/// else); an override makes its component explicit.
pub fn defaults(catalog: &Catalog, config: &Config, selection: Selection) -> Vec<Image> {
    let images = &config.effective().images;
    catalog
        .entries()
        .iter()
        .filter(|entry| {
            selection == Selection::All || entry.activation.is_active(config.effective())
        })
        .map(|entry| {
            let explicit = images.overrides.get(&entry.component);
            let ImageOverride {
                image,
                version,
                digest,
                pull_policy,
            } = explicit.cloned().unwrap_or_default();
            let repository = match image {
                Some(image) => image,
                None => match &images.repository {
                    Some(registry) => reference::with_registry(&entry.repository, registry),
                    None => entry.repository.clone(),
                },
            };
            Image {
                component: entry.component.clone(),
                repository,
                tag: version.unwrap_or_else(|| entry.tag.clone()),
                digest,
                origin: if explicit.is_some() {
                    Origin::Explicit
                } else {
                    Origin::Default
                },
                pull_policy: wire_policy(pull_policy.unwrap_or(images.default_pull_policy)),
            }
        })
        .collect()
}

fn wire_policy(policy: PullPolicy) -> WirePullPolicy {
    match policy {
        PullPolicy::Always => WirePullPolicy::Always,
        PullPolicy::IfNotPresent => WirePullPolicy::IfNotPresent,
        PullPolicy::Never => WirePullPolicy::Never,
    }
}

/// `repository:tag`, or `repository:tag@digest` when pinned.
pub fn reference_of(image: &Image) -> String {
    match &image.digest {
        Some(digest) => format!("{}:{}@{digest}", image.repository, image.tag),
        None => format!("{}:{}", image.repository, image.tag),
    }
}

/// Who the journal says wrote the lock file.
const LOCK_JOURNAL_NAME: &str = "builtin:lock";

/// Stage the lock file of `images`, unless the data dir holds it already.
pub(crate) fn stage_lock(stage: &mut Stage<'_>, images: &[Image]) -> Result<(), StageError> {
    stage.write_if_changed(DataDirView::IMAGES_LOCK, &lock_file(images), 0o644)
}

/// The journal line listing every resolved reference.
pub(crate) fn lock_entry(images: &[Image]) -> Entry {
    let references: Vec<String> = images.iter().map(reference_of).collect();
    Entry::new(Phase::ImageResolve, LOCK_JOURNAL_NAME, Verdict::Event)
        .detail(serde_json::json!({ "images": references }))
}

/// The lock file: one JSON document, images sorted by component, so the
/// same resolution always writes the same bytes.
pub(crate) fn lock_file(images: &[Image]) -> Vec<u8> {
    let mut sorted: Vec<&Image> = images.iter().collect();
    sorted.sort_by(|a, b| a.component.cmp(&b.component));
    let entries: Vec<serde_json::Value> = sorted
        .iter()
        .map(|image| {
            serde_json::json!({
                "component": image.component,
                "reference": reference_of(image),
                "origin": match image.origin {
                    Origin::Default => "default",
                    Origin::Explicit => "explicit",
                },
                "pullPolicy": match image.pull_policy {
                    WirePullPolicy::Always => "Always",
                    WirePullPolicy::IfNotPresent => "IfNotPresent",
                    WirePullPolicy::Never => "Never",
                },
            })
        })
        .collect();
    let mut bytes = serde_json::to_vec_pretty(&serde_json::json!({ "images": entries }))
        .expect("images serialise");
    bytes.push(b'\n');
    bytes
}
