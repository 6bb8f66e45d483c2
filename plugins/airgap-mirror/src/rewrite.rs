//! The rules of README.md: each image moves to the mirror unless it is
//! there already, and takes the digest its pin names; nothing else changes.
//!
//! With `only-defaults`, images the user set keep their repository and take
//! only a pin keyed by their reference: a pin keyed by component name was
//! written for the catalog's image, whose digest is not the user's image's.

use std::collections::BTreeSet;

use crate::exports::plinth::bootstrap::image_resolve::{Image, Origin};
use crate::reference::Repository;
use crate::settings::Settings;

/// What [`resolve`] made of the list.
#[derive(Debug)]
pub struct Resolution {
    /// Same length and order as the input.
    pub images: Vec<Image>,
    /// How many repositories moved to the mirror.
    pub rewritten: usize,
    /// Keys of the pins that matched no image, in the order of the setting:
    /// most likely a typo the operator wants to hear about.
    pub unused_pins: Vec<String>,
}

/// Applies the rewrite and the pins to every image.
pub fn resolve(settings: &Settings, mut images: Vec<Image>) -> Result<Resolution, String> {
    let mut used = BTreeSet::new();
    let mut rewritten = 0;
    for image in &mut images {
        let user_set = settings.only_defaults && image.origin == Origin::Explicit;
        if let Some(pin) = settings.pins.find(image, !user_set) {
            image.digest = Some(pin.digest.clone());
            used.insert(pin.key.as_str());
        }
        if user_set {
            continue;
        }
        let mirrored = mirror_repository(settings, &image.repository).map_err(|why| {
            format!(
                "image `{}` has the repository `{}`, which {why}",
                image.component, image.repository
            )
        })?;
        if let Some(repository) = mirrored {
            image.repository = repository;
            rewritten += 1;
        }
    }
    let unused_pins = settings
        .pins
        .iter()
        .filter(|pin| !used.contains(pin.key.as_str()))
        .map(|pin| pin.key.clone())
        .collect();
    Ok(Resolution {
        images,
        rewritten,
        unused_pins,
    })
}

/// The mirror's repository for `repository`, or `None` when it is on the
/// mirror already.
pub fn mirror_repository(
    settings: &Settings,
    repository: &str,
) -> Result<Option<String>, &'static str> {
    let Repository { host, path } = Repository::parse(repository)?;
    if is_on_mirror(settings, host, &path) {
        return Ok(None);
    }
    Ok(Some(format!("{}/{path}", settings.destination())))
}

/// The host is the mirror (hosts are case-insensitive) and the path is
/// inside the prefix. Checking the prefix too means that an image another
/// project keeps on the same registry still moves under this one's prefix.
fn is_on_mirror(settings: &Settings, host: Option<&str>, path: &str) -> bool {
    let on_registry = host.is_some_and(|host| host.eq_ignore_ascii_case(&settings.registry));
    let in_prefix = match &settings.prefix {
        Some(prefix) => path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/')),
        None => true,
    };
    on_registry && in_prefix
}
