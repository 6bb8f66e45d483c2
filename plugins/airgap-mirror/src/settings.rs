//! The manifest's `[settings]`, checked. Every mistake gets its own message
//! naming the key, the value and what was expected, so that an operator
//! fixes the manifest in one pass.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::Ipv6Addr;

use crate::exports::plinth::bootstrap::image_resolve::Image;
use crate::reference;

pub const REGISTRY: &str = "registry";
pub const PREFIX: &str = "prefix";
pub const DIGESTS: &str = "digests";
pub const ONLY_DEFAULTS: &str = "only-defaults";

/// What this plugin does, as the settings say. Built by [`Settings::read`],
/// which checks every field.
#[derive(Debug)]
pub struct Settings {
    /// The mirror's `host[:port]`.
    pub registry: String,
    /// Path segments inserted after the registry, without a leading or
    /// trailing `/`; `None` for no prefix.
    pub prefix: Option<String>,
    pub pins: Pins,
    /// Leave images the user set in `spec.images` where they are.
    pub only_defaults: bool,
}

impl Settings {
    /// Asks the host (`get`) for each setting and checks them all; the
    /// errors come in the order of the README's table.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<String>> {
        let registry = parse_registry(get(REGISTRY).as_deref());
        let prefix = parse_prefix(get(PREFIX).as_deref());
        let pins = parse_digests(get(DIGESTS).as_deref().unwrap_or_default());
        let only_defaults = parse_only_defaults(get(ONLY_DEFAULTS).as_deref());
        match (registry, prefix, pins, only_defaults) {
            (Ok(registry), Ok(prefix), Ok(pins), Ok(only_defaults)) => Ok(Self {
                registry,
                prefix,
                pins,
                only_defaults,
            }),
            (registry, prefix, pins, only_defaults) => Err(registry
                .err()
                .into_iter()
                .chain(prefix.err())
                .chain(pins.err().into_iter().flatten())
                .chain(only_defaults.err())
                .collect()),
        }
    }

    /// Where mirrored repositories go: `<registry>/<prefix>`, or
    /// `<registry>` without a prefix.
    pub fn destination(&self) -> String {
        match &self.prefix {
            Some(prefix) => format!("{}/{prefix}", self.registry),
            None => self.registry.clone(),
        }
    }
}

const REGISTRY_EXPECTED: &str =
    "expected the mirror's host[:port] without scheme or path, e.g. registry.airgap.local:5000";

fn parse_registry(raw: Option<&str>) -> Result<String, String> {
    let Some(raw) = raw else {
        return Err(format!("{REGISTRY}: missing; {REGISTRY_EXPECTED}"));
    };
    let registry = raw.trim();
    if registry.is_empty() {
        return Err(format!("{REGISTRY}: empty; {REGISTRY_EXPECTED}"));
    }
    check_registry(registry)
        .map_err(|why| format!("{REGISTRY}: `{raw}` is not valid: {why}; {REGISTRY_EXPECTED}"))?;
    Ok(registry.to_owned())
}

/// `host[:port]`, the host a DNS name, an IPv4 address or an `[IPv6]`
/// address: what goes before the first `/` of an image reference.
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
        address
            .parse::<Ipv6Addr>()
            .map_err(|_| "its IPv6 address is malformed")?;
        match after {
            "" => None,
            after => Some(
                after
                    .strip_prefix(':')
                    .ok_or("text follows the IPv6 address")?,
            ),
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
    // All digits first: `parse` alone would accept `+5000`.
    if let Some(port) = port
        && !(port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0))
    {
        return Err("its port is not a number from 1 to 65535");
    }
    Ok(())
}

/// One label of a registry host, as the distribution reference grammar
/// has it: `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`. IPv4 octets fit too.
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

/// One path segment of an image name, as the distribution reference grammar
/// has it: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. A prefix outside it would
/// make every rewritten name one a registry refuses.
fn is_path_component(segment: &str) -> bool {
    // Splitting at each letter and digit leaves what lies between them: ""
    // between two neighbours, otherwise a separator, which must be allowed.
    // The first and last pieces are "" when the segment starts and ends with
    // a letter or digit.
    let between: Vec<&str> = segment
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .collect();
    !segment.is_empty()
        && between.first() == Some(&"")
        && between.last() == Some(&"")
        && between
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

/// A `digests` entry: pin the image `key` names to `digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// A component name (`coredns`) or an original reference `repository:tag`.
    pub key: String,
    /// `sha256:` and 64 lowercase hex digits.
    pub digest: String,
}

impl Pin {
    /// Component names are DNS labels, so a `:` or `/` marks a reference.
    fn is_reference(&self) -> bool {
        self.key.contains([':', '/'])
    }
}

/// The `digests` setting, indexed so that each image costs one lookup
/// however many pins a site writes.
#[derive(Debug, Default)]
pub struct Pins {
    /// In the order of the setting, for the warning about unused pins.
    pins: Vec<Pin>,
    /// Index into `pins` by the reference key's [`reference::normalise`]d
    /// form, so that `nginx:1.25` and `docker.io/library/nginx:1.25` meet.
    by_reference: HashMap<String, usize>,
    /// Index into `pins` by component name.
    by_component: HashMap<String, usize>,
}

impl Pins {
    /// Adds `pin`, or says why not: its key, or the image its key names,
    /// has a pin already. Two pins for one image would leave the digest to
    /// the order of the entries.
    fn add(&mut self, pin: Pin) -> Result<(), String> {
        let entry = if pin.is_reference() {
            self.by_reference.entry(reference::normalise(&pin.key))
        } else {
            self.by_component.entry(pin.key.clone())
        };
        match entry {
            Entry::Vacant(slot) => {
                slot.insert(self.pins.len());
                self.pins.push(pin);
                Ok(())
            }
            Entry::Occupied(earlier) => {
                let earlier_pin = &self.pins[*earlier.get()];
                Err(if earlier_pin.key == pin.key {
                    format!(
                        "{DIGESTS}: key `{}` appears twice (`{}` and `{}`); expected each key once",
                        pin.key, earlier_pin.digest, pin.digest
                    )
                } else {
                    format!(
                        "{DIGESTS}: keys `{}` and `{}` name the same image (`{}`); expected each \
                         image once",
                        earlier_pin.key,
                        pin.key,
                        earlier.key()
                    )
                })
            }
        }
    }

    /// The pin for `image`, matched against its original (pre-rewrite)
    /// reference. A reference key wins over a component key, because it
    /// names this very image; component keys count only when
    /// `by_component` is true.
    pub fn find(&self, image: &Image, by_component: bool) -> Option<&Pin> {
        let reference = reference::normalise(&format!("{}:{}", image.repository, image.tag));
        let index = match self.by_reference.get(&reference) {
            Some(index) => index,
            None if by_component => self.by_component.get(&image.component)?,
            None => return None,
        };
        Some(&self.pins[*index])
    }

    /// Every pin, in the order of the setting.
    pub fn iter(&self) -> impl Iterator<Item = &Pin> {
        self.pins.iter()
    }
}

/// Entries are separated by `,` or newlines, so that a long list can be
/// written one pin a line in a TOML multi-line string.
fn parse_digests(raw: &str) -> Result<Pins, Vec<String>> {
    let mut pins = Pins::default();
    let errors: Vec<String> = raw
        .split(['\n', ','])
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .filter_map(|entry| parse_pin(entry).and_then(|pin| pins.add(pin)).err())
        .collect();
    if errors.is_empty() {
        Ok(pins)
    } else {
        Err(errors)
    }
}

fn parse_pin(entry: &str) -> Result<Pin, String> {
    let Some((key, digest)) = entry.split_once('=') else {
        return Err(format!(
            "{DIGESTS}: entry `{entry}` has no `=`; expected KEY=sha256:<64 hex> where KEY is a \
             component name or an original repository:tag"
        ));
    };
    let (key, digest) = (key.trim(), digest.trim());
    if key.is_empty() {
        return Err(format!(
            "{DIGESTS}: entry `{entry}` has an empty key; expected a component name or an \
             original repository:tag before `=`"
        ));
    }
    if !is_sha256_digest(digest) {
        return Err(format!(
            "{DIGESTS}: entry `{entry}` has the digest `{digest}`; expected sha256: followed by \
             64 lowercase hex digits"
        ));
    }
    Ok(Pin {
        key: key.to_owned(),
        digest: digest.to_owned(),
    })
}

/// Lowercase only: that is how registries print digests, and a pin must
/// match the digest the mirror serves byte for byte.
fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Helpers for the tests of every module.
#[cfg(test)]
pub mod testing {
    use super::Settings;
    use std::collections::HashMap;

    pub const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    pub const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    /// [`Settings::read`] of a manifest holding these settings.
    pub fn settings(pairs: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Settings::read(|key| map.get(key).map(|value| value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{D1, D2, settings};
    use super::*;

    #[test]
    fn errors_name_the_key_the_value_and_the_expectation() {
        let err = settings(&[]).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].starts_with("registry: missing"), "{err:?}");

        for bad in [
            "https://m.local",
            "m.local/path",
            "m.local:0",
            "m.local:99999",
            "m.local:abc",
            "-m.local",
            "m_local",
            "[::1",
            "[zz]:5000",
        ] {
            let e = settings(&[(REGISTRY, bad)]).unwrap_err();
            assert!(
                e[0].starts_with("registry:") && e[0].contains(bad),
                "{bad}: {e:?}"
            );
        }
        for good in [
            "m.local",
            "m.local:5000",
            "localhost:5000",
            "10.0.0.1:5000",
            "[::1]:5000",
            "[fd00::1]",
        ] {
            assert!(settings(&[(REGISTRY, good)]).is_ok(), "{good}");
        }

        let digests = format!("noequals, =sha256:x,a=sha256:ABC,b={D1},b={D2}");
        let e = settings(&[
            (REGISTRY, "m.local"),
            (PREFIX, "Bad Prefix"),
            (DIGESTS, &digests),
            (ONLY_DEFAULTS, "yes"),
        ])
        .unwrap_err();
        assert_eq!(e.len(), 6, "{e:#?}");
        assert!(e[0].starts_with("prefix:") && e[0].contains("Bad Prefix"));
        assert!(e[1].contains("noequals"));
        assert!(e[2].contains("empty key"));
        assert!(e[3].contains("sha256:ABC") && e[3].contains("64 lowercase hex"));
        assert!(e[4].contains("`b` appears twice"));
        assert!(e[5].starts_with("only-defaults:") && e[5].contains("yes"));
    }

    #[test]
    fn a_prefix_follows_the_path_component_grammar() {
        for good in ["plinth", "a/b", "k8s.io", "a__b", "a--b", "a_b"] {
            assert!(is_path_component(good) || good.contains('/'), "{good}");
            assert!(
                settings(&[(REGISTRY, "m"), (PREFIX, good)]).is_ok(),
                "{good}"
            );
        }
        for bad in ["A", "a..b", "a___b", "-a", "a-", "a b", "a//b"] {
            assert!(
                settings(&[(REGISTRY, "m"), (PREFIX, bad)]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn two_keys_for_the_same_image_are_refused() {
        let digests = format!("nginx:1.25={D1},docker.io/library/nginx:1.25={D2}");
        let e = settings(&[(REGISTRY, "m.local"), (DIGESTS, &digests)]).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("`nginx:1.25` and `docker.io/library/nginx:1.25` name the same image"),
            "{e:?}"
        );
    }
}
