//! Offline signatures of plugin files: `NAME.wasm.sig` beside `NAME.wasm`,
//! an SSH signature (`ssh-keygen -Y sign -n plinth-plugin -f KEY NAME.wasm`)
//! checked against an OpenSSH allowed-signers file, as `ssh-keygen -Y
//! verify` would, with no network and no ssh-keygen at run time.
//!
//! Order of the checks, so that the reason given is the one to act on:
//! the signature file parses; it was made for the `plinth-plugin` namespace
//! (a signature made for e-mail or git is not a plugin signature); it
//! matches the exact bytes that will be loaded; its key is in the allowed
//! signers file, for this namespace, at this time.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ssh_key::{HashAlg, PublicKey, SshSig};

use crate::error_class::ErrorClass;

/// The namespace a plugin signature must be made for (`ssh-keygen -n`).
pub const NAMESPACE: &str = "plinth-plugin";

/// Largest signature or allowed-signers file read; real ones are a few KiB.
const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than 1 MiB; it is not a signature or an allowed-signers file")]
    TooLarge { path: PathBuf },
    #[error("allowed signers {path} line {line}: {message}")]
    AllowedSigners {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error(
        "{wasm} has no signature {sig}, and spec.plugins.requireSignatures is on; sign it with `ssh-keygen -Y sign -n {NAMESPACE} -f KEY {wasm}`"
    )]
    Unsigned { wasm: PathBuf, sig: PathBuf },
    #[error(
        "plugin signatures are required but no allowed-signers file is given; set spec.plugins.allowedSigners"
    )]
    NoAllowedSigners,
    #[error("{sig} is not an SSH signature: {message}")]
    Malformed { sig: PathBuf, message: String },
    #[error(
        "{sig} was made for namespace `{namespace}`, not `{NAMESPACE}`; sign with `ssh-keygen -Y sign -n {NAMESPACE}`"
    )]
    Namespace { sig: PathBuf, namespace: String },
    #[error(
        "{sig} does not match {wasm}: the file changed after it was signed, or the signature belongs to another file"
    )]
    Mismatch { wasm: PathBuf, sig: PathBuf },
    #[error("{sig} is signed by {fingerprint}, which {allowed} does not allow to sign plugins")]
    SignerNotAllowed {
        sig: PathBuf,
        fingerprint: String,
        allowed: PathBuf,
    },
}

/// Who signed a plugin, as the allowed-signers file names them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Signer {
    /// The principals of the matching allowed-signers line, e.g. `release@example.com`.
    pub principals: String,
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// e.g. `ssh-ed25519`.
    pub algorithm: String,
}

impl std::fmt::Display for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} {})",
            self.principals, self.algorithm, self.fingerprint
        )
    }
}

/// What is known about a plugin file's signature.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum SignatureStatus {
    /// Signed by an allowed signer; the signature matches the file.
    Verified { signer: Signer },
    /// No `NAME.wasm.sig`, and signatures are not required.
    Unsigned,
    /// A signature file exists, but no allowed-signers file was given to
    /// check it against.
    NotChecked,
}

/// One line of an allowed-signers file (ssh-keygen(1), "ALLOWED SIGNERS").
#[derive(Debug)]
struct AllowedSigner {
    principals: String,
    namespaces: Option<Vec<String>>,
    valid_after: Option<u64>,
    valid_before: Option<u64>,
    key: PublicKey,
}

/// An OpenSSH allowed-signers file.
#[derive(Debug)]
pub struct AllowedSigners {
    path: PathBuf,
    signers: Vec<AllowedSigner>,
}

/// How plugins are checked at load: `spec.plugins.allowedSigners` and
/// `spec.plugins.requireSignatures`.
#[derive(Debug, Default)]
pub struct SignaturePolicy {
    allowed: Option<AllowedSigners>,
    required: bool,
}

impl SignatureError {
    /// Every refusal is the operator's to fix: sign the plugin, fix the
    /// allowed-signers file, or remove the plugin.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Invalid
    }
}

/// `NAME.wasm.sig` for `NAME.wasm`.
pub fn signature_path(wasm: &Path) -> PathBuf {
    let mut name = wasm.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

impl SignaturePolicy {
    /// The policy of `spec.plugins`: the allowed-signers file at `allowed`
    /// (read and parsed now, so a bad one stops the run before any plugin
    /// loads), and whether every plugin must be signed.
    pub fn new(allowed: Option<&Path>, required: bool) -> Result<Self, SignatureError> {
        if required && allowed.is_none() {
            return Err(SignatureError::NoAllowedSigners);
        }
        Ok(Self {
            allowed: allowed.map(AllowedSigners::read).transpose()?,
            required,
        })
    }

    /// Check the plugin whose file is `wasm` and whose bytes, read once by
    /// the caller, are `bytes`: the bytes checked are the bytes loaded.
    pub fn check(&self, wasm: &Path, bytes: &[u8]) -> Result<SignatureStatus, SignatureError> {
        match &self.allowed {
            Some(allowed) => match allowed.verify_file(wasm, bytes) {
                Err(SignatureError::Unsigned { .. }) if !self.required => {
                    Ok(SignatureStatus::Unsigned)
                }
                verified => verified.map(|signer| SignatureStatus::Verified { signer }),
            },
            // `new` refuses a required signature without allowed signers.
            None if signature_path(wasm).exists() => Ok(SignatureStatus::NotChecked),
            None => Ok(SignatureStatus::Unsigned),
        }
    }
}

impl AllowedSigners {
    pub fn read(path: &Path) -> Result<Self, SignatureError> {
        Self::parse(path, &read_bounded(path)?)
    }

    /// Verify `NAME.wasm.sig` over `bytes`, the content of `wasm`.
    pub fn verify_file(&self, wasm: &Path, bytes: &[u8]) -> Result<Signer, SignatureError> {
        let sig = signature_path(wasm);
        let text = match read_bounded(&sig) {
            Err(SignatureError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(SignatureError::Unsigned {
                    wasm: wasm.to_owned(),
                    sig,
                });
            }
            other => other?,
        };
        self.verify(wasm, &sig, &text, bytes, unix_now())
    }

    fn parse(path: &Path, text: &str) -> Result<Self, SignatureError> {
        let signers = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(|(index, line)| {
                parse_line(line.trim()).map_err(|message| SignatureError::AllowedSigners {
                    path: path.to_owned(),
                    line: index + 1,
                    message,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path: path.to_owned(),
            signers,
        })
    }

    /// Verify `sig_text` (the content of `sig`) over `bytes` (the content
    /// of `wasm`) at `now` (seconds since the epoch).
    fn verify(
        &self,
        wasm: &Path,
        sig: &Path,
        sig_text: &str,
        bytes: &[u8],
        now: u64,
    ) -> Result<Signer, SignatureError> {
        let signature = SshSig::from_pem(sig_text).map_err(|error| SignatureError::Malformed {
            sig: sig.to_owned(),
            message: error.to_string(),
        })?;
        if signature.namespace() != NAMESPACE {
            return Err(SignatureError::Namespace {
                sig: sig.to_owned(),
                namespace: printable(signature.namespace()),
            });
        }
        let key = PublicKey::from(signature.public_key().clone());
        key.verify(NAMESPACE, bytes, &signature)
            .map_err(|_| SignatureError::Mismatch {
                wasm: wasm.to_owned(),
                sig: sig.to_owned(),
            })?;
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let allowed = self
            .signers
            .iter()
            .find(|signer| signer.key.key_data() == key.key_data() && signer.allows(now))
            .ok_or_else(|| SignatureError::SignerNotAllowed {
                sig: sig.to_owned(),
                fingerprint: fingerprint.clone(),
                allowed: self.path.clone(),
            })?;
        Ok(Signer {
            principals: allowed.principals.clone(),
            fingerprint,
            algorithm: key.algorithm().as_str().to_owned(),
        })
    }
}

impl AllowedSigner {
    /// Whether this line lets its key sign plugins at `now`.
    fn allows(&self, now: u64) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|namespaces| namespaces.iter().any(|n| n == NAMESPACE))
            && self.valid_after.is_none_or(|after| now >= after)
            && self.valid_before.is_none_or(|before| now < before)
    }
}

/// `principals [options] keytype base64-key [comment]`.
fn parse_line(line: &str) -> Result<AllowedSigner, String> {
    let (principals, rest) = split_field(line);
    if principals.is_empty() || rest.is_empty() {
        return Err("expected `principals [options] keytype base64-key`".to_owned());
    }
    // The options field is present when what follows the principals does
    // not parse as a key.
    let (key, options) = match PublicKey::from_openssh(rest) {
        Ok(key) => (key, ""),
        Err(_) => {
            let (options, key_text) = split_field(rest);
            let key = PublicKey::from_openssh(key_text).map_err(|error| {
                format!("not an OpenSSH public key ({error}) after the principals and options")
            })?;
            (key, options)
        }
    };
    let mut signer = AllowedSigner {
        principals: printable(principals.trim_matches('"')),
        namespaces: None,
        valid_after: None,
        valid_before: None,
        key,
    };
    for option in split_options(options) {
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        let value = value.trim_matches('"');
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                signer.namespaces = Some(value.split(',').map(str::to_owned).collect());
            }
            "valid-after" => signer.valid_after = Some(parse_time(value)?),
            "valid-before" => signer.valid_before = Some(parse_time(value)?),
            "cert-authority" => {
                return Err(
                    "cert-authority lines are not supported; list the signer's own key".to_owned(),
                );
            }
            _ => return Err(format!("unknown option `{}`", printable(name))),
        }
    }
    Ok(signer)
}

/// The first whitespace-separated field (a double-quoted one may hold
/// spaces) and the rest of the line.
fn split_field(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (index, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                return (&text[..index], text[index..].trim_start());
            }
            _ => {}
        }
    }
    (text, "")
}

/// Comma-separated options; a comma inside double quotes belongs to the value.
fn split_options(options: &str) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    options
        .split(move |c| {
            if c == '"' {
                quoted = !quoted;
            }
            c == ',' && !quoted
        })
        .filter(|option| !option.is_empty())
}

/// `YYYYMMDD[HHMM[SS]]`, UTC when followed by `Z`: the forms ssh-keygen
/// accepts for valid-after and valid-before. Local time is taken as UTC:
/// the host's time zone is not something a policy file should depend on.
fn parse_time(value: &str) -> Result<u64, String> {
    let digits = value.strip_suffix(['Z', 'z']).unwrap_or(value);
    let bad = || {
        format!(
            "`{}` is not a time of the form YYYYMMDD[HHMM[SS]][Z]",
            printable(value)
        )
    };
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let field = |range: std::ops::Range<usize>| digits.get(range).map_or(Ok(0), str::parse::<u8>);
    let year: i32 = digits[..4].parse().map_err(|_| bad())?;
    let month = time::Month::try_from(field(4..6).map_err(|_| bad())?).map_err(|_| bad())?;
    let date = time::Date::from_calendar_date(year, month, field(6..8).map_err(|_| bad())?)
        .map_err(|_| bad())?;
    let clock = time::Time::from_hms(
        field(8..10).map_err(|_| bad())?,
        field(10..12).map_err(|_| bad())?,
        field(12..14).map_err(|_| bad())?,
    )
    .map_err(|_| bad())?;
    u64::try_from(date.with_time(clock).assume_utc().unix_timestamp()).map_err(|_| bad())
}

/// Read a small text file, refusing a symbolic link (a plugin directory
/// is not trusted to point elsewhere).
fn read_bounded(path: &Path) -> Result<String, SignatureError> {
    let bytes = crate::regular_file::read_no_link(path, MAX_FILE_BYTES).map_err(|source| {
        if source.kind() == std::io::ErrorKind::FileTooLarge {
            SignatureError::TooLarge {
                path: path.to_owned(),
            }
        } else {
            SignatureError::Io {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    String::from_utf8(bytes).map_err(|_| SignatureError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "is not UTF-8 text"),
    })
}

/// Text from a file, safe to put on a terminal: control characters escaped.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests;
