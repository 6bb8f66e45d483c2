//! TLS to a join API whose CA a join token pins.
//!
//! A joiner has no CA yet: that is what it came for. What it has is the
//! token's sha256 of the cluster CA (kubeadm's discovery hash). The server
//! sends its chain, leaf and CA; [`PinnedCaVerifier`] picks out of that
//! chain the certificate whose DER hashes to the pin, and verifies the leaf
//! against it as the only trust anchor, host name included, as webpki
//! verifies any server. A chain without the pinned CA fails the handshake,
//! so the bearer secret is never sent to a server that is not the
//! cluster's.
//!
//! Every such failure is final: the same server presents the same
//! certificate next time. The verifier records why it refused
//! ([`PinRefusal`]), since the client sees a failed handshake only as a
//! connection error, which it would retry until its deadline.

use std::sync::{Arc, Mutex};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::sha256::Sha256;

/// The crypto Plinth's TLS uses everywhere (the one rcgen signs with).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Why the pinned verification refused a server. Each reads after "the
/// join API at <address>".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PinRefusal {
    #[error(
        "does not present the cluster CA the token pins (sha256 {pin}): this token is for another cluster, or someone else answers at that address"
    )]
    NotPinnedCa { pin: Sha256 },
    #[error(
        "presents a certificate of the pinned CA that is not valid for `{expected}`, the token's address (it is for {presented}): join through an address it names, or add `{expected}` to that controller's spec.api.sans and restart it"
    )]
    HostName { expected: String, presented: String },
    #[error(
        "presents a certificate of the pinned CA that expired at {not_after} (this machine's clock says {now}): restart that controller, which renews it, or set this clock right"
    )]
    Expired { not_after: String, now: String },
    #[error(
        "presents a certificate of the pinned CA that is valid only from {not_before} (this machine's clock says {now}): set this clock right"
    )]
    NotYetValid { not_before: String, now: String },
    #[error(
        "presents the pinned CA with a certificate that does not verify under it ({reason}): someone else may answer at that address"
    )]
    Unverified { reason: String },
}

impl PinRefusal {
    /// From what webpki said of `leaf` in a chain anchored at the pinned CA.
    fn of_verification(
        error: &rustls::Error,
        leaf: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
    ) -> Self {
        use rustls::CertificateError as E;
        let rustls::Error::InvalidCertificate(certificate) = error else {
            return Self::Unverified {
                reason: error.to_string(),
            };
        };
        match certificate {
            E::NotValidForNameContext { presented, .. } => Self::HostName {
                expected: server_name.to_str().into_owned(),
                presented: crate::terminal::clipped(
                    &names_of(leaf).unwrap_or_else(|| presented.join(", ")),
                    MAX_NAMES_CHARS,
                ),
            },
            E::ExpiredContext { time, not_after } => Self::Expired {
                not_after: utc(*not_after),
                now: utc(*time),
            },
            E::NotValidYetContext { time, not_before } => Self::NotYetValid {
                not_before: utc(*not_before),
                now: utc(*time),
            },
            other => Self::Unverified {
                reason: other.to_string(),
            },
        }
    }
}

/// Longest list of a certificate's names repeated in a refusal.
const MAX_NAMES_CHARS: usize = 300;

/// The DNS and IP names of `leaf`, as an operator writes them in
/// spec.api.sans (webpki's own list reads `DnsName("…")`).
fn names_of(leaf: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let (dns, ips) = crate::pki::inspect::sans(&cert).ok()?;
    Some(dns.into_iter().chain(ips).collect::<Vec<_>>().join(", "))
}

fn utc(time: UnixTime) -> String {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{} s after 1970", time.as_secs()))
}

/// Where a verifier leaves its refusal for the client that made it.
#[derive(Clone, Debug, Default)]
pub struct Refusals(Arc<Mutex<Option<PinRefusal>>>);

impl Refusals {
    fn record(&self, refusal: PinRefusal) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
    }

    /// The refusal behind the last failed handshake, if the verifier made
    /// one.
    pub fn take(&self) -> Option<PinRefusal> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: Sha256,
    provider: Arc<CryptoProvider>,
    refusals: Refusals,
}

impl PinnedCaVerifier {
    /// A verifier for `pin` (the sha256 of the CA's DER), and where it
    /// leaves its refusals.
    pub fn new(pin: &Sha256) -> (Self, Refusals) {
        let refusals = Refusals::default();
        (
            Self {
                pin: *pin,
                provider: provider(),
                refusals: refusals.clone(),
            },
            refusals,
        )
    }

    /// A client config that trusts only the pinned CA.
    pub fn client_config(pin: &Sha256) -> (rustls::ClientConfig, Refusals) {
        let (verifier, refusals) = Self::new(pin);
        let config = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        (config, refusals)
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(anchor) = intermediates
            .iter()
            .find(|cert| Sha256::of(cert.as_ref()) == self.pin)
        else {
            self.refusals
                .record(PinRefusal::NotPinnedCa { pin: self.pin });
            return Err(rustls::Error::General(
                "the server's certificate chain does not contain the CA the join token pins"
                    .to_owned(),
            ));
        };
        // The pinned CA unusable as an anchor is as final as a bad leaf.
        let unusable = |reason: String| {
            self.refusals.record(PinRefusal::Unverified {
                reason: format!("the pinned CA is not usable: {reason}"),
            });
            rustls::Error::General(format!("the pinned CA is not usable: {reason}"))
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|e| unusable(e.to_string()))?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| unusable(e.to_string()))?;
        verifier
            .verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
            .inspect_err(|error| {
                self.refusals
                    .record(PinRefusal::of_verification(error, end_entity, server_name));
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        SanType,
    };
    use time::{Duration, OffsetDateTime};

    const NOW: i64 = 1_800_000_000;

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    /// A CA, and a server leaf it issued for 127.0.0.1 valid one hour
    /// either side of [`NOW`].
    fn ca_and_leaf() -> (CertificateDer<'static>, CertificateDer<'static>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.not_before = at(NOW - 86_400);
        ca.not_after = at(NOW + 86_400);
        let ca_der = ca.self_signed(&ca_key).unwrap().der().clone();
        let mut leaf = CertificateParams::default();
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.not_before = at(NOW) - Duration::hours(1);
        leaf.not_after = at(NOW) + Duration::hours(1);
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        leaf.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
        let issuer = Issuer::from_ca_cert_der(&ca_der, &ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_der = leaf.signed_by(&leaf_key, &issuer).unwrap().der().clone();
        (ca_der, leaf_der)
    }

    /// Verify `leaf` sent with `ca` for `address` at `now`, pinning `pin`:
    /// whether it passed, and the refusal recorded.
    fn verify(
        pin: &Sha256,
        (ca, leaf): &(CertificateDer<'static>, CertificateDer<'static>),
        address: [u8; 4],
        now: i64,
    ) -> (bool, Option<PinRefusal>) {
        let (verifier, refusals) = PinnedCaVerifier::new(pin);
        let name = ServerName::IpAddress(std::net::IpAddr::from(address).into());
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now as u64));
        let passed = verifier
            .verify_server_cert(leaf, std::slice::from_ref(ca), &name, &[], now)
            .is_ok();
        (passed, refusals.take())
    }

    #[test]
    fn a_leaf_of_the_pinned_ca_for_the_address_in_time_passes() {
        let chain = ca_and_leaf();
        let pin = Sha256::of(chain.0.as_ref());
        assert_eq!(verify(&pin, &chain, [127, 0, 0, 1], NOW), (true, None));
    }

    #[test]
    fn a_leaf_for_another_address_is_refused_for_its_host_name() {
        let chain = ca_and_leaf();
        let pin = Sha256::of(chain.0.as_ref());
        let (passed, refusal) = verify(&pin, &chain, [127, 0, 0, 2], NOW);
        assert!(!passed);
        let Some(PinRefusal::HostName {
            expected,
            presented,
        }) = refusal
        else {
            panic!("{refusal:?}");
        };
        assert_eq!(expected, "127.0.0.2");
        assert_eq!(presented, "127.0.0.1");
    }

    #[test]
    fn an_expired_leaf_is_refused_for_its_expiry_with_both_times() {
        let chain = ca_and_leaf();
        let pin = Sha256::of(chain.0.as_ref());
        let later = NOW + 7200;
        let (passed, refusal) = verify(&pin, &chain, [127, 0, 0, 1], later);
        assert!(!passed);
        assert_eq!(
            refusal,
            Some(PinRefusal::Expired {
                not_after: utc(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    (NOW + 3600) as u64
                ))),
                now: utc(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                    later as u64
                ))),
            })
        );
        assert!(
            refusal
                .unwrap()
                .to_string()
                .contains("expired at 2027-01-15T09:00:00Z")
        );
    }

    #[test]
    fn a_leaf_not_yet_valid_is_refused_for_this_clock() {
        let chain = ca_and_leaf();
        let pin = Sha256::of(chain.0.as_ref());
        let (passed, refusal) = verify(&pin, &chain, [127, 0, 0, 1], NOW - 7200);
        assert!(!passed);
        assert!(
            matches!(refusal, Some(PinRefusal::NotYetValid { .. })),
            "{refusal:?}"
        );
    }

    #[test]
    fn a_chain_without_the_pinned_ca_is_refused_as_not_the_clusters() {
        let chain = ca_and_leaf();
        let pin = Sha256::of(b"another CA");
        let (passed, refusal) = verify(&pin, &chain, [127, 0, 0, 1], NOW);
        assert!(!passed);
        assert_eq!(refusal, Some(PinRefusal::NotPinnedCa { pin }));
    }

    #[test]
    fn the_pinned_ca_sent_beside_a_leaf_it_did_not_issue_is_refused() {
        let (ca, _) = ca_and_leaf();
        let (_, foreign_leaf) = ca_and_leaf();
        let pin = Sha256::of(ca.as_ref());
        let (passed, refusal) = verify(&pin, &(ca, foreign_leaf), [127, 0, 0, 1], NOW);
        assert!(!passed);
        assert!(
            matches!(refusal, Some(PinRefusal::Unverified { .. })),
            "{refusal:?}"
        );
    }
}
