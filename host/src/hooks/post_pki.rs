//! post-pki: every certificate of the control-plane PKI, existing and new
//! alike, goes past every auditor before anything is committed. Auditors see
//! certificates only: no private key ever crosses into a plugin.

use super::chain::{Answer, Attributed, HookError, Participant, run_chain};
use time::OffsetDateTime;

use crate::journal::{self, Journal};
use crate::phase::Summarize;
use crate::pki::{CertificateFacts, PublicKeyAlgorithm};
use crate::plugin::contract::{Certificate, Finding, Hook, KeyAlgorithm, Severity};
use crate::plugin::{CallFailure, Plugin, PluginSet};

/// The built-in auditor, first of the chain: every certificate in validity.
pub(crate) const BUILTIN: &str = "builtin:validity";

/// A participant of post-pki.
pub(crate) trait CertAuditor: Participant {
    fn audit(&self, certificates: &[Certificate]) -> Result<Vec<Finding>, CallFailure>;
}

impl CertAuditor for Plugin {
    fn audit(&self, certificates: &[Certificate]) -> Result<Vec<Finding>, CallFailure> {
        self.post_pki(certificates)
    }
}

/// The built-in: no certificate of the set may be outside its validity.
pub(crate) struct ValidityCheck {
    /// Unix seconds.
    pub now: i64,
}

impl Participant for ValidityCheck {
    fn name(&self) -> &str {
        BUILTIN
    }
}

impl CertAuditor for ValidityCheck {
    fn audit(&self, certificates: &[Certificate]) -> Result<Vec<Finding>, CallFailure> {
        Ok(certificates
            .iter()
            .filter(|cert| cert.not_after <= self.now || cert.not_before > self.now)
            .map(|cert| Finding {
                severity: Severity::Deny,
                subject: cert.name.clone(),
                rule: "validity".to_owned(),
                message: format!(
                    "{} is valid from {} to {} (unix seconds), not now ({}); replace it or remove it to have it reissued",
                    cert.path, cert.not_before, cert.not_after, self.now
                ),
            })
            .collect())
    }
}

/// The contract's view of a certificate.
pub(crate) fn to_wire(facts: &CertificateFacts) -> Certificate {
    Certificate {
        name: facts.name.clone(),
        path: facts.path.display().to_string(),
        der: facts.der.clone(),
        subject: facts.subject.clone(),
        issuer: facts.issuer.clone(),
        serial: facts.serial.clone(),
        dns_sans: facts.dns_sans.clone(),
        ip_sans: facts.ip_sans.clone(),
        key_algorithm: match facts.key_algorithm {
            PublicKeyAlgorithm::EcdsaP256 => KeyAlgorithm::EcdsaP256,
            PublicKeyAlgorithm::EcdsaP384 => KeyAlgorithm::EcdsaP384,
            PublicKeyAlgorithm::Rsa => KeyAlgorithm::Rsa,
            PublicKeyAlgorithm::Ed25519 => KeyAlgorithm::Ed25519,
            PublicKeyAlgorithm::Other => KeyAlgorithm::Other,
        },
        key_bits: facts.key_bits,
        signature_algorithm: facts.signature_algorithm.clone(),
        not_before: facts.not_before,
        not_after: facts.not_after,
        is_ca: facts.is_ca,
        path_length: facts.path_length,
        key_usages: facts.key_usages.clone(),
        extended_key_usages: facts.extended_key_usages.clone(),
    }
}

/// What the auditors made of the certificate set.
pub struct Audit {
    pub certificates: usize,
    /// The findings that did not deny (warnings, information).
    pub notes: Vec<Attributed>,
}

impl Summarize for Audit {
    fn summary(&self) -> String {
        format!("{} certificate(s) audited", self.certificates)
    }
}

/// Run every auditor over the certificate set, judged at `now`.
pub fn run(
    certificates: &[CertificateFacts],
    now: OffsetDateTime,
    plugins: &PluginSet,
    journal: &Journal,
) -> Result<Audit, HookError> {
    let certificates: Vec<Certificate> = certificates.iter().map(to_wire).collect();
    let builtin = ValidityCheck {
        now: now.unix_timestamp(),
    };
    let mut chain: Vec<&dyn CertAuditor> = vec![&builtin];
    chain.extend(
        plugins
            .serving(Hook::PostPki)
            .map(|p| p as &dyn CertAuditor),
    );
    run_auditors(&chain, &certificates, journal)
}

/// Run an explicit chain of auditors over `certificates`.
pub(crate) fn run_auditors(
    chain: &[&dyn CertAuditor],
    certificates: &[Certificate],
    journal: &Journal,
) -> Result<Audit, HookError> {
    // The certificates are the same for every auditor; the chain value is
    // their digest, so the journal shows every auditor saw the same set.
    let digest = journal::digest(certificates);
    let outcome = run_chain(
        Hook::PostPki,
        journal,
        chain,
        digest,
        |participant, current| {
            let findings = participant.audit(certificates)?;
            Ok(Answer {
                findings,
                ..Answer::next(current.clone())
            })
        },
    )?;
    Ok(Audit {
        certificates: certificates.len(),
        notes: outcome.notes,
    })
}
