//! Reading the PKI's files as they are on disk, and writing its times.

use std::path::Path;

use time::OffsetDateTime;

use super::error::PkiError;
use crate::data_dir::beneath;
use crate::stage::Stage;

/// The largest PKI file read (a certificate, a key, a kubeconfig embedding
/// three of them is a few KiB; anything near this is not one).
const MAX_PKI_FILE_BYTES: u64 = 1 << 20;

/// Read `rel` of the data dir, never through a link and only a regular
/// file of ours; `None` if it does not exist.
pub(super) fn read_optional(data_dir: &Path, rel: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    beneath::read(data_dir, rel, MAX_PKI_FILE_BYTES).map_err(|source| PkiError::Read {
        path: data_dir.join(rel),
        source,
    })
}

/// What the data dir will hold at `rel` once the stage commits: the staged
/// bytes, else the published file. A joining controller stages the
/// cluster's CAs and service-account keys before the PKI phase runs.
pub(super) fn read_current(stage: &Stage<'_>, rel: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    match stage.read_staged(rel)? {
        Some(bytes) => Ok(Some(bytes)),
        None => read_optional(stage.data_dir().root(), rel),
    }
}

pub(super) fn read_required(data_dir: &Path, rel: &Path) -> Result<Vec<u8>, PkiError> {
    read_optional(data_dir, rel)?.ok_or_else(|| PkiError::Read {
        path: data_dir.join(rel),
        source: std::io::ErrorKind::NotFound.into(),
    })
}

/// RFC 3339 text of a time, for messages and reports.
pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
