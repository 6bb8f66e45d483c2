//! The ClusterConfig document exactly as a user writes it.
//!
//! Every field is an `Option`: `Some` means the user (or a pre-init plugin's
//! patch) set it, `None` means it was left to the default. This is what makes
//! "persist only what the user set" a matter of serialising this type, and
//! keeps an older Plinth's defaults out of a newer one (k0s issues 5258, 7708).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::cidr::Cidr;
use super::duration::GoDuration;

pub(crate) const API_VERSION: &str = "plinth.dev/v1beta1";
pub(crate) const KIND: &str = "ClusterConfig";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ReadinessSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pki: Option<PkiSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesSpec>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugins: Option<PluginsSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReadinessSpec {
    /// How long run mode waits for every readiness check before it gives up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiSpec {
    /// The address the API server advertises; defaults to the node's first address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Port of Plinth's join API (HTTPS, on `address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plinth_api_port: Option<u16>,
    /// Extra subject alternative names (DNS names or IPs) for the API server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sans: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkProvider {
    KubeRouter,
    Calico,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<NetworkProvider>,
    #[serde(rename = "serviceCIDR", skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<Cidr>,
    #[serde(rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<Cidr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_local_load_balancing: Option<NodeLocalLoadBalancing>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeLocalLoadBalancing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// etcd run and supervised by Plinth on this machine.
    Etcd,
    /// An etcd cluster run by someone else (`spec.storage.etcd.externalCluster`).
    External,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StorageSpec {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub storage_type: Option<StorageType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EtcdSpec {
    /// Where etcd listens for and advertises to its peers; defaults to
    /// `spec.api.address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<u16>,
    /// Where etcd serves clients (Plinth, the apiserver); 127.0.0.1 by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// The etcd executable: a path, or a name looked up in PATH.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary: Option<std::path::PathBuf>,
    /// This member's etcd name, unique in the cluster; the host name by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How long joining (or a first start of etcd) may take.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_timeout: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_cluster: Option<ExternalCluster>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalCluster {
    pub endpoints: Vec<String>,
    /// The external etcd's CA, and the client certificate Plinth shows it
    /// (run mode keeps its join tokens there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PkiSpec {
    /// `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`, `rsa-3072` or `rsa-4096`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_algorithm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_validity: Option<GoDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert_validity: Option<GoDuration>,
    /// A leaf expiring within this window is reissued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<GoDuration>,
}

/// `spec.plugins`: who may sign plugins, and whether they must be signed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginsSpec {
    /// An OpenSSH allowed-signers file (ssh-keygen(1), "ALLOWED SIGNERS");
    /// every `NAME.wasm.sig` is checked against it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_signers: Option<std::path::PathBuf>,
    /// Refuse, at load, every plugin without a valid signature by an
    /// allowed signer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_signatures: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// `spec.images`: two global keys, and one key per catalog component.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImagesSpec {
    /// Registry that replaces the registry of every *default* image at
    /// resolve time; never turned into a persisted tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_pull_policy: Option<PullPolicy>,
    /// Per-component overrides, keyed by catalog component name.
    #[serde(flatten)]
    pub components: BTreeMap<String, ImageOverride>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
}

// Written by hand because serde's `flatten` cannot be combined with
// `deny_unknown_fields`, and reading values through the map keeps the YAML
// parser's line numbers in every error.
impl<'de> Deserialize<'de> for ImagesSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ImagesVisitor;

        impl<'de> Visitor<'de> for ImagesVisitor {
            type Value = ImagesSpec;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of `repository`, `defaultPullPolicy` and component overrides")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ImagesSpec, A::Error> {
                let mut spec = ImagesSpec::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "repository" => spec.repository = Some(map.next_value()?),
                        "defaultPullPolicy" => spec.default_pull_policy = Some(map.next_value()?),
                        _ => {
                            let value = map.next_value()?;
                            if spec.components.insert(key.clone(), value).is_some() {
                                return Err(serde::de::Error::custom(format!(
                                    "duplicate component `{key}`"
                                )));
                            }
                        }
                    }
                }
                Ok(spec)
            }
        }

        deserializer.deserialize_map(ImagesVisitor)
    }
}
