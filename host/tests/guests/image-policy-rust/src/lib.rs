//! The image-resolve rule of `examples/python-image-policy`, in Rust, so
//! that a benchmark can put one call of the Python plugin beside the same
//! work done by a Rust one: refuse images without a digest unless the
//! setting `allow-tags` is `true`, then warn and pass them.

wit_bindgen::generate!({ world: "image-resolver", path: "../../../../wit" });

use exports::plinth::bootstrap::image_resolve::{Guest as Resolve, Image};
use exports::plinth::bootstrap::plugin::{Guest as Plugin, Metadata};
use plinth::bootstrap::host::{log, setting};
use plinth::bootstrap::types::Level;

struct ImagePolicy;

impl Plugin for ImagePolicy {
    fn describe() -> Metadata {
        Metadata {
            name: "image-policy-rust".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Refuses images without a digest unless tags are allowed".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        match setting("allow-tags").as_deref() {
            None | Some("true" | "false") => Ok(()),
            Some(other) => Err(vec![format!(
                "allow-tags = {other:?}: expected `true` or `false`"
            )]),
        }
    }
}

impl Resolve for ImagePolicy {
    fn resolve(images: Vec<Image>) -> Result<Vec<Image>, String> {
        let unpinned: Vec<String> = images
            .iter()
            .filter(|image| image.digest.is_none())
            .map(|image| format!("{}:{}", image.repository, image.tag))
            .collect();
        if unpinned.is_empty() {
            return Ok(images);
        }
        if setting("allow-tags").as_deref() == Some("true") {
            log(
                Level::Warn,
                &format!(
                    "{} images are not pinned to a digest: {}",
                    unpinned.len(),
                    unpinned.join(", ")
                ),
            );
            return Ok(images);
        }
        Err(format!(
            "{} images are not pinned to a digest (first: {}); pin them (airgap-mirror's \
             `digests` setting) or set allow-tags = \"true\"",
            unpinned.len(),
            unpinned[0]
        ))
    }
}

export!(ImagePolicy);
