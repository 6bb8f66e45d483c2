//! `allow-urls`: the only URLs a readiness plugin may have the host GET.
//!
//! A plugin never opens a socket; it names URLs and the host probes them.
//! The manifest, which the operator writes, says which: a URL is probed only
//! if an entry of `allow-urls` equals it or is a prefix of it. "Prefix" is
//! taken on parsed, normalised URLs, never on text, so that
//! `http://10.0.0.1:80` does not admit `http://10.0.0.1:8080/` and
//! `https://h/readyz` does not admit `https://h/readyz-admin` or
//! `https://h/readyz/../admin`:
//!
//! * scheme, host and port (the scheme's default when absent) are equal;
//! * the entry's path equals the URL's path, or is a prefix of it ending at a
//!   `/` (`https://h/api/` and `https://h/api` both admit `https://h/api/v1`);
//! * an entry with a query admits that exact query only; one without admits
//!   any.
//!
//! Entries and URLs are `http` or `https`, with no user name or password
//! (they would end up in logs) and no fragment.

use std::fmt;

use serde::Deserialize;
use url::Url;

/// The parsed `allow-urls` of one manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct AllowUrls(Vec<Url>);

impl TryFrom<Vec<String>> for AllowUrls {
    type Error = String;

    fn try_from(entries: Vec<String>) -> Result<Self, Self::Error> {
        entries
            .iter()
            .map(|entry| parse_probe_url(entry).map_err(|why| format!("allow-urls: {why}")))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl AllowUrls {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `url` (parsed with [`parse_probe_url`]) may be probed.
    pub fn permits(&self, url: &Url) -> bool {
        self.0.iter().any(|entry| admits(entry, url))
    }

    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Url::as_str)
    }
}

impl fmt::Display for AllowUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.entries().collect::<Vec<_>>().join(", "))
    }
}

/// Parse a URL a readiness check may name: absolute `http` or `https`, with
/// a host, no credentials and no fragment.
pub fn parse_probe_url(text: &str) -> Result<Url, String> {
    let shown = text.escape_debug();
    let url = Url::parse(text).map_err(|error| format!("`{shown}` is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{shown}` is not an http or https URL"));
    }
    if url.host().is_none() {
        return Err(format!("`{shown}` has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{shown}` carries a user name or password; credentials are not accepted in URLs"
        ));
    }
    if url.fragment().is_some() {
        return Err(format!("`{shown}` has a fragment (`#...`)"));
    }
    Ok(url)
}

fn admits(entry: &Url, url: &Url) -> bool {
    if entry.scheme() != url.scheme()
        || entry.host() != url.host()
        || entry.port_or_known_default() != url.port_or_known_default()
    {
        return false;
    }
    let (prefix, path) = (entry.path(), url.path());
    let path_admitted = path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| prefix.ends_with('/') || rest.starts_with('/'));
    path_admitted
        && match entry.query() {
            Some(query) => url.query() == Some(query),
            None => true,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(entries: &[&str]) -> AllowUrls {
        AllowUrls::try_from(entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn permits(list: &AllowUrls, url: &str) -> bool {
        list.permits(&parse_probe_url(url).unwrap())
    }

    #[test]
    fn an_entry_admits_itself_and_the_paths_below_it() {
        let list = allow(&["https://10.0.0.1:6443/readyz", "http://127.0.0.1:8080/api/"]);
        for url in [
            "https://10.0.0.1:6443/readyz",
            "https://10.0.0.1:6443/readyz?verbose",
            "https://10.0.0.1:6443/readyz/etcd",
            "http://127.0.0.1:8080/api/",
            "http://127.0.0.1:8080/api/v1",
            "HTTP://127.0.0.1:8080/api/v1/",
        ] {
            assert!(permits(&list, url), "{url} was refused");
        }
    }

    #[test]
    fn text_prefixes_that_are_not_url_prefixes_are_refused() {
        let list = allow(&[
            "https://10.0.0.1:6443/readyz",
            "http://127.0.0.1/health",
            "http://h/q?verbose",
        ]);
        for url in [
            "https://10.0.0.1:6443/readyz-admin",
            "https://10.0.0.1:6443/readyz/../admin",
            "https://10.0.0.1:64430/readyz",
            "https://10.0.0.1/readyz",
            "http://10.0.0.1:6443/readyz",
            "http://127.0.0.1:8080/health",
            "http://127.0.0.1.evil.example/health",
            "http://h/q",
            "http://h/q?verbose&exclude=etcd",
        ] {
            assert!(!permits(&list, url), "{url} was admitted");
        }
    }

    #[test]
    fn default_ports_are_the_same_port() {
        let list = allow(&["https://api.example/readyz"]);
        assert!(permits(&list, "https://api.example:443/readyz"));
        assert!(!permits(&list, "https://api.example:8443/readyz"));
    }

    #[test]
    fn only_plain_http_and_https_urls_are_accepted() {
        for text in [
            "ftp://h/x",
            "file:///etc/passwd",
            "https://user:secret@h/x",
            "https://h/x#frag",
            "/relative",
            "unix:/run/x.sock",
            "",
        ] {
            assert!(parse_probe_url(text).is_err(), "{text} was accepted");
            assert!(
                AllowUrls::try_from(vec![text.to_owned()]).is_err(),
                "{text} was accepted as an entry"
            );
        }
    }

    #[test]
    fn an_empty_list_admits_nothing() {
        assert!(!permits(&AllowUrls::default(), "http://127.0.0.1/"));
    }
}
