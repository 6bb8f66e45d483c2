//! Run mode against etcd alone, on the same machine in the same run:
//!
//! - **single start**: `plinth controller` on a fresh data dir (every init
//!   phase, then etcd) until etcd answers `etcdctl endpoint health`, against
//!   etcd started by hand on the same certificates until the same answer.
//! - **four joiners**: one controller running, four started at once with one
//!   token, until all five are voters; against a static five-member etcd
//!   bootstrap (every member named in `--initial-cluster`, started at once)
//!   until all five are healthy. The time the joins spent waiting on etcd's
//!   own rule (an add is refused until every voter has been connected for
//!   5 s, FACTS.md) is shown apart: for each add after the first, from the
//!   previous promotion to that add's acceptance, read from the logs.
//!
//! Rounds alternate ours and the baseline, each on fresh data dirs.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::cluster::{Guard, Node, Scratch, etcdctl, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);
const LOG_FILTER: &str = "warn,plinth=info";

/// One measured pair: ours, the baseline, and for joins the part of ours
/// spent waiting on etcd's health rule.
pub struct Sample {
    pub ours: Duration,
    pub baseline: Duration,
    pub etcd_rule: Option<Duration>,
}

/// `rounds` single starts; (ours, baseline) per round.
pub fn single_start(plinth: &Path, rounds: usize) -> Result<Vec<Sample>> {
    let scratch = Scratch::new("bench-run")?;
    let mut samples = Vec::new();
    for round in 0..rounds {
        let base = scratch.0.join(format!("single-{round}"));
        let node = Node::new(&base, 31, 1)?;
        let started = Instant::now();
        let mut guard = node.start(plinth, None, LOG_FILTER)?;
        wait_for("plinth's etcd healthy", TIMEOUT, || node.healthy())?;
        let ours = started.elapsed();
        guard.terminate(Duration::from_secs(30))?;

        // etcd by hand, on the PKI that run made, a fresh etcd data dir.
        let data = base.join("by-hand");
        let started = Instant::now();
        let _etcd = spawn_etcd(
            &node.data.join("pki"),
            &data,
            "c1",
            &node.ip,
            &format!("c1={}", node.peer_url()),
        )?;
        wait_for("etcd alone healthy", TIMEOUT, || {
            answers_health(&node.data.join("pki"), &node.client_url())
        })?;
        samples.push(Sample {
            ours,
            baseline: started.elapsed(),
            etcd_rule: None,
        });
    }
    Ok(samples)
}

/// `rounds` of four joiners against a static five-member bootstrap.
pub fn four_joiners(plinth: &Path, rounds: usize) -> Result<Vec<Sample>> {
    let scratch = Scratch::new("bench-join")?;
    let mut samples = Vec::new();
    for round in 0..rounds {
        let base = scratch.0.join(format!("join-{round}"));
        let nodes = (1..=5)
            .map(|i| Node::new(&base, 32, i))
            .collect::<Result<Vec<_>>>()?;
        let mut guards = vec![nodes[0].start(plinth, None, LOG_FILTER)?];
        wait_for("the first controller", TIMEOUT, || nodes[0].healthy())?;
        let token = nodes[0].token_file(plinth)?;
        let started = Instant::now();
        let wall_start = time_now();
        for node in &nodes[1..] {
            guards.push(node.start(plinth, Some(&token), LOG_FILTER)?);
        }
        wait_for("five voters", TIMEOUT, || {
            nodes[0].voters() == Some((5, 5)) && nodes.iter().all(Node::healthy)
        })?;
        let ours = started.elapsed();
        let etcd_rule = health_rule_wait(&nodes, wall_start)?;
        for guard in guards.iter_mut().rev() {
            guard.terminate(Duration::from_secs(30))?;
        }
        drop(guards);

        // The static bootstrap on the same certificates (each node's own).
        let initial: Vec<String> = nodes
            .iter()
            .map(|n| format!("{}={}", n.name, n.peer_url()))
            .collect();
        let initial = initial.join(",");
        let started = Instant::now();
        let _etcds = nodes
            .iter()
            .map(|n| {
                spawn_etcd(
                    &n.data.join("pki"),
                    &base.join(format!("static-{}", n.name)),
                    &n.name,
                    &n.ip,
                    &initial,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        wait_for("the static cluster healthy", TIMEOUT, || {
            nodes
                .iter()
                .all(|n| answers_health(&n.data.join("pki"), &n.client_url()))
        })?;
        samples.push(Sample {
            ours,
            baseline: started.elapsed(),
            etcd_rule: Some(etcd_rule),
        });
    }
    Ok(samples)
}

/// `etcdctl endpoint health` against an etcd started by hand succeeds.
fn answers_health(pki: &Path, client_url: &str) -> bool {
    etcdctl(pki, client_url, &["endpoint", "health"]).is_ok_and(|out| out.status.success())
}

fn spawn_etcd(pki: &Path, data: &Path, name: &str, ip: &str, initial: &str) -> Result<Guard> {
    let pki_file = |rel: &str| pki.join(rel);
    let client = format!("https://{ip}:2379");
    let peer = format!("https://{ip}:2380");
    let mut command = Command::new("etcd");
    command
        .args(["--name", name, "--data-dir"])
        .arg(data)
        .args([
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .arg("--cert-file")
        .arg(pki_file("etcd/server.crt"))
        .arg("--key-file")
        .arg(pki_file("etcd/server.key"))
        .arg("--client-cert-auth")
        .arg("--trusted-ca-file")
        .arg(pki_file("etcd/ca.crt"))
        .arg("--peer-cert-file")
        .arg(pki_file("etcd/peer.crt"))
        .arg("--peer-key-file")
        .arg(pki_file("etcd/peer.key"))
        .arg("--peer-client-cert-auth")
        .arg("--peer-trusted-ca-file")
        .arg(pki_file("etcd/ca.crt"))
        .args([
            "--initial-cluster",
            initial,
            "--initial-cluster-state",
            "new",
        ])
        .args(["--initial-cluster-token", "bench-static"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Guard::spawn(&mut command)
}

fn time_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Σ over adds 2..4 of (add accepted − previous promotion), from the
/// controllers' logs (RFC 3339 timestamps at the start of each line).
fn health_rule_wait(nodes: &[Node], since: f64) -> Result<Duration> {
    let mut adds = Vec::new();
    let mut promotions = Vec::new();
    for node in nodes {
        let log = std::fs::read_to_string(&node.log)
            .with_context(|| format!("reading {}", node.log.display()))?;
        for line in log.lines() {
            let Some(at) = line.split_whitespace().next().and_then(parse_rfc3339) else {
                continue;
            };
            if at < since {
                continue;
            }
            if line.contains("added as a learner; membership recorded") {
                adds.push(at);
            } else if line.contains("promoted learner to voter") {
                promotions.push(at);
            }
        }
    }
    adds.sort_by(f64::total_cmp);
    promotions.sort_by(f64::total_cmp);
    ensure!(
        adds.len() == 4 && promotions.len() >= 3,
        "expected 4 adds and 4 promotions in the logs, found {} and {}",
        adds.len(),
        promotions.len()
    );
    let waited: f64 = (1..4).map(|k| (adds[k] - promotions[k - 1]).max(0.0)).sum();
    Ok(Duration::from_secs_f64(waited))
}

/// Seconds since the epoch of `2026-12-01T20:26:41.576862Z`.
fn parse_rfc3339(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, clock) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (date.next()??, date.next()??, date.next()??);
    let mut clock = clock.split(':');
    let (h, min) = (
        clock.next()?.parse::<i64>().ok()?,
        clock.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = clock.next()?.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + sec)
}

/// Median and (min, max) of `values`.
pub fn spread(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

pub fn print(single: &[Sample], joins: &[Sample]) {
    println!(
        "\nrun mode ({} single starts, {} join rounds; ratio = ours / baseline, goal in brackets)",
        single.len(),
        joins.len()
    );
    println!(
        "{:<44} {:>22} {:>22} {:>8}",
        "benchmark", "ours median [min-max]", "baseline median", "ratio"
    );
    let row = |name: &str, samples: &[Sample], baseline_name: &str, goal: &str| {
        let (ours, lo, hi) = spread(samples.iter().map(|s| s.ours).collect());
        let (base, blo, bhi) = spread(samples.iter().map(|s| s.baseline).collect());
        println!(
            "{name:<44} {:>8.2} s [{:.2}-{:.2}] {:>8.2} s [{:.2}-{:.2}] {:>7.2}x  vs {baseline_name} {goal}",
            ours.as_secs_f64(),
            lo.as_secs_f64(),
            hi.as_secs_f64(),
            base.as_secs_f64(),
            blo.as_secs_f64(),
            bhi.as_secs_f64(),
            ours.as_secs_f64() / base.as_secs_f64()
        );
    };
    row(
        "single controller: start to etcd healthy",
        single,
        "etcd by hand, same certs",
        "[<= 1.5x]",
    );
    row(
        "four joiners at once: start to all voters",
        joins,
        "static 5-member bootstrap",
        "[<= 20 s]",
    );
    let waits: Vec<Duration> = joins.iter().filter_map(|s| s.etcd_rule).collect();
    if !waits.is_empty() {
        let (wait, lo, hi) = spread(waits);
        let (ours, _, _) = spread(joins.iter().map(|s| s.ours).collect());
        println!(
            "  of which waiting on etcd's 5 s health rule: {:.2} s [{:.2}-{:.2}]; Plinth and the rest: {:.2} s",
            wait.as_secs_f64(),
            lo.as_secs_f64(),
            hi.as_secs_f64(),
            ours.as_secs_f64() - wait.as_secs_f64()
        );
    }
}
