//! What the PKI phase is asked to produce.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;
use time::Duration;

use super::inspect::PublicKeyAlgorithm;

/// Algorithm (and size) of every key the PKI phase generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(into = "String")]
pub enum KeyAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
    }

    /// Does a public key of this algorithm and size match `self`?
    pub fn matches(self, algorithm: PublicKeyAlgorithm, bits: u32) -> bool {
        match self {
            KeyAlgorithm::EcdsaP256 => algorithm == PublicKeyAlgorithm::EcdsaP256,
            KeyAlgorithm::EcdsaP384 => algorithm == PublicKeyAlgorithm::EcdsaP384,
            KeyAlgorithm::Rsa2048 => algorithm == PublicKeyAlgorithm::Rsa && bits == 2048,
            KeyAlgorithm::Rsa3072 => algorithm == PublicKeyAlgorithm::Rsa && bits == 3072,
            KeyAlgorithm::Rsa4096 => algorithm == PublicKeyAlgorithm::Rsa && bits == 4096,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<KeyAlgorithm> for String {
    fn from(alg: KeyAlgorithm) -> String {
        alg.as_str().to_string()
    }
}

/// The text is not one of the five accepted key algorithm names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key algorithm {0:?}: expected one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096"
)]
pub struct UnknownKeyAlgorithm(pub String);

impl FromStr for KeyAlgorithm {
    type Err = UnknownKeyAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyAlgorithm::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| UnknownKeyAlgorithm(s.to_string()))
    }
}

/// Where etcd's certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum EtcdMode {
    /// Plinth runs etcd: it gets its own CA (`etcd/ca`), serving and peer
    /// certificates, a healthcheck client and the apiserver's client cert.
    Embedded {
        peer_address: IpAddr,
        /// Where etcd serves clients; the serving certificate names it.
        client_address: IpAddr,
    },
    /// The user runs etcd and brings every etcd certificate, including the
    /// apiserver's etcd client certificate (it must be signed by the user's
    /// etcd CA, which Plinth does not hold): no etcd certificate is made.
    External,
}

/// Default CA validity: 10 years.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::days(3650);
/// Default leaf validity: 1 year.
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::days(365);
/// Default renewal window: a leaf expiring within 30 days is reissued.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::days(30);
/// Not-before is backdated by this much, for clock skew between nodes.
pub const BACKDATE: Duration = Duration::minutes(5);

/// Inputs of the PKI phase. The caller derives them from the effective
/// config and the node facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiSpec {
    /// e.g. `cluster.local`.
    pub cluster_domain: String,
    /// First IP of the service CIDR (the `kubernetes` service).
    pub service_ip: IpAddr,
    /// Address the API server advertises; kubeconfigs point at it.
    pub api_address: IpAddr,
    pub api_port: u16,
    /// Extra SANs for `server` and `plinth-api`: an IP SAN if it parses as an
    /// IP, else a DNS SAN.
    pub extra_sans: Vec<String>,
    pub node_addresses: Vec<IpAddr>,
    pub hostname: String,
    pub etcd: EtcdMode,
    pub key_algorithm: KeyAlgorithm,
    pub ca_validity: Duration,
    pub cert_validity: Duration,
    pub renew_before: Duration,
}

impl PkiSpec {
    /// A spec with the default algorithm, validities and renewal window.
    pub fn new(
        hostname: impl Into<String>,
        api_address: IpAddr,
        service_ip: IpAddr,
        etcd: EtcdMode,
    ) -> PkiSpec {
        PkiSpec {
            cluster_domain: "cluster.local".to_string(),
            service_ip,
            api_address,
            api_port: 6443,
            extra_sans: Vec::new(),
            node_addresses: vec![api_address],
            hostname: hostname.into(),
            etcd,
            key_algorithm: KeyAlgorithm::default(),
            ca_validity: DEFAULT_CA_VALIDITY,
            cert_validity: DEFAULT_CERT_VALIDITY,
            renew_before: DEFAULT_RENEW_BEFORE,
        }
    }

    /// `https://<api address>:<port>`, IPv6 in brackets.
    pub fn api_url(&self) -> String {
        format!(
            "https://{}",
            std::net::SocketAddr::new(self.api_address, self.api_port)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_algorithm_round_trips_through_text() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.to_string().parse::<KeyAlgorithm>(), Ok(alg));
        }
        assert!("rsa-1024".parse::<KeyAlgorithm>().is_err());
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::EcdsaP256);
    }

    #[test]
    fn api_url_brackets_ipv6() {
        let mut spec = PkiSpec::new(
            "n1",
            "::1".parse().unwrap(),
            "10.96.0.1".parse().unwrap(),
            EtcdMode::External,
        );
        assert_eq!(spec.api_url(), "https://[::1]:6443");
        spec.api_address = "10.0.0.1".parse().unwrap();
        assert_eq!(spec.api_url(), "https://10.0.0.1:6443");
    }
}
