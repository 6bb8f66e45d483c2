//! The audit itself, over plain Rust types so that it is unit-tested natively.
//!
//! `lib.rs` converts the WIT records to these types and back; nothing here
//! knows about the component model.

use std::net::IpAddr;

const DAY: i64 = 86_400;

/// Key algorithm of a certificate's public key (mirrors `post-pki.key-algorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlg {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
    Other,
}

impl KeyAlg {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlg::EcdsaP256 => "ecdsa-p256",
            KeyAlg::EcdsaP384 => "ecdsa-p384",
            KeyAlg::Rsa => "rsa",
            KeyAlg::Ed25519 => "ed25519",
            KeyAlg::Other => "other",
        }
    }

    fn parse(s: &str) -> Option<KeyAlg> {
        Some(match s {
            "ecdsa-p256" => KeyAlg::EcdsaP256,
            "ecdsa-p384" => KeyAlg::EcdsaP384,
            "rsa" => KeyAlg::Rsa,
            "ed25519" => KeyAlg::Ed25519,
            _ => return None,
        })
    }
}

/// The fields of a certificate the rules look at.
#[derive(Clone, Debug)]
pub struct Cert {
    pub name: String,
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<String>,
    pub key_alg: KeyAlg,
    pub key_bits: u32,
    pub signature_algorithm: String,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warning,
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub subject: String,
    pub rule: String,
    pub message: String,
}

pub const ALLOWED_KEY_ALGORITHMS: &str = "allowed-key-algorithms";
pub const MIN_RSA_BITS: &str = "min-rsa-bits";
pub const MAX_LEAF_VALIDITY_DAYS: &str = "max-leaf-validity-days";
pub const MAX_CA_VALIDITY_DAYS: &str = "max-ca-validity-days";
pub const REQUIRED_SERVER_SANS: &str = "required-server-sans";
pub const EXPIRY_WARNING_DAYS: &str = "expiry-warning-days";
pub const FORBID_SHA1: &str = "forbid-sha1";

/// Every setting this plugin reads.
pub const SETTINGS: [&str; 7] = [
    ALLOWED_KEY_ALGORITHMS,
    MIN_RSA_BITS,
    MAX_LEAF_VALIDITY_DAYS,
    MAX_CA_VALIDITY_DAYS,
    REQUIRED_SERVER_SANS,
    EXPIRY_WARNING_DAYS,
    FORBID_SHA1,
];

/// The name of the kube-apiserver serving certificate in the PKI set.
pub const SERVER_CERT: &str = "server";

/// The audit policy; `None` (or `false`) turns a rule off.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub allowed_key_algorithms: Option<Vec<KeyAlg>>,
    pub min_rsa_bits: Option<u32>,
    pub max_leaf_validity_days: Option<u32>,
    pub max_ca_validity_days: Option<u32>,
    pub required_server_sans: Option<Vec<String>>,
    pub expiry_warning_days: Option<u32>,
    pub forbid_sha1: bool,
}

/// Largest accepted day count: 1000 years, far past any real certificate and
/// small enough that `days * 86400` never overflows.
const MAX_DAYS: u32 = 365_000;

fn parse_days(key: &str, raw: &str, min: u32, errors: &mut Vec<String>) -> Option<u32> {
    match raw.trim().parse::<u32>() {
        Ok(n) if (min..=MAX_DAYS).contains(&n) => Some(n),
        _ => {
            errors.push(format!(
                "{key}: `{raw}` is not valid; expected a whole number of days from {min} to {MAX_DAYS}"
            ));
            None
        }
    }
}

fn split_list(raw: &str) -> impl Iterator<Item = &str> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty())
}

impl Policy {
    /// Read and check every setting. `get` returns the raw value of a key,
    /// `None` when absent. Returns one message per bad setting.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Policy, Vec<String>> {
        let mut errors = Vec::new();
        let mut p = Policy::default();

        if let Some(raw) = get(ALLOWED_KEY_ALGORITHMS) {
            let mut algs = Vec::new();
            let mut bad = Vec::new();
            for item in split_list(&raw) {
                match KeyAlg::parse(&item.to_ascii_lowercase()) {
                    Some(a) if !algs.contains(&a) => algs.push(a),
                    Some(_) => {}
                    None => bad.push(item.to_string()),
                }
            }
            if !bad.is_empty() || algs.is_empty() {
                let what = if bad.is_empty() {
                    "names no algorithm".to_string()
                } else {
                    format!("has unknown algorithm(s) {}", bad.join(", "))
                };
                errors.push(format!(
                    "{ALLOWED_KEY_ALGORITHMS}: `{raw}` {what}; expected a comma-separated list of \
                     ecdsa-p256, ecdsa-p384, rsa, ed25519"
                ));
            } else {
                p.allowed_key_algorithms = Some(algs);
            }
        }

        if let Some(raw) = get(MIN_RSA_BITS) {
            match raw.trim().parse::<u32>() {
                Ok(n) if (512..=16_384).contains(&n) => p.min_rsa_bits = Some(n),
                _ => errors.push(format!(
                    "{MIN_RSA_BITS}: `{raw}` is not valid; expected a whole number of bits from 512 \
                     to 16384, e.g. 2048"
                )),
            }
        }

        if let Some(raw) = get(MAX_LEAF_VALIDITY_DAYS) {
            p.max_leaf_validity_days = parse_days(MAX_LEAF_VALIDITY_DAYS, &raw, 1, &mut errors);
        }
        if let Some(raw) = get(MAX_CA_VALIDITY_DAYS) {
            p.max_ca_validity_days = parse_days(MAX_CA_VALIDITY_DAYS, &raw, 1, &mut errors);
        }
        if let Some(raw) = get(EXPIRY_WARNING_DAYS) {
            p.expiry_warning_days = parse_days(EXPIRY_WARNING_DAYS, &raw, 0, &mut errors);
        }

        if let Some(raw) = get(REQUIRED_SERVER_SANS) {
            let sans: Vec<String> = split_list(&raw).map(str::to_string).collect();
            let bad: Vec<&String> = sans
                .iter()
                .filter(|s| s.parse::<IpAddr>().is_err() && !is_dns_name(s))
                .collect();
            if sans.is_empty() {
                errors.push(format!(
                    "{REQUIRED_SERVER_SANS}: `{raw}` names no SAN; expected a comma-separated list \
                     of DNS names and IP addresses, e.g. kubernetes.default.svc,127.0.0.1"
                ));
            } else if !bad.is_empty() {
                let bad: Vec<&str> = bad.iter().map(|s| s.as_str()).collect();
                errors.push(format!(
                    "{REQUIRED_SERVER_SANS}: `{}` is neither a DNS name nor an IP address; expected \
                     a comma-separated list of DNS names and IP addresses",
                    bad.join("`, `")
                ));
            } else {
                p.required_server_sans = Some(sans);
            }
        }

        if let Some(raw) = get(FORBID_SHA1) {
            match raw.trim() {
                "true" => p.forbid_sha1 = true,
                "false" => p.forbid_sha1 = false,
                _ => errors.push(format!(
                    "{FORBID_SHA1}: `{raw}` is not valid; expected `true` or `false`"
                )),
            }
        }

        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }
}

/// A DNS name or wildcard as it may appear in a SAN: labels of letters,
/// digits, `-` and `_`, separated by dots; a leading `*.` is allowed.
fn is_dns_name(s: &str) -> bool {
    let s = s.strip_prefix("*.").unwrap_or(s);
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn dns_eq(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Whether `want` is among the certificate's SANs. IP addresses compare as
/// addresses (`::1` equals `0::1`), DNS names case-insensitively.
fn has_san(cert: &Cert, want: &str) -> bool {
    match want.parse::<IpAddr>() {
        Ok(ip) => cert
            .ip_sans
            .iter()
            .any(|s| s.trim().parse::<IpAddr>().is_ok_and(|x| x == ip)),
        Err(_) => cert.dns_sans.iter().any(|s| dns_eq(s, want)),
    }
}

/// Seconds since the epoch as an RFC 3339 UTC time, e.g. `2026-01-31T12:00:00Z`.
pub fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(DAY), secs.rem_euclid(DAY));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Whole days, rounded up, so that "398 days and one second" reads 399.
fn ceil_days(secs: i64) -> i64 {
    secs.div_euclid(DAY) + i64::from(secs.rem_euclid(DAY) != 0)
}

fn deny(cert: &Cert, rule: &str, message: String) -> Finding {
    Finding {
        severity: Severity::Deny,
        subject: cert.name.clone(),
        rule: rule.to_string(),
        message,
    }
}

/// Audit `certs` against `policy` at time `now` (seconds since the epoch).
/// One finding per violation, in certificate order, rules in the order of
/// [`SETTINGS`].
pub fn audit(policy: &Policy, certs: &[Cert], now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for cert in certs {
        let name = &cert.name;

        if let Some(allowed) = &policy.allowed_key_algorithms
            && !allowed.contains(&cert.key_alg)
        {
            let list: Vec<&str> = allowed.iter().map(|a| a.name()).collect();
            out.push(deny(
                cert,
                ALLOWED_KEY_ALGORITHMS,
                format!(
                    "certificate `{name}` has a {} key; {ALLOWED_KEY_ALGORITHMS} allows only {}",
                    cert.key_alg.name(),
                    list.join(", ")
                ),
            ));
        }

        if let Some(min) = policy.min_rsa_bits
            && cert.key_alg == KeyAlg::Rsa
            && cert.key_bits < min
        {
            out.push(deny(
                cert,
                MIN_RSA_BITS,
                format!(
                    "certificate `{name}` has a {}-bit RSA key; {MIN_RSA_BITS} is {min}",
                    cert.key_bits
                ),
            ));
        }

        let (limit, rule, kind) = if cert.is_ca {
            (policy.max_ca_validity_days, MAX_CA_VALIDITY_DAYS, "CA")
        } else {
            (
                policy.max_leaf_validity_days,
                MAX_LEAF_VALIDITY_DAYS,
                "leaf",
            )
        };
        if let Some(max) = limit {
            let secs = cert.not_after.saturating_sub(cert.not_before);
            if secs > i64::from(max) * DAY {
                out.push(deny(
                    cert,
                    rule,
                    format!(
                        "{kind} certificate `{name}` is valid for {} days; {rule} is {max}",
                        ceil_days(secs)
                    ),
                ));
            }
        }

        if let Some(wanted) = &policy.required_server_sans
            && name == SERVER_CERT
        {
            for want in wanted {
                if !has_san(cert, want) {
                    let mut sans: Vec<&str> = cert.dns_sans.iter().map(String::as_str).collect();
                    sans.extend(cert.ip_sans.iter().map(String::as_str));
                    out.push(deny(
                        cert,
                        REQUIRED_SERVER_SANS,
                        format!(
                            "certificate `{name}` lacks the SAN `{want}` that \
                             {REQUIRED_SERVER_SANS} requires; its SANs are [{}]",
                            sans.join(", ")
                        ),
                    ));
                }
            }
        }

        if let Some(days) = policy.expiry_warning_days {
            let left = cert.not_after.saturating_sub(now);
            if left < i64::from(days) * DAY {
                let message = if left <= 0 {
                    format!(
                        "certificate `{name}` expired {} day(s) ago (not-after {}); \
                         {EXPIRY_WARNING_DAYS} is {days}",
                        (-left) / DAY,
                        rfc3339(cert.not_after)
                    )
                } else {
                    format!(
                        "certificate `{name}` expires in {} day(s) (not-after {}); \
                         {EXPIRY_WARNING_DAYS} is {days}",
                        ceil_days(left),
                        rfc3339(cert.not_after)
                    )
                };
                out.push(Finding {
                    severity: Severity::Warning,
                    subject: name.clone(),
                    rule: EXPIRY_WARNING_DAYS.to_string(),
                    message,
                });
            }
        }

        if policy.forbid_sha1 {
            let sig = cert.signature_algorithm.to_ascii_lowercase();
            if sig.contains("sha1") || sig.contains("sha-1") {
                out.push(deny(
                    cert,
                    FORBID_SHA1,
                    format!(
                        "certificate `{name}` is signed with {}; {FORBID_SHA1} is true",
                        cert.signature_algorithm
                    ),
                ));
            }
        }
    }

    if let Some(wanted) = &policy.required_server_sans
        && !certs.iter().any(|c| c.name == SERVER_CERT)
    {
        out.push(Finding {
            severity: Severity::Deny,
            subject: SERVER_CERT.to_string(),
            rule: REQUIRED_SERVER_SANS.to_string(),
            message: format!(
                "no certificate named `{SERVER_CERT}` among the {} received, so the SANs {} \
                 that {REQUIRED_SERVER_SANS} requires cannot be checked",
                certs.len(),
                wanted.join(", ")
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const NOW: i64 = 1_750_000_000;

    fn settings(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn cert(name: &str) -> Cert {
        Cert {
            name: name.into(),
            dns_sans: vec![],
            ip_sans: vec![],
            key_alg: KeyAlg::EcdsaP256,
            key_bits: 256,
            signature_algorithm: "ecdsa-with-SHA256".into(),
            not_before: NOW - DAY,
            not_after: NOW + 364 * DAY,
            is_ca: false,
        }
    }

    fn demo_policy() -> Policy {
        Policy::from_settings(settings(&[
            (ALLOWED_KEY_ALGORITHMS, "ecdsa-p256, ecdsa-p384,rsa"),
            (MIN_RSA_BITS, "2048"),
            (MAX_LEAF_VALIDITY_DAYS, "398"),
            (MAX_CA_VALIDITY_DAYS, "3653"),
            (
                REQUIRED_SERVER_SANS,
                "kubernetes.default.svc,localhost,127.0.0.1",
            ),
            (EXPIRY_WARNING_DAYS, "30"),
            (FORBID_SHA1, "true"),
        ]))
        .unwrap()
    }

    #[test]
    fn no_settings_means_every_rule_off() {
        let p = Policy::from_settings(|_| None).unwrap();
        assert_eq!(p, Policy::default());
        let mut c = cert("server");
        c.key_alg = KeyAlg::Rsa;
        c.key_bits = 512;
        c.signature_algorithm = "sha1WithRSAEncryption".into();
        c.not_after = NOW - DAY;
        assert!(audit(&p, &[c], NOW).is_empty());
    }

    #[test]
    fn bad_settings_one_message_each_naming_key_and_value() {
        let err = Policy::from_settings(settings(&[
            (ALLOWED_KEY_ALGORITHMS, "ecdsa-p256,dsa"),
            (MIN_RSA_BITS, "lots"),
            (MAX_LEAF_VALIDITY_DAYS, "0"),
            (MAX_CA_VALIDITY_DAYS, "-3"),
            (REQUIRED_SERVER_SANS, "ok.example, not a name"),
            (EXPIRY_WARNING_DAYS, "30d"),
            (FORBID_SHA1, "yes"),
        ]))
        .unwrap_err();
        assert_eq!(err.len(), 7, "{err:#?}");
        for (msg, (key, value)) in err.iter().zip([
            (ALLOWED_KEY_ALGORITHMS, "dsa"),
            (MIN_RSA_BITS, "lots"),
            (MAX_LEAF_VALIDITY_DAYS, "0"),
            (MAX_CA_VALIDITY_DAYS, "-3"),
            (EXPIRY_WARNING_DAYS, "30d"),
            (REQUIRED_SERVER_SANS, "not a name"),
            (FORBID_SHA1, "yes"),
        ]) {
            assert!(msg.starts_with(key), "{msg}");
            assert!(msg.contains(value), "{msg}");
            assert!(msg.contains("expected"), "{msg}");
        }
        assert!(Policy::from_settings(settings(&[(ALLOWED_KEY_ALGORITHMS, " , ")])).is_err());
    }

    #[test]
    fn compliant_pki_has_no_findings() {
        let mut server = cert("server");
        server.dns_sans = vec!["kubernetes.default.svc".into(), "LOCALHOST".into()];
        server.ip_sans = vec!["127.0.0.1".into()];
        let mut ca = cert("ca");
        ca.is_ca = true;
        ca.not_after = NOW + 3652 * DAY;
        let mut rsa = cert("admin");
        rsa.key_alg = KeyAlg::Rsa;
        rsa.key_bits = 2048;
        rsa.signature_algorithm = "sha256WithRSAEncryption".into();
        assert_eq!(audit(&demo_policy(), &[server, ca, rsa], NOW), vec![]);
    }

    #[test]
    fn each_rule_reports_with_name_value_and_limit() {
        let p = demo_policy();
        let mut ed = cert("etcd/peer");
        ed.key_alg = KeyAlg::Ed25519;
        let mut weak = cert("admin");
        weak.key_alg = KeyAlg::Rsa;
        weak.key_bits = 1024;
        let mut long_leaf = cert("scheduler");
        long_leaf.not_after = long_leaf.not_before + 398 * DAY + 1;
        let mut long_ca = cert("etcd/ca");
        long_ca.is_ca = true;
        long_ca.not_after = long_ca.not_before + 3660 * DAY;
        let mut soon = cert("front-proxy-client");
        soon.not_after = NOW + 10 * DAY;
        let mut sha1 = cert("plinth-api");
        sha1.signature_algorithm = "sha1WithRSAEncryption".into();
        let mut server = cert("server");
        server.dns_sans = vec!["localhost".into()];
        server.ip_sans = vec!["0:0:0:0:0:ffff:7f00:1".into(), "127.0.0.1".into()];

        let f = audit(&p, &[ed, weak, long_leaf, long_ca, soon, sha1, server], NOW);
        let got: Vec<(&str, &str, Severity)> = f
            .iter()
            .map(|f| (f.subject.as_str(), f.rule.as_str(), f.severity))
            .collect();
        assert_eq!(
            got,
            vec![
                ("etcd/peer", ALLOWED_KEY_ALGORITHMS, Severity::Deny),
                ("admin", MIN_RSA_BITS, Severity::Deny),
                ("scheduler", MAX_LEAF_VALIDITY_DAYS, Severity::Deny),
                ("etcd/ca", MAX_CA_VALIDITY_DAYS, Severity::Deny),
                ("front-proxy-client", EXPIRY_WARNING_DAYS, Severity::Warning),
                ("plinth-api", FORBID_SHA1, Severity::Deny),
                ("server", REQUIRED_SERVER_SANS, Severity::Deny),
            ]
        );
        assert!(f[0].message.contains("ed25519") && f[0].message.contains("ecdsa-p256"));
        assert!(f[1].message.contains("1024") && f[1].message.contains("2048"));
        assert!(f[2].message.contains("399 days") && f[2].message.contains("398"));
        assert!(f[3].message.contains("3660 days") && f[3].message.contains("3653"));
        assert!(
            f[4].message.contains("expires in 10 day"),
            "{}",
            f[4].message
        );
        assert!(f[5].message.contains("sha1WithRSAEncryption"));
        assert!(f[6].message.contains("kubernetes.default.svc"));
        for x in &f {
            assert!(
                x.message.contains(&format!("`{}`", x.subject)),
                "{}",
                x.message
            );
        }
    }

    #[test]
    fn one_finding_per_missing_san_and_missing_server_cert() {
        let p = demo_policy();
        let f = audit(&p, &[cert("server")], NOW);
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|f| f.rule == REQUIRED_SERVER_SANS));
        let f = audit(&p, &[cert("admin")], NOW);
        assert_eq!(f.len(), 1);
        assert!(f[0].message.contains("no certificate named `server`"));
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_750_000_000), "2025-06-15T15:06:40Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn expired_certificate_warns() {
        let p = Policy::from_settings(settings(&[(EXPIRY_WARNING_DAYS, "30")])).unwrap();
        let mut c = cert("admin");
        c.not_after = NOW - 2 * DAY;
        let f = audit(&p, &[c], NOW);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert!(f[0].message.contains("expired 2 day"), "{}", f[0].message);
    }

    #[test]
    fn rsa_size_rule_ignores_other_algorithms_and_exact_limit_passes() {
        let p = Policy::from_settings(settings(&[
            (MIN_RSA_BITS, "2048"),
            (MAX_LEAF_VALIDITY_DAYS, "365"),
        ]))
        .unwrap();
        let mut c = cert("admin");
        c.not_after = c.not_before + 365 * DAY;
        assert!(audit(&p, &[c], NOW).is_empty());
    }
}
