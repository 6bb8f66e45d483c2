//! An image-resolve plugin: it sees the list of container images the
//! controller will use and returns the next list (or refuses). This one
//! moves every image to the registry named by the setting `registry`
//! (`registry.k8s.io/pause` → `mirror.example:5000/pause`), and changes
//! nothing when the setting is absent.

wit_bindgen::generate!({ world: "image-resolver", path: "wit" });

use exports::plinth::bootstrap::image_resolve::{Guest as ImageResolve, Image};
use exports::plinth::bootstrap::plugin::Guest as Plugin;
use plinth::bootstrap::host::setting;
use plinth::bootstrap::types::Metadata;

struct Component;

/// The repository without its registry host, if it names one: the first
/// path segment is a host when it has a `.` or a `:`, or is `localhost`.
fn path_in_registry(repository: &str) -> &str {
    match repository.split_once('/') {
        Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => path,
        _ => repository,
    }
}

impl Plugin for Component {
    fn describe() -> Metadata {
        Metadata {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Moves every image to the registry of the `registry` setting.".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        match setting("registry") {
            Some(registry) if registry.is_empty() || registry.contains(['/', ' ']) => {
                Err(vec![format!(
                    "registry = {registry:?}: expected a host with an optional port, e.g. mirror.example:5000"
                )])
            }
            _ => Ok(()),
        }
    }
}

impl ImageResolve for Component {
    fn resolve(mut images: Vec<Image>) -> Result<Vec<Image>, String> {
        if let Some(registry) = setting("registry") {
            for image in &mut images {
                image.repository = format!("{registry}/{}", path_in_registry(&image.repository));
            }
        }
        Ok(images)
    }
}

export!(Component);
