//! What the PKI phase decided for each item of the set, and why.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// One decision of the PKI phase, for the journal and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Name in the set: `ca`, `etcd/peer`, `sa`, `admin.conf`, ...
    pub name: String,
    /// The main file, relative to the data dir.
    pub path: PathBuf,
    pub kind: DecisionKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "decision", content = "reason")]
pub enum DecisionKind {
    /// A new CA was created (none existed).
    CaCreated,
    /// The existing (possibly user-provided) CA is kept; it is never changed.
    CaKept,
    /// The service-account key pair was created.
    KeyPairCreated,
    /// The existing service-account key and its `sa.pub` are kept.
    KeyPairKept,
    /// The existing service-account key is kept; `sa.pub` was missing or
    /// did not match it and was rewritten from it.
    PublicKeyRewritten,
    /// The leaf did not exist and was issued.
    Issued,
    /// The leaf existed but no longer fits; a new key and cert were issued.
    Reissued(ReissueReason),
    /// The leaf fits the spec; its files are untouched.
    Kept,
    /// The kubeconfig was written.
    KubeconfigWritten(KubeconfigReason),
    /// The kubeconfig is untouched.
    KubeconfigKept,
}

/// Why an existing leaf was reissued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ReissueReason {
    /// The certificate file does not parse.
    Unparsable { detail: String },
    /// Its signature does not verify with the current CA's public key.
    NotSignedByCa { ca: String },
    /// Its subject is not the one the spec asks for.
    SubjectChanged { old: String, new: String },
    /// Its SANs differ from the spec's.
    SansChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// Its public key is not of the configured algorithm and size.
    KeyAlgorithmChanged { old: String, new: String },
    /// Its key usages or extended key usages differ from the set's.
    UsagesChanged { old: Vec<String>, new: Vec<String> },
    /// It expires within the renewal window (or has expired).
    Expiring {
        not_after: String,
        renew_before_days: i64,
    },
    /// Its private key is missing, unparsable or does not match.
    KeyUnusable { detail: String },
    /// It would outlive the CA that signed it.
    OutlivesCa {
        not_after: String,
        ca_not_after: String,
    },
}

impl fmt::Display for ReissueReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unparsable { detail } => write!(f, "certificate unparsable: {detail}"),
            Self::NotSignedByCa { ca } => write!(f, "not signed by the current {ca}"),
            Self::SubjectChanged { old, new } => write!(f, "subject changed: {old} -> {new}"),
            Self::SansChanged { added, removed } => {
                f.write_str("SANs changed:")?;
                if !added.is_empty() {
                    write!(f, " added {}", added.join(", "))?;
                }
                if !added.is_empty() && !removed.is_empty() {
                    f.write_str(";")?;
                }
                if !removed.is_empty() {
                    write!(f, " removed {}", removed.join(", "))?;
                }
                Ok(())
            }
            Self::KeyAlgorithmChanged { old, new } => {
                write!(f, "key algorithm changed: {old} -> {new}")
            }
            Self::UsagesChanged { old, new } => {
                write!(f, "usages changed: {} -> {}", old.join(","), new.join(","))
            }
            Self::Expiring {
                not_after,
                renew_before_days,
            } => write!(
                f,
                "expires {not_after}, within the renewal window of {renew_before_days}d"
            ),
            Self::KeyUnusable { detail } => write!(f, "key unusable: {detail}"),
            Self::OutlivesCa {
                not_after,
                ca_not_after,
            } => write!(f, "expires {not_after}, after its CA ({ca_not_after})"),
        }
    }
}

/// Why a kubeconfig was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum KubeconfigReason {
    Missing,
    Unparsable {
        detail: String,
    },
    /// Its server URL is not the API address.
    ServerChanged {
        old: String,
        new: String,
    },
    /// Its embedded CA, client certificate or key differs from the files in
    /// `pki/` (e.g. the client cert was reissued).
    CredentialsChanged,
}

impl fmt::Display for KubeconfigReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("missing"),
            Self::Unparsable { detail } => write!(f, "unparsable: {detail}"),
            Self::ServerChanged { old, new } => write!(f, "server changed: {old} -> {new}"),
            Self::CredentialsChanged => f.write_str("embedded credentials changed"),
        }
    }
}

impl fmt::Display for DecisionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CaCreated => f.write_str("CA created"),
            Self::CaKept => f.write_str("CA kept"),
            Self::KeyPairCreated => f.write_str("key pair created"),
            Self::KeyPairKept => f.write_str("key pair kept"),
            Self::PublicKeyRewritten => f.write_str("key kept, public key rewritten"),
            Self::Issued => f.write_str("issued"),
            Self::Reissued(reason) => write!(f, "reissued ({reason})"),
            Self::Kept => f.write_str("kept"),
            Self::KubeconfigWritten(reason) => write!(f, "written ({reason})"),
            Self::KubeconfigKept => f.write_str("kept"),
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.kind)
    }
}

impl Decision {
    /// Did this decision stage any file?
    pub fn changed(&self) -> bool {
        !matches!(
            self.kind,
            DecisionKind::CaKept
                | DecisionKind::KeyPairKept
                | DecisionKind::Kept
                | DecisionKind::KubeconfigKept
        )
    }
}
