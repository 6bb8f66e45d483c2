//! Parse a certificate into the facts that plugins and reports see.
//!
//! Nothing here ever touches a private key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Serialize;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::X509Name;

use super::error::PkiError;

/// Algorithm of a certificate's subject public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PublicKeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
    Other,
}

impl std::fmt::Display for PublicKeyAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
            Self::Other => "other",
        })
    }
}

/// Everything a policy needs to know about one certificate. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateFacts {
    /// Name in the PKI set, e.g. `server`, `etcd/peer`, `ca`.
    pub name: String,
    /// Path relative to the data dir, e.g. `pki/server.crt`.
    pub path: PathBuf,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// RFC 4514 string, e.g. `O=system:masters,CN=kubernetes-admin`.
    pub subject: String,
    /// RFC 4514 string.
    pub issuer: String,
    /// Lowercase hex, no separators.
    pub serial: String,
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<String>,
    pub key_algorithm: PublicKeyAlgorithm,
    pub key_bits: u32,
    /// e.g. `ecdsa-with-SHA256`, `sha256WithRSAEncryption`, or the dotted OID.
    pub signature_algorithm: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub is_ca: bool,
    pub path_length: Option<u32>,
    /// RFC 5280 names: digitalSignature, keyEncipherment, keyCertSign, cRLSign, ...
    pub key_usages: Vec<String>,
    /// serverAuth, clientAuth, ... or the dotted OID.
    pub extended_key_usages: Vec<String>,
}

/// Parse one DER certificate into its facts.
pub fn inspect(name: &str, path: &Path, der: &[u8]) -> Result<CertificateFacts, PkiError> {
    let invalid = |detail: String| PkiError::InvalidCertificate {
        path: path.to_path_buf(),
        detail,
    };
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| invalid(e.to_string()))?;
    if !rest.is_empty() {
        return Err(invalid(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    let (dns_sans, ip_sans) = sans(&cert).map_err(invalid)?;
    let (key_algorithm, key_bits) = public_key_algorithm(&cert);
    let basic = cert
        .basic_constraints()
        .map_err(|e| invalid(format!("basicConstraints: {e}")))?;
    let (key_usages, extended_key_usages) = usage_names(&cert).map_err(invalid)?;
    Ok(CertificateFacts {
        name: name.to_string(),
        path: path.to_path_buf(),
        der: der.to_vec(),
        subject: rfc4514(cert.subject()),
        issuer: rfc4514(cert.issuer()),
        serial: serial_hex(cert.raw_serial()),
        dns_sans,
        ip_sans,
        key_algorithm,
        key_bits,
        signature_algorithm: signature_algorithm_name(&cert.signature_algorithm.algorithm),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: basic.as_ref().is_some_and(|b| b.value.ca),
        path_length: basic.and_then(|b| b.value.path_len_constraint),
        key_usages,
        extended_key_usages,
    })
}

/// Lowercase hex of a serial number without the sign-padding zero bytes.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(&raw[start..])
}

/// DNS and IP subject alternative names, in certificate order.
pub(crate) fn sans(cert: &X509Certificate<'_>) -> Result<(Vec<String>, Vec<String>), String> {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let ext = cert
        .subject_alternative_name()
        .map_err(|e| format!("subjectAltName: {e}"))?;
    for name in ext.iter().flat_map(|e| e.value.general_names.iter()) {
        match name {
            GeneralName::DNSName(d) => dns.push((*d).to_string()),
            GeneralName::IPAddress(octets) => ips.push(ip_from_octets(octets)?.to_string()),
            _ => {}
        }
    }
    Ok((dns, ips))
}

fn ip_from_octets(octets: &[u8]) -> Result<IpAddr, String> {
    if let Ok(v4) = <[u8; 4]>::try_from(octets) {
        Ok(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(octets) {
        Ok(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        Err(format!("IP SAN of {} bytes", octets.len()))
    }
}

/// Classify the subject public key: algorithm and size in bits.
pub(crate) fn public_key_algorithm(cert: &X509Certificate<'_>) -> (PublicKeyAlgorithm, u32) {
    let spki = cert.public_key();
    let bits = spki
        .parsed()
        .map(|k| u32::try_from(k.key_size()).unwrap_or(0))
        .unwrap_or(0);
    match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => (PublicKeyAlgorithm::Rsa, bits),
        "1.3.101.112" => (PublicKeyAlgorithm::Ed25519, 256),
        "1.2.840.10045.2.1" => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| Oid::try_from(p.clone()).ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => (PublicKeyAlgorithm::EcdsaP256, 256),
                Some("1.3.132.0.34") => (PublicKeyAlgorithm::EcdsaP384, 384),
                _ => (PublicKeyAlgorithm::Other, bits),
            }
        }
        _ => (PublicKeyAlgorithm::Other, bits),
    }
}

fn signature_algorithm_name(oid: &Oid<'_>) -> String {
    let dotted = oid.to_id_string();
    let name = match dotted.as_str() {
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1",
        "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
        "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
        "1.2.840.10045.4.3.4" => "ecdsa-with-SHA512",
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption",
        "1.2.840.113549.1.1.5" => "sha1WithRSAEncryption",
        "1.2.840.113549.1.1.10" => "rsassaPss",
        "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
        "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
        "1.2.840.113549.1.1.13" => "sha512WithRSAEncryption",
        "1.3.101.112" => "ED25519",
        _ => return dotted,
    };
    name.to_string()
}

/// Key usages and extended key usages, by name.
pub(crate) fn usage_names(
    cert: &X509Certificate<'_>,
) -> Result<(Vec<String>, Vec<String>), String> {
    let key_usages = cert
        .key_usage()
        .map_err(|e| format!("keyUsage: {e}"))?
        .map(|ku| key_usage_names(ku.value))
        .unwrap_or_default();
    let extended_key_usages = cert
        .extended_key_usage()
        .map_err(|e| format!("extendedKeyUsage: {e}"))?
        .map(|eku| eku_names(eku.value))
        .unwrap_or_default();
    Ok((key_usages, extended_key_usages))
}

fn key_usage_names(ku: &x509_parser::extensions::KeyUsage) -> Vec<String> {
    [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_string())
    .collect()
}

fn eku_names(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Vec<String> {
    let mut names: Vec<String> = [
        (eku.any, "anyExtendedKeyUsage"),
        (eku.server_auth, "serverAuth"),
        (eku.client_auth, "clientAuth"),
        (eku.code_signing, "codeSigning"),
        (eku.email_protection, "emailProtection"),
        (eku.time_stamping, "timeStamping"),
        (eku.ocsp_signing, "OCSPSigning"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| name.to_string())
    .collect();
    names.extend(eku.other.iter().map(Oid::to_id_string));
    names
}

/// RFC 4514 string of a distinguished name: RDNs last-to-first, separated
/// by `,`; multi-valued RDNs joined by `+`.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let mut rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let dotted = atv.attr_type().to_id_string();
                    let ty = match dotted.as_str() {
                        "2.5.4.3" => "CN",
                        "2.5.4.7" => "L",
                        "2.5.4.8" => "ST",
                        "2.5.4.10" => "O",
                        "2.5.4.11" => "OU",
                        "2.5.4.6" => "C",
                        "2.5.4.9" => "STREET",
                        "0.9.2342.19200300.100.1.25" => "DC",
                        "0.9.2342.19200300.100.1.1" => "UID",
                        other => other,
                    };
                    let value = match atv.as_str() {
                        Ok(s) => escape_rfc4514(s),
                        // Not a string type: `#` and the hex of its BER encoding.
                        Err(_) => {
                            use x509_parser::der_parser::asn1_rs::ToDer;
                            let der = atv.attr_value().to_der_vec().unwrap_or_default();
                            format!("#{}", hex::encode(der))
                        }
                    };
                    format!("{ty}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

pub(crate) fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_rfc4514_specials() {
        assert_eq!(escape_rfc4514("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc4514("#x "), "\\#x\\ ");
        assert_eq!(escape_rfc4514("system:masters"), "system:masters");
    }
}
