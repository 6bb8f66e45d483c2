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
mod error;
mod example;
mod expiration;
pub(crate) mod inspect;
mod issue;
mod keys;
mod kubeconfig;
mod read;
mod set;
mod spec;

use std::collections::{BTreeMap, btree_map};
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;

use crate::journal::{Entry, Verdict};
use crate::phase::{Phase, Summarize};
use crate::stage::Stage;

pub use decision::{Decision, DecisionKind, KubeconfigReason, ReissueReason};
pub use error::PkiError;
pub use example::example_certificates;
pub use expiration::{ExpirationReport, ExpirationRow, RowStatus, check_expiration};
pub use inspect::{CertificateFacts, PublicKeyAlgorithm, inspect};
pub use spec::{
    BACKDATE, EtcdMode, KeyAlgorithm, PkiSpec, UnknownKeyAlgorithm, Validity, ValidityError,
};

use issue::LoadedCa;
use read::{read_current, read_optional, read_required, rfc3339};
use set::{CaId, LeafSpec};

/// Who the journal says made the PKI's decisions.
const JOURNAL_NAME: &str = "builtin:pki";

/// File modes of the PKI.
pub(crate) const KEY_MODE: u32 = 0o600;
pub(crate) const CERT_MODE: u32 = 0o644;
pub(crate) const KUBECONFIG_MODE: u32 = 0o600;

/// The cluster CA's certificate, relative to the data dir: what a join
/// token pins.
pub(crate) fn cluster_ca_cert() -> PathBuf {
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
    pub(crate) fn journal_entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.decisions.iter().map(|decision| {
            let detail = serde_json::json!({"name": decision.name, "path": decision.path, "kind": decision.kind});
            Entry::new(Phase::Pki, JOURNAL_NAME, Verdict::Event).detail(detail)
        })
    }
}

impl Summarize for PkiOutcome {
    fn summary(&self) -> String {
        let changed = self.decisions.iter().filter(|d| d.changed()).count();
        format!(
            "{} certificate(s), {changed} file(s) new or reissued",
            self.certificates.len()
        )
    }
}

/// A leaf's files as they end up: its certificate and, for a leaf a
/// kubeconfig embeds, its key.
struct LeafFiles {
    cert_pem: Vec<u8>,
    der: Vec<u8>,
    /// Only read or produced for leaves a kubeconfig embeds.
    key_pem: Option<Vec<u8>>,
}

/// What to do with one leaf of the set.
enum LeafPlan {
    /// It fits the spec: its files stay byte for byte.
    Keep(LeafFiles),
    /// It is missing or no longer fits: a new key and certificate, with
    /// this decision ([`DecisionKind::Issued`] or `Reissued`).
    Issue(DecisionKind),
}

/// Stage the PKI described by `spec` (see the module docs). Nothing is
/// written outside `stage`.
pub fn stage_pki(
    spec: &PkiSpec,
    stage: &mut Stage<'_>,
    now: OffsetDateTime,
) -> Result<PkiOutcome, PkiError> {
    check_hostname(spec)?;
    let data_dir = stage.data_dir().root().to_path_buf();
    let leaves = set::leaves(spec);

    // What is on disk, and what each item of the set needs.
    let mut cas = load_cas(stage, spec, now)?;
    let sa_key = load_sa_key(stage)?;
    let plans = leaves
        .iter()
        .map(|leaf| plan_leaf(&data_dir, leaf, cas.get(&leaf.ca), spec, now))
        .collect::<Result<Vec<_>, _>>()?;

    // Every key this run needs, generated at once and in parallel.
    let mut needed: Vec<&str> = CaId::ALL
        .into_iter()
        .filter(|id| id.wanted(&spec.etcd) && !cas.contains_key(id))
        .map(CaId::name)
        .collect();
    if sa_key.is_none() {
        needed.push(set::SA);
    }
    needed.extend(
        leaves
            .iter()
            .zip(&plans)
            .filter(|(_, plan)| matches!(plan, LeafPlan::Issue(_)))
            .map(|(leaf, _)| leaf.name),
    );
    let mut keys = NewKeys::generate(&needed, spec.key_algorithm)?;

    let mut decisions = stage_cas(&mut cas, &mut keys, stage, spec, now)?;
    decisions.push(stage_sa(stage, sa_key, &mut keys)?);
    let mut files = BTreeMap::new();
    for (leaf, plan) in leaves.iter().zip(plans) {
        let (kind, leaf_files) = stage_leaf(leaf, plan, &cas, &mut keys, stage, spec, now)?;
        decisions.push(Decision {
            name: leaf.name.to_string(),
            path: set::cert_path(leaf.name),
            kind,
        });
        files.insert(leaf.name, leaf_files);
    }
    decisions.extend(stage_kubeconfigs(
        &data_dir, &cas, &leaves, &mut files, stage, spec,
    )?);
    let certificates = certificate_facts(&cas, &leaves, &files)?;
    for d in &decisions {
        tracing::debug!(name = %d.name, decision = %d.kind, "pki");
    }
    Ok(PkiOutcome {
        decisions,
        certificates,
    })
}

/// Keys generated for this run, held by the name of what they are for.
struct NewKeys {
    keys: BTreeMap<String, KeyPair>,
    algorithm: KeyAlgorithm,
}

impl NewKeys {
    fn generate(names: &[&str], algorithm: KeyAlgorithm) -> Result<Self, PkiError> {
        let generated = keys::generate_many(names, algorithm)?;
        Ok(Self {
            keys: names
                .iter()
                .map(|name| name.to_string())
                .zip(generated)
                .collect(),
            algorithm,
        })
    }

    /// The key generated for `name`; asking for one that was not planned is
    /// a bug, reported rather than panicked on.
    fn take(&mut self, name: &str) -> Result<KeyPair, PkiError> {
        self.keys.remove(name).ok_or_else(|| {
            PkiError::Bug(format!(
                "no {} key was generated for {name}",
                self.algorithm
            ))
        })
    }
}

/// The wanted CAs that exist (never changed): on disk, or staged by a
/// joining controller from its cluster's bundle.
fn load_cas(
    stage: &Stage<'_>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<BTreeMap<CaId, LoadedCa>, PkiError> {
    let mut cas = BTreeMap::new();
    for id in CaId::ALL.into_iter().filter(|id| id.wanted(&spec.etcd)) {
        if let Some(ca) = load_ca(stage, id, now)? {
            cas.insert(id, ca);
        }
    }
    Ok(cas)
}

/// The service-account key, if there is one (never regenerated).
fn load_sa_key(stage: &Stage<'_>) -> Result<Option<KeyPair>, PkiError> {
    let rel = set::key_path(set::SA);
    read_current(stage, &rel)?
        .map(|pem| keys::parse_key(&rel, &pem))
        .transpose()
}

/// Create the wanted CAs that do not exist; one decision per wanted CA, in
/// set order.
fn stage_cas(
    cas: &mut BTreeMap<CaId, LoadedCa>,
    keys: &mut NewKeys,
    stage: &mut Stage<'_>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<Vec<Decision>, PkiError> {
    let mut decisions = Vec::new();
    for id in CaId::ALL.into_iter().filter(|id| id.wanted(&spec.etcd)) {
        let kind = match cas.entry(id) {
            btree_map::Entry::Occupied(_) => DecisionKind::CaKept,
            btree_map::Entry::Vacant(slot) => {
                slot.insert(create_ca(id, keys, stage, spec, now)?);
                DecisionKind::CaCreated
            }
        };
        decisions.push(Decision {
            name: id.name().to_string(),
            path: set::cert_path(id.name()),
            kind,
        });
    }
    Ok(decisions)
}

/// A new self-signed CA, staged.
fn create_ca(
    id: CaId,
    keys: &mut NewKeys,
    stage: &mut Stage<'_>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<LoadedCa, PkiError> {
    let key = keys.take(id.name())?;
    let pem = issue::self_signed_ca(id, &key, spec, now)?;
    let cert_path = set::cert_path(id.name());
    stage.write(&cert_path, pem.as_bytes(), CERT_MODE)?;
    stage.write(
        set::key_path(id.name()),
        key.serialize_pem().as_bytes(),
        KEY_MODE,
    )?;
    let der = issue::pem_to_der(pem.as_bytes()).map_err(|detail| PkiError::InvalidCertificate {
        path: cert_path,
        detail,
    })?;
    Ok(LoadedCa {
        id,
        pem: pem.into_bytes(),
        der,
        key,
    })
}

/// Carry out one leaf's plan: keep its files, or sign a new certificate
/// for a new key and stage both.
fn stage_leaf(
    leaf: &LeafSpec,
    plan: LeafPlan,
    cas: &BTreeMap<CaId, LoadedCa>,
    keys: &mut NewKeys,
    stage: &mut Stage<'_>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<(DecisionKind, LeafFiles), PkiError> {
    let kind = match plan {
        LeafPlan::Keep(files) => return Ok((DecisionKind::Kept, files)),
        LeafPlan::Issue(kind) => kind,
    };
    let ca = cas.get(&leaf.ca).ok_or_else(|| {
        PkiError::Bug(format!(
            "the CA {} of {} is not loaded",
            leaf.ca.name(),
            leaf.name
        ))
    })?;
    let key = keys.take(leaf.name)?;
    let pem = issue::sign_leaf(leaf, &key, ca, spec, now)?;
    let key_pem = key.serialize_pem();
    let cert_path = set::cert_path(leaf.name);
    stage.write(&cert_path, pem.as_bytes(), CERT_MODE)?;
    stage.write(set::key_path(leaf.name), key_pem.as_bytes(), KEY_MODE)?;
    let der = issue::pem_to_der(pem.as_bytes()).map_err(|detail| PkiError::InvalidCertificate {
        path: cert_path,
        detail,
    })?;
    let files = LeafFiles {
        cert_pem: pem.into_bytes(),
        der,
        key_pem: Some(key_pem.into_bytes()),
    };
    Ok((kind, files))
}

/// Rewrite each kubeconfig whose server or embedded credentials no longer
/// match the files of its client leaf; one decision per kubeconfig.
fn stage_kubeconfigs(
    data_dir: &Path,
    cas: &BTreeMap<CaId, LoadedCa>,
    leaves: &[LeafSpec],
    files: &mut BTreeMap<&'static str, LeafFiles>,
    stage: &mut Stage<'_>,
    spec: &PkiSpec,
) -> Result<Vec<Decision>, PkiError> {
    let server = spec.api_url();
    let mut decisions = Vec::new();
    for kc in set::KUBECONFIGS {
        let (Some(ca), Some(leaf_files), Some(leaf)) = (
            cas.get(&CaId::Kubernetes),
            files.get_mut(kc.leaf),
            leaves.iter().find(|l| l.name == kc.leaf),
        ) else {
            continue;
        };
        let rel = set::kubeconfig_path(kc.file);
        if leaf_files.key_pem.is_none() {
            leaf_files.key_pem = Some(read_required(data_dir, &set::key_path(kc.leaf))?);
        }
        let creds = kubeconfig::Credentials {
            user: &leaf.common_name,
            server: &server,
            ca_pem: &ca.pem,
            cert_pem: &leaf_files.cert_pem,
            key_pem: leaf_files.key_pem.as_deref().unwrap_or_default(),
        };
        let verdict = match read_optional(data_dir, &rel)? {
            None => Err(KubeconfigReason::Missing),
            Some(existing) => kubeconfig::check(&existing, &creds),
        };
        let kind = match verdict {
            Ok(()) => DecisionKind::KubeconfigKept,
            Err(reason) => {
                let yaml = kubeconfig::render(&creds).map_err(|source| PkiError::Kubeconfig {
                    path: rel.clone(),
                    source,
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
    Ok(decisions)
}

/// Facts of every certificate of the resulting set, CAs first.
fn certificate_facts(
    cas: &BTreeMap<CaId, LoadedCa>,
    leaves: &[LeafSpec],
    files: &BTreeMap<&'static str, LeafFiles>,
) -> Result<Vec<CertificateFacts>, PkiError> {
    let cas = cas
        .values()
        .map(|ca| inspect(ca.id.name(), &set::cert_path(ca.id.name()), &ca.der));
    let leaves = leaves.iter().filter_map(|leaf| {
        files
            .get(leaf.name)
            .map(|files| inspect(leaf.name, &set::cert_path(leaf.name), &files.der))
    });
    cas.chain(leaves).collect()
}

/// The hostname goes into certificates as a DNS SAN and a subject.
fn check_hostname(spec: &PkiSpec) -> Result<(), PkiError> {
    if !spec.hostname.is_ascii() || spec.hostname.contains(char::is_whitespace) {
        return Err(PkiError::InvalidSpec {
            detail: format!("hostname {:?} must be ASCII without spaces", spec.hostname),
        });
    }
    Ok(())
}

/// Decide the fate of one leaf from its files and its CA as they are on
/// disk (`None` when its CA is about to be created).
fn plan_leaf(
    data_dir: &Path,
    leaf: &LeafSpec,
    ca: Option<&LoadedCa>,
    spec: &PkiSpec,
    now: OffsetDateTime,
) -> Result<LeafPlan, PkiError> {
    let cert_rel = set::cert_path(leaf.name);
    let key_rel = set::key_path(leaf.name);
    let Some(cert_pem) = read_optional(data_dir, &cert_rel)? else {
        return Ok(LeafPlan::Issue(DecisionKind::Issued));
    };
    let reissue = |reason| Ok(LeafPlan::Issue(DecisionKind::Reissued(reason)));
    let Some(ca) = ca else {
        // Its CA is being created now: the leaf cannot be signed by it.
        return reissue(ReissueReason::NotSignedByCa {
            ca: leaf.ca.name().to_string(),
        });
    };
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
    let key_pem = read_optional(data_dir, &key_rel)?;
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
        Ok(()) => Ok(LeafPlan::Keep(LeafFiles {
            der: der.clone(),
            cert_pem,
            key_pem,
        })),
        Err(reason) => reissue(reason),
    }
}

/// Load an existing CA, checking that its key matches. `None` when neither
/// file exists.
fn load_ca(stage: &Stage<'_>, id: CaId, now: OffsetDateTime) -> Result<Option<LoadedCa>, PkiError> {
    let data_dir = stage.data_dir();
    let cert_rel = set::cert_path(id.name());
    let key_rel = set::key_path(id.name());
    let cert_pem = read_current(stage, &cert_rel)?;
    let key_pem = read_current(stage, &key_rel)?;
    let (cert_pem, key_pem) = match (cert_pem, key_pem) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(PkiError::CaKeyMissing {
                cert: data_dir.path(cert_rel),
                key: data_dir.path(key_rel),
            });
        }
        (None, Some(_)) => {
            return Err(PkiError::CaCertMissing {
                cert: data_dir.path(cert_rel),
                key: data_dir.path(key_rel),
            });
        }
        (Some(c), Some(k)) => (c, k),
    };
    let der = issue::pem_to_der(&cert_pem).map_err(|detail| PkiError::InvalidCertificate {
        path: data_dir.path(&cert_rel),
        detail,
    })?;
    let cert = issue::parse_der(&data_dir.path(&cert_rel), &der)?;
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(PkiError::NotACa {
            path: data_dir.path(&cert_rel),
        });
    }
    let key = keys::parse_key(&data_dir.path(&key_rel), &key_pem)?;
    if !keys::key_matches_cert(&key, &cert) {
        return Err(PkiError::CaKeyMismatch {
            cert: data_dir.path(cert_rel),
            key: data_dir.path(key_rel),
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
    stage: &mut Stage<'_>,
    existing: Option<KeyPair>,
    keys: &mut NewKeys,
) -> Result<Decision, PkiError> {
    let pub_rel = set::sa_pub_path();
    let key_rel = set::key_path(set::SA);
    let (key, kind) = match existing {
        Some(key) => (key, DecisionKind::KeyPairKept),
        None => {
            let key = keys.take(set::SA)?;
            stage.write(&key_rel, key.serialize_pem().as_bytes(), KEY_MODE)?;
            (key, DecisionKind::KeyPairCreated)
        }
    };
    let want_spki = key.subject_public_key_info();
    let pub_ok = read_current(stage, &pub_rel)?.is_some_and(|pem| {
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
        name: set::SA.to_string(),
        path: key_rel,
        kind,
    })
}
