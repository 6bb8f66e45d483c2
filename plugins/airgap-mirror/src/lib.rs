//! `airgap-mirror`: a Plinth image-resolve plugin that rewrites every image
//! to a mirror registry and pins digests, for air-gapped sites. See README.md
//! for the settings; the rules live in [`rewrite`].

pub mod rewrite;

wit_bindgen::generate!({ world: "image-resolver", path: "../../wit" });

use exports::plinth::bootstrap::image_resolve::{Guest as ResolveGuest, Image, Origin};
use exports::plinth::bootstrap::plugin::Guest as PluginGuest;
use plinth::bootstrap::host::{log, setting};
use plinth::bootstrap::types::{Level, Metadata};

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

    fn validate_settings() -> Result<(), Vec<String>> {
        rewrite::Settings::read(setting).parse().map(|_| ())
    }
}

impl ResolveGuest for AirgapMirror {
    fn resolve(images: Vec<Image>) -> Result<Vec<Image>, String> {
        let settings = rewrite::Settings::read(setting);
        let cfg = settings
            .parse()
            .map_err(|errors| format!("invalid settings: {}", errors.join("; ")))?;
        let total = images.len();
        // Keep what the rewrite never touches (origin, pull policy) aside.
        let mut rest = Vec::with_capacity(total);
        let plain: Vec<rewrite::Image> = images
            .into_iter()
            .map(|i| {
                rest.push((i.origin, i.pull_policy));
                rewrite::Image {
                    component: i.component,
                    repository: i.repository,
                    tag: i.tag,
                    digest: i.digest,
                    explicit: i.origin == Origin::Explicit,
                }
            })
            .collect();
        let resolution = cfg.resolve(plain)?;
        let target = match cfg.prefix {
            Some(p) => format!("{}/{p}", cfg.registry),
            None => cfg.registry.to_owned(),
        };
        log(
            Level::Info,
            &format!(
                "rewrote {} of {total} images to {target}",
                resolution.rewritten
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
        Ok(resolution
            .images
            .into_iter()
            .zip(rest)
            .map(|(i, (origin, pull_policy))| Image {
                component: i.component,
                repository: i.repository,
                tag: i.tag,
                digest: i.digest,
                origin,
                pull_policy,
            })
            .collect())
    }
}

export!(AirgapMirror);
