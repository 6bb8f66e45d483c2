//! Reading the PKI's files as they are on disk, and writing its times.

use std::io;
use std::path::Path;

use time::OffsetDateTime;

use super::error::PkiError;

/// Read a file; `None` if it does not exist.
pub(super) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PkiError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(super) fn read_required(data_dir: &Path, rel: &Path) -> Result<Vec<u8>, PkiError> {
    let path = data_dir.join(rel);
    std::fs::read(&path).map_err(|source| PkiError::Read { path, source })
}

/// RFC 3339 text of a time, for messages and reports.
pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
