//! image-resolve: the list of images this controller will use.
//!
//! The built-in produces the catalog's list with explicit overrides applied;
//! each plugin then returns the next list (mirror rewrite, digest pin). A
//! plugin may not add or drop images unless its manifest says
//! `allow-image-set-change = true`, so a mirror plugin cannot silently lose
//! a component.

use std::collections::{BTreeSet, HashSet};

use super::chain::{
    Answer, HookError, MAX_DNS_LABEL_BYTES, Outcome, Participant, check_text, is_dns_label,
    run_chain,
};
use crate::config::Config;
use crate::images::{self, Catalog, Selection, reference};
use crate::journal::Journal;
use crate::phase::Summarize;
use crate::plugin::contract::{Hook, Image};
use crate::plugin::{CallFailure, Plugin, PluginSet};

/// The built-in that opens the chain: the catalog's images.
pub(crate) const BUILTIN: &str = "builtin:catalog";

/// Most images a participant may return.
pub(crate) const MAX_IMAGES: usize = 10_000;

/// Longest component name: a DNS label, as the catalog's names are.
pub(crate) const MAX_COMPONENT_BYTES: usize = MAX_DNS_LABEL_BYTES;

/// A participant of image-resolve.
pub trait ImageResolver: Participant {
    /// The next list, or `Err(reason)` to refuse.
    fn resolve(&self, images: &[Image]) -> Result<Result<Vec<Image>, String>, CallFailure>;

    fn may_change_image_set(&self) -> bool {
        false
    }
}

impl ImageResolver for Plugin {
    fn resolve(&self, images: &[Image]) -> Result<Result<Vec<Image>, String>, CallFailure> {
        self.image_resolve(images)
    }

    fn may_change_image_set(&self) -> bool {
        Plugin::may_change_image_set(self)
    }
}

/// The built-in: the catalog's images for this configuration.
pub struct CatalogDefaults<'a> {
    pub catalog: &'a Catalog,
    pub config: &'a Config,
    pub selection: Selection,
}

impl Participant for CatalogDefaults<'_> {
    fn name(&self) -> &str {
        BUILTIN
    }
}

impl ImageResolver for CatalogDefaults<'_> {
    /// Ignores its input: it is where the list comes from.
    fn resolve(&self, _images: &[Image]) -> Result<Result<Vec<Image>, String>, CallFailure> {
        Ok(Ok(images::defaults(
            self.catalog,
            self.config,
            self.selection,
        )))
    }

    fn may_change_image_set(&self) -> bool {
        true
    }
}

impl Summarize for Outcome<Vec<Image>> {
    fn summary(&self) -> String {
        format!("{} image(s) resolved", self.value.len())
    }
}

/// Run the chain: the built-in, then every plugin serving image-resolve.
pub fn run(
    builtin: &CatalogDefaults<'_>,
    plugins: &PluginSet,
    journal: &Journal,
) -> Result<Outcome<Vec<Image>>, HookError> {
    let mut chain: Vec<&dyn ImageResolver> = vec![builtin];
    chain.extend(
        plugins
            .serving(Hook::ImageResolve)
            .map(|p| p as &dyn ImageResolver),
    );
    run_resolvers(&chain, Vec::new(), journal)
}

/// Run an explicit chain of resolvers over `initial` (empty when a
/// built-in opens the chain; a fixture for `plugins invoke`).
pub fn run_resolvers(
    chain: &[&dyn ImageResolver],
    initial: Vec<Image>,
    journal: &Journal,
) -> Result<Outcome<Vec<Image>>, HookError> {
    run_chain(
        Hook::ImageResolve,
        journal,
        chain,
        initial,
        |participant, current| match participant.resolve(current)? {
            Ok(next) => {
                let changed = check_answer(current, &next, participant.may_change_image_set())?;
                Ok(Answer {
                    detail: Some(serde_json::json!({"images": next.len(), "changed": changed})),
                    ..Answer::next(next)
                })
            }
            Err(reason) => {
                check_text("refusal", &reason)?;
                Ok(Answer::refuse(current.clone(), Hook::ImageResolve, reason))
            }
        },
    )
}

/// Check a participant's list against the rules of the hook; returns how
/// many images it changed. Every image of `current` was checked when it
/// first appeared, so only what differs from the image at the same position
/// is checked again, field by field: a mirror that rewrites repositories
/// costs one repository check per image, a digest pin one digest check.
fn check_answer(
    current: &[Image],
    next: &[Image],
    may_change_set: bool,
) -> Result<usize, CallFailure> {
    let malformed = |message: String| Err(CallFailure::Malformed(message));
    if next.len() > MAX_IMAGES {
        return malformed(format!(
            "returned {} images; at most {MAX_IMAGES} are accepted",
            next.len()
        ));
    }
    let mut changed = 0;
    for (position, image) in next.iter().enumerate() {
        let before = current.get(position);
        if before == Some(image) {
            continue;
        }
        changed += 1;
        if let Err(message) = check_changed_fields(image, before) {
            return malformed(format!("image for `{}`: {message}", image.component));
        }
    }
    let same_components = current.len() == next.len()
        && current
            .iter()
            .zip(next)
            .all(|(before, after)| before.component == after.component);
    if same_components {
        return Ok(changed);
    }
    let mut seen = HashSet::with_capacity(next.len());
    if let Some(twice) = next.iter().find(|i| !seen.insert(i.component.as_str())) {
        return malformed(format!("returned component `{}` twice", twice.component));
    }
    let same_set =
        current.len() == seen.len() && current.iter().all(|i| seen.contains(i.component.as_str()));
    if !may_change_set && !same_set {
        let before: BTreeSet<&str> = current.iter().map(|i| i.component.as_str()).collect();
        let after: BTreeSet<&str> = seen.into_iter().collect();
        let dropped: Vec<_> = before.difference(&after).collect();
        let added: Vec<_> = after.difference(&before).collect();
        return malformed(format!(
            "changed the image set (dropped {dropped:?}, added {added:?}) without `allow-image-set-change = true` in its manifest"
        ));
    }
    Ok(changed)
}

/// Check the fields of `image` that differ from `before`, an image already
/// checked (all of them when there is none).
fn check_changed_fields(image: &Image, before: Option<&Image>) -> Result<(), String> {
    let changed = |field: fn(&Image) -> &str| before.is_none_or(|b| field(b) != field(image));
    if changed(|i| &i.component) {
        check_component(&image.component)?;
    }
    if changed(|i| &i.repository) {
        reference::check_repository(&image.repository)?;
    }
    if changed(|i| &i.tag) {
        reference::check_tag(&image.tag)?;
    }
    match &image.digest {
        Some(digest) if before.is_none_or(|b| b.digest.as_ref() != Some(digest)) => {
            reference::check_digest(digest)
        }
        _ => Ok(()),
    }
}

/// A component name is a DNS label (`kube-proxy`): it names files, log
/// fields and `images.lock` lines, so a plugin that adds images may not
/// make it arbitrary text.
fn check_component(component: &str) -> Result<(), String> {
    if is_dns_label(component) {
        Ok(())
    } else {
        Err(format!(
            "the component name is not 1 to {MAX_COMPONENT_BYTES} lowercase letters, digits \
             and inner `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::contract::{Origin, PullPolicy};

    fn image(component: &str) -> Image {
        Image {
            component: component.to_owned(),
            repository: format!("registry.k8s.io/{component}"),
            tag: "v1.0.0".to_owned(),
            digest: None,
            origin: Origin::Default,
            pull_policy: PullPolicy::IfNotPresent,
        }
    }

    fn list(components: &[&str]) -> Vec<Image> {
        components.iter().copied().map(image).collect()
    }

    fn refusal(current: &[Image], next: &[Image], may_change_set: bool) -> String {
        match check_answer(current, next, may_change_set) {
            Err(CallFailure::Malformed(message)) => message,
            other => panic!("expected a malformed answer, got {other:?}"),
        }
    }

    #[test]
    fn counts_the_images_a_participant_changed() {
        let current = list(&["a", "b", "c"]);
        let mut next = current.clone();
        next[1].repository = "mirror.local/b".to_owned();
        next[2].digest = Some(format!("sha256:{}", "0".repeat(64)));
        assert_eq!(check_answer(&current, &next, false).unwrap(), 2);
        assert_eq!(check_answer(&current, &current, false).unwrap(), 0);
    }

    #[test]
    fn each_changed_field_is_checked() {
        let current = list(&["a", "b"]);
        let mut bad_repository = current.clone();
        bad_repository[0].repository = "Mirror/A".to_owned();
        assert!(refusal(&current, &bad_repository, false).contains("`a`"));
        let mut bad_tag = current.clone();
        bad_tag[1].tag = "-x".to_owned();
        assert!(refusal(&current, &bad_tag, false).contains("`b`"));
        let mut bad_digest = current.clone();
        bad_digest[1].digest = Some("sha256:abc".to_owned());
        assert!(refusal(&current, &bad_digest, false).contains("not a digest"));
    }

    #[test]
    fn a_new_list_is_checked_whole() {
        let mut next = list(&["a"]);
        next[0].tag = String::new();
        assert!(refusal(&[], &next, true).contains("not an image tag"));
    }

    #[test]
    fn reordering_is_not_a_set_change_but_checks_what_moved() {
        let current = list(&["a", "b"]);
        let swapped = list(&["b", "a"]);
        assert_eq!(check_answer(&current, &swapped, false).unwrap(), 2);
        let mut bad = swapped.clone();
        bad[0].repository = "a b".to_owned();
        assert!(refusal(&current, &bad, false).contains("`b`"));
    }

    #[test]
    fn a_component_twice_is_refused_even_when_the_set_may_change() {
        let current = list(&["a", "b"]);
        let twice = list(&["a", "a"]);
        assert!(refusal(&current, &twice, true).contains("`a` twice"));
        assert!(refusal(&[], &twice, true).contains("`a` twice"));
    }

    #[test]
    fn dropping_or_adding_needs_permission() {
        let current = list(&["a", "b"]);
        let dropped = list(&["a"]);
        let message = refusal(&current, &dropped, false);
        assert!(message.contains("dropped [\"b\"]"), "{message}");
        assert_eq!(check_answer(&current, &dropped, true).unwrap(), 0);
        let replaced = list(&["a", "c"]);
        let message = refusal(&current, &replaced, false);
        assert!(message.contains("added [\"c\"]"), "{message}");
        assert_eq!(check_answer(&current, &replaced, true).unwrap(), 1);
    }

    #[test]
    fn an_added_component_must_be_a_dns_label() {
        let current = list(&["a"]);
        for bad in [
            "",
            "Upper",
            "-lead",
            "trail-",
            "with space",
            &"x".repeat(64),
        ] {
            let mut next = current.clone();
            next.push(image(bad));
            let message = refusal(&current, &next, true);
            assert!(message.contains("component name"), "{bad:?}: {message}");
        }
        let mut next = current.clone();
        next.push(image(&format!("kube-{}", "x".repeat(58))));
        assert_eq!(check_answer(&current, &next, true).unwrap(), 1);
    }

    #[test]
    fn more_than_the_cap_is_refused() {
        let many: Vec<Image> = (0..=MAX_IMAGES).map(|i| image(&format!("c{i}"))).collect();
        assert!(refusal(&[], &many, true).contains("at most"));
    }
}
