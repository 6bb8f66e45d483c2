//! The JSON forms of each hook's input and answer: serde's remote derives
//! over the WIT records, with the WIT's kebab-case names, so a fixture
//! reads like the contract.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hooks::{Attributed, Outcome};
use crate::plugin::contract::{
    Certificate, CheckSpec, ClusterFacts, Finding, Hook, Image, JoinAction, JoinFacts,
    KeyAlgorithm, NodeFacts, Observation, Origin, ProbeResult, Proposal, PullPolicy,
    RecordedMembership, Severity, StorageKind,
};

/// A module for `#[serde(with)]` on an `Option` of a record that has a JSON
/// form (`$json`, a newtype over the record through its remote derive).
macro_rules! optional_form {
    ($module:ident, $record:ident, $json:ident) => {
        mod $module {
            use super::{Deserialize, Deserializer, Serialize, Serializer, $json, $record};

            pub fn serialize<S: Serializer>(
                value: &Option<$record>,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                value.clone().map($json).serialize(serializer)
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Option<$record>, D::Error> {
                Ok(Option::<$json>::deserialize(deserializer)?.map(|json| json.0))
            }
        }
    };
}

/// A hook's input, as read from a fixture.
pub(super) enum Fixture {
    PreInit {
        config: serde_json::Value,
        facts: NodeFacts,
    },
    JoinDecision {
        facts: JoinFacts,
        current: Proposal,
    },
    PostPki {
        certificates: Vec<Certificate>,
    },
    ImageResolve {
        images: Vec<Image>,
    },
    Readiness {
        check: String,
        observation: Observation,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreInitInput {
    config: serde_json::Value,
    #[serde(with = "NodeFactsForm")]
    facts: NodeFacts,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinDecisionInput {
    #[serde(with = "JoinFactsForm")]
    facts: JoinFacts,
    #[serde(with = "ProposalForm")]
    current: Proposal,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PostPkiInput {
    certificates: Vec<CertificateJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageResolveInput {
    images: Vec<ImageJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadinessInput {
    check: String,
    #[serde(with = "ObservationForm")]
    observation: Observation,
}

impl Fixture {
    pub(super) fn parse(hook: Hook, text: &str) -> Result<Self, String> {
        let error = |error: serde_json::Error| error.to_string();
        Ok(match hook {
            Hook::PreInit => {
                let input: PreInitInput = serde_json::from_str(text).map_err(error)?;
                if !input.config.is_object() {
                    return Err("`config` must be a ClusterConfig object".to_owned());
                }
                Fixture::PreInit {
                    config: input.config,
                    facts: input.facts,
                }
            }
            Hook::JoinDecision => {
                let input: JoinDecisionInput = serde_json::from_str(text).map_err(error)?;
                Fixture::JoinDecision {
                    facts: input.facts,
                    current: input.current,
                }
            }
            Hook::PostPki => {
                let input: PostPkiInput = serde_json::from_str(text).map_err(error)?;
                Fixture::PostPki {
                    certificates: input.certificates.into_iter().map(|c| c.0).collect(),
                }
            }
            Hook::ImageResolve => {
                let input: ImageResolveInput = serde_json::from_str(text).map_err(error)?;
                Fixture::ImageResolve {
                    images: input.images.into_iter().map(|i| i.0).collect(),
                }
            }
            Hook::Readiness => {
                let input: ReadinessInput = serde_json::from_str(text).map_err(error)?;
                Fixture::Readiness {
                    check: input.check,
                    observation: input.observation,
                }
            }
        })
    }
}

/// A valid fixture for `hook`, pretty-printed: `plugins invoke --example`.
pub fn example(hook: Hook) -> Result<String, crate::Error> {
    let value = match hook {
        Hook::PreInit => serde_json::to_value(PreInitInput {
            config: serde_json::json!({
                "apiVersion": "plinth.dev/v1beta1",
                "kind": "ClusterConfig",
                "metadata": {"name": "example"},
                "spec": {"network": {"serviceCIDR": "10.96.0.0/12"}},
            }),
            facts: NodeFacts {
                hostname: "controller-1".to_owned(),
                addresses: vec!["10.0.0.10".to_owned()],
                plinth_version: env!("CARGO_PKG_VERSION").to_owned(),
                data_dir: "/var/lib/plinth".to_owned(),
            },
        }),
        Hook::JoinDecision => serde_json::to_value(JoinDecisionInput {
            facts: JoinFacts {
                storage: StorageKind::EmbeddedEtcd,
                etcd_member_data: false,
                join_token_present: false,
                join_token_api: None,
                recorded_membership: None,
                hostname: "controller-1".to_owned(),
            },
            current: Proposal {
                action: JoinAction::CreateCluster,
                reason: "no etcd data and no join token: a new cluster".to_owned(),
            },
        }),
        Hook::PostPki => serde_json::to_value(PostPkiInput {
            certificates: crate::pki::example_certificates(time::OffsetDateTime::now_utc())?
                .iter()
                .map(|facts| CertificateJson(crate::hooks::post_pki::to_wire(facts)))
                .collect(),
        }),
        Hook::ImageResolve => serde_json::to_value(ImageResolveInput {
            images: [
                ("pause", "registry.k8s.io/pause", "3.10"),
                ("coredns", "registry.k8s.io/coredns/coredns", "v1.12.0"),
            ]
            .into_iter()
            .map(|(component, repository, tag)| {
                ImageJson(Image {
                    component: component.to_owned(),
                    repository: repository.to_owned(),
                    tag: tag.to_owned(),
                    digest: None,
                    origin: Origin::Default,
                    pull_policy: PullPolicy::IfNotPresent,
                })
            })
            .collect(),
        }),
        Hook::Readiness => serde_json::to_value(ReadinessInput {
            check: "url".to_owned(),
            observation: Observation {
                status: Some(200),
                body: "ok".to_owned(),
                error: None,
                attempt: 1,
                cluster: Some(ClusterFacts {
                    members: 3,
                    voters: 3,
                    learners: 0,
                    this_node_voter: true,
                    cluster_id: 0x8e9e_05c5_2164_694d,
                }),
                kernel_modules: Some(vec!["nf_conntrack".to_owned(), "overlay".to_owned()]),
            },
        }),
    };
    // These forms are plain data: serialising them cannot fail.
    let value = value.unwrap_or_default();
    Ok(serde_json::to_string_pretty(&value).unwrap_or_default())
}

pub(super) fn pre_init_answer(outcome: &Outcome<crate::config::Config>) -> serde_json::Value {
    serde_json::json!({
        "config": serde_json::from_str::<serde_json::Value>(&outcome.value.effective_json())
            .unwrap_or(serde_json::Value::Null),
        "findings": notes(&outcome.notes),
    })
}

pub(super) fn proposal(proposal: &Proposal) -> serde_json::Value {
    serde_json::json!({"action": proposal.action.as_str(), "reason": proposal.reason})
}

pub(super) fn notes(notes: &[Attributed]) -> serde_json::Value {
    serde_json::Value::Array(
        notes
            .iter()
            .map(|note| serde_json::to_value(FindingJson(note.finding.clone())).unwrap_or_default())
            .collect(),
    )
}

pub(super) fn images(images: &[Image]) -> serde_json::Value {
    serde_json::to_value(images.iter().cloned().map(ImageJson).collect::<Vec<_>>())
        .unwrap_or_default()
}

pub(super) fn checks(checks: &[CheckSpec]) -> serde_json::Value {
    serde_json::Value::Array(
        checks
            .iter()
            .map(|check| {
                serde_json::json!({"name": check.name, "url": check.url, "interval-ms": check.interval_ms})
            })
            .collect(),
    )
}

/// `"ready"`, `{"waiting": reason}` or `{"failed": reason}`.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum ProbeResultForm {
    Ready,
    Waiting(String),
    Failed(String),
}

impl From<&ProbeResult> for ProbeResultForm {
    fn from(result: &ProbeResult) -> Self {
        match result {
            ProbeResult::Ready => Self::Ready,
            ProbeResult::Waiting(reason) => Self::Waiting(reason.clone()),
            ProbeResult::Failed(reason) => Self::Failed(reason.clone()),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "NodeFacts", rename_all = "kebab-case", deny_unknown_fields)]
struct NodeFactsForm {
    hostname: String,
    addresses: Vec<String>,
    plinth_version: String,
    data_dir: String,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "StorageKind", rename_all = "kebab-case")]
enum StorageKindForm {
    EmbeddedEtcd,
    ExternalEtcd,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "JoinFacts", rename_all = "kebab-case", deny_unknown_fields)]
struct JoinFactsForm {
    #[serde(with = "StorageKindForm")]
    storage: StorageKind,
    etcd_member_data: bool,
    join_token_present: bool,
    join_token_api: Option<String>,
    #[serde(default, with = "optional_recorded_membership")]
    recorded_membership: Option<RecordedMembership>,
    hostname: String,
}

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "RecordedMembership",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
struct RecordedMembershipForm {
    member_id: String,
    name: String,
    peer_url: String,
    join_api: String,
}

#[derive(Serialize, Deserialize)]
struct RecordedMembershipJson(#[serde(with = "RecordedMembershipForm")] RecordedMembership);

optional_form!(
    optional_recorded_membership,
    RecordedMembership,
    RecordedMembershipJson
);

#[derive(Serialize, Deserialize)]
#[serde(remote = "JoinAction", rename_all = "kebab-case")]
enum JoinActionForm {
    CreateCluster,
    JoinCluster,
    AlreadyMember,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Proposal", rename_all = "kebab-case", deny_unknown_fields)]
struct ProposalForm {
    #[serde(with = "JoinActionForm")]
    action: JoinAction,
    reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "KeyAlgorithm", rename_all = "kebab-case")]
enum KeyAlgorithmForm {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
    Other,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Certificate", rename_all = "kebab-case", deny_unknown_fields)]
struct CertificateForm {
    name: String,
    path: String,
    #[serde(with = "base64_der")]
    der: Vec<u8>,
    subject: String,
    issuer: String,
    serial: String,
    dns_sans: Vec<String>,
    ip_sans: Vec<String>,
    #[serde(with = "KeyAlgorithmForm")]
    key_algorithm: KeyAlgorithm,
    key_bits: u32,
    signature_algorithm: String,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
    path_length: Option<u32>,
    key_usages: Vec<String>,
    extended_key_usages: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct CertificateJson(#[serde(with = "CertificateForm")] Certificate);

#[derive(Serialize, Deserialize)]
#[serde(remote = "Origin", rename_all = "kebab-case")]
enum OriginForm {
    Default,
    Explicit,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "PullPolicy", rename_all = "kebab-case")]
enum PullPolicyForm {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Image", rename_all = "kebab-case", deny_unknown_fields)]
struct ImageForm {
    component: String,
    repository: String,
    tag: String,
    digest: Option<String>,
    #[serde(with = "OriginForm")]
    origin: Origin,
    #[serde(with = "PullPolicyForm")]
    pull_policy: PullPolicy,
}

#[derive(Serialize, Deserialize)]
struct ImageJson(#[serde(with = "ImageForm")] Image);

#[derive(Serialize, Deserialize)]
#[serde(remote = "Observation", rename_all = "kebab-case", deny_unknown_fields)]
struct ObservationForm {
    status: Option<u16>,
    body: String,
    error: Option<String>,
    attempt: u32,
    #[serde(default, with = "optional_cluster_facts")]
    cluster: Option<ClusterFacts>,
    #[serde(default)]
    kernel_modules: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize)]
#[serde(
    remote = "ClusterFacts",
    rename_all = "kebab-case",
    deny_unknown_fields
)]
struct ClusterFactsForm {
    members: u32,
    voters: u32,
    learners: u32,
    this_node_voter: bool,
    cluster_id: u64,
}

#[derive(Serialize, Deserialize)]
struct ClusterFactsJson(#[serde(with = "ClusterFactsForm")] ClusterFacts);

optional_form!(optional_cluster_facts, ClusterFacts, ClusterFactsJson);

#[derive(Serialize)]
#[serde(remote = "Severity", rename_all = "kebab-case")]
enum SeverityForm {
    Info,
    Warning,
    Deny,
}

#[derive(Serialize)]
#[serde(remote = "Finding", rename_all = "kebab-case")]
struct FindingForm {
    #[serde(with = "SeverityForm")]
    severity: Severity,
    subject: String,
    rule: String,
    message: String,
}

#[derive(Serialize)]
struct FindingJson(#[serde(with = "FindingForm")] Finding);

mod base64_der {
    use base64::Engine as _;
    use base64::prelude::BASE64_STANDARD;

    use super::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(der: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64_STANDARD.encode(der))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64_STANDARD
            .decode(text.as_bytes())
            .map_err(|error| serde::de::Error::custom(format!("`der` is not base64: {error}")))
    }
}
