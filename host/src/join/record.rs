//! `etcd/join.json`: the membership a joining controller was given, written
//! durably *before* its etcd first starts.
//!
//! A joiner killed after the cluster added it but before its etcd wrote any
//! data restarts from this record instead of asking again (k0s #5149: a
//! controller that forgot it had joined created a second cluster). The
//! record is written to a temporary file, fsynced, renamed over, and the
//! directory fsynced, so it is either absent or whole.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::wire::hex_id;
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
    /// The record at `path`, if there is one. A symlink there is refused.
    pub fn read(path: &Path) -> Result<Option<Self>, RecordError> {
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RecordError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| RecordError::Read {
                path: path.to_owned(),
                source,
            })?;
        if bytes.len() as u64 > MAX_RECORD_BYTES {
            return Err(RecordError::Invalid {
                path: path.to_owned(),
                message: format!("larger than {MAX_RECORD_BYTES} bytes"),
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RecordError::Invalid {
                path: path.to_owned(),
                message: crate::terminal::escape(&e.to_string()).into_owned(),
            })
    }

    /// Write the record durably: absent or whole, whatever happens.
    pub fn write(&self, path: &Path) -> Result<(), RecordError> {
        let fail = |source| RecordError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = path.parent().expect("the record lives in etcd/");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(fail)?;
        let tmp = path.with_extension("json.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(fail)?;
        let text = serde_json::to_vec_pretty(self).expect("a record serialises");
        file.write_all(&text).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&tmp, path).map_err(fail)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd/join.json");
        assert_eq!(JoinRecord::read(&path).unwrap(), None);
        let record = JoinRecord {
            member_id: 0xdead_beef,
            name: "c2".into(),
            peer_url: "https://127.0.0.2:2380".into(),
            initial_cluster: "c1=https://127.0.0.1:2380,c2=https://127.0.0.2:2380".into(),
            cluster_token: "plinth-0123".into(),
            api: "127.0.0.1:9443".into(),
        };
        record.write(&path).unwrap();
        assert_eq!(JoinRecord::read(&path).unwrap(), Some(record));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"memberId\": \"00000000deadbeef\""),
            "{text}"
        );
        let link = dir.path().join("etcd/link.json");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(JoinRecord::read(&link).is_err());
        std::fs::write(&path, "{").unwrap();
        assert!(matches!(
            JoinRecord::read(&path),
            Err(RecordError::Invalid { .. })
        ));
    }
}
