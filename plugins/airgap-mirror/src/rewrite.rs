//! The rewrite: each image moves to the mirror and takes the digest its pin
//! names. The rules, numbered as in README.md:
//!
//! 1. The host is the first `/`-segment when Docker would read it as one
//!    ([`is_registry_host`](crate::reference::is_registry_host)); otherwise
//!    the image is on Docker Hub.
//! 2. The host is stripped; a one-segment Docker Hub name gets `library/`.
//! 3. The result is `<registry>/<prefix>/<rest>`.
//! 4. An image already on the mirror is left alone, so that running the
//!    plugin twice changes nothing.
//! 5. Length, order, component, tag, origin and pull policy never change.
//! 6. Pins match the original image ([`Pins::find`](crate::settings::Pins::find)).
//! 7. Only a repository no rewrite can make sense of is an error.
//!
//! With `only-defaults`, images the user set keep their repository and take
//! only a pin keyed by their reference: a pin keyed by component name was
//! written for the catalog's image, whose digest is not the user's image's.

use std::collections::HashSet;

use crate::exports::plinth::bootstrap::image_resolve::{Image, Origin};
use crate::reference::Repository;
use crate::settings::Settings;

/// What [`resolve`] made of the list.
#[derive(Debug)]
pub struct Resolution {
    /// Same length and order as the input.
    pub images: Vec<Image>,
    /// How many repositories moved to the mirror.
    pub rewritten: usize,
    /// Keys of the pins that matched no image, in the order of the setting:
    /// most likely a typo the operator wants to hear about.
    pub unused_pins: Vec<String>,
}

/// Applies the rewrite and the pins to every image.
pub fn resolve(settings: &Settings, mut images: Vec<Image>) -> Result<Resolution, String> {
    let mut used = HashSet::new();
    let mut rewritten = 0;
    for image in &mut images {
        let user_set = settings.only_defaults && image.origin == Origin::Explicit;
        if let Some(pin) = settings.pins.find(image, !user_set) {
            image.digest = Some(pin.digest.clone());
            used.insert(pin.key.as_str());
        }
        if user_set {
            continue;
        }
        let mirrored = mirror_repository(settings, &image.repository).map_err(|why| {
            format!(
                "image `{}` has the repository `{}`, which {why}",
                image.component, image.repository
            )
        })?;
        if let Some(repository) = mirrored {
            image.repository = repository;
            rewritten += 1;
        }
    }
    let unused_pins = settings
        .pins
        .iter()
        .filter(|pin| !used.contains(pin.key.as_str()))
        .map(|pin| pin.key.clone())
        .collect();
    Ok(Resolution {
        images,
        rewritten,
        unused_pins,
    })
}

/// The mirror's repository for `repository`, or `None` when it is on the
/// mirror already.
pub fn mirror_repository(
    settings: &Settings,
    repository: &str,
) -> Result<Option<String>, &'static str> {
    let Repository { host, path } = Repository::parse(repository)?;
    if is_on_mirror(settings, host, &path) {
        return Ok(None);
    }
    Ok(Some(format!("{}/{path}", settings.destination())))
}

/// The host is the mirror (hosts are case-insensitive) and the path is
/// inside the prefix. Checking the prefix too means that an image another
/// project keeps on the same registry still moves under this one's prefix.
fn is_on_mirror(settings: &Settings, host: Option<&str>, path: &str) -> bool {
    let on_registry = host.is_some_and(|host| host.eq_ignore_ascii_case(&settings.registry));
    let in_prefix = match &settings.prefix {
        Some(prefix) => path
            .strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/')),
        None => true,
    };
    on_registry && in_prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exports::plinth::bootstrap::image_resolve::PullPolicy;
    use crate::settings::testing::{D1, D2, settings};
    use crate::settings::{DIGESTS, ONLY_DEFAULTS, PREFIX, REGISTRY};

    fn cfg(pairs: &[(&str, &str)]) -> Settings {
        settings(pairs).unwrap()
    }

    fn img(component: &str, repository: &str, tag: &str, explicit: bool) -> Image {
        Image {
            component: component.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: None,
            origin: if explicit {
                Origin::Explicit
            } else {
                Origin::Default
            },
            pull_policy: PullPolicy::IfNotPresent,
        }
    }

    /// `repo` as it leaves the plugin.
    fn rw(c: &Settings, repo: &str) -> String {
        mirror_repository(c, repo)
            .unwrap()
            .unwrap_or_else(|| repo.to_string())
    }

    #[test]
    fn rewrite_examples() {
        let c = cfg(&[(REGISTRY, "mirror.local:5000")]);
        for (original, mirrored) in [
            ("registry.k8s.io/coredns/coredns", "coredns/coredns"),
            ("calico/node", "calico/node"),
            ("nginx", "library/nginx"),
            ("docker.io/nginx", "library/nginx"),
            ("docker.io/library/nginx", "library/nginx"),
            ("localhost/foo", "foo"),
            ("localhost:5000/a/b", "a/b"),
            ("quay.io/k0sproject/pause", "k0sproject/pause"),
            ("localhost", "library/localhost"),
        ] {
            assert_eq!(rw(&c, original), format!("mirror.local:5000/{mirrored}"));
        }
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
            assert_eq!(mirror_repository(&c, &upper).unwrap(), None);
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
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "has space/x",
            "tab\there",
            "m.local/a//b",
        ] {
            assert!(mirror_repository(&c, bad).is_err(), "{bad:?}");
        }
        let err = resolve(&c, vec![img("x", "a//b", "1", false)]).unwrap_err();
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
        } = resolve(&c, input.clone()).unwrap();
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
                (&a.component, &a.tag, a.origin, a.pull_policy),
                (&b.component, &b.tag, b.origin, b.pull_policy)
            );
        }
        assert_eq!(unused, vec!["unused".to_string()]);
    }

    #[test]
    fn resolve_counts_rewritten_repositories() {
        let c = cfg(&[(REGISTRY, "m.local")]);
        let images = vec![
            img("a", "registry.k8s.io/a", "1", false),
            img("b", "m.local/b", "1", false),
        ];
        assert_eq!(resolve(&c, images).unwrap().rewritten, 1);
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
                let (component, tag) = (format!("c{i}"), format!("v{i}"));
                img(
                    &component,
                    &format!("registry.k8s.io/{component}"),
                    &tag,
                    false,
                )
            })
            .collect();
        let resolution = resolve(&c, images).unwrap();
        assert!(resolution.unused_pins.is_empty());
        for (i, image) in resolution.images.iter().enumerate() {
            assert_eq!(image.digest, Some(digest(i)), "{}", image.component);
        }
    }

    #[test]
    fn reference_pin_matches_normalised_and_beats_component_pin() {
        let c = cfg(&[
            (REGISTRY, "m.local"),
            (DIGESTS, &format!("web={D1},nginx:1.25={D2}")),
        ]);
        let out = resolve(
            &c,
            vec![img("web", "docker.io/library/nginx", "1.25", false)],
        )
        .unwrap()
        .images;
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
        } = resolve(
            &c,
            vec![
                img("coredns", "quay.io/example/coredns", "1.12.0", true),
                img("kube-proxy", "registry.k8s.io/kube-proxy", "v1.33.0", false),
                img("metrics", "quay.io/example/metrics", "1", true),
            ],
        )
        .unwrap();
        assert_eq!(out[0].repository, "quay.io/example/coredns");
        assert_eq!(out[0].digest.as_deref(), Some(D2));
        assert_eq!(out[1].repository, "m.local/kube-proxy");
        assert_eq!(out[1].digest.as_deref(), Some(D1));
        assert_eq!(out[2].repository, "quay.io/example/metrics");
        assert_eq!(out[2].digest, None);
        assert_eq!(unused, vec!["coredns".to_string()]);
        // Without only-defaults the explicit image is mirrored too.
        let c = Settings {
            only_defaults: false,
            ..c
        };
        let explicit = img("coredns", "quay.io/example/coredns", "1.12.0", true);
        let out = resolve(&c, vec![explicit]).unwrap().images;
        assert_eq!(out[0].repository, "m.local/example/coredns");
    }
}
