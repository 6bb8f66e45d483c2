//! The control-plane PKI: three CAs, the leaves, the service-account key
//! pair and the kubeconfigs, under `<data-dir>/pki/` with kubeadm/k0s names.
//!
//! [`stage_pki`] compares what is on disk with a [`PkiSpec`] and writes every
//! new or changed file into a [`Stage`]; it never writes into the data dir.
//! Rules:
//!
//! - a CA or the service-account key, once on disk, is never regenerated; a
//!   user-provided CA (only `ca.crt` and `ca.key`) signs the leaves;
//! - a leaf is reissued (new key, new cert) only when it is missing,
//!   unparsable, not signed by its current CA (signature verified), its
//!   subject, SANs, usages or key algorithm no longer match the spec, its key
//!   is unusable, or it expires within `renew_before`; otherwise its bytes
//!   (and its key's) stay identical;
//! - a kubeconfig is rewritten when missing, unparsable, pointing at another
//!   server, or when its embedded CA, client cert or key differ from the
//!   files in `pki/`.
//!
//! With external etcd no etcd certificate is made, not even
//! `apiserver-etcd-client`: it must be signed by the user's etcd CA, whose
//! key Plinth does not hold, so the user brings it with the rest of their
//! etcd client configuration.

mod decision;
pub mod expiration;
mod inspect;
mod issue;
mod keys;
mod kubeconfig;
mod set;
mod spec;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;

use crate::error_class::ErrorClass;
use crate::journal::{Entry, Verdict};
use crate::phase::{Phase, Summary};
use crate::stage::{Stage, StageError};

pub use decision::{Decision, DecisionKind, KubeconfigReason, ReissueReason};
pub use expiration::{ExpirationReport, ExpirationRow, RowStatus, check_expiration};
pub use inspect::{CertificateFacts, PublicKeyAlgorithm, inspect};
pub use spec::{
    BACKDATE, DEFAULT_CA_VALIDITY, DEFAULT_CERT_VALIDITY, DEFAULT_RENEW_BEFORE, EtcdMode,
    KeyAlgorithm, PkiSpec, UnknownKeyAlgorithm,
};

use issue::LoadedCa;
use set::{CaId, LeafSpec};

/// Who the journal says made the PKI's decisions.
const JOURNAL_NAME: &str = "builtin:pki";

/// File modes of the PKI.
pub const KEY_MODE: u32 = 0o600;
pub const CERT_MODE: u32 = 0o644;
pub const KUBECONFIG_MODE: u32 = 0o600;

/// Errors of the PKI phase. Each names the file involved and what to do; none
/// ever quotes private key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("pki: cannot read {path}: {source}; check the data dir's ownership and permissions")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "pki: CA certificate {cert} exists but its key {key} is missing; restore the key (a CA is never regenerated), or remove both to create a new CA"
    )]
    CaKeyMissing { cert: PathBuf, key: PathBuf },
    #[error(
        "pki: CA key {key} exists but its certificate {cert} is missing; restore the certificate, or remove both to create a new CA"
    )]
    CaCertMissing { cert: PathBuf, key: PathBuf },
    #[error(
        "pki: CA key {key} does not match certificate {cert}; restore the matching pair (a CA is never regenerated)"
    )]
    CaKeyMismatch { cert: PathBuf, key: PathBuf },
    #[error(
        "pki: {path} is not a CA certificate (basicConstraints CA:TRUE missing); provide a CA certificate"
    )]
    NotACa { path: PathBuf },
    #[error("pki: certificate {path} is invalid: {detail}; fix or remove it")]
    InvalidCertificate { path: PathBuf, detail: String },
    #[error(
        "pki: private key {path} cannot be used: {detail}; fix it or remove it with its certificate"
    )]
    InvalidKey { path: PathBuf, detail: String },
    #[error("pki: cannot generate the {algorithm} key for {name}: {detail}")]
    KeyGeneration {
        name: String,
        algorithm: KeyAlgorithm,
        detail: String,
    },
    #[error("pki: cannot sign the certificate {name}: {detail}")]
    Sign { name: String, detail: String },
    #[error("pki: invalid SAN {value:?}: {detail}; fix the extra SANs in the config")]
    InvalidSan { value: String, detail: String },
    #[error("pki: invalid PKI settings: {detail}; fix the config")]
    InvalidSpec { detail: String },
    #[error("pki: cannot render kubeconfig {path}: {detail}")]
    Kubeconfig { path: PathBuf, detail: String },
    #[error(transparent)]
    Stage(#[from] StageError),
}

impl PkiError {
    /// A PKI the user handed over in a state Plinth will not touch is bad
    /// input; failing to read, generate or sign is not.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::CaKeyMissing { .. }
            | Self::CaCertMissing { .. }
            | Self::CaKeyMismatch { .. }
            | Self::NotACa { .. }
            | Self::InvalidCertificate { .. }
            | Self::InvalidKey { .. }
            | Self::InvalidSan { .. }
            | Self::InvalidSpec { .. } => ErrorClass::Invalid,
            Self::Stage(error) => error.class(),
            Self::Read { .. }
            | Self::KeyGeneration { .. }
            | Self::Sign { .. }
            | Self::Kubeconfig { .. } => ErrorClass::Internal,
        }
    }
}

/// The cluster CA's certificate, relative to the data dir: what a join
/// token pins.
pub fn cluster_ca_cert() -> PathBuf {
    set::cert_path(CaId::Kubernetes.name())
}

/// What [`stage_pki`] did and the resulting certificate set.
#[derive(Debug, Clone)]
pub struct PkiOutcome {
    /// One per CA, the `sa` key pair, each leaf and each kubeconfig, in that
    /// order.
    pub decisions: Vec<Decision>,
    /// Every certificate of the resulting set, CAs first, kept and new
    /// alike. The kubeconfigs embed the `admin`, `scheduler` and
    /// `controller-manager` leaves, which are listed once, here.
    pub certificates: Vec<CertificateFacts>,
}

impl PkiOutcome {
    /// One journal line per decision.
    pub fn journal_entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.decisions.iter().map(|decision| {
            let detail = serde_json::json!({"name": decision.name, "path": decision.path, "kind": decision.kind});
            Entry::new(Phase::Pki, JOURNAL_NAME, Verdict::Event).detail(detail)
        })
    }
}

impl Summary for PkiOutcome {
    fn summary(&self) -> String {
        let changed = self.decisions.iter().filter(|d| d.changed()).count();
        format!(
            "{} certificate(s), {changed} file(s) new or reissued",
            self.certificates.len()
        )
    }
}

/// The final state of one leaf, after the decisions.
struct LeafResult {
    cert_pem: Vec<u8>,
    der: Vec<u8>,
    /// Only read or produced for leaves a kubeconfig embeds.
    key_pem: Option<Vec<u8>>,
}

/// Stage the PKI described by `spec` (see the module docs). Nothing is
/// written outside `stage`.
pub fn stage_pki(
    spec: &PkiSpec,
    stage: &mut Stage<'_>,
    now: OffsetDateTime,
) -> Result<PkiOutcome, PkiError> {
    check_spec(spec)?;
    let data_dir = stage.data_dir().root().to_path_buf();
    let leaves = set::leaves(spec);
    let mut decisions = Vec::new();

    // 1. The CAs on disk (never changed), and the ones to create.
    let mut cas: BTreeMap<CaId, LoadedCa> = BTreeMap::new();
    let mut new_cas = Vec::new();
    for id in CaId::ALL.into_iter().filter(|id| id.wanted(&spec.etcd)) {
        match load_ca(&data_dir, id, now)? {
            Some(ca) => {
                cas.insert(id, ca);
            }
            None => new_cas.push(id),
        }
    }

    // 2. The service-account key (never regenerated).
    let sa_key_path = PathBuf::from(set::SA_KEY);
    let sa_key = read_optional(&data_dir.join(&sa_key_path))?
        .map(|pem| keys::parse_key(&sa_key_path, &pem))
        .transpose()?;

    // 3. Which leaves to keep, which to (re)issue.
    let mut plans: Vec<Option<LeafResult>> = Vec::new();
    let mut leaf_kinds: Vec<DecisionKind> = Vec::new();
    for leaf in &leaves {
        let (kind, kept) = plan_leaf(&data_dir, leaf, cas.get(&leaf.ca), spec, now)?;
        leaf_kinds.push(kind);
        plans.push(kept);
    }

    // 4. Every key to generate, at once and in parallel.
    let mut jobs: Vec<(String, KeyAlgorithm)> = new_cas
        .iter()
        .map(|id| (id.name().to_string(), spec.key_algorithm))
        .collect();
    if sa_key.is_none() {
        jobs.push(("sa".to_string(), spec.key_algorithm));
    }
    for (leaf, plan) in leaves.iter().zip(&plans) {
        if plan.is_none() {
            jobs.push((leaf.name.to_string(), spec.key_algorithm));
        }
    }
    let mut new_keys = keys::generate_many(&jobs)?.into_iter();
    let mut next_key = |name: &str| {
        new_keys.next().ok_or_else(|| PkiError::KeyGeneration {
            name: name.to_string(),
            algorithm: spec.key_algorithm,
            detail: "internal error: key missing".to_string(),
        })
    };

    // 5. New CAs.
    for &id in &new_cas {
        let key = next_key(id.name())?;
        let pem = issue::self_signed_ca(id, &key, spec, now)?;
        let cert_path = set::cert_path(id.name());
        stage.write(&cert_path, pem.as_bytes(), CERT_MODE)?;
        stage.write(
            set::key_path(id.name()),
            key.serialize_pem().as_bytes(),
            KEY_MODE,
        )?;
        let der =
            issue::pem_to_der(pem.as_bytes()).map_err(|detail| PkiError::InvalidCertificate {
                path: cert_path,
                detail,
            })?;
        cas.insert(
            id,
            LoadedCa {
                id,
                pem: pem.into_bytes(),
                der,
                key,
            },
        );
    }
    for id in CaId::ALL {
        if let Some(ca) = cas.get(&id) {
            decisions.push(Decision {
                name: id.name().to_string(),
                path: set::cert_path(ca.id.name()),
                kind: if new_cas.contains(&id) {
                    DecisionKind::CaCreated
                } else {
                    DecisionKind::CaKept
                },
            });
        }
    }

    // 6. The service-account key pair.
    decisions.push(stage_sa(&data_dir, stage, sa_key, &mut next_key)?);

    // 7. Leaves.
    let mut results: BTreeMap<&'static str, LeafResult> = BTreeMap::new();
    for ((leaf, plan), kind) in leaves.iter().zip(plans).zip(leaf_kinds) {
        let cert_path = set::cert_path(leaf.name);
        let result = match plan {
            Some(kept) => kept,
            None => {
                let ca = cas.get(&leaf.ca).ok_or_else(|| PkiError::Sign {
                    name: leaf.name.to_string(),
                    detail: format!("internal error: CA {} not loaded", leaf.ca.name()),
                })?;
                let key = next_key(leaf.name)?;
                let pem = issue::sign_leaf(leaf, &key, ca, spec, now)?;
                let key_pem = key.serialize_pem();
                stage.write(&cert_path, pem.as_bytes(), CERT_MODE)?;
                stage.write(set::key_path(leaf.name), key_pem.as_bytes(), KEY_MODE)?;
                let der = issue::pem_to_der(pem.as_bytes()).map_err(|detail| {
                    PkiError::InvalidCertificate {
                        path: cert_path.clone(),
                        detail,
                    }
                })?;
                LeafResult {
                    cert_pem: pem.into_bytes(),
                    der,
                    key_pem: Some(key_pem.into_bytes()),
                }
            }
        };
        decisions.push(Decision {
            name: leaf.name.to_string(),
            path: cert_path,
            kind,
        });
        results.insert(leaf.name, result);
    }

    // 8. Kubeconfigs.
    let server = spec.api_url();
    for kc in set::KUBECONFIGS {
        let (Some(ca), Some(result), Some(leaf)) = (
            cas.get(&CaId::Kubernetes),
            results.get_mut(kc.leaf),
            leaves.iter().find(|l| l.name == kc.leaf),
        ) else {
            continue;
        };
        let rel = set::kubeconfig_path(kc.file);
        if result.key_pem.is_none() {
            let key_rel = set::key_path(kc.leaf);
            result.key_pem = Some(read_required(&data_dir, &key_rel)?);
        }
        let creds = kubeconfig::Credentials {
            user: &leaf.common_name,
            server: &server,
            ca_pem: &ca.pem,
            cert_pem: &result.cert_pem,
            key_pem: result.key_pem.as_deref().unwrap_or_default(),
        };
        let verdict = match read_optional(&data_dir.join(&rel))? {
            None => Err(KubeconfigReason::Missing),
            Some(existing) => kubeconfig::check(&existing, &creds),
        };
        let kind = match verdict {
            Ok(()) => DecisionKind::KubeconfigKept,
            Err(reason) => {
                let yaml = kubeconfig::render(&creds).map_err(|e| PkiError::Kubeconfig {
                    path: rel.clone(),
                    detail: e.to_string(),
                })?;
                stage.write(&rel, yaml.as_bytes(), KUBECONFIG_MODE)?;
                DecisionKind::KubeconfigWritten(reason)
            }
        };
        decisions.push(Decision {
            name: kc.file.to_string(),
            path: rel,
            kind,
        });
    }

    // 9. Facts of the resulting set.
    let mut certificates = Vec::new();
    for ca in cas.values() {
        certificates.push(inspect(
            ca.id.name(),
            &set::cert_path(ca.id.name()),
            &ca.der,
        )?);
    }
    for leaf in &leaves {
        if let Some(result) = results.get(leaf.name) {
            certificates.push(inspect(leaf.name, &set::cert_path(leaf.name), &result.der)?);
        }
    }
    for d in &decisions {
        tracing::debug!(name = %d.name, decision = %d.kind, "pki");
    }
    Ok(PkiOutcome {
        decisions,
        certificates,
    })
}

fn check_spec(spec: &PkiSpec) -> Result<(), PkiError> {
    let invalid = |detail: String| Err(PkiError::InvalidSpec { detail });
    if spec.ca_validity <= spec.cert_validity {
        return invalid(format!(
            "CA validity ({}d) must be longer than the certificate validity ({}d)",
            spec.ca_validity.whole_days(),
            spec.cert_validity.whole_days()
        ));
    }
    if spec.cert_validity <= spec.renew_before {
        return invalid(format!(
            "certificate validity ({}d) must be longer than the renewal window ({}d), or every run would reissue every certificate",
            spec.cert_validity.whole_days(),
            spec.renew_before.whole_days()
        ));
    }
    if spec.renew_before.is_negative() {
        return invalid("the renewal window must not be negative".to_string());
    }
    if !spec.hostname.is_ascii() || spec.hostname.contains(char::is_whitespace) {
        return invalid(format!(
            "hostname {:?} must be ASCII without spaces",
            spec.hostname
        ));
    }
    Ok(())
}

/// Decide the fate of one leaf. Returns the decision and, for a kept leaf,
/// its current state.
fn plan_leaf(
    data_dir: &Path,
    leaf: &LeafSpec,
    ca: Option<&LoadedCa>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<(DecisionKind, Option<LeafResult>), PkiError> {
    let cert_rel = set::cert_path(leaf.name);
    let key_rel = set::key_path(leaf.name);
    let Some(cert_pem) = read_optional(&data_dir.join(&cert_rel))? else {
        return Ok((DecisionKind::Issued, None));
    };
    let Some(ca) = ca else {
        // Its CA is being created now: the leaf cannot be signed by it.
        return Ok((
            DecisionKind::Reissued(ReissueReason::NotSignedByCa {
                ca: leaf.ca.name().to_string(),
            }),
            None,
        ));
    };
    let reissue = |reason| Ok((DecisionKind::Reissued(reason), None));
    let der = match issue::pem_to_der(&cert_pem) {
        Ok(der) => der,
        Err(detail) => return reissue(ReissueReason::Unparsable { detail }),
    };
    let cert = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return reissue(ReissueReason::Unparsable {
                detail: e.to_string(),
            });
        }
    };
    let key_pem = read_optional(&data_dir.join(&key_rel))?;
    let ca_cert = ca.parsed()?;
    match issue::evaluate(
        leaf,
        &cert,
        key_pem.as_deref(),
        &key_rel,
        &ca_cert,
        spec,
        now,
    ) {
        Ok(()) => Ok((
            DecisionKind::Kept,
            Some(LeafResult {
                der: der.clone(),
                cert_pem,
                key_pem,
            }),
        )),
        Err(reason) => reissue(reason),
    }
}

/// Load an existing CA, checking that its key matches. `None` when neither
/// file exists.
fn load_ca(data_dir: &Path, id: CaId, now: OffsetDateTime) -> Result<Option<LoadedCa>, PkiError> {
    let cert_rel = set::cert_path(id.name());
    let key_rel = set::key_path(id.name());
    let cert_pem = read_optional(&data_dir.join(&cert_rel))?;
    let key_pem = read_optional(&data_dir.join(&key_rel))?;
    let (cert_pem, key_pem) = match (cert_pem, key_pem) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(PkiError::CaKeyMissing {
                cert: data_dir.join(cert_rel),
                key: data_dir.join(key_rel),
            });
        }
        (None, Some(_)) => {
            return Err(PkiError::CaCertMissing {
                cert: data_dir.join(cert_rel),
                key: data_dir.join(key_rel),
            });
        }
        (Some(c), Some(k)) => (c, k),
    };
    let der = issue::pem_to_der(&cert_pem).map_err(|detail| PkiError::InvalidCertificate {
        path: data_dir.join(&cert_rel),
        detail,
    })?;
    let cert = issue::parse_der(&data_dir.join(&cert_rel), &der)?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(PkiError::NotACa {
            path: data_dir.join(&cert_rel),
        });
    }
    let key = keys::parse_key(&data_dir.join(&key_rel), &key_pem)?;
    if !keys::key_matches_cert(&key, &cert) {
        return Err(PkiError::CaKeyMismatch {
            cert: data_dir.join(cert_rel),
            key: data_dir.join(key_rel),
        });
    }
    if cert.validity().not_after.to_datetime() <= now {
        tracing::warn!(
            ca = id.name(),
            not_after = %rfc3339(cert.validity().not_after.to_datetime()),
            "CA has expired; it is kept (a CA is never regenerated): rotate it by hand"
        );
    }
    Ok(Some(LoadedCa {
        id,
        pem: cert_pem,
        der,
        key,
    }))
}

/// Keep or create `sa.key`, and make sure `sa.pub` is its public half.
fn stage_sa(
    data_dir: &Path,
    stage: &mut Stage,
    existing: Option<KeyPair>,
    next_key: &mut impl FnMut(&str) -> Result<KeyPair, PkiError>,
) -> Result<Decision, PkiError> {
    let pub_rel = PathBuf::from(set::SA_PUB);
    let key_rel = PathBuf::from(set::SA_KEY);
    let (key, kind) = match existing {
        Some(key) => (key, DecisionKind::KeyPairKept),
        None => {
            let key = next_key("sa")?;
            stage.write(&key_rel, key.serialize_pem().as_bytes(), KEY_MODE)?;
            (key, DecisionKind::KeyPairCreated)
        }
    };
    let want_spki = key.subject_public_key_info();
    let pub_ok = read_optional(&data_dir.join(&pub_rel))?.is_some_and(|pem| {
        x509_parser::pem::Pem::iter_from_buffer(&pem)
            .filter_map(Result::ok)
            .any(|block| block.label == "PUBLIC KEY" && block.contents == want_spki)
    });
    let kind = match kind {
        DecisionKind::KeyPairKept if !pub_ok => DecisionKind::PublicKeyRewritten,
        kind => kind,
    };
    if kind != DecisionKind::KeyPairKept {
        stage.write(&pub_rel, key.public_key_pem().as_bytes(), CERT_MODE)?;
    }
    Ok(Decision {
        name: "sa".to_string(),
        path: key_rel,
        kind,
    })
}

/// Read a file; `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn read_required(data_dir: &Path, rel: &Path) -> Result<Vec<u8>, PkiError> {
    let path = data_dir.join(rel);
    std::fs::read(&path).map_err(|source| PkiError::Read { path, source })
}

/// RFC 3339 text of a time, for messages and reports.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
