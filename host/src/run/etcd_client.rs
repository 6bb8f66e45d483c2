//! Every call Plinth makes to etcd, over mTLS, with etcd's refusals sorted
//! into *transient* (retry: the cluster is settling) and *final*.
//!
//! etcd answers membership changes it cannot make right now with gRPC
//! errors whose only stable part is the message (etcd 3.4
//! `etcdserver/api/v3rpc/rpctypes`); the list below is the one FACTS.md
//! records. Everything Plinth retries goes through [`EtcdError::is_transient`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, GetOptions, Identity, MemberAddOptions, TlsOptions,
};

use crate::error_class::ErrorClass;
use crate::join::wire::hex_id;

/// How long one etcd call may take before it counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A client certificate, key or CA file is a few KiB.
const MAX_CREDENTIAL_BYTES: u64 = 64 * 1024;
/// Longest etcd message repeated in an error.
const MAX_MESSAGE_CHARS: usize = 2000;

/// The messages of etcd's refusals that mean "not now".
const TRANSIENT_MESSAGES: &[&str] = &[
    "too many learner members",
    "unhealthy cluster",
    "not enough started members",
    "leader changed",
    "no leader",
    "can only promote a learner member which is in sync with leader",
    "timed out",
    "request timed out",
    "etcdserver: server stopped",
];

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot read the etcd client certificate {path}: {source}")]
    Credentials {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("etcd at {endpoints}: {message}")]
    Call {
        endpoints: String,
        message: String,
        transient: bool,
    },
    #[error("etcd at {endpoints}: stored value at {key} is not valid: {message}")]
    BadValue {
        endpoints: String,
        key: String,
        message: String,
    },
}

impl EtcdError {
    /// Worth retrying: etcd is settling or not reachable yet.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Call {
                transient: true,
                ..
            }
        )
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Credentials { .. } => ErrorClass::Invalid,
            Self::Call {
                transient: true, ..
            } => ErrorClass::Unreachable,
            Self::Call { .. } | Self::BadValue { .. } => ErrorClass::Internal,
        }
    }

    /// etcd said exactly this (its message contains `text`).
    pub fn says(&self, text: &str) -> bool {
        matches!(self, Self::Call { message, .. } if message.contains(text))
    }
}

/// Where an etcd cluster is and which certificate Plinth shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdAccess {
    /// `https://host:port` client URLs.
    pub endpoints: Vec<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl EtcdAccess {
    /// The embedded etcd of a data dir at `client_url`, with the
    /// `apiserver-etcd-client` certificate Plinth generated.
    pub fn embedded(pki_dir: &Path, client_url: String) -> Self {
        Self {
            endpoints: vec![client_url],
            ca: pki_dir.join("etcd/ca.crt"),
            cert: pki_dir.join("apiserver-etcd-client.crt"),
            key: pki_dir.join("apiserver-etcd-client.key"),
        }
    }
}

/// One member as `plinth etcd members` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Empty until the member's etcd has started.
    pub name: String,
    /// etcd's member id, hex as etcdctl prints it.
    #[serde(with = "hex_id")]
    pub id: u64,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    pub learner: bool,
}

impl Member {
    /// etcd names a member once it has started and published itself.
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }

    fn from_etcd(member: &etcd_client::Member) -> Self {
        Self {
            name: member.name().to_owned(),
            id: member.id(),
            peer_urls: member.peer_urls().to_vec(),
            client_urls: member.client_urls().to_vec(),
            learner: member.is_learner(),
        }
    }
}

/// What one endpoint says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointStatus {
    pub member_id: u64,
    pub leader_id: u64,
    pub cluster_id: u64,
    pub learner: bool,
}

/// A connected etcd client. Cheap to clone.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    endpoints: String,
}

impl Etcd {
    /// Connect lazily: the first call fails (transiently) when no endpoint
    /// answers, so a client can be made before etcd is up.
    pub async fn connect(access: &EtcdAccess) -> Result<Self, EtcdError> {
        // Regular files only (a FIFO would hang the readiness task that
        // reconnects every 100 ms), bounded.
        let read = |path: &Path| {
            crate::regular_file::read(path, MAX_CREDENTIAL_BYTES).map_err(|source| {
                EtcdError::Credentials {
                    path: path.to_owned(),
                    source,
                }
            })
        };
        let tls = TlsOptions::new()
            .ca_certificate(Certificate::from_pem(read(&access.ca)?))
            .identity(Identity::from_pem(read(&access.cert)?, read(&access.key)?));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(CALL_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT);
        let endpoints = access.endpoints.join(",");
        let client = Client::connect(&access.endpoints, Some(options))
            .await
            .map_err(|error| call_error(&endpoints, error))?;
        Ok(Self { client, endpoints })
    }

    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    fn fail(&self, error: etcd_client::Error) -> EtcdError {
        call_error(&self.endpoints, error)
    }

    pub async fn members(&self) -> Result<Vec<Member>, EtcdError> {
        let response = self
            .client
            .clone()
            .member_list()
            .await
            .map_err(|e| self.fail(e))?;
        Ok(response.members().iter().map(Member::from_etcd).collect())
    }

    /// Add a learner with `peer_url`; answers its id and the members after
    /// the add (the new one included, without a name yet).
    pub async fn add_learner(&self, peer_url: &str) -> Result<(u64, Vec<Member>), EtcdError> {
        let response = self
            .client
            .clone()
            .member_add([peer_url], Some(MemberAddOptions::new().with_is_learner()))
            .await
            .map_err(|e| self.fail(e))?;
        let id = response
            .member()
            .map(etcd_client::Member::id)
            .ok_or_else(|| EtcdError::Call {
                endpoints: self.endpoints.clone(),
                message: "member add answered no member".to_owned(),
                transient: true,
            })?;
        Ok((
            id,
            response
                .member_list()
                .iter()
                .map(Member::from_etcd)
                .collect(),
        ))
    }

    pub async fn promote(&self, id: u64) -> Result<(), EtcdError> {
        self.client
            .clone()
            .member_promote(id)
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub async fn remove(&self, id: u64) -> Result<(), EtcdError> {
        self.client
            .clone()
            .member_remove(id)
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// The status of the (first) endpoint.
    pub async fn status(&self) -> Result<EndpointStatus, EtcdError> {
        let response = self
            .client
            .clone()
            .status()
            .await
            .map_err(|e| self.fail(e))?;
        let header = response.header().ok_or_else(|| EtcdError::Call {
            endpoints: self.endpoints.clone(),
            message: "status answered no header".to_owned(),
            transient: true,
        })?;
        Ok(EndpointStatus {
            member_id: header.member_id(),
            leader_id: response.leader(),
            cluster_id: header.cluster_id(),
            learner: response.is_learner(),
        })
    }

    /// A linearizable read: etcd answers only with a quorum behind it.
    pub async fn healthy(&self) -> Result<(), EtcdError> {
        self.client
            .clone()
            .get("health", None)
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let response = self
            .client
            .clone()
            .get(key, None)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(response.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Every key and value under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
        let response = self
            .client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.fail(e))?;
        Ok(response
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect())
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), EtcdError> {
        self.client
            .clone()
            .put(key, value, None)
            .await
            .map(|_| ())
            .map_err(|e| self.fail(e))
    }

    /// Delete `key`; `true` when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool, EtcdError> {
        let response = self
            .client
            .clone()
            .delete(key, None)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(response.deleted() > 0)
    }

    pub fn bad_value(&self, key: &str, message: String) -> EtcdError {
        EtcdError::BadValue {
            endpoints: self.endpoints.clone(),
            key: key.to_owned(),
            message,
        }
    }
}

fn call_error(endpoints: &str, error: etcd_client::Error) -> EtcdError {
    use etcd_client::Error as E;
    use tonic::Code;
    let (message, transient) = match &error {
        E::GRpcStatus(status) => {
            let message = status.message().to_owned();
            let transient = matches!(
                status.code(),
                Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled
            ) || TRANSIENT_MESSAGES.iter().any(|t| message.contains(t));
            (message, transient)
        }
        E::TransportError(_) | E::IoError(_) => (error.to_string(), true),
        _ => (error.to_string(), false),
    };
    EtcdError::Call {
        endpoints: endpoints.to_owned(),
        message: crate::terminal::clipped(&message, MAX_MESSAGE_CHARS),
        transient,
    }
}
