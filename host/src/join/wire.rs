//! What the join API and its client say to each other, as JSON.

/// `POST /v1/etcd/members`: add the caller as a learner.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberRequest {
    /// The caller's etcd member name (`--name`), unique in the cluster.
    pub name: String,
    /// The caller's etcd peer URL, `https://<address>:<port>`.
    #[serde(rename = "peerURL")]
    pub peer_url: String,
}

/// The answer: the caller's member and how to start its etcd.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberAnswer {
    #[serde(with = "hex_id")]
    pub member_id: u64,
    /// `--initial-cluster` for the caller's etcd: every member, the caller
    /// included, as `name=peerURL` joined by commas.
    pub initial_cluster: String,
    /// `--initial-cluster-token` of the cluster.
    pub cluster_token: String,
    /// The member existed already (an earlier answer was lost).
    pub existing: bool,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorAnswer {
    pub error: String,
}

/// A peer URL Plinth accepts: `https://<ip or [ipv6]>:<port>`, nothing more.
pub fn valid_peer_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else {
        return false;
    };
    rest.parse::<std::net::SocketAddr>()
        .is_ok_and(|addr| addr.port() != 0)
}

/// Member ids as 16 hex digits, the form etcdctl and etcd's logs use.
pub mod hex_id {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{id:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        let text = String::deserialize(deserializer)?;
        u64::from_str_radix(&text, 16).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked() {
        assert!(valid_peer_url("https://127.0.0.2:2380"));
        assert!(valid_peer_url("https://[fd00::1]:2380"));
        for bad in [
            "http://127.0.0.2:2380",
            "https://127.0.0.2",
            "https://127.0.0.2:0",
            "https://host:2380",
            "https://127.0.0.2:2380/x",
            "https://127.0.0.2:2380,https://127.0.0.3:2380",
        ] {
            assert!(!valid_peer_url(bad), "{bad}");
        }
    }
}
