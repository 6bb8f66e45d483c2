//! `etcd/join.json`: the membership a joining controller was given, written
//! durably *before* its etcd first starts.
//!
//! A joiner killed after the cluster added it but before its etcd wrote any
//! data restarts from this record instead of asking again (k0s #5149: a
//! controller that forgot it had joined created a second cluster). The
//! record is written to a temporary file, fsynced, renamed over, and the
//! directory fsynced, so it is either absent or whole.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::wire::{hex_id, valid_peer_url};
use crate::config::valid_member_name;
use crate::data_dir::{DataDirView, beneath};
use crate::error_class::ErrorClass;

/// A record is a few hundred bytes; a larger file is not one.
const MAX_RECORD_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read the join record {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the join record {path} is not valid: {message}; it is written by Plinth only, restore it or remove the data dir's etcd/ to join anew"
    )]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the join record {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RecordError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Invalid { .. } => ErrorClass::Invalid,
            Self::Read { .. } | Self::Write { .. } => ErrorClass::Internal,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinRecord {
    #[serde(with = "hex_id")]
    pub member_id: u64,
    pub name: String,
    #[serde(rename = "peerURL")]
    pub peer_url: String,
    pub initial_cluster: String,
    pub cluster_token: String,
    /// The join API that added this member.
    pub api: String,
}

impl JoinRecord {
    /// The record of `data_dir`, if there is one: never read through a
    /// link, at most 64 KiB, and only names and URLs Plinth would have
    /// written (it ends up on etcd's command line and in messages).
    pub fn read(data_dir: &DataDirView) -> Result<Option<Self>, RecordError> {
        let path = data_dir.join_record();
        let invalid = |message: String| RecordError::Invalid {
            path: path.clone(),
            message,
        };
        let bytes = match data_dir.read(DataDirView::JOIN_RECORD, MAX_RECORD_BYTES) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::FileTooLarge => {
                return Err(invalid(format!("larger than {MAX_RECORD_BYTES} bytes")));
            }
            Err(source) => return Err(RecordError::Read { path, source }),
        };
        let record: Self = serde_json::from_slice(&bytes).map_err(|e| {
            invalid(format!(
                "not the expected JSON at line {}, column {}",
                e.line(),
                e.column()
            ))
        })?;
        if !valid_member_name(&record.name) || !valid_peer_url(&record.peer_url) {
            return Err(invalid(
                "its member name or peer URL is not one Plinth accepts".to_owned(),
            ));
        }
        if record.initial_cluster.split(',').any(|entry| {
            entry
                .split_once('=')
                .is_none_or(|(_, url)| !valid_peer_url(url))
        }) {
            return Err(invalid(
                "its initial cluster is not a list of name=https://address:port".to_owned(),
            ));
        }
        Ok(Some(record))
    }

    /// Write the record durably: absent or whole, whatever happens. A
    /// temporary file is written and fsynced, renamed over, and `etcd/`
    /// fsynced, and the data dir too when `etcd/` was made for it (else a
    /// power loss can take the new directory entry, record and all).
    pub fn write(&self, data_dir: &DataDirView) -> Result<(), RecordError> {
        let root = data_dir.root();
        let fail = |source| RecordError::Write {
            path: data_dir.join_record(),
            source,
        };
        let etcd_dir = Path::new(DataDirView::ETCD);
        let made_etcd_dir = !beneath::exists(root, etcd_dir).map_err(fail)?;
        let tmp = Path::new(DataDirView::JOIN_RECORD).with_extension("json.tmp");
        let mut file = beneath::create(root, &tmp, 0o600).map_err(fail)?;
        let text = serde_json::to_vec_pretty(self).expect("a record serialises");
        file.write_all(&text).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        beneath::rename(root, &tmp, Path::new(DataDirView::JOIN_RECORD)).map_err(fail)?;
        beneath::fsync(root, etcd_dir).map_err(fail)?;
        if made_etcd_dir {
            beneath::fsync(root, Path::new("")).map_err(fail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> JoinRecord {
        JoinRecord {
            member_id: 0xdead_beef,
            name: "c2".into(),
            peer_url: "https://127.0.0.2:2380".into(),
            initial_cluster: "c1=https://127.0.0.1:2380,c2=https://127.0.0.2:2380".into(),
            cluster_token: "plinth-0123".into(),
            api: "127.0.0.1:9443".into(),
        }
    }

    #[test]
    fn a_record_round_trips_and_a_link_or_a_foreign_value_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = DataDirView::new(dir.path());
        assert_eq!(JoinRecord::read(&data_dir).unwrap(), None);
        record().write(&data_dir).unwrap();
        assert_eq!(JoinRecord::read(&data_dir).unwrap(), Some(record()));
        let path = data_dir.join_record();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"memberId\": \"00000000deadbeef\""),
            "{text}"
        );

        let elsewhere = dir.path().join("elsewhere.json");
        std::fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(JoinRecord::read(&data_dir).is_err());
        std::fs::remove_file(&path).unwrap();

        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            JoinRecord::read(&data_dir),
            Err(RecordError::Invalid { .. })
        ));
        let forged = JoinRecord {
            initial_cluster: "c1=https://127.0.0.1:2380 --data-dir=/".into(),
            ..record()
        };
        std::fs::write(&path, serde_json::to_vec(&forged).unwrap()).unwrap();
        assert!(matches!(
            JoinRecord::read(&data_dir),
            Err(RecordError::Invalid { .. })
        ));
    }
}
