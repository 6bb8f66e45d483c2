//! The cluster configuration: parsing, defaults, and what gets persisted.
//!
//! A [`Config`] holds two views of one document: exactly the fields someone
//! set (the file, or a pre-init plugin's patch), and [`Config::effective`],
//! every field resolved against the embedded default and the node's facts.
//! Only the first is ever written to disk.

mod checks;
mod cidr;
mod duration;
mod limits;
mod location;
pub mod merge;
pub mod schema;
mod text;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde_json::Value;

pub use cidr::Cidr;
pub use duration::GoDuration;
pub use schema::{ClusterConfig, ImageOverride, NetworkProvider, PullPolicy, StorageType};

use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::node::NodeFacts;
use crate::phase::Summarize;
use crate::pki::{EtcdMode, KeyAlgorithm, PkiSpec, Validity, ValidityError};
use crate::stage::{Stage, StageError};

/// The embedded default document, also what `cargo xtask demo` runs on.
pub(crate) const DEFAULT_YAML: &str = include_str!("default.yaml");

/// The largest config file read: a real one is a few KiB.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}; check the --config path")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config {origin}:{line}:{column}: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        /// The YAML parser's message, its location taken out.
        message: String,
    },
    #[error("invalid config {origin}")]
    Parse {
        origin: String,
        /// The YAML or JSON parser's error, with the line and key.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("invalid config {origin}{}: {key}: {message}", line.map_or_else(String::new, |(line, column)| format!(":{line}:{column}")))]
    Invalid {
        origin: String,
        /// Where `key` is written, when the document is a file that sets it.
        line: Option<(usize, usize)>,
        key: &'static str,
        message: String,
    },
    #[error("pre-init patch from plugin {plugin} is not a JSON object: {message}")]
    Patch { plugin: String, message: String },
    #[error("invalid config {origin}: {message}")]
    TooLarge { origin: String, message: String },
}

impl ConfigError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Invalid
    }
}

/// A validated configuration: what the user set, and what is in force.
/// Only built from a document, so the two views never drift apart.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the user's document came from, for error messages.
    origin: String,
    /// Only the fields someone set; the document to persist.
    user: ClusterConfig,
    /// Every field resolved.
    effective: Effective,
}

/// The configuration in force, with no optional fields left.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Effective {
    pub name: String,
    pub api: Api,
    pub network: Network,
    pub storage: Storage,
    /// `spec.storage.etcd.joinTimeout`: how long a join, or a first start of
    /// etcd, may take.
    pub join_timeout: GoDuration,
    pub readiness: Readiness,
    pub pki: Pki,
    pub images: Images,
    pub plugins: Plugins,
}

/// `spec.plugins`: how plugin files are checked at load.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plugins {
    pub allowed_signers: Option<std::path::PathBuf>,
    pub require_signatures: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Readiness {
    /// Every check must be ready within this long of etcd's start.
    pub timeout: std::time::Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Api {
    pub address: IpAddr,
    pub port: u16,
    /// The join API's port, on `address`.
    pub plinth_api_port: u16,
    pub sans: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub provider: NetworkProvider,
    pub service_cidr: Cidr,
    pub pod_cidr: Cidr,
    pub cluster_domain: String,
    pub node_local_load_balancing: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Storage {
    /// etcd run by Plinth.
    Embedded(EmbeddedEtcd),
    External(ExternalEtcd),
}

/// etcd as Plinth runs it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EmbeddedEtcd {
    pub name: String,
    pub peer_address: IpAddr,
    pub peer_port: u16,
    pub client_address: IpAddr,
    pub client_port: u16,
    pub binary: PathBuf,
}

impl EmbeddedEtcd {
    pub(crate) fn peer_url(&self) -> String {
        format!(
            "https://{}",
            std::net::SocketAddr::new(self.peer_address, self.peer_port)
        )
    }

    pub(crate) fn client_url(&self) -> String {
        format!(
            "https://{}",
            std::net::SocketAddr::new(self.client_address, self.client_port)
        )
    }
}

/// An etcd cluster someone else runs.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExternalEtcd {
    pub endpoints: Vec<String>,
    /// CA, client certificate and key for Plinth's own calls (tokens);
    /// run mode needs all three.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pki {
    pub key_algorithm: KeyAlgorithm,
    pub validity: Validity,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Images {
    pub repository: Option<String>,
    pub default_pull_policy: PullPolicy,
    /// Explicit per-component overrides, by component name.
    pub overrides: BTreeMap<String, ImageOverride>,
}

impl Config {
    /// Read `path`; without one, nothing is set and every field comes from
    /// the embedded default.
    pub fn load(path: Option<&Path>, node: &NodeFacts) -> Result<Self, ConfigError> {
        match path {
            Some(path) => {
                let text =
                    crate::regular_file::read_text(path, MAX_CONFIG_BYTES).map_err(|source| {
                        ConfigError::Read {
                            path: path.to_owned(),
                            source,
                        }
                    })?;
                Self::from_yaml(&text, &path.display().to_string(), node)
            }
            None => Self::from_user(ClusterConfig::default(), EMBEDDED_DEFAULT, node),
        }
    }

    /// Parse a document; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str, node: &NodeFacts) -> Result<Self, ConfigError> {
        let too_large = |message| ConfigError::TooLarge {
            origin: origin.to_owned(),
            message,
        };
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(too_large(format!(
                "the document is {} bytes; at most {MAX_CONFIG_BYTES} are accepted",
                text.len()
            )));
        }
        limits::check_flow_depth(text)
            .and_then(|()| limits::check_expansion(text))
            .map_err(too_large)?;
        let user: ClusterConfig = if text.trim().is_empty() {
            ClusterConfig::default()
        } else {
            serde_yaml::from_str(text)
                .map_err(|error| location::syntax_error(origin, text, &error))?
        };
        Self::from_user(user, origin, node).map_err(|error| match error {
            ConfigError::Invalid {
                origin,
                line: None,
                key,
                message,
            } => ConfigError::Invalid {
                line: location::line_of(text, key),
                origin,
                key,
                message,
            },
            other => other,
        })
    }

    fn from_user(user: ClusterConfig, origin: &str, node: &NodeFacts) -> Result<Self, ConfigError> {
        let effective = resolve(&effective_document(&user, origin)?, origin, node)?;
        Ok(Self {
            origin: origin.to_owned(),
            user,
            effective,
        })
    }

    /// Apply a plugin's JSON merge patch to what the user set, and validate
    /// the result again as if the user had written it.
    pub(crate) fn patched(
        &self,
        patch: &Value,
        plugin: &str,
        node: &NodeFacts,
    ) -> Result<Self, ConfigError> {
        if !patch.is_object() {
            return Err(ConfigError::Patch {
                plugin: plugin.to_owned(),
                message: format!("got `{patch}`"),
            });
        }
        let mut document = to_json(&self.user);
        merge::apply(&mut document, patch);
        let origin = format!("{} patched by plugin {plugin}", self.origin);
        let user: ClusterConfig =
            serde_json::from_value(document).map_err(|error| ConfigError::Parse {
                origin: origin.clone(),
                source: error.into(),
            })?;
        Self::from_user(user, &origin, node)
    }

    /// The effective document as JSON, for pre-init plugins: the user's
    /// fields over the embedded default, with node-derived values filled in.
    pub(crate) fn effective_json(&self) -> String {
        let mut document =
            to_json(&effective_document(&self.user, &self.origin).unwrap_or_default());
        let filled = serde_json::json!({
            "spec": {
                "api": {"address": self.effective.api.address.to_string()},
                "storage": match &self.effective.storage {
                    Storage::Embedded(etcd) => serde_json::json!({"etcd": {"peerAddress": etcd.peer_address.to_string(), "name": etcd.name}}),
                    Storage::External(_) => serde_json::json!({}),
                },
            }
        });
        merge::apply(&mut document, &filled);
        document.to_string()
    }

    /// Stage the persisted document (0600: it may name internal
    /// addresses), unless the data dir holds it already.
    pub(crate) fn stage_persisted(&self, stage: &mut Stage<'_>) -> Result<(), StageError> {
        stage.write_if_changed(
            DataDirView::PERSISTED_CONFIG,
            self.persisted_yaml().as_bytes(),
            0o600,
        )
    }

    /// The document Plinth persists: only what was set.
    pub(crate) fn persisted_yaml(&self) -> String {
        let mut user = self.user.clone();
        user.api_version
            .get_or_insert_with(|| schema::API_VERSION.to_owned());
        user.kind.get_or_insert_with(|| schema::KIND.to_owned());
        serde_yaml::to_string(&user).expect("a ClusterConfig always serialises")
    }
}

impl Config {
    /// Where the user's document came from: a path, `the embedded default`,
    /// or either patched by a plugin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Every field in force.
    pub(crate) fn effective(&self) -> &Effective {
        &self.effective
    }

    /// `spec.storage.etcd.joinTimeout`: how long a join (the CA fetch, the
    /// member add) may take.
    pub(crate) fn join_timeout(&self) -> std::time::Duration {
        self.effective.join_timeout.as_std()
    }

    /// What the PKI phase is asked to produce, on this node.
    /// `spec.plugins.allowedSigners`, and whether signatures are required.
    pub fn plugin_signers(&self) -> (Option<&Path>, bool) {
        let plugins = &self.effective().plugins;
        (
            plugins.allowed_signers.as_deref(),
            plugins.require_signatures,
        )
    }

    pub fn pki_spec(&self, node: &NodeFacts) -> PkiSpec {
        let effective = &self.effective;
        PkiSpec {
            cluster_domain: effective.network.cluster_domain.clone(),
            service_ip: effective.network.service_cidr.first_host(),
            api_address: effective.api.address,
            api_port: effective.api.port,
            extra_sans: effective.api.sans.clone(),
            node_addresses: node.addresses.clone(),
            hostname: node.hostname.clone(),
            etcd: match &effective.storage {
                Storage::Embedded(etcd) => EtcdMode::Embedded {
                    peer_address: etcd.peer_address,
                    client_address: etcd.client_address,
                },
                Storage::External(_) => EtcdMode::External,
            },
            key_algorithm: effective.pki.key_algorithm,
            validity: effective.pki.validity,
        }
    }
}

impl Summarize for Config {
    fn summary(&self) -> String {
        format!("{}, from {}", self.effective.name, self.origin)
    }
}

/// The origin of a configuration read from no file.
const EMBEDDED_DEFAULT: &str = "the embedded default";

fn to_json(config: &ClusterConfig) -> Value {
    serde_json::to_value(config).expect("a ClusterConfig always serialises")
}

/// The embedded default as JSON, parsed once: every load, patch and
/// pre-init call layers over it.
fn default_document() -> &'static Value {
    static DEFAULT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DEFAULT.get_or_init(|| {
        let defaults: ClusterConfig =
            serde_yaml::from_str(DEFAULT_YAML).expect("the embedded default parses");
        to_json(&defaults)
    })
}

/// The user's document layered over the embedded default.
fn effective_document(user: &ClusterConfig, origin: &str) -> Result<ClusterConfig, ConfigError> {
    let mut document = default_document().clone();
    merge::apply(&mut document, &to_json(user));
    serde_json::from_value(document).map_err(|error| ConfigError::Parse {
        origin: origin.to_owned(),
        source: error.into(),
    })
}

fn resolve(
    document: &ClusterConfig,
    origin: &str,
    node: &NodeFacts,
) -> Result<Effective, ConfigError> {
    let invalid = |key: &'static str, message: String| ConfigError::Invalid {
        origin: origin.to_owned(),
        line: None,
        key,
        message,
    };
    if let Some(api_version) = document
        .api_version
        .as_deref()
        .filter(|v| *v != schema::API_VERSION)
    {
        return Err(invalid(
            "apiVersion",
            format!(
                "{} is not supported; use `{}`",
                checks::shown(api_version),
                schema::API_VERSION
            ),
        ));
    }
    if let Some(kind) = document.kind.as_deref().filter(|k| *k != schema::KIND) {
        return Err(invalid(
            "kind",
            format!(
                "{} is not supported; use `{}`",
                checks::shown(kind),
                schema::KIND
            ),
        ));
    }
    let spec = document.spec.clone().unwrap_or_default();
    let api = spec.api.unwrap_or_default();
    let network = spec.network.unwrap_or_default();
    let storage = spec.storage.unwrap_or_default();
    let readiness = spec.readiness.unwrap_or_default();
    let pki = spec.pki.unwrap_or_default();
    let images = spec.images.unwrap_or_default();
    let plugins = spec.plugins.unwrap_or_default();
    let defaulted = "is always set by the embedded default";

    let name = document
        .metadata
        .clone()
        .and_then(|m| m.name)
        .expect(defaulted);
    checks::name(&name).map_err(|message| invalid("metadata.name", message))?;
    let address = api.address.unwrap_or_else(|| node.primary_address());
    checks::host_address(address).map_err(|message| invalid("spec.api.address", message))?;
    let nonzero = |key: &'static str, port: Option<u16>, default: u16| match port.expect(defaulted)
    {
        0 => Err(invalid(
            key,
            format!("0 is not a port; use 1-65535 ({default} by default)"),
        )),
        port => Ok(port),
    };
    let port = nonzero("spec.api.port", api.port, 6443)?;
    let plinth_api_port = nonzero("spec.api.plinthApiPort", api.plinth_api_port, 9443)?;
    let sans = api.sans.unwrap_or_default();
    checks::sans(&sans).map_err(|message| invalid("spec.api.sans", message))?;
    let cluster_domain = network.cluster_domain.expect(defaulted);
    checks::cluster_domain(&cluster_domain)
        .map_err(|message| invalid("spec.network.clusterDomain", message))?;
    let (service_cidr, pod_cidr) = (
        network.service_cidr.expect(defaulted),
        network.pod_cidr.expect(defaulted),
    );
    checks::networks(&service_cidr, &pod_cidr).map_err(|(key, message)| invalid(key, message))?;
    let etcd_spec = storage.etcd.clone().unwrap_or_default();
    let join_timeout = etcd_spec.join_timeout.expect(defaulted);
    let storage = match storage.storage_type.expect(defaulted) {
        StorageType::Etcd => {
            let etcd = etcd_spec;
            if etcd.external_cluster.is_some() {
                return Err(invalid(
                    "spec.storage.etcd.externalCluster",
                    "is set but spec.storage.type is `etcd`; set the type to `external` to use it"
                        .to_owned(),
                ));
            }
            let name = etcd
                .name
                .unwrap_or_else(|| node.hostname.to_ascii_lowercase());
            if !valid_member_name(&name) {
                return Err(invalid(
                    "spec.storage.etcd.name",
                    format!(
                        "{} is not a member name: use 1-63 letters, digits, `-`, `.` or `_` (the host name by default)",
                        checks::shown(&name)
                    ),
                ));
            }
            let binary = etcd.binary.expect(defaulted);
            if binary.as_os_str().is_empty() {
                return Err(invalid(
                    "spec.storage.etcd.binary",
                    "is empty; name the etcd executable (`etcd` by default)".to_owned(),
                ));
            }
            let peer_address = etcd.peer_address.unwrap_or(address);
            checks::host_address(peer_address)
                .map_err(|message| invalid("spec.storage.etcd.peerAddress", message))?;
            let client_address = etcd.client_address.expect(defaulted);
            checks::host_address(client_address)
                .map_err(|message| invalid("spec.storage.etcd.clientAddress", message))?;
            Storage::Embedded(EmbeddedEtcd {
                name,
                peer_address,
                peer_port: nonzero("spec.storage.etcd.peerPort", etcd.peer_port, 2380)?,
                client_address,
                client_port: nonzero("spec.storage.etcd.clientPort", etcd.client_port, 2379)?,
                binary,
            })
        }
        StorageType::External => {
            let external = etcd_spec.external_cluster.unwrap_or_default();
            if external.endpoints.is_empty() {
                return Err(invalid(
                    "spec.storage.etcd.externalCluster.endpoints",
                    "external storage needs at least one etcd endpoint".to_owned(),
                ));
            }
            checks::endpoints(&external.endpoints).map_err(|message| {
                invalid("spec.storage.etcd.externalCluster.endpoints", message)
            })?;
            Storage::External(ExternalEtcd {
                endpoints: external.endpoints,
                ca_file: external.ca_file,
                cert_file: external.cert_file,
                key_file: external.key_file,
            })
        }
    };
    let key_algorithm = pki.key_algorithm.expect(defaulted);
    let key_algorithm = key_algorithm.parse().map_err(|_| {
        invalid(
            "spec.pki.keyAlgorithm",
            format!(
                "{} is not one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096",
                checks::shown(&key_algorithm)
            ),
        )
    })?;
    let (ca, cert, renew) = (
        pki.ca_validity.expect(defaulted),
        pki.cert_validity.expect(defaulted),
        pki.renew_before.expect(defaulted),
    );
    let validity = Validity::new(ca.as_time(), cert.as_time(), renew.as_time()).map_err(
        |error| match error {
            ValidityError::TooLong => invalid(
                "spec.pki.caValidity",
                format!("{ca} is too long: {error}; make it shorter"),
            ),
            ValidityError::CertNotShorterThanCa => invalid(
                "spec.pki.certValidity",
                format!("{cert} is not shorter than caValidity ({ca}): {error}; make it shorter"),
            ),
            ValidityError::RenewalNotShorterThanCert | ValidityError::Negative => invalid(
                "spec.pki.renewBefore",
                format!(
                    "{renew} is not shorter than certValidity ({cert}): {error}; make it shorter"
                ),
            ),
        },
    )?;
    let pki = Pki {
        key_algorithm,
        validity,
    };
    let repository = images.repository.filter(|r| !r.is_empty());
    if let Some(bad) = repository.as_deref().filter(|r| {
        r.contains("://")
            || r.chars().any(|c| c.is_whitespace() || c.is_control())
            || r.len() > checks::MAX_REPOSITORY_BYTES
    }) {
        return Err(invalid(
            "spec.images.repository",
            format!(
                "{} is not a registry; write it like `registry.example.com:5000`",
                checks::shown(bad)
            ),
        ));
    }
    let require_signatures = plugins.require_signatures.expect(defaulted);
    if require_signatures && plugins.allowed_signers.is_none() {
        return Err(invalid(
            "spec.plugins.requireSignatures",
            "is true but spec.plugins.allowedSigners is not set; name the OpenSSH allowed-signers file to check signatures against".to_owned(),
        ));
    }
    Ok(Effective {
        name,
        api: Api {
            address,
            port,
            plinth_api_port,
            sans,
        },
        network: Network {
            provider: network.provider.expect(defaulted),
            service_cidr,
            pod_cidr,
            cluster_domain,
            node_local_load_balancing: network
                .node_local_load_balancing
                .and_then(|n| n.enabled)
                .expect(defaulted),
        },
        storage,
        join_timeout,
        readiness: Readiness {
            timeout: readiness.timeout.expect(defaulted).as_std(),
        },
        pki,
        images: Images {
            repository,
            default_pull_policy: images.default_pull_policy.expect(defaulted),
            overrides: images.components,
        },
        plugins: Plugins {
            allowed_signers: plugins.allowed_signers,
            require_signatures,
        },
    })
}

/// etcd member names Plinth accepts (`spec.storage.etcd.name`, and what a
/// joiner asks the join API for): what a host name or a `name-N` can be,
/// nothing that could break `--initial-cluster` (`=`, `,`).
pub(crate) fn valid_member_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests;
