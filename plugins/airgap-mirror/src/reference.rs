//! Image names read the way Docker reads them, because the mirror must hold
//! each image at the path `docker pull` would have fetched it from.

/// The host names of Docker Hub. `nginx` and `docker.io/library/nginx` are
/// the same image.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// A repository split at its registry host.
#[derive(Debug)]
pub struct Repository<'a> {
    /// The registry host as written, `None` for a Docker Hub image named
    /// without one (`nginx`, `calico/node`).
    pub host: Option<&'a str>,
    /// The path after the host. A one-segment Docker Hub name gets
    /// `library/`, where Docker Hub keeps its official images.
    pub path: String,
}

impl<'a> Repository<'a> {
    /// Splits `repository` (no tag). Fails only where no rewrite can make
    /// sense of the name: the error says what is wrong with it.
    pub fn parse(repository: &'a str) -> Result<Self, &'static str> {
        if repository.is_empty() {
            return Err("is empty");
        }
        if repository
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err("contains whitespace or control characters");
        }
        if repository.split('/').any(str::is_empty) {
            return Err("has an empty path segment");
        }
        let (host, path) = match repository.split_once('/') {
            Some((first, rest)) if is_registry_host(first) => (Some(first), rest),
            _ => (None, repository),
        };
        let path = if host.is_none_or(is_docker_hub) && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self { host, path })
    }
}

/// Docker's rule for the first of several segments: it names a registry
/// when it holds a `.` or a `:` (a domain or a port), or is `localhost`.
/// Anything else (`calico` in `calico/node`) is a Docker Hub namespace.
fn is_registry_host(segment: &str) -> bool {
    segment == "localhost" || segment.contains(['.', ':'])
}

fn is_docker_hub(host: &str) -> bool {
    DOCKER_HUB.iter().any(|hub| hub.eq_ignore_ascii_case(host))
}

/// `repository:tag` spelled the one way every spelling of the same image
/// agrees on: the host lowercased, Docker Hub written `docker.io` and its
/// official images `library/` (`nginx:1.25` → `docker.io/library/nginx:1.25`).
/// A reference that cannot be split is returned as it is: it can only ever
/// equal itself.
pub fn normalise(reference: &str) -> String {
    // A `:` followed by a `/` is a registry's port, not a tag.
    let (repository, tag) = match reference.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository, tag),
        _ => (reference, ""),
    };
    let Ok(Repository { host, path }) = Repository::parse(repository) else {
        return reference.to_owned();
    };
    let host = match host {
        Some(host) if !is_docker_hub(host) => host.to_ascii_lowercase(),
        _ => "docker.io".to_owned(),
    };
    format!("{host}/{path}:{tag}")
}
