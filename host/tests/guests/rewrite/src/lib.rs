//! The least image-resolve plugin that does real work: it moves every image
//! under `mirror.local/`. No settings, no logging, so a benchmark calling it
//! measures the host's cost of a call, not a plugin's policy.

wit_bindgen::generate!({ world: "image-resolver", path: "../../../../wit" });

use exports::plinth::bootstrap::image_resolve::{Guest as Resolve, Image};
use exports::plinth::bootstrap::plugin::{Guest as Plugin, Metadata};

struct Rewrite;

impl Plugin for Rewrite {
    fn describe() -> Metadata {
        Metadata {
            name: "rewrite".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Moves every image under mirror.local/ (benchmark guest)".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        Ok(())
    }
}

impl Resolve for Rewrite {
    fn resolve(mut images: Vec<Image>) -> Result<Vec<Image>, String> {
        for image in &mut images {
            image.repository.insert_str(0, "mirror.local/");
        }
        Ok(images)
    }
}

export!(Rewrite);
