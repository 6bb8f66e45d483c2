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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

#[derive(Debug)]
pub struct PinnedCaVerifier {
    pin: Sha256,
    provider: Arc<CryptoProvider>,
    /// Set when a server's chain did not contain the pinned CA: the caller
    /// tells that final refusal apart from a network error with it.
    mismatch_seen: Arc<AtomicBool>,
}

impl PinnedCaVerifier {
    /// A verifier for `pin` (the sha256 of the CA's DER), and the flag it
    /// raises when a server fails the pin.
    pub fn new(pin: &Sha256) -> (Self, Arc<AtomicBool>) {
        let mismatch_seen = Arc::new(AtomicBool::new(false));
        (
            Self {
                pin: *pin,
                provider: provider(),
                mismatch_seen: mismatch_seen.clone(),
            },
            mismatch_seen,
        )
    }

    /// A client config that trusts only the pinned CA.
    pub fn client_config(pin: &Sha256) -> (rustls::ClientConfig, Arc<AtomicBool>) {
        let (verifier, mismatch) = Self::new(pin);
        let config = rustls::ClientConfig::builder_with_provider(verifier.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("aws-lc-rs supports TLS 1.2 and 1.3")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        (config, mismatch)
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
            self.mismatch_seen.store(true, Ordering::SeqCst);
            return Err(rustls::Error::General(
                "the server's certificate chain does not contain the CA the join token pins"
                    .to_owned(),
            ));
        };
        let mut roots = RootCertStore::empty();
        roots
            .add(anchor.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the pinned CA is not usable: {e}")))?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
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
