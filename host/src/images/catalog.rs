//! The default component images of a Plinth version.
//!
//! A catalog is a value, not a global: the resolver is handed one, so tests
//! can hold two versions side by side and prove that nothing of the older
//! one leaks into a newer controller (k0s issues 5258 and 7708).

use crate::config::{Effective, NetworkProvider};

/// When a catalog image is part of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Always,
    /// Only with this network provider.
    Network(NetworkProvider),
    /// Only with node-local load balancing enabled.
    NodeLocalLoadBalancing,
}

impl Activation {
    pub(crate) fn is_active(self, config: &Effective) -> bool {
        match self {
            Activation::Always => true,
            Activation::Network(provider) => config.network.provider == provider,
            Activation::NodeLocalLoadBalancing => config.network.node_local_load_balancing,
        }
    }
}

/// One component's default image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogEntry {
    pub component: String,
    /// Full repository, registry included, e.g. `registry.k8s.io/pause`.
    pub repository: String,
    pub tag: String,
    pub activation: Activation,
}

impl CatalogEntry {
    pub fn new(component: &str, repository: &str, tag: &str, activation: Activation) -> Self {
        Self {
            component: component.to_owned(),
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            activation,
        }
    }
}

/// The images a given Plinth version defaults to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    pub plinth_version: String,
    entries: Vec<CatalogEntry>,
}

impl Catalog {
    pub fn new(plinth_version: &str, entries: Vec<CatalogEntry>) -> Self {
        Self {
            plinth_version: plinth_version.to_owned(),
            entries,
        }
    }

    /// The catalog of this build of Plinth.
    pub fn builtin() -> Self {
        use Activation::{Always, Network, NodeLocalLoadBalancing};
        let kube_router = Network(NetworkProvider::KubeRouter);
        let calico = Network(NetworkProvider::Calico);
        Self::new(
            env!("CARGO_PKG_VERSION"),
            vec![
                CatalogEntry::new("pause", "registry.k8s.io/pause", "3.10", Always),
                CatalogEntry::new(
                    "kube-proxy",
                    "registry.k8s.io/kube-proxy",
                    "v1.31.2",
                    Always,
                ),
                CatalogEntry::new(
                    "coredns",
                    "registry.k8s.io/coredns/coredns",
                    "v1.11.3",
                    Always,
                ),
                CatalogEntry::new(
                    "konnectivity-agent",
                    "registry.k8s.io/kas-network-proxy/proxy-agent",
                    "v0.31.0",
                    Always,
                ),
                CatalogEntry::new(
                    "metrics-server",
                    "registry.k8s.io/metrics-server/metrics-server",
                    "v0.7.2",
                    Always,
                ),
                CatalogEntry::new(
                    "pushgateway",
                    "quay.io/prometheus/pushgateway",
                    "v1.10.0",
                    Always,
                ),
                CatalogEntry::new(
                    "kube-router",
                    "docker.io/cloudnativelabs/kube-router",
                    "v2.2.1",
                    kube_router,
                ),
                CatalogEntry::new(
                    "cni-node",
                    "quay.io/k0sproject/cni-node",
                    "1.5.1-k0s.0",
                    kube_router,
                ),
                CatalogEntry::new("calico-node", "quay.io/calico/node", "v3.28.2", calico),
                CatalogEntry::new("calico-cni", "quay.io/calico/cni", "v3.28.2", calico),
                CatalogEntry::new(
                    "calico-kube-controllers",
                    "quay.io/calico/kube-controllers",
                    "v3.28.2",
                    calico,
                ),
                CatalogEntry::new(
                    "envoy",
                    "docker.io/envoyproxy/envoy-distroless",
                    "v1.31.3",
                    NodeLocalLoadBalancing,
                ),
            ],
        )
    }

    pub fn entries(&self) -> &[CatalogEntry] {
        &self.entries
    }

    pub fn get(&self, component: &str) -> Option<&CatalogEntry> {
        self.entries
            .iter()
            .find(|entry| entry.component == component)
    }
}
