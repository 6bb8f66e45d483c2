//! Readiness reaction: how long after the last check's condition turned
//! true Plinth says `READY=1` to systemd and `/readyz` answers 200.
//!
//! One controller per round, with a scripted plugin whose only check probes
//! a server of ours that answers 503, then 200 from a known instant on.
//! Once every other check is ready, the server switches, at a moment drawn
//! at random within one probe interval (so that neither side is timed at
//! its best or worst phase); we time the `READY=1` datagram on a
//! `NOTIFY_SOCKET` of ours (exact) and the first `plinth status` that exits
//! 0 (polled back to back, timed at its end: late by up to one call, whose
//! median cost is shown too). `/readyz` turns 200 just before `READY=1` is
//! sent (the same step of the readiness coordinator). Ours probes at the
//! 100 ms floor; the baseline is the same controller probing every 2 s, as
//! k3s polls its apiserver.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::cluster::{Node, Scratch, wait_for};
use crate::guests;

const TIMEOUT: Duration = Duration::from_secs(120);
const SERVER_IP: &str = "127.33.0.9";

/// One round: from the switch to `READY=1`, and to `/readyz` 200; the
/// median cost of one `plinth status` call while polling.
pub struct Reaction {
    pub notify: Duration,
    pub readyz: Duration,
    pub poll: Duration,
}

/// `rounds` controllers whose plugin probes every `interval_ms`.
pub fn reaction(plinth: &Path, interval_ms: u32, rounds: usize) -> Result<Vec<Reaction>> {
    let scratch = Scratch::new(&format!("bench-ready-{interval_ms}"))?;
    (0..rounds)
        .map(|round| one_round(plinth, &scratch.0.join(round.to_string()), interval_ms))
        .collect()
}

fn one_round(plinth: &Path, base: &Path, interval_ms: u32) -> Result<Reaction> {
    let open = Arc::new(AtomicBool::new(false));
    let port = gate_server(Arc::clone(&open))?;
    let mut node = Node::new(base, 33, 1)?;
    let plugins = base.join("plugins");
    std::fs::create_dir_all(&plugins)?;
    std::fs::copy(guests::wasm_path("scripted"), plugins.join("50-gate.wasm"))?;
    std::fs::write(
        plugins.join("50-gate.toml"),
        format!(
            "allow-urls = [\"http://{SERVER_IP}:{port}/\"]\n[settings]\n\
             \"readiness.checks\" = \"gate=http://{SERVER_IP}:{port}/ready\"\n\
             \"readiness.interval-ms\" = \"{interval_ms}\"\n"
        ),
    )?;
    node.plugins = Some(plugins);
    let socket_path = base.join("notify.sock");
    let readied = notify_listener(&socket_path)?;
    node.env.push((
        "NOTIFY_SOCKET".to_owned(),
        socket_path.display().to_string(),
    ));
    let mut guard = node.start(plinth, None, "warn")?;

    wait_for("every check but the gate ready", TIMEOUT, || {
        node.plinth_output(plinth, &["status"]).is_ok_and(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            text.contains("[+]etcd-voter ready")
                && text.contains("[+]plinth-api ready")
                && text.contains("[-]plugin/50-gate/gate waiting: HTTP 503")
        })
    })?;
    std::thread::sleep(random_below(Duration::from_millis(interval_ms.into())));
    let switched = Instant::now();
    open.store(true, Ordering::SeqCst);
    let mut polls = Vec::new();
    let readyz = loop {
        let started = Instant::now();
        let ready = node
            .plinth_output(plinth, &["status"])
            .is_ok_and(|out| out.status.success());
        polls.push(started.elapsed());
        if ready {
            break switched.elapsed();
        }
        if switched.elapsed() > TIMEOUT {
            bail!("plinth status never said ready");
        }
    };
    wait_for("READY=1", TIMEOUT, || readied.lock().unwrap().is_some())?;
    let Some(notified) = *readied.lock().unwrap() else {
        bail!("READY=1 went missing");
    };
    guard.terminate(Duration::from_secs(30))?;
    polls.sort();
    Ok(Reaction {
        notify: notified.saturating_duration_since(switched),
        readyz,
        poll: polls[polls.len() / 2],
    })
}

/// A duration in `[0, bound)`, from the clock's nanoseconds: enough to
/// spread the switch over the probe interval.
fn random_below(bound: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let bound = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(u64::from(nanos).wrapping_mul(2_654_435_761) % bound)
}

/// An HTTP server answering 503 until `open`, then 200; its port.
fn gate_server(open: Arc<AtomicBool>) -> Result<u16> {
    let listener = TcpListener::bind(format!("{SERVER_IP}:0"))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let answer: &[u8] = if open.load(Ordering::SeqCst) {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            } else {
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            };
            let _ = stream.write_all(answer);
        }
    });
    Ok(port)
}

/// A `NOTIFY_SOCKET` read by a thread: when `READY=1` arrived.
fn notify_listener(path: &Path) -> Result<Arc<Mutex<Option<Instant>>>> {
    let socket = UnixDatagram::bind(path)?;
    let readied = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&readied);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = socket.recv(&mut buffer) {
            let at = Instant::now();
            if String::from_utf8_lossy(&buffer[..n])
                .lines()
                .any(|line| line == "READY=1")
            {
                seen.lock().unwrap().get_or_insert(at);
            }
        }
    });
    Ok(readied)
}

pub fn print(ours: &[Reaction], baseline: &[Reaction]) {
    use super::run_mode::spread;
    println!(
        "\nreadiness reaction ({} rounds each; from the last check's server switching to 200; goal <= 100 ms)",
        ours.len()
    );
    println!(
        "{:<32} {:>26} {:>26} {:>8}",
        "benchmark", "ours median [min-max]", "k3s-style 2 s poll", "ratio"
    );
    for (name, pick) in [
        (
            "to READY=1",
            (|r: &Reaction| r.notify) as fn(&Reaction) -> Duration,
        ),
        ("to /readyz 200 (plinth status)", |r: &Reaction| r.readyz),
        ("  one plinth status call", |r: &Reaction| r.poll),
    ] {
        let (mid, lo, hi) = spread(ours.iter().map(pick).collect());
        let (base, blo, bhi) = spread(baseline.iter().map(pick).collect());
        println!(
            "{name:<32} {:>8.1} ms [{:.0}-{:.0}] {:>8.1} ms [{:.0}-{:.0}] {:>7.1}x",
            mid.as_secs_f64() * 1e3,
            lo.as_secs_f64() * 1e3,
            hi.as_secs_f64() * 1e3,
            base.as_secs_f64() * 1e3,
            blo.as_secs_f64() * 1e3,
            bhi.as_secs_f64() * 1e3,
            base.as_secs_f64() / mid.as_secs_f64()
        );
    }
}
