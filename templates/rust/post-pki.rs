//! A post-pki plugin: it sees every certificate of the control-plane PKI
//! (DER and parsed fields, never a private key) and reports findings; a
//! finding of severity `deny` stops the bootstrap. This one warns about
//! every certificate that expires within `expiry-warning-days` (default 30).

wit_bindgen::generate!({ world: "cert-auditor", path: "wit" });

use std::time::{SystemTime, UNIX_EPOCH};

use exports::plinth::bootstrap::plugin::Guest as Plugin;
use exports::plinth::bootstrap::post_pki::{Certificate, Guest as PostPki};
use plinth::bootstrap::host::setting;
use plinth::bootstrap::types::{Finding, Metadata, Severity};

const DEFAULT_WARNING_DAYS: i64 = 30;
const SECONDS_PER_DAY: i64 = 86_400;

struct Component;

fn warning_days() -> Result<i64, String> {
    match setting("expiry-warning-days") {
        None => Ok(DEFAULT_WARNING_DAYS),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|days| *days >= 0)
            .ok_or(format!(
                "expiry-warning-days = {text:?}: expected a whole number of days, at least 0"
            )),
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

impl Plugin for Component {
    fn describe() -> Metadata {
        Metadata {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Warns about certificates that expire soon.".into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        warning_days().map(|_| ()).map_err(|message| vec![message])
    }
}

impl PostPki for Component {
    fn audit(certificates: Vec<Certificate>) -> Vec<Finding> {
        let horizon = now() + warning_days().unwrap_or(DEFAULT_WARNING_DAYS) * SECONDS_PER_DAY;
        certificates
            .iter()
            .filter(|certificate| certificate.not_after < horizon)
            .map(|certificate| Finding {
                severity: Severity::Warning,
                subject: certificate.name.clone(),
                rule: "expiry-warning-days".into(),
                message: format!(
                    "certificate `{}` expires in {} days",
                    certificate.name,
                    (certificate.not_after - now()) / SECONDS_PER_DAY
                ),
            })
            .collect()
    }
}

export!(Component);
