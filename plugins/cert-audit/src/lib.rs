//! `cert-audit`: a Plinth post-pki plugin that audits every certificate of the
//! control-plane PKI against a site policy read from its manifest settings.
//! See README.md for the settings; the rules live in [`rules`].

pub mod rules;

wit_bindgen::generate!({ world: "cert-auditor", path: "../../wit" });

use exports::plinth::bootstrap::plugin::Guest as PluginGuest;
use exports::plinth::bootstrap::post_pki::{Certificate, Guest as PostPkiGuest, KeyAlgorithm};
use plinth::bootstrap::host::{log, setting};
use plinth::bootstrap::types::{Finding, Level, Metadata, Severity};

struct CertAudit;

fn policy() -> Result<rules::Policy, Vec<String>> {
    rules::Policy::from_settings(setting)
}

fn now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn to_rules(c: &Certificate) -> rules::Cert {
    rules::Cert {
        name: c.name.clone(),
        dns_sans: c.dns_sans.clone(),
        ip_sans: c.ip_sans.clone(),
        key_alg: match c.key_algorithm {
            KeyAlgorithm::EcdsaP256 => rules::KeyAlg::EcdsaP256,
            KeyAlgorithm::EcdsaP384 => rules::KeyAlg::EcdsaP384,
            KeyAlgorithm::Rsa => rules::KeyAlg::Rsa,
            KeyAlgorithm::Ed25519 => rules::KeyAlg::Ed25519,
            KeyAlgorithm::Other => rules::KeyAlg::Other,
        },
        key_bits: c.key_bits,
        signature_algorithm: c.signature_algorithm.clone(),
        not_before: c.not_before,
        not_after: c.not_after,
        is_ca: c.is_ca,
    }
}

fn to_wit(f: rules::Finding) -> Finding {
    Finding {
        severity: match f.severity {
            rules::Severity::Info => Severity::Info,
            rules::Severity::Warning => Severity::Warning,
            rules::Severity::Deny => Severity::Deny,
        },
        subject: f.subject,
        rule: f.rule,
        message: f.message,
    }
}

impl PluginGuest for CertAudit {
    fn describe() -> Metadata {
        Metadata {
            name: "cert-audit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Denies control-plane certificates whose key, validity, SANs or \
                          signature break the site policy; warns before they expire."
                .into(),
        }
    }

    fn validate_settings() -> Result<(), Vec<String>> {
        policy().map(|_| ())
    }
}

impl PostPkiGuest for CertAudit {
    fn audit(certificates: Vec<Certificate>) -> Vec<Finding> {
        let policy = match policy() {
            Ok(p) => p,
            // validate-settings should have stopped this at load; fail closed.
            Err(errors) => {
                return errors
                    .into_iter()
                    .map(|message| Finding {
                        severity: Severity::Deny,
                        subject: "settings".into(),
                        rule: "settings".into(),
                        message,
                    })
                    .collect();
            }
        };
        let certs: Vec<rules::Cert> = certificates.iter().map(to_rules).collect();
        let findings = rules::audit(&policy, &certs, now());
        let denies = findings
            .iter()
            .filter(|f| f.severity == rules::Severity::Deny)
            .count();
        log(
            Level::Info,
            &format!(
                "audited {} certificates: {} deny, {} other finding(s)",
                certs.len(),
                denies,
                findings.len() - denies
            ),
        );
        findings.into_iter().map(to_wit).collect()
    }
}

export!(CertAudit);
