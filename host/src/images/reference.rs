//! Just enough of the OCI image reference grammar to rewrite registries and
//! refuse what a container runtime would refuse.

/// Split `repository` into its registry host and the path after it. A first
/// segment with a `.` or `:`, or `localhost`, is a registry; otherwise the
/// image lives on Docker Hub, where a one-segment name means `library/NAME`.
pub(crate) fn split_registry(repository: &str) -> (&str, String) {
    match repository.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first, rest.to_owned())
        }
        Some(_) => ("docker.io", repository.to_owned()),
        None => ("docker.io", format!("library/{repository}")),
    }
}

/// `repository` moved to `registry` (which may carry a path prefix).
pub(crate) fn with_registry(repository: &str, registry: &str) -> String {
    let (_, path) = split_registry(repository);
    format!("{}/{path}", registry.trim_end_matches('/'))
}

/// A repository as OCI distribution accepts it: lowercase path components of
/// `[a-z0-9]` with `.`, `_`, `-` separators; a registry host may carry a
/// port. One pass over the bytes: this runs for every image a plugin changes.
pub(crate) fn check_repository(repository: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{repository}` is not an image repository: {why}"));
    if repository.is_empty() || repository.len() > 255 {
        return bad("it must be 1 to 255 characters");
    }
    let bytes = repository.as_bytes();
    let first_slash = bytes.iter().position(|&b| b == b'/');
    let path = match first_slash {
        Some(slash) if is_registry_host(&bytes[..slash]) => {
            let (name, port) = match bytes[..slash].iter().position(|&b| b == b':') {
                Some(colon) => (&bytes[..colon], Some(&repository[colon + 1..slash])),
                None => (&bytes[..slash], None),
            };
            let name_ok = !name.is_empty()
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !name_ok {
                return bad("the registry host is malformed");
            }
            if port.is_some_and(|port| port.parse::<u16>().is_err()) {
                return bad("the registry port is not a number");
            }
            &bytes[slash + 1..]
        }
        _ => bytes,
    };
    if is_repository_path(path) {
        Ok(())
    } else if repository.contains(['@', ' ']) || repository.ends_with(':') {
        bad("write the tag and digest in their own fields")
    } else {
        bad("path components must be lowercase letters, digits and . _ - separators")
    }
}

/// Docker's rule for the first segment of a repository: a registry when it
/// holds a `.` or `:`, or is `localhost`.
fn is_registry_host(segment: &[u8]) -> bool {
    segment == b"localhost" || segment.iter().any(|&b| b == b'.' || b == b':')
}

/// `/`-separated components, each starting and ending with `[a-z0-9]`, with
/// `.`, `_` and `-` allowed between.
fn is_repository_path(path: &[u8]) -> bool {
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut previous = b'/';
    for &b in path {
        let ok = match b {
            b'/' | b'.' | b'_' | b'-' => alphanumeric(previous) || (b != b'/' && previous != b'/'),
            _ => alphanumeric(b),
        };
        if !ok {
            return false;
        }
        previous = b;
    }
    alphanumeric(previous)
}

pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{tag}` is not an image tag (1-128 of [A-Za-z0-9_.-])"
        ))
    }
}

pub(crate) fn check_digest(digest: &str) -> Result<(), String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "`{digest}` is not a digest; write it as sha256:<64 lowercase hex digits>"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_recognised_like_docker_does() {
        assert_eq!(
            split_registry("registry.k8s.io/pause"),
            ("registry.k8s.io", "pause".to_owned())
        );
        assert_eq!(
            split_registry("localhost/x/y"),
            ("localhost", "x/y".to_owned())
        );
        assert_eq!(
            split_registry("calico/node"),
            ("docker.io", "calico/node".to_owned())
        );
        assert_eq!(
            split_registry("busybox"),
            ("docker.io", "library/busybox".to_owned())
        );
        assert_eq!(
            with_registry("quay.io/calico/node", "mirror:5000/k8s/"),
            "mirror:5000/k8s/calico/node"
        );
    }

    #[test]
    fn malformed_references_are_refused() {
        assert!(check_repository("registry.k8s.io/coredns/coredns").is_ok());
        assert!(check_repository("mirror.local:5000/a/b").is_ok());
        assert!(check_repository("localhost/a__b/c-d.e").is_ok());
        assert!(check_repository("busybox").is_ok());
        for bad in [
            "",
            "UPPER CASE spaces!!",
            "a//b",
            "x.io:port/a",
            "a/b@sha256:00",
            "-a/b",
            "a/b/",
            "/a",
            "a/.b",
            "a/b-",
            "a/B",
            "localhost:x/a",
            "reg!.io/a",
        ] {
            assert!(check_repository(bad).is_err(), "{bad} was accepted");
        }
        assert!(check_tag("v1.2.3-k0s.0").is_ok());
        assert!(check_tag("_x").is_ok());
        assert!(check_tag("").is_err() && check_tag("-x").is_err() && check_tag(".x").is_err());
        assert!(check_tag("v1+x").is_err() && check_tag(&"x".repeat(129)).is_err());
        assert!(check_digest(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(check_digest("sha256:abc").is_err());
        assert!(check_digest(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
