//! Facts about the machine Plinth runs on.

use std::net::IpAddr;

/// What the bootstrap knows about this machine before it decides anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    pub hostname: String,
    /// Non-loopback addresses, IPv4 first, in a stable order.
    pub addresses: Vec<IpAddr>,
}

impl NodeFacts {
    /// Read the hostname and interface addresses of this machine.
    pub fn discover() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .ok()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        let mut addresses: Vec<IpAddr> = if_addrs::get_if_addrs()
            .map(|interfaces| interfaces.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default();
        addresses.retain(|ip| !ip.is_loopback() && !is_link_local(ip));
        addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        addresses.dedup();
        Self {
            hostname,
            addresses,
        }
    }

    /// The address other machines should use to reach this one.
    pub(crate) fn primary_address(&self) -> IpAddr {
        self.addresses
            .first()
            .copied()
            .unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}
