//! `certs check-expiration`, kubeadm style: one row per leaf, per
//! kubeconfig-embedded client cert and per CA.
//!
//! The etcd rows (its CA, leaves and `apiserver-etcd-client`) are listed only
//! when `pki/etcd/ca.crt` exists: without it the cluster uses external etcd,
//! whose certificates Plinth does not manage.

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
    let etcd = data_dir.path(set::cert_path(CaId::Etcd.name())).exists();
    let wanted = |ca: CaId| ca != CaId::Etcd || etcd;
    let mut rows = Vec::new();
    for leaf in LEAVES.iter().filter(|l| wanted(l.ca)) {
        let rel = set::cert_path(leaf.name);
        let pem = read_optional(&data_dir.path(&rel))?;
        rows.push(row(
            leaf.name,
            rel,
            pem.map(|p| issue::pem_to_der(&p)),
            Some(leaf.ca),
            now,
        ));
    }
    for kc in KUBECONFIGS {
        let rel = set::kubeconfig_path(kc.file);
        let der = read_optional(&data_dir.path(&rel))?.map(|yaml| {
            kubeconfig::client_certificate(&yaml).and_then(|pem| issue::pem_to_der(&pem))
        });
        rows.push(row(kc.file, rel, der, set::ca_of(kc.leaf), now));
    }
    for ca in CaId::ALL.into_iter().filter(|ca| wanted(*ca)) {
        let rel = set::cert_path(ca.name());
        let pem = read_optional(&data_dir.path(&rel))?;
        rows.push(row(
            ca.name(),
            rel,
            pem.map(|p| issue::pem_to_der(&p)),
            None,
            now,
        ));
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
    let parsed = der.map(|der| {
        der.and_then(|der| {
            x509_parser::parse_x509_certificate(&der)
                .map(|(_, cert)| cert.validity().not_after.to_datetime())
                .map_err(|e| e.to_string())
        })
    });
    match parsed {
        None => {}
        Some(Err(detail)) => {
            row.status = RowStatus::Invalid;
            row.detail = Some(detail);
        }
        Some(Ok(not_after)) => {
            row.status = RowStatus::Ok;
            row.expires = Some(rfc3339(not_after));
            row.expired = not_after <= now;
            row.residual = Some(residual(not_after - now));
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
