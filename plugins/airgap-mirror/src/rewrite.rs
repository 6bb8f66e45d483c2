//! The rewrite itself, over plain Rust types so that it is unit-tested natively.
//!
//! Rules (also in README.md):
//!
//! 1. Split the repository on `/`. The first segment is a registry host when
//!    there are at least two segments and it contains `.` or `:` or is
//!    `localhost` (Docker's own rule); otherwise the image is on Docker Hub.
//!    `docker.io`, `index.docker.io` and `registry-1.docker.io` are Docker Hub
//!    too.
//! 2. The rest is the path after the host. A Docker Hub path of one segment
//!    gets `library/` (`nginx` → `library/nginx`).
//! 3. The new repository is `<registry>/<prefix>/<rest>` (`<registry>/<rest>`
//!    without a prefix).
//! 4. An image already on the mirror (its host is `registry`, compared
//!    case-insensitively, and its path already starts with `prefix/`) is left
//!    as it is, so running the rewrite twice changes nothing.
//! 5. Tag, component, origin and pull policy never change. The digest changes
//!    only when a `digests` entry matches the image (see [`Config::pin_for`]).
//!    Two reference keys that name the same image once normalised are an
//!    error in the settings, so at most one reference pin matches.
//! 6. With `only-defaults = true`, images whose origin is `explicit` keep their
//!    repository, and only a digest pin keyed by their exact original
//!    reference (`repository:tag`) applies to them: a pin keyed by component
//!    name was written for the catalog's image, not for the user's.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// An image, as far as the rewrite is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub component: String,
    pub repository: String,
    pub tag: String,
    pub digest: Option<String>,
    /// `origin == explicit` in the contract.
    pub explicit: bool,
}

/// A `digests` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin<'s> {
    /// A component name (`coredns`) or an original reference (`repo:tag`).
    pub key: &'s str,
    /// `sha256:<64 lowercase hex>`.
    pub digest: &'s str,
}

impl Pin<'_> {
    fn is_reference(&self) -> bool {
        self.key.bytes().any(|b| b == b':' || b == b'/')
    }
}

/// The settings as the host gave them. [`Settings::parse`] borrows from
/// them, so that reading a `digests` setting of 1000 pins allocates nothing
/// per pin.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    registry: Option<String>,
    prefix: Option<String>,
    digests: Option<String>,
    only_defaults: Option<String>,
}

/// The checked settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config<'s> {
    /// `host[:port]`, as given.
    pub registry: &'s str,
    /// Path segments without leading or trailing `/`; `None` for no prefix.
    pub prefix: Option<&'s str>,
    pub pins: Vec<Pin<'s>>,
    pub only_defaults: bool,
    /// Index into `pins` of each reference key, by its normalised form (the
    /// key itself when it does not normalise): one lookup per image, so a
    /// site can pin every image it mirrors.
    by_reference: HashMap<Cow<'s, str>, usize, BuildHasherDefault<Fnv1a>>,
    /// Index into `pins` of each component key.
    by_component: HashMap<&'s str, usize, BuildHasherDefault<Fnv1a>>,
}

/// FNV-1a for the pin indexes. They are keyed by the operator's own
/// settings, so they need no defence against crafted collisions, and with
/// SipHash hashing was most of the cost of reading 1000 pins.
struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What [`Config::resolve`] made of a list.
#[derive(Debug)]
pub struct Resolution {
    /// Same length and order as the input.
    pub images: Vec<Image>,
    /// How many repositories were moved to the mirror.
    pub rewritten: usize,
    /// Keys of pins that matched no image.
    pub unused_pins: Vec<String>,
}

pub const REGISTRY: &str = "registry";
pub const PREFIX: &str = "prefix";
pub const DIGESTS: &str = "digests";
pub const ONLY_DEFAULTS: &str = "only-defaults";

const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// One DNS label or IPv4 octet group as the distribution reference grammar
/// allows in a registry host: `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?`.
fn is_host_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// `host[:port]`, host a DNS name, IPv4 address or `[IPv6]`.
fn check_registry(raw: &str) -> Result<(), &'static str> {
    if raw.contains("://") {
        return Err("it has a scheme");
    }
    if raw.contains('/') {
        return Err("it has a path");
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err("its IPv6 address has no closing `]`");
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("its IPv6 address is malformed");
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(p) => (None, Some(p)),
                None => return Err("text follows the IPv6 address"),
            },
        }
    } else {
        match raw.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(raw), None),
        }
    };
    if let Some(host) = host
        && (host.is_empty() || host.len() > 253 || !host.split('.').all(is_host_label))
    {
        return Err("its host is not a DNS name or IP address");
    }
    if let Some(port) = port
        && !(port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p != 0))
    {
        return Err("its port is not a number from 1 to 65535");
    }
    Ok(())
}

/// A path component of the distribution reference grammar:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum_lower(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_sha256_digest(s: &str) -> bool {
    s.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            // A fold rather than `all`: without an early exit the loop
            // compiles to SIMD, and every pin of a large list is valid.
            && h.bytes()
                .fold(true, |ok, b| ok & (b.is_ascii_digit() | (b'a'..=b'f').contains(&b)))
    })
}

impl Settings {
    /// Ask the host (`get`) for every setting this plugin reads.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Self {
        Self {
            registry: get(REGISTRY),
            prefix: get(PREFIX),
            digests: get(DIGESTS),
            only_defaults: get(ONLY_DEFAULTS),
        }
    }

    /// Check every setting; one message per bad setting (or per bad
    /// `digests` entry).
    pub fn parse(&self) -> Result<Config<'_>, Vec<String>> {
        let mut errors = Vec::new();

        let registry = match &self.registry {
            None => {
                errors.push(format!(
                    "{REGISTRY}: missing; expected the mirror's host[:port] without scheme or \
                     path, e.g. registry.airgap.local:5000"
                ));
                ""
            }
            Some(raw) => {
                let r = raw.trim();
                if r.is_empty() {
                    errors.push(format!(
                        "{REGISTRY}: empty; expected the mirror's host[:port] without scheme or \
                         path, e.g. registry.airgap.local:5000"
                    ));
                } else if let Err(why) = check_registry(r) {
                    errors.push(format!(
                        "{REGISTRY}: `{raw}` is not valid: {why}; expected host[:port] without \
                         scheme or path, e.g. registry.airgap.local:5000"
                    ));
                }
                r
            }
        };

        let prefix = self.prefix.as_deref().and_then(|raw| {
            let p = raw.trim().trim_matches('/');
            if p.is_empty() {
                return None;
            }
            if p.split('/').all(is_path_component) {
                Some(p)
            } else {
                errors.push(format!(
                    "{PREFIX}: `{raw}` is not valid; expected one or more `/`-separated path \
                     segments of lowercase letters, digits and single `.`, `_`, `__` or `-` \
                     separators, e.g. plinth or mirror/k8s"
                ));
                None
            }
        });

        let mut pins: Vec<Pin> = Vec::new();
        let mut by_reference = HashMap::default();
        let mut by_component = HashMap::default();
        if let Some(raw) = &self.digests {
            // At most one entry per `k=sha256:<64 hex>`, 73 bytes or more:
            // cheaper than counting the separators.
            let most_entries = raw.len() / 73 + 1;
            pins.reserve(most_entries);
            by_component.reserve(most_entries);
            // `lines` then `split(',')`: single-byte searches; splitting on
            // a set of chars decodes every char of a 1000-pin setting.
            for entry in raw
                .lines()
                .flat_map(|line| line.split(','))
                .map(str::trim)
                .filter(|e| !e.is_empty())
            {
                let Some((key, digest)) = entry.split_once('=') else {
                    errors.push(format!(
                        "{DIGESTS}: entry `{entry}` has no `=`; expected KEY=sha256:<64 hex> \
                         where KEY is a component name or an original repository:tag"
                    ));
                    continue;
                };
                let (key, digest) = (key.trim(), digest.trim());
                if key.is_empty() {
                    errors.push(format!(
                        "{DIGESTS}: entry `{entry}` has an empty key; expected a component name \
                         or an original repository:tag before `=`"
                    ));
                } else if !is_sha256_digest(digest) {
                    errors.push(format!(
                        "{DIGESTS}: entry `{entry}` has the digest `{digest}`; expected \
                         sha256: followed by 64 lowercase hex digits"
                    ));
                } else {
                    let pin = Pin { key, digest };
                    let earlier = if pin.is_reference() {
                        let normal =
                            normalise_reference(key).map_or(Cow::Borrowed(key), Cow::Owned);
                        match by_reference.get(&normal) {
                            Some(&i) => Some((i, normal)),
                            None => {
                                by_reference.insert(normal, pins.len());
                                None
                            }
                        }
                    } else {
                        match by_component.get(key) {
                            Some(&i) => Some((i, Cow::Borrowed(key))),
                            None => {
                                by_component.insert(key, pins.len());
                                None
                            }
                        }
                    };
                    match earlier.map(|(i, normal)| (&pins[i], normal)) {
                        Some((prev, _)) if prev.key == key => errors.push(format!(
                            "{DIGESTS}: key `{key}` appears twice (`{}` and `{digest}`); \
                             expected each key once",
                            prev.digest
                        )),
                        Some((prev, normal)) => errors.push(format!(
                            "{DIGESTS}: keys `{}` and `{key}` name the same image \
                             (`{normal}`); expected each image once",
                            prev.key
                        )),
                        None => pins.push(pin),
                    }
                }
            }
        }

        let only_defaults = match &self.only_defaults {
            None => false,
            Some(raw) => match raw.trim() {
                "true" => true,
                "false" => false,
                _ => {
                    errors.push(format!(
                        "{ONLY_DEFAULTS}: `{raw}` is not valid; expected `true` or `false`"
                    ));
                    false
                }
            },
        };

        if errors.is_empty() {
            Ok(Config {
                registry,
                prefix,
                pins,
                only_defaults,
                by_reference,
                by_component,
            })
        } else {
            Err(errors)
        }
    }
}

impl Config<'_> {
    /// The index in `pins` of the pin for an image, matched against its
    /// original (pre-rewrite) reference. A reference key (one holding `:` or
    /// `/`) matches when it equals `repository:tag` once both are normalised
    /// (`nginx:1.25` = `docker.io/library/nginx:1.25`); it wins over a
    /// component-name key. A component key matches `component` exactly, and
    /// only when `component_keys` is true.
    pub fn pin_for(&self, img: &Image, component_keys: bool) -> Option<usize> {
        if !self.by_reference.is_empty() {
            let reference = format!("{}:{}", img.repository, img.tag);
            let key = normalise_reference(&reference).unwrap_or(reference);
            if let Some(&index) = self.by_reference.get(key.as_str()) {
                return Some(index);
            }
        }
        if component_keys {
            self.by_component.get(img.component.as_str()).copied()
        } else {
            None
        }
    }

    fn on_mirror(&self, host: Option<&str>, rest: &str) -> bool {
        host.is_some_and(|h| h.eq_ignore_ascii_case(self.registry))
            && match self.prefix {
                None => true,
                Some(p) => rest.strip_prefix(p).is_some_and(|r| r.starts_with('/')),
            }
    }

    /// `repository` starts with `<registry>/<prefix>/` exactly as configured.
    /// Tried before splitting, which costs more, because every image a
    /// second instance (a pin-only one) or a second run sees is in that
    /// state. Plinth has checked every repository it hands a plugin, so
    /// the rest needs no checking here.
    fn spelled_as_on_mirror(&self, repository: &str) -> bool {
        is_registry_host(self.registry)
            && repository
                .strip_prefix(self.registry)
                .and_then(|rest| rest.strip_prefix('/'))
                .and_then(|rest| match self.prefix {
                    None => Some(rest),
                    Some(prefix) => rest.strip_prefix(prefix)?.strip_prefix('/'),
                })
                .is_some_and(|path| !path.is_empty())
    }

    /// The mirror repository for `repository`, or `None` when it is already
    /// on the mirror.
    pub fn rewrite_repository(&self, repository: &str) -> Result<Option<String>, String> {
        if self.spelled_as_on_mirror(repository) {
            return Ok(None);
        }
        let (host, rest) = split_repository(repository)?;
        if self.on_mirror(host, &rest) {
            return Ok(None);
        }
        // Joined by hand: `format!` cost more than the rest of the rewrite.
        let prefix = self.prefix.unwrap_or_default();
        let mut mirrored =
            String::with_capacity(self.registry.len() + prefix.len() + rest.len() + 2);
        mirrored.push_str(self.registry);
        mirrored.push('/');
        if !prefix.is_empty() {
            mirrored.push_str(prefix);
            mirrored.push('/');
        }
        mirrored.push_str(&rest);
        Ok(Some(mirrored))
    }

    /// Apply the rewrite and pins to every image: same length, same order.
    pub fn resolve(&self, images: Vec<Image>) -> Result<Resolution, String> {
        let mut used = vec![false; self.pins.len()];
        let mut rewritten = 0;
        let mut out = Vec::with_capacity(images.len());
        for mut img in images {
            let keep_repo = self.only_defaults && img.explicit;
            if let Some(index) = self.pin_for(&img, !keep_repo) {
                used[index] = true;
                img.digest = Some(self.pins[index].digest.to_owned());
            }
            if !keep_repo {
                match self.rewrite_repository(&img.repository) {
                    Ok(Some(repo)) => {
                        img.repository = repo;
                        rewritten += 1;
                    }
                    Ok(None) => {}
                    Err(why) => {
                        return Err(format!(
                            "image `{}` has the repository `{}`, which {why}",
                            img.component, img.repository
                        ));
                    }
                }
            }
            out.push(img);
        }
        let unused_pins = self
            .pins
            .iter()
            .zip(used)
            .filter(|(_, u)| !u)
            .map(|(p, _)| p.key.to_owned())
            .collect();
        Ok(Resolution {
            images: out,
            rewritten,
            unused_pins,
        })
    }
}

/// Split a repository into its registry host (`None` for Docker Hub) and
/// the path after it, `library/` added for one-segment Docker Hub names.
/// Fails only where no rewrite can make sense: an empty name, an empty path
/// segment, or whitespace and control characters.
pub fn split_repository(repository: &str) -> Result<(Option<&str>, Cow<'_, str>), String> {
    // One pass over the bytes: this runs for every image of every call.
    let bytes = repository.as_bytes();
    let (mut blank, mut empty_segment, mut non_ascii) = (false, false, false);
    let (mut first_slash, mut slashes) = (None, 0);
    let mut previous = b'/';
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'/' => {
                empty_segment |= previous == b'/';
                first_slash.get_or_insert(i);
                slashes += 1;
            }
            0x80.. => non_ascii = true,
            _ => blank |= b.is_ascii_whitespace() || b.is_ascii_control(),
        }
        previous = b;
    }
    if bytes.is_empty() {
        return Err("is empty".into());
    }
    if blank
        || (non_ascii
            && repository
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err("contains whitespace or control characters".into());
    }
    if empty_segment || previous == b'/' {
        return Err("has an empty path segment".into());
    }
    let (host, path, path_segments) = match first_slash {
        Some(slash) if is_registry_host(&repository[..slash]) => (
            Some(&repository[..slash]),
            &repository[slash + 1..],
            slashes,
        ),
        _ => (None, repository, slashes + 1),
    };
    let hub = host.is_none_or(|h| DOCKER_HUB.iter().any(|d| d.eq_ignore_ascii_case(h)));
    if hub && path_segments == 1 {
        return Ok((host, Cow::Owned(format!("library/{path}"))));
    }
    Ok((host, Cow::Borrowed(path)))
}

/// Docker's rule for the first of several segments: a registry host when it
/// holds a `.` or `:`, or is `localhost`.
fn is_registry_host(segment: &str) -> bool {
    segment == "localhost" || segment.bytes().any(|b| b == b'.' || b == b':')
}

/// `repo:tag` with Docker Hub names spelled out (`docker.io/library/x`);
/// `None` when the reference cannot be split.
fn normalise_reference(reference: &str) -> Option<String> {
    let (repo, tag) = match reference.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (reference, ""),
    };
    let (host, rest) = split_repository(repo).ok()?;
    let host = match host {
        None => "docker.io".to_string(),
        Some(h) if DOCKER_HUB.iter().any(|d| d.eq_ignore_ascii_case(h)) => "docker.io".to_string(),
        Some(h) => h.to_ascii_lowercase(),
    };
    Some(format!("{host}/{rest}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<Config<'static>, Vec<String>> {
        Box::leak(Box::new(Settings::read(settings(pairs)))).parse()
    }

    fn cfg(pairs: &[(&str, &str)]) -> Config<'static> {
        parse(pairs).unwrap()
    }

    fn img(component: &str, repository: &str, tag: &str, explicit: bool) -> Image {
        Image {
            component: component.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
            explicit,
        }
    }

    fn rw(c: &Config, repo: &str) -> String {
        c.rewrite_repository(repo)
            .unwrap()
            .unwrap_or_else(|| repo.to_string())
    }

    #[test]
    fn rewrite_examples() {
        let c = cfg(&[(REGISTRY, "mirror.local:5000")]);
        assert_eq!(
            rw(&c, "registry.k8s.io/coredns/coredns"),
            "mirror.local:5000/coredns/coredns"
        );
        assert_eq!(rw(&c, "calico/node"), "mirror.local:5000/calico/node");
        assert_eq!(rw(&c, "nginx"), "mirror.local:5000/library/nginx");
        assert_eq!(rw(&c, "docker.io/nginx"), "mirror.local:5000/library/nginx");
        assert_eq!(
            rw(&c, "docker.io/library/nginx"),
            "mirror.local:5000/library/nginx"
        );
        assert_eq!(rw(&c, "localhost/foo"), "mirror.local:5000/foo");
        assert_eq!(rw(&c, "localhost:5000/a/b"), "mirror.local:5000/a/b");
        assert_eq!(
            rw(&c, "quay.io/k0sproject/pause"),
            "mirror.local:5000/k0sproject/pause"
        );
        assert_eq!(rw(&c, "localhost"), "mirror.local:5000/library/localhost");
        let p = cfg(&[(REGISTRY, "mirror.local:5000"), (PREFIX, "/k8s/")]);
        assert_eq!(
            rw(&p, "registry.k8s.io/coredns/coredns"),
            "mirror.local:5000/k8s/coredns/coredns"
        );
        assert_eq!(rw(&p, "calico/node"), "mirror.local:5000/k8s/calico/node");
    }

    #[test]
    fn rewrite_is_idempotent() {
        for pairs in [
            vec![(REGISTRY, "registry.airgap.local:5000"), (PREFIX, "plinth")],
            vec![(REGISTRY, "registry.airgap.local:5000")],
        ] {
            let c = cfg(&pairs);
            let once = rw(&c, "registry.k8s.io/kube-proxy");
            assert_eq!(rw(&c, &once), once);
            let upper = once.replace("registry.airgap.local", "REGISTRY.airgap.local");
            assert_eq!(c.rewrite_repository(&upper).unwrap(), None);
        }
        // Same host but outside the prefix: still rewritten.
        let c = cfg(&[(REGISTRY, "r.local"), (PREFIX, "plinth")]);
        assert_eq!(rw(&c, "r.local/other/x"), "r.local/plinth/other/x");
        assert_eq!(rw(&c, "r.local/plinthx/x"), "r.local/plinth/plinthx/x");
        assert_eq!(rw(&c, "r.local/plinth"), "r.local/plinth/plinth");
        // A registry without `.` or `:` is not a host by Docker's rule, so
        // `m/k8s/x` is a Docker Hub image even when it looks mirrored.
        let c = cfg(&[(REGISTRY, "m"), (PREFIX, "k8s")]);
        assert_eq!(rw(&c, "m/k8s/x"), "m/k8s/m/k8s/x");
    }

    #[test]
    fn impossible_repositories_fail() {
        let c = cfg(&[(REGISTRY, "m.local")]);
        for bad in ["", "a//b", "/a", "a/", "has space/x", "tab\there"] {
            assert!(c.rewrite_repository(bad).is_err(), "{bad:?}");
        }
        let err = c.resolve(vec![img("x", "a//b", "1", false)]).unwrap_err();
        assert!(err.contains("`x`") && err.contains("a//b"), "{err}");
    }

    #[test]
    fn resolve_keeps_length_order_and_tags_and_pins_digests() {
        let c = cfg(&[
            (REGISTRY, "registry.airgap.local:5000"),
            (PREFIX, "plinth"),
            (
                DIGESTS,
                &format!("coredns={D1}\n quay.io/calico/node:v3.29.0 = {D2},unused={D1}"),
            ),
        ]);
        let input = vec![
            img(
                "coredns",
                "registry.k8s.io/coredns/coredns",
                "v1.12.0",
                false,
            ),
            img("calico-node", "quay.io/calico/node", "v3.29.0", false),
            img("pause", "registry.k8s.io/pause", "3.10", false),
        ];
        let Resolution {
            images: out,
            unused_pins: unused,
            ..
        } = c.resolve(input.clone()).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].repository,
            "registry.airgap.local:5000/plinth/coredns/coredns"
        );
        assert_eq!(out[0].digest.as_deref(), Some(D1));
        assert_eq!(
            out[1].repository,
            "registry.airgap.local:5000/plinth/calico/node"
        );
        assert_eq!(out[1].digest.as_deref(), Some(D2));
        assert_eq!(out[2].digest, None);
        for (a, b) in out.iter().zip(&input) {
            assert_eq!(
                (&a.component, &a.tag, a.explicit),
                (&b.component, &b.tag, b.explicit)
            );
        }
        assert_eq!(unused, vec!["unused".to_string()]);
    }

    #[test]
    fn resolve_counts_rewritten_repositories() {
        let c = cfg(&[(REGISTRY, "m.local")]);
        let resolution = c
            .resolve(vec![
                img("a", "registry.k8s.io/a", "1", false),
                img("b", "m.local/b", "1", false),
            ])
            .unwrap();
        assert_eq!(resolution.rewritten, 1);
    }

    #[test]
    fn a_pin_for_every_image_of_a_large_list() {
        let digest = |i: usize| format!("sha256:{i:064x}");
        let pins: Vec<String> = (0..1000)
            .map(|i| match i % 2 {
                0 => format!("c{i}={}", digest(i)),
                _ => format!("registry.k8s.io/c{i}:v{i}={}", digest(i)),
            })
            .collect();
        let c = cfg(&[(REGISTRY, "m.local"), (DIGESTS, &pins.join("\n"))]);
        let images = (0..1000)
            .map(|i| {
                img(
                    &format!("c{i}"),
                    &format!("registry.k8s.io/c{i}"),
                    &format!("v{i}"),
                    false,
                )
            })
            .collect();
        let resolution = c.resolve(images).unwrap();
        assert!(resolution.unused_pins.is_empty());
        for (i, image) in resolution.images.iter().enumerate() {
            assert_eq!(image.digest, Some(digest(i)), "{}", image.component);
        }
    }

    #[test]
    fn two_keys_for_the_same_image_are_refused() {
        let e = parse(&[
            (REGISTRY, "m.local"),
            (
                DIGESTS,
                &format!("nginx:1.25={D1},docker.io/library/nginx:1.25={D2}"),
            ),
        ])
        .unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("`nginx:1.25` and `docker.io/library/nginx:1.25` name the same image"),
            "{e:?}"
        );
    }

    #[test]
    fn reference_pin_matches_normalised_and_beats_component_pin() {
        let c = cfg(&[
            (REGISTRY, "m.local"),
            (DIGESTS, &format!("web={D1},nginx:1.25={D2}")),
        ]);
        let Resolution { images: out, .. } = c
            .resolve(vec![img("web", "docker.io/library/nginx", "1.25", false)])
            .unwrap();
        assert_eq!(out[0].digest.as_deref(), Some(D2));
        assert_eq!(out[0].repository, "m.local/library/nginx");
    }

    #[test]
    fn only_defaults_leaves_explicit_images_except_reference_pins() {
        let c = cfg(&[
            (REGISTRY, "m.local"),
            (ONLY_DEFAULTS, "true"),
            (
                DIGESTS,
                &format!("coredns={D1},quay.io/example/coredns:1.12.0={D2},kube-proxy={D1}"),
            ),
        ]);
        let Resolution {
            images: out,
            unused_pins: unused,
            ..
        } = c
            .resolve(vec![
                img("coredns", "quay.io/example/coredns", "1.12.0", true),
                img("kube-proxy", "registry.k8s.io/kube-proxy", "v1.33.0", false),
                img("metrics", "quay.io/example/metrics", "1", true),
            ])
            .unwrap();
        assert_eq!(out[0].repository, "quay.io/example/coredns");
        assert_eq!(out[0].digest.as_deref(), Some(D2));
        assert_eq!(out[1].repository, "m.local/kube-proxy");
        assert_eq!(out[1].digest.as_deref(), Some(D1));
        assert_eq!(out[2].repository, "quay.io/example/metrics");
        assert_eq!(out[2].digest, None);
        assert_eq!(unused, vec!["coredns".to_string()]);
        // Without only-defaults the explicit image is mirrored too.
        let c = Config {
            only_defaults: false,
            ..c
        };
        let Resolution { images: out, .. } = c
            .resolve(vec![img(
                "coredns",
                "quay.io/example/coredns",
                "1.12.0",
                true,
            )])
            .unwrap();
        assert_eq!(out[0].repository, "m.local/example/coredns");
    }

    #[test]
    fn settings_errors_name_key_value_and_expectation() {
        let err = Settings::default().parse().unwrap_err();
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
            let e = parse(&[(REGISTRY, bad)]).unwrap_err();
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
            assert!(parse(&[(REGISTRY, good)]).is_ok(), "{good}");
        }

        let e = parse(&[
            (REGISTRY, "m.local"),
            (PREFIX, "Bad Prefix"),
            (
                DIGESTS,
                &format!("noequals, =sha256:x,a=sha256:ABC,b={D1},b={D2}"),
            ),
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
    fn prefix_grammar() {
        for good in ["plinth", "a/b", "k8s.io", "a__b", "a--b", "a_b"] {
            assert!(is_path_component(good) || good.contains('/'), "{good}");
            assert!(parse(&[(REGISTRY, "m"), (PREFIX, good)]).is_ok(), "{good}");
        }
        for bad in ["A", "a..b", "a___b", "-a", "a-", "a b", "a//b"] {
            assert!(parse(&[(REGISTRY, "m"), (PREFIX, bad)]).is_err(), "{bad}");
        }
    }
}
