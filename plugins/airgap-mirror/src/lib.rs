//! `airgap-mirror`: a Plinth image-resolve plugin that rewrites every image
//! to a mirror registry and pins digests, for air-gapped sites.
//!
//! Read it in this order: this file binds the plugin to the WIT contract;
//! [`settings`] and [`pins`] check what the manifest says;
//! [`reference`](mod@reference) reads image names the way Docker does;
//! [`rewrite`] applies the rules of README.md. Only this file calls the
//! host, so `cargo test -p airgap-mirror` runs the rest natively.

pub mod pins;
pub mod reference;
pub mod rewrite;
pub mod settings;
#[cfg(test)]
mod tests;

wit_bindgen::generate!({ world: "image-resolver", path: "../../wit" });

use exports::plinth::bootstrap::image_resolve::{Guest as ResolveGuest, Image};
use exports::plinth::bootstrap::plugin::Guest as PluginGuest;
use plinth::bootstrap::host::{log, setting};
use plinth::bootstrap::types::{Level, Metadata};
use settings::Settings;

struct AirgapMirror;

impl PluginGuest for AirgapMirror {
    fn describe() -> Metadata {
        Metadata {
            name: "airgap-mirror".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Rewrites every image to a mirror registry and pins digests, for \
                          air-gapped sites."
                .into(),
        }
    }

    /// Called once at load, so that a bad setting stops the bootstrap before
    /// anything happens, with one message per mistake.
    fn validate_settings() -> Result<(), Vec<String>> {
        Settings::read(setting).map(|_| ())
    }
}

impl ResolveGuest for AirgapMirror {
    fn resolve(images: Vec<Image>) -> Result<Vec<Image>, String> {
        // Read again on each call: a plugin keeps no state between calls.
        let settings = Settings::read(setting)
            .map_err(|errors| format!("invalid settings: {}", errors.join("; ")))?;
        let total = images.len();
        let resolution = rewrite::resolve(&settings, images)?;
        log(
            Level::Info,
            &format!(
                "rewrote {} of {total} images to {}",
                resolution.rewritten,
                settings.destination()
            ),
        );
        if !resolution.unused_pins.is_empty() {
            log(
                Level::Warn,
                &format!(
                    "digests: no image matched the key(s) {}",
                    resolution.unused_pins.join(", ")
                ),
            );
        }
        Ok(resolution.images)
    }
}

export!(AirgapMirror);
