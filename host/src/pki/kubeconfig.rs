//! Kubeconfigs with embedded credentials (`admin.conf`, `scheduler.conf`,
//! `controller-manager.conf`).

use serde::{Deserialize, Serialize};

use super::decision::KubeconfigReason;

/// Name of the cluster entry in every kubeconfig.
const CLUSTER: &str = "plinth";

#[derive(Debug, Serialize, Deserialize)]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    clusters: Vec<NamedCluster>,
    contexts: Vec<NamedContext>,
    #[serde(rename = "current-context")]
    current_context: String,
    #[serde(default)]
    preferences: serde_yaml::Mapping,
    users: Vec<NamedUser>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: Cluster,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cluster {
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: String,
    server: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct NamedContext {
    name: String,
    context: Context,
}

#[derive(Debug, Serialize, Deserialize)]
struct Context {
    cluster: String,
    user: String,
}

#[derive(Serialize, Deserialize)]
struct NamedUser {
    name: String,
    user: User,
}

// Holds a private key: no Debug.
#[derive(Serialize, Deserialize)]
struct User {
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: String,
    #[serde(rename = "client-key-data")]
    client_key_data: String,
}

impl std::fmt::Debug for NamedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a kubeconfig must embed.
pub(crate) struct Credentials<'a> {
    /// User name, the client cert's CN, e.g. `kubernetes-admin`.
    pub(crate) user: &'a str,
    pub(crate) server: &'a str,
    pub(crate) ca_pem: &'a [u8],
    pub(crate) cert_pem: &'a [u8],
    pub(crate) key_pem: &'a [u8],
}

/// Render a kubeconfig (YAML).
pub(crate) fn render(creds: &Credentials<'_>) -> Result<String, serde_yaml::Error> {
    let context = format!("{}@{CLUSTER}", creds.user);
    let config = Kubeconfig {
        api_version: "v1".to_string(),
        kind: "Config".to_string(),
        clusters: vec![NamedCluster {
            name: CLUSTER.to_string(),
            cluster: Cluster {
                certificate_authority_data: base64_encode(creds.ca_pem),
                server: creds.server.to_string(),
            },
        }],
        contexts: vec![NamedContext {
            name: context.clone(),
            context: Context {
                cluster: CLUSTER.to_string(),
                user: creds.user.to_string(),
            },
        }],
        current_context: context,
        preferences: serde_yaml::Mapping::new(),
        users: vec![NamedUser {
            name: creds.user.to_string(),
            user: User {
                client_certificate_data: base64_encode(creds.cert_pem),
                client_key_data: base64_encode(creds.key_pem),
            },
        }],
    };
    serde_yaml::to_string(&config)
}

/// Does the existing kubeconfig embed exactly these credentials and point at
/// this server? `Ok(())` means keep it.
pub(crate) fn check(existing: &[u8], creds: &Credentials<'_>) -> Result<(), KubeconfigReason> {
    let config: Kubeconfig =
        serde_yaml::from_slice(existing).map_err(|e| KubeconfigReason::Unparsable {
            detail: e.to_string(),
        })?;
    let (Some(cluster), Some(user)) = (config.clusters.first(), config.users.first()) else {
        return Err(KubeconfigReason::Unparsable {
            detail: "no cluster or no user".to_string(),
        });
    };
    if cluster.cluster.server != creds.server {
        return Err(KubeconfigReason::ServerChanged {
            old: cluster.cluster.server.clone(),
            new: creds.server.to_string(),
        });
    }
    let same = |data: &str, want: &[u8]| base64_decode(data).is_some_and(|d| d == want);
    if same(&cluster.cluster.certificate_authority_data, creds.ca_pem)
        && same(&user.user.client_certificate_data, creds.cert_pem)
        && same(&user.user.client_key_data, creds.key_pem)
        && user.name == creds.user
    {
        Ok(())
    } else {
        Err(KubeconfigReason::CredentialsChanged)
    }
}

/// The embedded client certificate (PEM) of a kubeconfig, for expiration
/// checks.
pub(crate) fn client_certificate(existing: &[u8]) -> Result<Vec<u8>, String> {
    let config: Kubeconfig = serde_yaml::from_slice(existing).map_err(|e| e.to_string())?;
    let user = config.users.first().ok_or("no user")?;
    base64_decode(&user.user.client_certificate_data)
        .ok_or_else(|| "client-certificate-data is not base64".to_string())
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional, whitespace ignored. `None` if invalid.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let digits = digits
        .strip_suffix(b"==")
        .or_else(|| digits.strip_suffix(b"="))
        .unwrap_or(&digits);
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for &d in digits {
        let v = ALPHABET.iter().position(|&a| a == d)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let enc = base64_encode(text.as_bytes());
            assert_eq!(
                base64_decode(&enc).as_deref(),
                Some(text.as_bytes()),
                "{enc}"
            );
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm8"), Some(b"fo".to_vec()));
        assert_eq!(base64_decode("Z!=="), None);
    }
}
