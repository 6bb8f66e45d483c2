//! A readiness plugin: it names URLs for the host to probe (only those its
//! manifest lists in `allow-urls` are fetched) and judges what the host
//! saw. This one probes the URL of the setting `url`, if any, and is ready
//! on an HTTP 2xx answer; anything else is `waiting`, never `failed`.

wit_bindgen::generate!({ world: "readiness-checker", path: "wit" });

use exports::plinth::bootstrap::plugin::Guest as Plugin;
use exports::plinth::bootstrap::readiness::{
    CheckSpec, Guest as Readiness, Observation, ProbeResult,
};
use plinth::bootstrap::host::setting;
use plinth::bootstrap::types::Metadata;

const CHECK: &str = "url";
const INTERVAL_MS: u32 = 1000;

struct Component;

impl Plugin for Component {
    fn describe() -> Metadata {
        Metadata {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Ready when the URL of the `url` setting answers 2xx.".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        match setting("url") {
            Some(url) if !url.starts_with("http://") && !url.starts_with("https://") => {
                Err(vec![format!(
                    "url = {url:?}: expected an http:// or https:// URL"
                )])
            }
            _ => Ok(()),
        }
    }
}

impl Readiness for Component {
    fn checks() -> Vec<CheckSpec> {
        setting("url")
            .map(|url| CheckSpec {
                name: CHECK.into(),
                url: Some(url),
                interval_ms: INTERVAL_MS,
            })
            .into_iter()
            .collect()
    }

    fn evaluate(_check: String, seen: Observation) -> ProbeResult {
        match (seen.status, seen.error) {
            (Some(status), _) if (200..300).contains(&status) => ProbeResult::Ready,
            (Some(status), _) => ProbeResult::Waiting(format!("HTTP {status}")),
            (None, error) => ProbeResult::Waiting(error.unwrap_or_else(|| "no answer".into())),
        }
    }
}

export!(Component);
