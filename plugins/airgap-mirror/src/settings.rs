//! The manifest's `[settings]`, checked. Every mistake gets its own message
//! naming the key, the value and what was expected, so that an operator
//! fixes the manifest in one pass.

use std::net::Ipv6Addr;

use crate::pins::Pins;

pub const REGISTRY: &str = "registry";
pub const PREFIX: &str = "prefix";
pub const DIGESTS: &str = "digests";
pub const ONLY_DEFAULTS: &str = "only-defaults";

/// What the settings ask for. Built by [`Settings::read`], which checks
/// every field.
#[derive(Debug)]
pub struct Settings {
    /// The mirror's `host[:port]`.
    pub registry: String,
    /// Path segments after the registry, without a leading or trailing `/`.
    pub prefix: Option<String>,
    pub pins: Pins,
    /// Leave the images the user set in `spec.images` where they are.
    pub only_defaults: bool,
}

impl Settings {
    /// Asks the host (`get`) for each setting and checks them all, so that
    /// the errors list every mistake, in the order of the README's table.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let registry = parse_registry(get(REGISTRY).as_deref());
        let prefix = parse_prefix(get(PREFIX).as_deref());
        let pins = Pins::parse(&get(DIGESTS).unwrap_or_default());
        let only_defaults = parse_only_defaults(get(ONLY_DEFAULTS).as_deref());
        match (registry, prefix, pins, only_defaults) {
            (Ok(registry), Ok(prefix), Ok(pins), Ok(only_defaults)) => Ok(Self {
                registry,
                prefix,
                pins,
                only_defaults,
            }),
            (registry, prefix, pins, only_defaults) => {
                let mut errors = Vec::from_iter(registry.err());
                errors.extend(prefix.err());
                errors.extend(pins.err().into_iter().flatten());
                errors.extend(only_defaults.err());
                Err(errors)
            }
        }
    }

    /// Where mirrored repositories go: `<registry>/<prefix>`.
    pub fn destination(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}/{prefix}", self.registry),
            None => self.registry.clone(),
        }
    }
}

fn parse_registry(raw: Option<&str>) -> Result<String, String> {
    let expected =
        "expected the mirror's host[:port] without scheme or path, e.g. registry.airgap.local:5000";
    let Some(raw) = raw else {
        return Err(format!("{REGISTRY}: missing; {expected}"));
    };
    let registry = raw.trim();
    if registry.is_empty() {
        return Err(format!("{REGISTRY}: empty; {expected}"));
    }
    check_registry(registry)
        .map_err(|why| format!("{REGISTRY}: `{raw}` is not valid: {why}; {expected}"))?;
    Ok(registry.to_owned())
}

/// `host[:port]`, the host a DNS name, an IPv4 address or an `[IPv6]`
/// address: what may stand before the first `/` of an image name.
fn check_registry(registry: &str) -> Result<(), &'static str> {
    if registry.contains("://") {
        return Err("it has a scheme");
    }
    if registry.contains('/') {
        return Err("it has a path");
    }
    let port = if let Some(bracketed) = registry.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or("its IPv6 address has no closing `]`")?;
        if address.parse::<Ipv6Addr>().is_err() {
            return Err("its IPv6 address is malformed");
        }
        match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("text follows the IPv6 address"),
        }
    } else {
        let (host, port) = match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(is_host_label) {
            return Err("its host is not a DNS name or IP address");
        }
        port
    };
    // Digits first: `parse` alone would take `+5000`.
    if let Some(port) = port
        && !(port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0))
    {
        return Err("its port is not a number from 1 to 65535");
    }
    Ok(())
}

/// A label of a registry host in the distribution reference grammar,
/// `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`; IPv4 octets are labels too.
fn is_host_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

fn parse_prefix(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let prefix = raw.trim().trim_matches('/');
    if prefix.is_empty() {
        return Ok(None);
    }
    if !prefix.split('/').all(is_path_component) {
        return Err(format!(
            "{PREFIX}: `{raw}` is not valid; expected one or more `/`-separated path segments \
             of lowercase letters, digits and single `.`, `_`, `__` or `-` separators, e.g. \
             plinth or mirror/k8s"
        ));
    }
    Ok(Some(prefix.to_owned()))
}

/// A path segment in the distribution reference grammar,
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: a registry refuses any other name,
/// so a prefix outside it would break every image.
fn is_path_component(segment: &str) -> bool {
    // Cutting at each letter and digit leaves the separators between them
    // (and "" between neighbours); "" at both ends means the segment starts
    // and ends with a letter or digit.
    let separators: Vec<&str> = segment
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect();
    !segment.is_empty()
        && separators.first() == Some(&"")
        && separators.last() == Some(&"")
        && separators
            .iter()
            .all(|s| matches!(*s, "" | "." | "_" | "__") || s.bytes().all(|b| b == b'-'))
}

fn parse_only_defaults(raw: Option<&str>) -> Result<bool, String> {
    let Some(raw) = raw else { return Ok(false) };
    match raw.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "{ONLY_DEFAULTS}: `{raw}` is not valid; expected `true` or `false`"
        )),
    }
}
