//! `other-contract`: a minimal plugin built against `plinth:bootstrap@0.1.0`
//! (its own `wit/`), so that the host's tests can prove it is refused at load
//! with the version it named. It imports `host` and exports `plugin` of that
//! version, and nothing else.

wit_bindgen::generate!({ world: "other-contract", path: "wit" });

use exports::plinth::bootstrap::plugin::Guest;
use plinth::bootstrap::host::log;
use plinth::bootstrap::types::{Level, Metadata};

struct OtherContract;

impl Guest for OtherContract {
    fn describe() -> Metadata {
        log(
            Level::Info,
            "other-contract: describe called; a 0.2.0 host should never get here",
        );
        Metadata {
            name: "other-contract".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Built against plinth:bootstrap@0.1.0; the host must refuse it.".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        Ok(())
    }
}

export!(OtherContract);
