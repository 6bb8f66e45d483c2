//! Values that parse but are weak or dangerous: each check says what is
//! wrong in one clause; `resolve` names the key. Lengths and counts are
//! bounded so that no value can make a certificate, a persisted config or
//! an error line huge, and no message repeats a value longer than a line.

use std::collections::HashSet;
use std::net::IpAddr;

use super::cidr::Cidr;
use crate::terminal::escape;

/// Longest `metadata.name`: a Kubernetes object name.
pub(crate) const MAX_NAME_BYTES: usize = 253;
/// Most extra SANs: each goes into two certificates.
pub(crate) const MAX_SANS: usize = 128;
/// Most external etcd endpoints, and the longest one.
pub(crate) const MAX_ENDPOINTS: usize = 32;
pub(crate) const MAX_ENDPOINT_BYTES: usize = 512;
/// Longest `spec.images.repository` (a registry host and port).
pub(crate) const MAX_REPOSITORY_BYTES: usize = 255;

/// A value as a message may quote it: escaped, and cut to a line's worth.
pub(crate) fn shown(value: &str) -> String {
    const SHOWN_CHARS: usize = 64;
    let escaped = escape(value);
    if escaped.chars().count() <= SHOWN_CHARS {
        return format!("`{escaped}`");
    }
    let head: String = escaped.chars().take(SHOWN_CHARS).collect();
    format!("`{head}…` ({} bytes)", value.len())
}

/// `metadata.name`: a DNS subdomain, as every Kubernetes object name is.
pub(crate) fn name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES || !is_dns_name(name, false) {
        return Err(format!(
            "{} is not a name of 1-{MAX_NAME_BYTES} lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
            shown(name)
        ));
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{} has upper-case letters; use lower case",
            shown(name)
        ));
    }
    Ok(())
}

/// An IP address, or a DNS name (a wildcard allowed in the first label).
pub(crate) fn is_valid_san(san: &str) -> bool {
    san.parse::<IpAddr>().is_ok() || is_dns_name(san, true)
}

/// A DNS name: labels of 1-63 letters, digits and `-` (not at either end),
/// at most 253 bytes; `*.` in front only when `wildcard`.
pub(crate) fn is_dns_name(name: &str, wildcard: bool) -> bool {
    let name = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => name,
    };
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// `spec.api.sans`: valid, bounded in number, and de-duplicated in linear
/// time by the PKI (a hundred thousand of them took a minute before).
pub(crate) fn sans(sans: &[String]) -> Result<(), String> {
    if sans.len() > MAX_SANS {
        return Err(format!(
            "{} names; at most {MAX_SANS} are accepted (each goes into the API server's certificates)",
            sans.len()
        ));
    }
    if let Some(bad) = sans.iter().find(|san| !is_valid_san(san)) {
        return Err(format!(
            "{} is neither an IP address nor a DNS name",
            shown(bad)
        ));
    }
    Ok(())
}

/// `spec.network.clusterDomain`: a plain DNS domain, no wildcard, no IP.
pub(crate) fn cluster_domain(domain: &str) -> Result<(), String> {
    if domain.parse::<IpAddr>().is_ok() || !is_dns_name(domain, false) {
        return Err(format!(
            "{} is not a DNS domain (like `cluster.local`; no wildcard, no IP address)",
            shown(domain)
        ));
    }
    Ok(())
}

/// An address a component listens on and others dial: a single host, so
/// neither unspecified (`0.0.0.0`, `::`), multicast nor broadcast.
pub(crate) fn host_address(address: IpAddr) -> Result<(), String> {
    let broadcast = matches!(address, IpAddr::V4(v4) if v4.is_broadcast());
    if address.is_unspecified() || address.is_multicast() || broadcast {
        return Err(format!(
            "`{address}` is not the address of one host; give this node's address (others dial it, and it goes into certificates)"
        ));
    }
    Ok(())
}

/// The service and pod networks: one family, not overlapping, not
/// reserved, and of a size Kubernetes accepts (kube-apiserver refuses a
/// service range larger than /12 for IPv4 and /108 for IPv6).
pub(crate) fn networks(service: &Cidr, pod: &Cidr) -> Result<(), (&'static str, String)> {
    let service_key = "spec.network.serviceCIDR";
    let pod_key = "spec.network.podCIDR";
    for (key, cidr, v4_min, v6_min) in [(service_key, service, 12, 108), (pod_key, pod, 8, 32)] {
        let min = if cidr.is_ipv4() { v4_min } else { v6_min };
        if cidr.prefix() < min {
            return Err((
                key,
                format!("`{cidr}` is too large; use a prefix of /{min} or longer"),
            ));
        }
        if let Some(reserved) = cidr.reserved_use() {
            return Err((key, format!("`{cidr}` is {reserved}; use a private range")));
        }
    }
    if service.is_ipv4() != pod.is_ipv4() {
        return Err((
            pod_key,
            format!(
                "`{pod}` and serviceCIDR `{service}` are of different IP families; use one family for both"
            ),
        ));
    }
    if service.overlaps(pod) {
        return Err((
            pod_key,
            format!("`{pod}` overlaps serviceCIDR `{service}`; give them separate ranges"),
        ));
    }
    Ok(())
}

/// An external etcd endpoint: `https://host:port` or `http://host:port`,
/// nothing else (no other scheme, no path, no credentials).
pub(crate) fn endpoints(endpoints: &[String]) -> Result<(), String> {
    if endpoints.len() > MAX_ENDPOINTS {
        return Err(format!(
            "{} endpoints; at most {MAX_ENDPOINTS} are accepted",
            endpoints.len()
        ));
    }
    let mut seen = HashSet::new();
    for endpoint in endpoints {
        endpoint_url(endpoint)?;
        if !seen.insert(endpoint.as_str()) {
            return Err(format!("{} is listed twice", shown(endpoint)));
        }
    }
    Ok(())
}

fn endpoint_url(endpoint: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{} is not an etcd endpoint; write it like `https://10.0.0.5:2379`",
            shown(endpoint)
        )
    };
    if endpoint.len() > MAX_ENDPOINT_BYTES {
        return Err(bad());
    }
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if port.is_empty()
        || !port.bytes().all(|b| b.is_ascii_digit())
        || port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad());
    }
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host, false),
    };
    if host_ok { Ok(()) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_of_a_host_and_port() {
        for good in [
            "https://10.0.0.5:2379",
            "http://etcd-1.example:2379/",
            "https://[fd00::5]:2379",
        ] {
            endpoints(&[good.to_owned()]).unwrap();
        }
        for bad in [
            "file:///etc/shadow",
            "https://10.0.0.5",
            "https://u:p@10.0.0.5:2379",
            "https://10.0.0.5:2379/path",
            "unix:///run/etcd.sock",
            "https://10.0.0.5:0",
        ] {
            assert!(endpoints(&[bad.to_owned()]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn long_values_are_shown_cut_and_escaped() {
        let shown = shown(&format!("\u{1b}{}", "x".repeat(100_000)));
        assert!(
            shown.len() < 120 && shown.contains("\\u{1b}") && shown.contains("100001 bytes"),
            "{shown}"
        );
    }
}
