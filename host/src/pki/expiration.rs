//! `certs check-expiration`, kubeadm style: one row per leaf, per
//! kubeconfig-embedded client cert and per CA.
//!
//! The etcd rows (its CA, leaves and `apiserver-etcd-client`) are listed only
//! when `pki/etcd/ca.crt` exists: without it the cluster uses external etcd,
//! whose certificates Plinth does not manage.
//!
//! Each leaf's signature is verified against the CA it is listed under: a
//! certificate signed by another CA is a row of its own status, so a swapped
//! or stale certificate does not pass for a valid one. The command's exit
//! codes (`plinth pki check-expiration --help`): 0 every certificate is
//! there, parses, is signed by its CA and has not expired; 8 one has
//! expired; 9 one is missing, unparsable or not signed by its CA (9 wins
//! over 8); 2 no data dir there.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;
use time::OffsetDateTime;

use crate::data_dir::DataDirView;

use super::error::PkiError;
use super::read::{read_optional, rfc3339};
use super::set::{self, CaId, KUBECONFIGS, LEAVES};
use super::{issue, kubeconfig};

/// State of one file of the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowStatus {
    Ok,
    Missing,
    /// Present but unparsable; `detail` says why.
    Invalid,
    /// Parses, but its signature does not verify with the CA it is listed
    /// under.
    NotSignedByCa,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpirationRow {
    /// `server`, `etcd/peer`, `admin.conf`, `ca`, ...
    pub name: String,
    /// Relative to the data dir.
    pub path: PathBuf,
    pub status: RowStatus,
    /// RFC 3339, when the certificate could be read.
    pub expires: Option<String>,
    /// `364d`, `9y`, `5h`, or `expired`.
    pub residual: Option<String>,
    /// Name of the signing CA (`None` for CAs).
    pub certificate_authority: Option<String>,
    pub is_ca: bool,
    pub expired: bool,
    pub detail: Option<String>,
}

/// The whole report. `Display` renders the kubeadm-style tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpirationReport {
    /// RFC 3339 time the residuals are computed against.
    pub now: String,
    pub rows: Vec<ExpirationRow>,
}

impl ExpirationReport {
    /// Has any certificate (leaf, kubeconfig or CA) expired?
    pub fn any_expired(&self) -> bool {
        self.rows.iter().any(|r| r.expired)
    }

    /// Is any file of the set missing or unparsable?
    pub fn any_missing_or_invalid(&self) -> bool {
        self.rows.iter().any(|r| r.status != RowStatus::Ok)
    }
}

/// Read the PKI under `<data_dir>/pki` and report when each certificate
/// expires. Missing or unparsable files are rows, not errors; only an I/O
/// error other than "not found" is.
pub fn check_expiration(
    data_dir: &DataDirView,
    now: OffsetDateTime,
) -> Result<ExpirationReport, PkiError> {
    if !data_dir.root().is_dir() {
        return Err(PkiError::NoDataDir {
            path: data_dir.root().to_owned(),
        });
    }
    let root = data_dir.root();
    let etcd = data_dir.is_file(set::cert_path(CaId::Etcd.name()));
    let wanted = |ca: CaId| ca != CaId::Etcd || etcd;
    // Each CA's certificate as on disk, to check the leaves' issuers.
    let mut ca_ders = std::collections::BTreeMap::new();
    for ca in CaId::ALL.into_iter().filter(|ca| wanted(*ca)) {
        let pem = read_optional(root, &set::cert_path(ca.name()))?;
        ca_ders.insert(ca, pem.map(|p| issue::pem_to_der(&p)));
    }
    let ca_der = |ca: Option<CaId>| {
        ca.and_then(|ca| ca_ders.get(&ca))
            .and_then(|der| der.as_ref())
            .and_then(|der| der.as_ref().ok())
            .map(Vec::as_slice)
    };
    let mut rows = Vec::new();
    for leaf in LEAVES.iter().filter(|l| wanted(l.ca)) {
        let rel = set::cert_path(leaf.name);
        let pem = read_optional(root, &rel)?;
        let der = pem.map(|p| issue::pem_to_der(&p));
        rows.push(row(
            leaf.name,
            rel,
            der,
            Some(leaf.ca),
            ca_der(Some(leaf.ca)),
            now,
        ));
    }
    for kc in KUBECONFIGS {
        let rel = set::kubeconfig_path(kc.file);
        let der = read_optional(root, &rel)?.map(|yaml| {
            kubeconfig::client_certificate(&yaml).and_then(|pem| issue::pem_to_der(&pem))
        });
        let ca = set::ca_of(kc.leaf);
        rows.push(row(kc.file, rel, der, ca, ca_der(ca), now));
    }
    for (ca, der) in &ca_ders {
        let rel = set::cert_path(ca.name());
        rows.push(row(ca.name(), rel, der.clone(), None, None, now));
    }
    Ok(ExpirationReport {
        now: rfc3339(now),
        rows,
    })
}

fn row(
    name: &str,
    path: PathBuf,
    der: Option<Result<Vec<u8>, String>>,
    ca: Option<CaId>,
    ca_der: Option<&[u8]>,
    now: OffsetDateTime,
) -> ExpirationRow {
    let mut row = ExpirationRow {
        name: name.to_string(),
        path,
        status: RowStatus::Missing,
        expires: None,
        residual: None,
        certificate_authority: ca.map(|c| c.name().to_string()),
        is_ca: ca.is_none(),
        expired: false,
        detail: None,
    };
    let ca_cert = ca_der.and_then(|der| x509_parser::parse_x509_certificate(der).ok());
    let parsed = der.map(|der| {
        der.and_then(|der| {
            x509_parser::parse_x509_certificate(&der)
                .map(|(_, cert)| {
                    // A leaf whose CA is missing or broken shows as such in
                    // the CA's own row.
                    let signed = ca_cert
                        .as_ref()
                        .is_none_or(|(_, ca)| cert.verify_signature(Some(ca.public_key())).is_ok());
                    (cert.validity().not_after.to_datetime(), signed)
                })
                .map_err(|e| e.to_string())
        })
    });
    match parsed {
        None => {}
        Some(Err(detail)) => {
            row.status = RowStatus::Invalid;
            row.detail = Some(detail);
        }
        Some(Ok((not_after, signed))) => {
            row.status = RowStatus::Ok;
            row.expires = Some(rfc3339(not_after));
            row.expired = not_after <= now;
            row.residual = Some(residual(not_after - now));
            if !signed {
                row.status = RowStatus::NotSignedByCa;
                row.detail = Some(format!(
                    "not signed by {}",
                    row.certificate_authority.as_deref().unwrap_or("its CA")
                ));
            }
        }
    }
    row
}

/// kubeadm's short human duration: `45s`, `12m`, `5h`, `364d`, `9y`, or
/// `expired`.
fn residual(left: time::Duration) -> String {
    if left <= time::Duration::ZERO {
        return "expired".to_string();
    }
    let secs = left.whole_seconds();
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s if s < 86_400 * 365 => format!("{}d", s / 86_400),
        s => format!("{}y", s / (86_400 * 365)),
    }
}

impl fmt::Display for ExpirationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cell = |r: &ExpirationRow| -> [String; 4] {
            let (expires, residual) = match r.status {
                RowStatus::Ok => (
                    r.expires.clone().unwrap_or_default(),
                    r.residual.clone().unwrap_or_default(),
                ),
                RowStatus::Missing => ("<missing>".to_string(), String::new()),
                RowStatus::Invalid => ("<invalid>".to_string(), String::new()),
                RowStatus::NotSignedByCa => (
                    format!(
                        "{} <not signed by its CA>",
                        r.expires.clone().unwrap_or_default()
                    ),
                    r.residual.clone().unwrap_or_default(),
                ),
            };
            [
                r.name.clone(),
                expires,
                residual,
                r.certificate_authority.clone().unwrap_or_default(),
            ]
        };
        let leaves: Vec<[String; 4]> = self.rows.iter().filter(|r| !r.is_ca).map(cell).collect();
        let cas: Vec<[String; 4]> = self.rows.iter().filter(|r| r.is_ca).map(cell).collect();
        table(
            f,
            [
                "CERTIFICATE",
                "EXPIRES",
                "RESIDUAL TIME",
                "CERTIFICATE AUTHORITY",
            ],
            &leaves,
            4,
        )?;
        writeln!(f)?;
        table(
            f,
            ["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME", ""],
            &cas,
            3,
        )
    }
}

fn table(
    f: &mut fmt::Formatter<'_>,
    header: [&str; 4],
    rows: &[[String; 4]],
    columns: usize,
) -> fmt::Result {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 4]| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).take(columns).enumerate() {
            if i + 1 == columns {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   "));
            }
        }
        writeln!(f, "{}", text.trim_end())
    };
    line(f, header)?;
    for row in rows {
        line(f, [&row[0], &row[1], &row[2], &row[3]])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn residual_is_short_and_human() {
        assert_eq!(residual(Duration::days(364) + Duration::hours(23)), "364d");
        assert_eq!(residual(Duration::days(3649)), "9y");
        assert_eq!(residual(Duration::hours(5)), "5h");
        assert_eq!(residual(Duration::seconds(-1)), "expired");
    }
}
