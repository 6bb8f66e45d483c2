//! The list of certificates of the control-plane PKI, kubeadm/k0s names.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::spec::{EtcdMode, PkiSpec};
use crate::data_dir::DataDirView;

/// One of the three certificate authorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CaId {
    Kubernetes,
    FrontProxy,
    Etcd,
}

impl CaId {
    pub(crate) const ALL: [CaId; 3] = [CaId::Kubernetes, CaId::FrontProxy, CaId::Etcd];

    /// Name in the set; the files are `pki/<name>.crt` / `.key`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            CaId::Kubernetes => "ca",
            CaId::FrontProxy => "front-proxy-ca",
            CaId::Etcd => "etcd/ca",
        }
    }

    /// Subject common name, as kubeadm.
    pub(crate) fn common_name(self) -> &'static str {
        match self {
            CaId::Kubernetes => "kubernetes",
            CaId::FrontProxy => "front-proxy-ca",
            CaId::Etcd => "etcd-ca",
        }
    }

    /// The etcd CA exists only with embedded etcd.
    pub(crate) fn wanted(self, etcd: &EtcdMode) -> bool {
        self != CaId::Etcd || matches!(etcd, EtcdMode::Embedded { .. })
    }
}

/// Extended key usage of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Usage {
    Server,
    Client,
    ServerAndClient,
}

impl Usage {
    /// RFC 5280 names, as `inspect` reports them.
    pub(crate) fn eku_names(self) -> &'static [&'static str] {
        match self {
            Usage::Server => &["serverAuth"],
            Usage::Client => &["clientAuth"],
            Usage::ServerAndClient => &["serverAuth", "clientAuth"],
        }
    }
}

/// Static facts of a leaf: its name, its CA, its usage.
pub(crate) struct LeafKind {
    pub(crate) name: &'static str,
    pub(crate) ca: CaId,
    pub(crate) usage: Usage,
}

/// Every leaf Plinth can make, in issuing order.
pub(crate) const LEAVES: &[LeafKind] = &[
    LeafKind {
        name: "server",
        ca: CaId::Kubernetes,
        usage: Usage::Server,
    },
    LeafKind {
        name: "apiserver-kubelet-client",
        ca: CaId::Kubernetes,
        usage: Usage::Client,
    },
    LeafKind {
        name: "admin",
        ca: CaId::Kubernetes,
        usage: Usage::Client,
    },
    LeafKind {
        name: "scheduler",
        ca: CaId::Kubernetes,
        usage: Usage::Client,
    },
    LeafKind {
        name: "controller-manager",
        ca: CaId::Kubernetes,
        usage: Usage::Client,
    },
    LeafKind {
        name: "plinth-api",
        ca: CaId::Kubernetes,
        usage: Usage::Server,
    },
    LeafKind {
        name: "front-proxy-client",
        ca: CaId::FrontProxy,
        usage: Usage::Client,
    },
    LeafKind {
        name: "etcd/server",
        ca: CaId::Etcd,
        usage: Usage::ServerAndClient,
    },
    LeafKind {
        name: "etcd/peer",
        ca: CaId::Etcd,
        usage: Usage::ServerAndClient,
    },
    LeafKind {
        name: "etcd/healthcheck-client",
        ca: CaId::Etcd,
        usage: Usage::Client,
    },
    LeafKind {
        name: "apiserver-etcd-client",
        ca: CaId::Etcd,
        usage: Usage::Client,
    },
];

/// A kubeconfig and the client leaf it embeds.
pub(crate) struct KubeconfigKind {
    /// File name under `pki/`, e.g. `admin.conf`.
    pub(crate) file: &'static str,
    /// The leaf whose cert and key are embedded.
    pub(crate) leaf: &'static str,
}

pub(crate) const KUBECONFIGS: &[KubeconfigKind] = &[
    KubeconfigKind {
        file: "admin.conf",
        leaf: "admin",
    },
    KubeconfigKind {
        file: "scheduler.conf",
        leaf: "scheduler",
    },
    KubeconfigKind {
        file: "controller-manager.conf",
        leaf: "controller-manager",
    },
];

/// The service-account key pair: `pki/sa.key` and `pki/sa.pub`.
pub(crate) const SA: &str = "sa";

/// `pki/<name>.crt`, relative to the data dir.
pub(crate) fn cert_path(name: &str) -> PathBuf {
    in_pki(&format!("{name}.crt"))
}

/// `pki/<name>.key`, relative to the data dir.
pub(crate) fn key_path(name: &str) -> PathBuf {
    in_pki(&format!("{name}.key"))
}

pub(crate) fn sa_pub_path() -> PathBuf {
    in_pki(&format!("{SA}.pub"))
}

pub(crate) fn kubeconfig_path(file: &str) -> PathBuf {
    in_pki(file)
}

fn in_pki(rel: &str) -> PathBuf {
    Path::new(DataDirView::PKI).join(rel)
}

/// Everything a leaf must contain, derived from the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeafSpec {
    pub(crate) name: &'static str,
    pub(crate) ca: CaId,
    pub(crate) usage: Usage,
    pub(crate) common_name: String,
    pub(crate) organizations: Vec<String>,
    /// Deduplicated, in order.
    pub(crate) dns_sans: Vec<String>,
    /// Deduplicated, in order.
    pub(crate) ip_sans: Vec<IpAddr>,
}

/// The leaves wanted for this spec, in issuing order.
pub(crate) fn leaves(spec: &PkiSpec) -> Vec<LeafSpec> {
    LEAVES
        .iter()
        .filter(|kind| kind.ca.wanted(&spec.etcd))
        .map(|kind| leaf(spec, kind))
        .collect()
}

fn leaf(spec: &PkiSpec, kind: &LeafKind) -> LeafSpec {
    let masters = || vec!["system:masters".to_string()];
    let loopback4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let loopback6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let (common_name, organizations, dns, ips): (&str, Vec<String>, Vec<String>, Vec<IpAddr>) =
        match kind.name {
            "server" => ("kube-apiserver", vec![], api_dns(spec), api_ips(spec)),
            "plinth-api" => ("plinth-api", vec![], api_dns(spec), api_ips(spec)),
            "apiserver-kubelet-client" => {
                ("kube-apiserver-kubelet-client", masters(), vec![], vec![])
            }
            "admin" => ("kubernetes-admin", masters(), vec![], vec![]),
            "scheduler" => ("system:kube-scheduler", vec![], vec![], vec![]),
            "controller-manager" => ("system:kube-controller-manager", vec![], vec![], vec![]),
            "front-proxy-client" => ("front-proxy-client", vec![], vec![], vec![]),
            "etcd/server" => {
                let mut ips = spec.node_addresses.clone();
                ips.extend(peer_address(spec));
                if let EtcdMode::Embedded { client_address, .. } = spec.etcd {
                    ips.push(client_address);
                }
                ips.extend([loopback4, loopback6]);
                (&spec.hostname, vec![], host_dns(spec), ips)
            }
            "etcd/peer" => {
                let mut ips: Vec<IpAddr> = peer_address(spec).into_iter().collect();
                ips.extend([loopback4, loopback6]);
                (&spec.hostname, vec![], host_dns(spec), ips)
            }
            "etcd/healthcheck-client" => ("kube-etcd-healthcheck-client", vec![], vec![], vec![]),
            "apiserver-etcd-client" => ("kube-apiserver-etcd-client", vec![], vec![], vec![]),
            other => unreachable!("leaf {other} has no definition"),
        };
    LeafSpec {
        name: kind.name,
        ca: kind.ca,
        usage: kind.usage,
        common_name: if common_name.is_empty() {
            kind.name.replace('/', "-")
        } else {
            common_name.to_string()
        },
        organizations,
        dns_sans: dedup(dns),
        ip_sans: dedup(ips),
    }
}

fn peer_address(spec: &PkiSpec) -> Option<IpAddr> {
    match spec.etcd {
        EtcdMode::Embedded { peer_address, .. } => Some(peer_address),
        EtcdMode::External => None,
    }
}

/// `hostname` (when set) and `localhost`.
fn host_dns(spec: &PkiSpec) -> Vec<String> {
    let mut dns = Vec::new();
    if !spec.hostname.is_empty() {
        dns.push(spec.hostname.to_ascii_lowercase());
    }
    dns.push("localhost".to_string());
    dns
}

/// DNS SANs of the API server and the join API.
fn api_dns(spec: &PkiSpec) -> Vec<String> {
    let mut dns = vec![
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!("kubernetes.default.svc.{}", spec.cluster_domain),
    ];
    dns.extend(host_dns(spec));
    dns.extend(
        spec.extra_sans
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && s.parse::<IpAddr>().is_err())
            .map(str::to_ascii_lowercase),
    );
    dns
}

/// IP SANs of the API server and the join API.
fn api_ips(spec: &PkiSpec) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST), spec.service_ip];
    ips.extend(spec.node_addresses.iter().copied());
    ips.push(spec.api_address);
    ips.extend(
        spec.extra_sans
            .iter()
            .filter_map(|s| s.trim().parse::<IpAddr>().ok()),
    );
    ips
}

/// The items in their first order, each once: linear, as a SAN list comes
/// from the config (100k SANs took a minute with a quadratic scan).
fn dedup<T: Eq + std::hash::Hash + Clone>(items: Vec<T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

/// Which CA signs the leaf `name`, if it is one of ours.
pub(crate) fn ca_of(name: &str) -> Option<CaId> {
    LEAVES.iter().find(|k| k.name == name).map(|k| k.ca)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_the_first_of_each_in_order() {
        assert_eq!(dedup(vec![3, 1, 3, 2, 1]), [3, 1, 2]);
        let many: Vec<String> = (0..200_000).map(|n| format!("n{}", n % 100_000)).collect();
        assert_eq!(dedup(many).len(), 100_000);
    }

    fn spec() -> PkiSpec {
        let mut spec = crate::pki::spec::spec_for_tests(
            "spec:\n  api:\n    address: 10.0.0.5\n",
            "Node1",
            &["10.0.0.5"],
        );
        spec.extra_sans = vec!["api.example.com".into(), "192.168.1.1".into(), " ".into()];
        spec
    }

    #[test]
    fn server_sans_include_extras_split_by_kind() {
        let server = leaves(&spec())
            .into_iter()
            .find(|l| l.name == "server")
            .unwrap();
        assert_eq!(
            server.dns_sans,
            [
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "node1",
                "localhost",
                "api.example.com"
            ]
        );
        let ips: Vec<String> = server.ip_sans.iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["127.0.0.1", "10.96.0.1", "10.0.0.5", "192.168.1.1"]);
    }

    #[test]
    fn external_etcd_has_no_etcd_leaves() {
        let mut spec = spec();
        spec.etcd = EtcdMode::External;
        let names: Vec<_> = leaves(&spec).iter().map(|l| l.name).collect();
        assert!(names.iter().all(|n| !n.contains("etcd")), "{names:?}");
        assert_eq!(names.len(), 7);
    }
}
