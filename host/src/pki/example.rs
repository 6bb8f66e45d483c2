//! A small certificate set made on the spot, shaped like the one a
//! bootstrap hands to post-pki (a CA and the API server's certificate):
//! the fixture `plinth plugins invoke --hook post-pki --example` prints.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use super::error::PkiError;
use super::inspect::{CertificateFacts, inspect};
use super::spec::BACKDATE;

pub fn example_certificates(now: OffsetDateTime) -> Result<Vec<CertificateFacts>, PkiError> {
    let sign = |name: &str| {
        let name = name.to_owned();
        move |source| PkiError::Sign { name, source }
    };
    let ca_key = KeyPair::generate().map_err(sign("ca"))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "kubernetes-ca");
    ca.not_before = now - BACKDATE;
    ca.not_after = now + Duration::days(3650);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    let ca_der = ca.self_signed(&ca_key).map_err(sign("ca"))?.der().to_vec();

    let server_key = KeyPair::generate().map_err(sign("server"))?;
    let mut server = CertificateParams::default();
    server.distinguished_name = DistinguishedName::new();
    server
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    server.not_before = now - BACKDATE;
    server.not_after = now + Duration::days(365);
    server.is_ca = IsCa::ExplicitNoCa;
    server.use_authority_key_identifier_extension = true;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for dns in ["kubernetes", "kubernetes.default.svc", "localhost"] {
        server
            .subject_alt_names
            .push(SanType::DnsName(dns.try_into().map_err(sign("server"))?));
    }
    server
        .subject_alt_names
        .push(SanType::IpAddress([10, 96, 0, 1].into()));
    let issuer =
        Issuer::from_ca_cert_der(&ca_der.as_slice().into(), &ca_key).map_err(sign("server"))?;
    let server_der = server
        .signed_by(&server_key, &issuer)
        .map_err(sign("server"))?
        .der()
        .to_vec();
    Ok(vec![
        inspect("ca", Path::new("pki/ca.crt"), &ca_der)?,
        inspect("server", Path::new("pki/server.crt"), &server_der)?,
    ])
}
