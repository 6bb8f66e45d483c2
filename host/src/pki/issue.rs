//! Making certificates (CAs and leaves) and deciding whether an existing leaf
//! still fits the spec.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;

use super::decision::ReissueReason;
use super::error::PkiError;
use super::inspect::{
    PublicKeyAlgorithm, escape_rfc4514, public_key_algorithm, rfc4514, sans, usage_names,
};
use super::keys;
use super::set::{CaId, LeafSpec, Usage};
use super::spec::{BACKDATE, KeyAlgorithm, PkiSpec};

/// A CA ready to sign: its certificate (as on disk and DER) and its key.
pub(crate) struct LoadedCa {
    pub(crate) id: CaId,
    pub(crate) pem: Vec<u8>,
    pub(crate) der: Vec<u8>,
    pub(crate) key: KeyPair,
}

impl LoadedCa {
    pub(crate) fn parsed(&self) -> Result<X509Certificate<'_>, PkiError> {
        parse_der(&super::set::cert_path(self.id.name()), &self.der)
    }
}

pub(crate) fn parse_der<'a>(path: &Path, der: &'a [u8]) -> Result<X509Certificate<'a>, PkiError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::InvalidCertificate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// The DER of the first `CERTIFICATE` block of a PEM file.
pub(crate) fn pem_to_der(pem: &[u8]) -> Result<Vec<u8>, String> {
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| format!("bad PEM: {e}"))?;
        if block.label == "CERTIFICATE" {
            return Ok(block.contents);
        }
    }
    Err("no CERTIFICATE block".to_string())
}

/// Make a self-signed CA certificate (PEM) for `key`.
pub(crate) fn self_signed_ca(
    id: CaId,
    key: &KeyPair,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, id.common_name());
    params.not_before = now - BACKDATE;
    params.not_after = now + spec.validity.ca();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params
        .self_signed(key)
        .map(|cert| cert.pem())
        .map_err(|source| PkiError::Sign {
            name: id.name().to_string(),
            source,
        })
}

/// Make a leaf certificate (PEM) for `key`, signed by `ca`.
pub(crate) fn sign_leaf(
    leaf: &LeafSpec,
    key: &KeyPair,
    ca: &LoadedCa,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    for org in &leaf.organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, org.as_str());
    }
    params
        .distinguished_name
        .push(DnType::CommonName, leaf.common_name.as_str());
    params.not_before = now - BACKDATE;
    // A leaf may not outlive its CA (kubeadm caps it the same way): a CA
    // brought by the user may end sooner than certValidity from now.
    let ca_not_after = ca.parsed()?.validity().not_after.to_datetime();
    params.not_after = now + spec.validity.cert();
    if params.not_after > ca_not_after {
        tracing::warn!(
            leaf = leaf.name,
            ca = ca.id.name(),
            "the CA expires at {}, before certValidity from now: the leaf ends with it; rotate the CA",
            super::read::rfc3339(ca_not_after)
        );
        params.not_after = ca_not_after;
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.key_algorithm.is_rsa() {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = match leaf.usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    for dns in &leaf.dns_sans {
        let name = dns.as_str().try_into().map_err(|_| PkiError::InvalidSan {
            value: dns.clone(),
            detail: "a DNS SAN must be ASCII".to_string(),
        })?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params
        .subject_alt_names
        .extend(leaf.ip_sans.iter().copied().map(SanType::IpAddress));
    let issuer =
        Issuer::from_ca_cert_der(&ca.der.as_slice().into(), &ca.key).map_err(|source| {
            PkiError::CaUnusable {
                ca: ca.id.name().to_string(),
                source,
            }
        })?;
    params
        .signed_by(key, &issuer)
        .map(|cert| cert.pem())
        .map_err(|source| PkiError::Sign {
            name: leaf.name.to_string(),
            source,
        })
}

/// Does the existing leaf (its cert and key files) still fit the spec?
/// `Ok(())` means keep it byte for byte.
pub(crate) fn evaluate(
    leaf: &LeafSpec,
    cert: &X509Certificate<'_>,
    key_pem: Option<&[u8]>,
    key_path: &Path,
    ca: &X509Certificate<'_>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<(), ReissueReason> {
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err(ReissueReason::NotSignedByCa {
            ca: leaf.ca.name().to_string(),
        });
    }
    let (algorithm, bits) = public_key_algorithm(cert);
    if !key_matches(spec.key_algorithm, algorithm, bits) {
        return Err(ReissueReason::KeyAlgorithmChanged {
            old: describe_key(algorithm, bits),
            new: spec.key_algorithm.to_string(),
        });
    }
    let expected_subject = expected_subject(leaf);
    let subject = rfc4514(cert.subject());
    if subject != expected_subject {
        return Err(ReissueReason::SubjectChanged {
            old: subject,
            new: expected_subject,
        });
    }
    let (dns, ips) = sans(cert).map_err(|detail| ReissueReason::Unparsable { detail })?;
    let have: BTreeSet<String> = dns
        .iter()
        .map(|d| d.to_ascii_lowercase())
        .chain(ips.iter().cloned())
        .collect();
    let want: BTreeSet<String> = leaf
        .dns_sans
        .iter()
        .cloned()
        .chain(leaf.ip_sans.iter().map(IpAddr::to_string))
        .collect();
    if have != want {
        return Err(ReissueReason::SansChanged {
            added: want.difference(&have).cloned().collect(),
            removed: have.difference(&want).cloned().collect(),
        });
    }
    let (kus, ekus) = usage_names(cert).map_err(|detail| ReissueReason::Unparsable { detail })?;
    let want_ekus: Vec<String> = leaf
        .usage
        .eku_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut want_kus = vec!["digitalSignature".to_string()];
    if spec.key_algorithm.is_rsa() {
        want_kus.push("keyEncipherment".to_string());
    }
    if sorted(&kus) != sorted(&want_kus) || sorted(&ekus) != sorted(&want_ekus) {
        return Err(ReissueReason::UsagesChanged {
            old: kus.into_iter().chain(ekus).collect(),
            new: want_kus.into_iter().chain(want_ekus).collect(),
        });
    }
    let not_after = cert.validity().not_after.to_datetime();
    let ca_not_after = ca.validity().not_after.to_datetime();
    if not_after > ca_not_after {
        return Err(ReissueReason::OutlivesCa {
            not_after: super::read::rfc3339(not_after),
            ca_not_after: super::read::rfc3339(ca_not_after),
        });
    }
    let renew_before = spec.validity.renew_before();
    if not_after - now <= renew_before {
        return Err(ReissueReason::Expiring {
            not_after: super::read::rfc3339(not_after),
            renew_before_days: renew_before.whole_days(),
        });
    }
    let key_problem = match key_pem {
        None => Some(format!("{} is missing", key_path.display())),
        Some(pem) => match keys::parse_key(key_path, pem) {
            Err(e) => Some(e.to_string()),
            Ok(key) if !keys::key_matches_cert(&key, cert) => Some(format!(
                "{} does not match the certificate",
                key_path.display()
            )),
            Ok(_) => None,
        },
    };
    match key_problem {
        Some(detail) => Err(ReissueReason::KeyUnusable { detail }),
        None => Ok(()),
    }
}

/// Does a public key of this algorithm and size have the configured one?
fn key_matches(wanted: KeyAlgorithm, algorithm: PublicKeyAlgorithm, bits: u32) -> bool {
    match wanted {
        KeyAlgorithm::EcdsaP256 => algorithm == PublicKeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384 => algorithm == PublicKeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048 => algorithm == PublicKeyAlgorithm::Rsa && bits == 2048,
        KeyAlgorithm::Rsa3072 => algorithm == PublicKeyAlgorithm::Rsa && bits == 3072,
        KeyAlgorithm::Rsa4096 => algorithm == PublicKeyAlgorithm::Rsa && bits == 4096,
    }
}

fn sorted(v: &[String]) -> Vec<&String> {
    let mut v: Vec<&String> = v.iter().collect();
    v.sort();
    v
}

/// RFC 4514 subject the leaf must have (`CN=...,O=...`).
pub(crate) fn expected_subject(leaf: &LeafSpec) -> String {
    // Organizations come first in the certificate, the CN last, so the
    // RFC 4514 string (last RDN first) starts with the CN.
    let mut parts = vec![format!("CN={}", escape_rfc4514(&leaf.common_name))];
    parts.extend(
        leaf.organizations
            .iter()
            .rev()
            .map(|o| format!("O={}", escape_rfc4514(o))),
    );
    parts.join(",")
}

fn describe_key(algorithm: PublicKeyAlgorithm, bits: u32) -> String {
    match algorithm {
        PublicKeyAlgorithm::Rsa => format!("rsa-{bits}"),
        other => other.to_string(),
    }
}
