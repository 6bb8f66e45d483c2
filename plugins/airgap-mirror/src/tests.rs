//! The README's rules, checked natively: settings as a manifest gives them,
//! images as the host hands them over.

use std::collections::HashMap;

use crate::exports::plinth::bootstrap::image_resolve::{Image, Origin, PullPolicy};
use crate::reference::normalise;
use crate::rewrite::{Resolution, mirror_repository, resolve};
use crate::settings::{DIGESTS, ONLY_DEFAULTS, PREFIX, REGISTRY, Settings};

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
    let map: HashMap<&str, &str> = pairs.iter().copied().collect();
    Settings::read(|key| map.get(key).map(|value| value.to_string()))
}

fn cfg(pairs: &[(&str, &str)]) -> Settings {
    settings(pairs).unwrap()
}

/// A catalog image; `reference` is `repository:tag`.
fn image(component: &str, reference: &str) -> Image {
    let (repository, tag) = reference.rsplit_once(':').unwrap();
    Image {
        component: component.into(),
        repository: repository.into(),
        tag: tag.into(),
        digest: None,
        origin: Origin::Default,
        pull_policy: PullPolicy::IfNotPresent,
    }
}

/// An image the user set in `spec.images`.
fn explicit(image: Image) -> Image {
    Image {
        origin: Origin::Explicit,
        ..image
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
    for (original, path) in [
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
        assert_eq!(rw(&c, original), format!("mirror.local:5000/{path}"));
    }
    let p = cfg(&[(REGISTRY, "mirror.local:5000"), (PREFIX, "/k8s/")]);
    let coredns = rw(&p, "registry.k8s.io/coredns/coredns");
    assert_eq!(coredns, "mirror.local:5000/k8s/coredns/coredns");
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
    let empty_segments = ["", "a//b", "/a", "a/", "m.local/a//b"];
    for bad in empty_segments
        .into_iter()
        .chain(["has space/x", "tab\there"])
    {
        assert!(mirror_repository(&c, bad).is_err(), "{bad:?}");
    }
    let err = resolve(&c, vec![image("x", "a//b:1")]).unwrap_err();
    assert!(err.contains("`x`") && err.contains("a//b"), "{err}");
}

#[test]
fn resolve_keeps_length_order_and_tags_and_pins_digests() {
    let digests = format!("coredns={D1}\n quay.io/calico/node:v3.29.0 = {D2},unused={D1}");
    let c = cfg(&[
        (REGISTRY, "registry.airgap.local:5000"),
        (PREFIX, "plinth"),
        (DIGESTS, &digests),
    ]);
    let input = vec![
        image("coredns", "registry.k8s.io/coredns/coredns:v1.12.0"),
        image("calico-node", "quay.io/calico/node:v3.29.0"),
        explicit(image("pause", "registry.k8s.io/pause:3.10")),
    ];
    let Resolution {
        images: out,
        unused_pins,
        ..
    } = resolve(&c, input.clone()).unwrap();
    let mirror = "registry.airgap.local:5000/plinth";
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].repository, format!("{mirror}/coredns/coredns"));
    assert_eq!(out[0].digest.as_deref(), Some(D1));
    assert_eq!(out[1].repository, format!("{mirror}/calico/node"));
    assert_eq!(out[1].digest.as_deref(), Some(D2));
    assert_eq!(out[2].repository, format!("{mirror}/pause"));
    assert_eq!(out[2].digest, None);
    for (a, b) in out.iter().zip(&input) {
        assert_eq!(
            (&a.component, &a.tag, a.origin, a.pull_policy),
            (&b.component, &b.tag, b.origin, b.pull_policy)
        );
    }
    assert_eq!(unused_pins, ["unused"]);
}

#[test]
fn resolve_counts_rewritten_repositories() {
    let c = cfg(&[(REGISTRY, "m.local")]);
    let images = vec![image("a", "registry.k8s.io/a:1"), image("b", "m.local/b:1")];
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
        .map(|i| image(&format!("c{i}"), &format!("registry.k8s.io/c{i}:v{i}")))
        .collect();
    let resolution = resolve(&c, images).unwrap();
    assert!(resolution.unused_pins.is_empty());
    for (i, image) in resolution.images.iter().enumerate() {
        assert_eq!(image.digest, Some(digest(i)), "{}", image.component);
    }
}

#[test]
fn docker_hub_spellings_normalise_to_one_reference() {
    let hub = ["docker.io/nginx:1.25", "index.docker.io/library/nginx:1.25"];
    for spelling in hub
        .into_iter()
        .chain(["nginx:1.25", "Registry-1.Docker.io/nginx:1.25"])
    {
        assert_eq!(normalise(spelling), "docker.io/library/nginx:1.25");
    }
    assert_eq!(normalise("Quay.io/a/b:1"), "quay.io/a/b:1");
    assert_eq!(normalise("localhost:5000/a"), "localhost:5000/a:");
    assert_eq!(normalise("a//b:1"), "a//b:1");
}

#[test]
fn two_keys_for_the_same_image_are_refused() {
    let digests = format!("nginx:1.25={D1},docker.io/library/nginx:1.25={D2}");
    let e = settings(&[(REGISTRY, "m.local"), (DIGESTS, &digests)]).unwrap_err();
    assert_eq!(e.len(), 1, "{e:?}");
    let same = "`nginx:1.25` and `docker.io/library/nginx:1.25` name the same image";
    assert!(e[0].contains(same), "{e:?}");
}

#[test]
fn reference_pin_matches_normalised_and_beats_component_pin() {
    let digests = format!("web={D1},nginx:1.25={D2}");
    let c = cfg(&[(REGISTRY, "m.local"), (DIGESTS, &digests)]);
    let images = vec![image("web", "docker.io/library/nginx:1.25")];
    let out = resolve(&c, images).unwrap().images;
    assert_eq!(out[0].digest.as_deref(), Some(D2));
    assert_eq!(out[0].repository, "m.local/library/nginx");
}

#[test]
fn only_defaults_leaves_explicit_images_except_reference_pins() {
    let digests = format!("coredns={D1},quay.io/example/coredns:1.12.0={D2},kube-proxy={D1}");
    let c = cfg(&[
        (REGISTRY, "m.local"),
        (ONLY_DEFAULTS, "true"),
        (DIGESTS, &digests),
    ]);
    let coredns = explicit(image("coredns", "quay.io/example/coredns:1.12.0"));
    let images = vec![
        coredns.clone(),
        image("kube-proxy", "registry.k8s.io/kube-proxy:v1.33.0"),
        explicit(image("metrics", "quay.io/example/metrics:1")),
    ];
    let Resolution {
        images: out,
        unused_pins,
        ..
    } = resolve(&c, images).unwrap();
    assert_eq!(out[0].repository, "quay.io/example/coredns");
    assert_eq!(out[0].digest.as_deref(), Some(D2));
    assert_eq!(out[1].repository, "m.local/kube-proxy");
    assert_eq!(out[1].digest.as_deref(), Some(D1));
    assert_eq!(out[2].repository, "quay.io/example/metrics");
    assert_eq!(out[2].digest, None);
    assert_eq!(unused_pins, ["coredns"]);
    // Without only-defaults the explicit image is mirrored too.
    let c = Settings {
        only_defaults: false,
        ..c
    };
    let out = resolve(&c, vec![coredns]).unwrap().images;
    assert_eq!(out[0].repository, "m.local/example/coredns");
}

#[test]
fn settings_errors_name_key_value_and_expectation() {
    let err = settings(&[]).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err[0].starts_with("registry: missing"), "{err:?}");

    let registry = |value| settings(&[(REGISTRY, value)]);
    let bad_ports = ["m.local:0", "m.local:99999", "m.local:abc"];
    let bad_hosts = ["-m.local", "m_local", "[::1", "[zz]:5000"];
    let bad = ["https://m.local", "m.local/path"].into_iter();
    for bad in bad.chain(bad_ports).chain(bad_hosts) {
        let e = registry(bad).unwrap_err();
        let named = e[0].starts_with("registry:") && e[0].contains(bad);
        assert!(named, "{bad}: {e:?}");
    }
    let good = ["m.local", "m.local:5000", "localhost:5000", "10.0.0.1:5000"];
    for good in good.into_iter().chain(["[::1]:5000", "[fd00::1]"]) {
        assert!(registry(good).is_ok(), "{good}");
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
fn prefix_grammar() {
    let prefix = |value| settings(&[(REGISTRY, "m"), (PREFIX, value)]);
    for good in ["plinth", "a/b", "k8s.io", "a__b", "a--b", "a_b"] {
        assert!(prefix(good).is_ok(), "{good}");
    }
    for bad in ["A", "a..b", "a___b", "-a", "a-", "a b", "a//b"] {
        assert!(prefix(bad).is_err(), "{bad}");
    }
}
