//! image-resolve: the list of images this controller will use.
//!
//! The built-in produces the catalog's list with explicit overrides applied;
//! each plugin then returns the next list (mirror rewrite, digest pin). A
//! plugin may not add or drop images unless its manifest says
//! `allow-image-set-change = true`, so a mirror plugin cannot silently lose
//! a component.

use std::collections::{BTreeSet, HashSet};

pub use crate::plugin::bindings::exports::plinth::bootstrap::image_resolve::{
    Image, Origin, PullPolicy,
};

use super::{Answer, Hook, HookError, Outcome, Participant, check_text, run_chain};
use crate::config::Config;
use crate::images::{self, Catalog, Selection, reference};
use crate::journal::Journal;
use crate::plugin::{CallFailure, Plugin, PluginSet};

/// Most images a participant may return.
pub const MAX_IMAGES: usize = 10_000;

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
        self.call_hook(Hook::ImageResolve, |store, instance, exports| {
            exports
                .image_resolve(store, instance)?
                .call_resolve(&mut *store, images)
        })
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
        "builtin:catalog"
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

/// Run the chain: the built-in, then every plugin serving image-resolve.
pub fn run(
    builtin: &CatalogDefaults<'_>,
    plugins: &PluginSet,
    journal: &mut Journal,
) -> Result<Outcome<Vec<Image>>, HookError> {
    let mut chain: Vec<&dyn ImageResolver> = vec![builtin];
    chain.extend(
        plugins
            .serving(Hook::ImageResolve)
            .map(|p| p as &dyn ImageResolver),
    );
    run_resolvers(&chain, journal)
}

/// Run an explicit chain of resolvers over an empty starting list.
pub fn run_resolvers(
    chain: &[&dyn ImageResolver],
    journal: &mut Journal,
) -> Result<Outcome<Vec<Image>>, HookError> {
    run_chain(
        Hook::ImageResolve,
        journal,
        chain,
        Vec::new(),
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
/// many images it changed. Only changed images are validated again: one
/// passed through unchanged (plugins keep the order) was checked when it
/// first appeared.
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
    let mut seen = HashSet::with_capacity(next.len());
    let mut changed = 0;
    for (position, image) in next.iter().enumerate() {
        if !seen.insert(image.component.as_str()) {
            return malformed(format!("returned component `{}` twice", image.component));
        }
        if current.get(position) == Some(image) {
            continue;
        }
        changed += 1;
        let checked = reference::check_repository(&image.repository)
            .and_then(|()| reference::check_tag(&image.tag))
            .and_then(|()| {
                image
                    .digest
                    .as_deref()
                    .map_or(Ok(()), reference::check_digest)
            });
        if let Err(message) = checked {
            return malformed(format!("image for `{}`: {message}", image.component));
        }
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
