//! A SHA-256 digest as a value: what pins a plugin file, names a compiled
//! plugin in the cache, and pins a cluster CA in a join token. Always 32
//! bytes; written as 64 lowercase hex digits, read in either case.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// The 32 bytes: for comparisons that must take constant time (a join
    /// token's secret), and as a compiled-cache entry records its wasm.
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl FromStr for Sha256 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = [0; 32];
        match hex::decode_to_slice(text, &mut bytes) {
            Ok(()) => Ok(Self(bytes)),
            Err(_) => Err(format!("`{text}` is not a sha256: 64 hex digits")),
        }
    }
}

impl serde::Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_either_case_and_writes_lowercase() {
        let digest = Sha256::of(b"plinth");
        let upper = digest.to_string().to_ascii_uppercase();
        assert_eq!(upper.parse::<Sha256>(), Ok(digest));
        assert_eq!(digest.to_string().len(), 64);
        assert!(digest.to_string().chars().all(|c| !c.is_ascii_uppercase()));
    }

    #[test]
    fn refuses_anything_but_64_hex_digits() {
        for bad in ["", "ab", &"g".repeat(64), &"a".repeat(63), &"a".repeat(65)] {
            assert!(bad.parse::<Sha256>().is_err(), "{bad:?} accepted");
        }
    }
}
