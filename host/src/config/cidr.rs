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
