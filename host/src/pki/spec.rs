//! What the PKI phase is asked to produce.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;
use time::Duration;

/// Algorithm (and size) of every key the PKI phase generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum KeyAlgorithm {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    pub(crate) const ALL: [KeyAlgorithm; 5] = [
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

    pub(crate) fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096
        )
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

/// Not-before is backdated by this much, for clock skew between nodes.
pub const BACKDATE: Duration = Duration::minutes(5);
/// The longest validity of any certificate: 100 years.
pub const MAX_VALIDITY: Duration = Duration::days(36_500);

/// How long certificates live, and how close to its end a leaf is renewed.
/// Checked once, here: CAs outlive the leaves they sign, and a leaf outlives
/// its renewal window, or every run would reissue every certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    ca: Duration,
    cert: Duration,
    renew_before: Duration,
}

/// Which rule of [`Validity`] a set of durations breaks; the config says
/// which key to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValidityError {
    #[error("validities must be positive and the renewal window must not be negative")]
    Negative,
    #[error("a certificate may be valid for at most 100 years (36500 days)")]
    TooLong,
    #[error("leaves would outlive the CAs that sign them")]
    CertNotShorterThanCa,
    #[error("every run would reissue every certificate")]
    RenewalNotShorterThanCert,
}

impl Validity {
    pub fn new(
        ca: Duration,
        cert: Duration,
        renew_before: Duration,
    ) -> Result<Self, ValidityError> {
        if !ca.is_positive() || !cert.is_positive() || renew_before.is_negative() {
            return Err(ValidityError::Negative);
        }
        // Far below where `now + validity` overflows a date (year 9999, the
        // last X.509 can write), and far above any sane CA.
        if ca > MAX_VALIDITY {
            return Err(ValidityError::TooLong);
        }
        if cert >= ca {
            return Err(ValidityError::CertNotShorterThanCa);
        }
        if renew_before >= cert {
            return Err(ValidityError::RenewalNotShorterThanCert);
        }
        Ok(Self {
            ca,
            cert,
            renew_before,
        })
    }

    /// How long a new CA is valid.
    pub fn ca(&self) -> Duration {
        self.ca
    }

    /// How long a new leaf is valid.
    pub fn cert(&self) -> Duration {
        self.cert
    }

    /// A leaf expiring within this window is reissued.
    pub(crate) fn renew_before(&self) -> Duration {
        self.renew_before
    }
}

/// Inputs of the PKI phase: [`Config::pki_spec`](crate::config::Config::pki_spec)
/// derives them from the effective config and the node facts.
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
    pub validity: Validity,
}

impl PkiSpec {
    /// `https://<api address>:<port>`, IPv6 in brackets.
    pub(crate) fn api_url(&self) -> String {
        format!(
            "https://{}",
            std::net::SocketAddr::new(self.api_address, self.api_port)
        )
    }
}

/// The spec the real config gives for `yaml` on a node with this hostname
/// and these addresses.
#[cfg(test)]
pub(crate) fn spec_for_tests(yaml: &str, hostname: &str, addresses: &[&str]) -> PkiSpec {
    let node = crate::node::NodeFacts {
        hostname: hostname.to_owned(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
    };
    crate::config::Config::from_yaml(yaml, "test", &node)
        .unwrap()
        .pki_spec(&node)
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
    }

    #[test]
    fn api_url_brackets_ipv6() {
        let mut spec = spec_for_tests("spec:\n  api:\n    address: \"::1\"\n", "n1", &["::1"]);
        assert_eq!(spec.api_url(), "https://[::1]:6443");
        spec.api_address = "10.0.0.1".parse().unwrap();
        assert_eq!(spec.api_url(), "https://10.0.0.1:6443");
    }

    #[test]
    fn validity_needs_cas_to_outlive_leaves_and_leaves_their_renewal_window() {
        let days = Duration::days;
        assert!(Validity::new(days(3650), days(365), days(30)).is_ok());
        assert!(Validity::new(days(3650), days(365), Duration::ZERO).is_ok());
        assert_eq!(
            Validity::new(days(365), days(365), days(30)),
            Err(ValidityError::CertNotShorterThanCa)
        );
        assert_eq!(
            Validity::new(days(3650), days(30), days(30)),
            Err(ValidityError::RenewalNotShorterThanCert)
        );
        assert_eq!(
            Validity::new(days(3650), days(365), days(-1)),
            Err(ValidityError::Negative)
        );
    }
}
