//! The `digests` setting: each entry pins an image, named by component or
//! by reference, to the digest a site approved.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::exports::plinth::bootstrap::image_resolve::Image;
use crate::reference::normalise;
use crate::settings::DIGESTS;

/// One `KEY=sha256:<hex>` entry.
#[derive(Debug)]
pub struct Pin {
    /// A component name (`coredns`) or an original reference `repository:tag`.
    pub key: String,
    pub digest: String,
}

/// The pins, indexed so that an image costs one lookup however many pins a
/// site writes. B-tree maps rather than hash maps: each call runs in a fresh
/// instance, where a hash map would first ask the host for a random seed
/// (`wasi:random/insecure-seed`), an import nothing else here needs.
#[derive(Debug, Default)]
pub struct Pins {
    /// In the order of the setting, which is the order unused ones are
    /// reported in.
    pins: Vec<Pin>,
    /// Positions in `pins` by [`normalise`]d reference, so that `nginx:1.25`
    /// and `docker.io/library/nginx:1.25` find the same pin.
    by_reference: BTreeMap<String, usize>,
    by_component: BTreeMap<String, usize>,
}

impl Pins {
    /// Parses the setting: entries separated by `,` or newlines, so that a
    /// long list can be written one pin a line. One message per bad entry.
    pub fn parse(setting: &str) -> Result<Self, Vec<String>> {
        let mut pins = Self::default();
        let errors: Vec<String> = setting
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

    /// Refuses a second pin for a key, or for an image a key names in
    /// another spelling: which digest won would depend on the entries' order.
    fn add(&mut self, pin: Pin) -> Result<(), String> {
        // Component names are DNS labels: a `:` or `/` marks a reference.
        let slot = if pin.key.contains([':', '/']) {
            self.by_reference.entry(normalise(&pin.key))
        } else {
            self.by_component.entry(pin.key.clone())
        };
        let earlier = match slot {
            Entry::Occupied(earlier) => earlier,
            Entry::Vacant(slot) => {
                slot.insert(self.pins.len());
                self.pins.push(pin);
                return Ok(());
            }
        };
        let first = &self.pins[*earlier.get()];
        Err(if first.key == pin.key {
            format!(
                "{DIGESTS}: key `{}` appears twice (`{}` and `{}`); expected each key once",
                pin.key, first.digest, pin.digest
            )
        } else {
            format!(
                "{DIGESTS}: keys `{}` and `{}` name the same image (`{}`); expected each image once",
                first.key,
                pin.key,
                earlier.key()
            )
        })
    }

    /// The pin for `image`, matched against its original (pre-rewrite)
    /// reference. A reference key names this very image, so it wins over a
    /// component key; component keys count only when `by_component` is true.
    pub fn find(&self, image: &Image, by_component: bool) -> Option<&Pin> {
        // Normalising costs more than the rest of the rewrite, and most sites
        // pin by component name or not at all.
        let by_reference = if self.by_reference.is_empty() {
            None
        } else {
            let reference = normalise(&format!("{}:{}", image.repository, image.tag));
            self.by_reference.get(&reference)
        };
        let index = match by_reference {
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

fn parse_pin(entry: &str) -> Result<Pin, String> {
    let invalid = |why: &str| {
        format!(
            "{DIGESTS}: entry `{entry}` {why}; expected KEY=sha256:<64 lowercase hex digits>, \
             KEY a component name or an original repository:tag"
        )
    };
    let (key, digest) = entry.split_once('=').ok_or_else(|| invalid("has no `=`"))?;
    let (key, digest) = (key.trim(), digest.trim());
    if key.is_empty() {
        return Err(invalid("has an empty key"));
    }
    if !is_sha256_digest(digest) {
        return Err(invalid(&format!("has the digest `{digest}`")));
    }
    Ok(Pin {
        key: key.to_owned(),
        digest: digest.to_owned(),
    })
}

/// Lowercase only: the OCI image spec allows no other spelling of a sha256
/// digest, and a container runtime refuses one.
fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}
