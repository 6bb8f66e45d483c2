//! Key generation (in parallel) and loading. Private key bytes never leave
//! this module except as PEM written to a 0600 file.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize};
use x509_parser::certificate::X509Certificate;

use super::error::PkiError;
use super::spec::KeyAlgorithm;

/// Generate one key.
pub(crate) fn generate(alg: KeyAlgorithm) -> Result<KeyPair, rcgen::Error> {
    match alg {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EcdsaP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
        KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyAlgorithm::Rsa3072 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_3072),
        KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
    }
}

/// Generate one `alg` key for each of `names`, on up to
/// `available_parallelism` threads (RSA keys cost 0.1–1 s each). The result
/// is in the order of `names`.
pub(crate) fn generate_many(names: &[&str], alg: KeyAlgorithm) -> Result<Vec<KeyPair>, PkiError> {
    let workers = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(names.len());
    if workers <= 1 {
        return names
            .iter()
            .map(|name| generate(alg).map_err(|source| keygen_error(name, alg, source)))
            .collect();
    }
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<KeyPair, PkiError>>>> =
        names.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(name) = names.get(i) else {
                        break;
                    };
                    let key = generate(alg).map_err(|source| keygen_error(name, alg, source));
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(key);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .zip(names)
        .map(|(slot, name)| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(PkiError::Bug(format!(
                    "the thread generating the key for {name} panicked"
                )))
            })
        })
        .collect()
}

fn keygen_error(name: &str, algorithm: KeyAlgorithm, source: rcgen::Error) -> PkiError {
    PkiError::KeyGeneration {
        name: name.to_string(),
        algorithm,
        source,
    }
}

/// Parse a PEM private key (PKCS#8, SEC1 or PKCS#1). The error never quotes
/// the key.
pub(crate) fn parse_key(path: &Path, pem: &[u8]) -> Result<KeyPair, PkiError> {
    let text = std::str::from_utf8(pem).map_err(|_| PkiError::InvalidKey {
        path: path.to_path_buf(),
        detail: "not UTF-8 PEM".to_string(),
    })?;
    KeyPair::from_pem(text).map_err(|e| PkiError::InvalidKey {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Is `key` the private half of the certificate's public key?
pub(crate) fn key_matches_cert(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    // Both are the raw subject public key: the EC point, or the PKCS#1
    // RSAPublicKey, or the Ed25519 key.
    key.public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}
