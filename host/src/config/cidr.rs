//! IP ranges in CIDR notation (`10.96.0.0/12`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A network: an address with its host bits clear, and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub(crate) fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The network as a number of its family's width, and that width.
    fn bits(&self) -> (u128, u8) {
        match self.network {
            IpAddr::V4(net) => (u128::from(u32::from(net)), 32),
            IpAddr::V6(net) => (u128::from(net), 128),
        }
    }

    /// Whether the two ranges share an address (never across families).
    pub(crate) fn overlaps(&self, other: &Cidr) -> bool {
        let ((a, width), (b, other_width)) = (self.bits(), other.bits());
        if width != other_width {
            return false;
        }
        let common = self.prefix.min(other.prefix);
        let shift = u32::from(width - common);
        a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
    }

    /// What a reserved block this range touches is for, if it touches one:
    /// such addresses cannot serve as cluster networks.
    pub(crate) fn reserved_use(&self) -> Option<&'static str> {
        const RESERVED: [(&str, &str); 10] = [
            ("0.0.0.0/8", "inside 0.0.0.0/8 (this network)"),
            ("127.0.0.0/8", "inside 127.0.0.0/8 (loopback)"),
            ("169.254.0.0/16", "inside 169.254.0.0/16 (link-local)"),
            ("224.0.0.0/4", "inside 224.0.0.0/4 (multicast)"),
            ("240.0.0.0/4", "inside 240.0.0.0/4 (reserved)"),
            ("::/127", "the unspecified or loopback address"),
            ("fe80::/10", "inside fe80::/10 (link-local)"),
            ("ff00::/8", "inside ff00::/8 (multicast)"),
            ("::ffff:0:0/96", "inside ::ffff:0:0/96 (IPv4-mapped)"),
            ("2001:db8::/32", "inside 2001:db8::/32 (documentation)"),
        ];
        RESERVED.iter().find_map(|(block, what)| {
            let block: Cidr = block.parse().expect("the reserved blocks parse");
            self.overlaps(&block).then_some(*what)
        })
    }

    /// The first usable address: Kubernetes gives it to the `kubernetes`
    /// service, so the API server certificate must carry it.
    pub(crate) fn first_host(&self) -> IpAddr {
        match self.network {
            IpAddr::V4(net) => IpAddr::V4((u32::from(net) + 1).into()),
            IpAddr::V6(net) => IpAddr::V6((u128::from(net) + 1).into()),
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("`{text}` is not a network in CIDR form, like `10.96.0.0/12`");
        let (address, prefix) = text.split_once('/').ok_or_else(invalid)?;
        let address: IpAddr = address.parse().map_err(|_| invalid())?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid())?;
        let (bits, host_bits_clear) = match address {
            IpAddr::V4(a) => (
                32,
                prefix <= 32 && u32::from(a).checked_shl(u32::from(prefix)).unwrap_or(0) == 0,
            ),
            IpAddr::V6(a) => (
                128,
                prefix <= 128 && u128::from(a).checked_shl(u32::from(prefix)).unwrap_or(0) == 0,
            ),
        };
        if prefix > bits {
            return Err(format!(
                "`{text}`: /{prefix} is not a prefix length of an IPv{} address (0-{bits}); write it like `10.96.0.0/12`",
                if bits == 32 { 4 } else { 6 }
            ));
        }
        if prefix == bits {
            return Err(format!(
                "`{text}` leaves no room for hosts; use a prefix shorter than /{bits}"
            ));
        }
        if !host_bits_clear {
            return Err(format!(
                "`{text}` has host bits set; write the network address of the range"
            ));
        }
        Ok(Self {
            network: address,
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

super::text::serde_via_str!(Cidr);

#[cfg(test)]
mod tests {
    use super::Cidr;

    #[test]
    fn first_host_is_the_kubernetes_service_address() {
        let cidr: Cidr = "10.96.0.0/12".parse().unwrap();
        assert_eq!(cidr.first_host().to_string(), "10.96.0.1");
        let v6: Cidr = "fd00:10:96::/108".parse().unwrap();
        assert_eq!(v6.first_host().to_string(), "fd00:10:96::1");
    }

    #[test]
    fn rejects_host_bits_and_full_prefixes() {
        for text in [
            "10.96.0.1/12",
            "10.0.0.0/32",
            "10.0.0.0",
            "10.0.0.0/33",
            "nope/8",
        ] {
            assert!(text.parse::<Cidr>().is_err(), "{text} was accepted");
        }
    }
}
