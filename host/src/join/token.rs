//! Join tokens: `plinth-join-v1:<api host:port>:<sha256 of the cluster CA>:<id>.<secret>`.
//!
//! The CA digest pins the cluster a joining controller may trust, as
//! kubeadm's `--discovery-token-ca-cert-hash` does: a token cannot be used to
//! steer a controller into another cluster. The `<id>.<secret>` pair has
//! kubeadm's bootstrap-token shape (`[a-z0-9]{6}.[a-z0-9]{16}`, 82 bits of
//! secret): the id names the token in `plinth token list|revoke` and in logs,
//! the secret is only ever sent to a join API whose certificate chains to
//! the pinned CA, and only its sha256 is stored.
//!
//! Parsing is strict: one line, nothing but the four fields, an address
//! that is an IP literal or a DNS name with a port, exact lengths. A token
//! is a credential; a lenient parser turns typos into confusing network
//! errors far from their cause.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use rand::Rng;

use crate::data_dir::DataDirView;
use crate::error_class::ErrorClass;
use crate::sha256::Sha256;

const PREFIX: &str = "plinth-join-v1:";
/// Length of a token id, `[a-z0-9]`.
pub const ID_LEN: usize = 6;
/// Length of a token secret, `[a-z0-9]`.
pub const SECRET_LEN: usize = 16;
/// A token file is one short line; anything longer is not a token.
const MAX_FILE_BYTES: u64 = 512;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read join token {path}: {source}; check --token-file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid join token in {path}: {message}; expected plinth-join-v1:<host:port>:<ca sha256>:<id>.<secret> as `plinth token create` prints it"
    )]
    Malformed { path: PathBuf, message: String },
}

impl TokenError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Invalid
    }
}

/// The public half of a token: its id, `[a-z0-9]{6}`.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct TokenId(String);

impl TokenId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TokenId {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        check_chars("token id", &text, ID_LEN)?;
        Ok(Self(text))
    }
}

impl std::str::FromStr for TokenId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::try_from(text.to_owned())
    }
}

impl From<TokenId> for String {
    fn from(id: TokenId) -> String {
        id.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `<id>.<secret>`: what a joiner presents as its bearer credential. Never
/// printed: `Debug` and `Display` show the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    id: TokenId,
    secret: String,
}

impl Credential {
    /// A new random credential.
    pub fn generate() -> Self {
        Self {
            id: TokenId(random_chars(ID_LEN)),
            secret: random_chars(SECRET_LEN),
        }
    }

    /// Parse `<id>.<secret>`, e.g. an `Authorization: Bearer` value. The
    /// error never quotes the input.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (id, secret) = text
            .split_once('.')
            .ok_or("the credential is not <id>.<secret>")?;
        let id = TokenId::try_from(id.to_owned())?;
        check_chars("token secret", secret, SECRET_LEN)?;
        Ok(Self {
            id,
            secret: secret.to_owned(),
        })
    }

    pub fn id(&self) -> &TokenId {
        &self.id
    }

    /// sha256 of the secret: what the token store keeps. The secret has 82
    /// random bits, so a plain hash cannot be reversed by search.
    pub fn secret_sha256(&self) -> Sha256 {
        Sha256::of(self.secret.as_bytes())
    }

    /// `<id>.<secret>`, for the `Authorization` header only.
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}.<redacted>)", self.id)
    }
}

/// A parsed join token. Its secret is not printable.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// `host:port` of an existing controller's join API.
    pub api: String,
    /// The host part of `api`, without IPv6 brackets: the name the join
    /// API's certificate must carry.
    pub host: String,
    /// sha256 of the cluster CA certificate, DER-encoded.
    pub ca_sha256: Sha256,
    pub credential: Credential,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("api", &self.api)
            .field("ca_sha256", &self.ca_sha256)
            .field("id", self.credential.id())
            .finish_non_exhaustive()
    }
}

impl JoinToken {
    /// Read a token file: at most 512 bytes, one line (a final newline is
    /// allowed).
    pub fn read(path: &Path) -> Result<Self, TokenError> {
        let malformed = |message: String| TokenError::Malformed {
            path: path.to_owned(),
            message,
        };
        let bytes = crate::regular_file::read(path, MAX_FILE_BYTES).map_err(|source| {
            if source.kind() == std::io::ErrorKind::FileTooLarge {
                malformed(format!("the file is larger than {MAX_FILE_BYTES} bytes"))
            } else {
                TokenError::Read {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| malformed("it is not UTF-8".into()))?;
        let line = text
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&text);
        Self::parse(line).map_err(malformed)
    }

    /// Parse the text of a token. Errors say which field is wrong and never
    /// quote the secret.
    pub fn parse(text: &str) -> Result<Self, String> {
        // One line of printable text: a second line would end up in the
        // API address, secret and all (issue 11).
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("it contains whitespace or control characters".to_owned());
        }
        let body = text
            .strip_prefix(PREFIX)
            .ok_or("it does not start with plinth-join-v1:")?;
        // The credential and the digest hold no `:`; the address may (IPv6).
        let mut fields = body.rsplitn(3, ':');
        let (credential, ca_sha256, api) = match (fields.next(), fields.next(), fields.next()) {
            (Some(credential), Some(ca), Some(api)) => (credential, ca, api),
            _ => return Err("it has fewer than four fields".to_owned()),
        };
        let host = parse_api_address(api)?;
        let ca_sha256: Sha256 = ca_sha256
            .parse()
            .map_err(|_| "the CA digest is not 64 hex digits")?;
        let credential = Credential::parse(credential)?;
        Ok(Self {
            api: api.to_owned(),
            host,
            ca_sha256,
            credential,
        })
    }

    /// The token's text, as `plinth token create` prints it.
    pub fn render(api: &str, ca_sha256: &Sha256, credential: &Credential) -> String {
        format!("{PREFIX}{api}:{ca_sha256}:{}", credential.bearer())
    }

    /// `https://<api>`.
    pub fn api_url(&self) -> String {
        format!("https://{}", self.api)
    }
}

/// Check `host:port` and return the host without brackets.
fn parse_api_address(api: &str) -> Result<String, String> {
    let (host, port) = api.rsplit_once(':').ok_or("the API address has no port")?;
    if port.is_empty()
        || !port.bytes().all(|b| b.is_ascii_digit())
        || port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err("the API address's port is not 1-65535".to_owned());
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or("the API address has an unclosed `[`")?;
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| "the API address's IPv6 literal is invalid".to_owned())?;
        return Ok(inner.to_owned());
    }
    if host.parse::<IpAddr>().is_ok() && !host.contains(':') {
        return Ok(host.to_owned());
    }
    let dns_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !dns_ok {
        return Err(
            "the API address is neither an IP address nor a DNS name (IPv6 goes in brackets)"
                .to_owned(),
        );
    }
    Ok(host.to_ascii_lowercase())
}

fn check_chars(what: &str, text: &str, len: usize) -> Result<(), String> {
    if text.len() != len || !text.bytes().all(|b| ALPHABET.contains(&b)) {
        return Err(format!("the {what} is not {len} characters of [a-z0-9]"));
    }
    Ok(())
}

fn random_chars(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// sha256 of the DER of the PEM certificate at `rel` in the data dir: what
/// a token pins. `None` when there is no readable certificate there.
pub(crate) fn certificate_sha256(data_dir: &DataDirView, rel: &Path) -> Option<Sha256> {
    let pem = data_dir.read(rel, 1 << 20).ok()??;
    pem_certificate_sha256(&pem)
}

/// sha256 of the DER of the first certificate of a PEM text.
pub(crate) fn pem_certificate_sha256(pem: &[u8]) -> Option<Sha256> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    (pem.label == "CERTIFICATE").then(|| Sha256::of(&pem.contents))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef";

    fn ca() -> String {
        "ab".repeat(32)
    }

    fn ca_sha256() -> Sha256 {
        ca().parse().unwrap()
    }

    #[test]
    fn parses_tokens_with_ipv4_ipv6_and_dns_apis_and_hides_the_secret() {
        for (api, host) in [
            ("[fd00::1]:9443", "fd00::1"),
            ("10.0.0.1:9443", "10.0.0.1"),
            ("Controller-1.example.com:1", "controller-1.example.com"),
        ] {
            let token = JoinToken::parse(&format!("plinth-join-v1:{api}:{}:abc123.{SECRET}", ca()))
                .unwrap();
            assert_eq!(token.api, api);
            assert_eq!(token.host, host);
            assert_eq!(token.ca_sha256, ca_sha256());
            assert_eq!(token.credential.id().as_str(), "abc123");
            assert!(!format!("{token:?}").contains(SECRET));
            assert!(!format!("{:?}", token.credential).contains(SECRET));
        }
    }

    #[test]
    fn rejects_malformed_tokens_without_quoting_the_secret() {
        let ca = ca();
        for bad in [
            String::new(),
            format!("plinth-join-v2:10.0.0.1:9443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:abc123.short"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:ABC123.{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:abc12.{SECRET}0"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:abc123.{SECRET}x"),
            format!("plinth-join-v1:10.0.0.1:0:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:+443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:fd00::1:9443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:[fd00::zz]:9443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:bad_host:9443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1::9443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:9443:{ca}:abc123.{SECRET}\nextra"),
            format!(" plinth-join-v1:10.0.0.1:9443:{ca}:abc123.{SECRET}"),
            format!("plinth-join-v1:10.0.0.1:9443:abcd:abc123.{SECRET}"),
        ] {
            let error = JoinToken::parse(&bad).expect_err(&bad);
            assert!(!error.contains(SECRET), "{error}");
        }
    }

    #[test]
    fn a_generated_credential_round_trips_through_the_token_text() {
        let credential = Credential::generate();
        let text = JoinToken::render("127.0.0.1:9443", &ca_sha256(), &credential);
        let token = JoinToken::parse(&text).unwrap();
        assert_eq!(token.credential, credential);
        assert_eq!(token.credential.secret_sha256(), credential.secret_sha256());
        assert_ne!(Credential::generate(), credential);
    }

    #[test]
    fn token_files_are_one_bounded_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let text = format!("plinth-join-v1:10.0.0.1:9443:{}:abc123.{SECRET}", ca());
        std::fs::write(&path, format!("{text}\n")).unwrap();
        assert!(JoinToken::read(&path).is_ok());
        std::fs::write(&path, format!("{text}\n\n")).unwrap();
        assert!(JoinToken::read(&path).is_err());
        std::fs::write(&path, "x".repeat(600)).unwrap();
        let error = JoinToken::read(&path).unwrap_err().to_string();
        assert!(error.contains("larger than 512 bytes"), "{error}");
    }
}
