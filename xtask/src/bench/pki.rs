//! `plinth controller --init-only` against the openssl CLI making the same
//! PKI (`host/benches/pki_openssl.sh`): the whole process, as an operator
//! would time it, for ECDSA P-256 (the default) and RSA-2048.
//!
//! The two are timed alternately, round after round, each on a fresh data
//! dir, so that a change of machine load hits both alike; one untimed run of
//! each comes first, so that neither pays for a cold page cache. Plinth's
//! time includes everything the baseline does not do: config, journal, image
//! resolution, and the fsyncs of the crash-safe commit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use super::Row;

const BASELINE_NAME: &str = "openssl CLI (host/benches/pki_openssl.sh)";

/// One key algorithm: the name in the table, the ClusterConfig Plinth gets
/// (none: the default), and the script's algorithm argument.
struct Case {
    name: &'static str,
    config: Option<&'static str>,
    script_alg: &'static str,
}

const CASES: [Case; 2] = [
    Case {
        name: "pki init-only, ecdsa-p256",
        config: None,
        script_alg: "ecdsa",
    },
    Case {
        name: "pki init-only, rsa-2048",
        config: Some("spec: {pki: {keyAlgorithm: rsa-2048}}\n"),
        script_alg: "rsa-2048",
    },
];

/// Time `plinth -q controller --init-only` (the binary at `plinth`, meant
/// to be a release build) and the openssl script, `rounds` times each per
/// key algorithm; one row per algorithm with the median of each side.
pub fn pki_vs_openssl(plinth: &Path, rounds: usize) -> Result<Vec<Row>> {
    ensure!(rounds > 0, "pki benchmark: rounds must be at least 1");
    ensure!(
        plinth.is_file(),
        "pki benchmark: no plinth binary at {}",
        plinth.display()
    );
    let script = crate::root().join("host/benches/pki_openssl.sh");
    ensure!(
        script.is_file(),
        "pki benchmark: baseline script {} is missing",
        script.display()
    );
    let scratch = Scratch::new()?;
    let mut rows = Vec::new();
    for case in &CASES {
        let config = match case.config {
            Some(yaml) => {
                let path = scratch.path.join(format!("{}.yaml", case.script_alg));
                std::fs::write(&path, yaml).with_context(|| format!("write {}", path.display()))?;
                Some(path)
            }
            None => None,
        };
        let ours = |dir: &Path| {
            let mut command = Command::new(plinth);
            command
                .args(["-q", "controller", "--init-only", "--data-dir"])
                .arg(dir);
            if let Some(config) = &config {
                command.arg("--config").arg(config);
            }
            timed(&mut command)
        };
        let baseline = |dir: &Path| {
            timed(
                Command::new("bash")
                    .arg(&script)
                    .arg(dir)
                    .arg(case.script_alg),
            )
        };

        // Warm-up, untimed.
        ours(&scratch.fresh("warm-ours")?)?;
        baseline(&scratch.fresh("warm-openssl")?)?;
        let (mut ours_times, mut baseline_times) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which goes first, so neither always runs right after
            // the other's disk writes.
            let ours_dir = scratch.fresh(&format!("ours-{round}"))?;
            let baseline_dir = scratch.fresh(&format!("openssl-{round}"))?;
            if round.is_multiple_of(2) {
                ours_times.push(ours(&ours_dir)?);
                baseline_times.push(baseline(&baseline_dir)?);
            } else {
                baseline_times.push(baseline(&baseline_dir)?);
                ours_times.push(ours(&ours_dir)?);
            }
            scratch.remove(&ours_dir)?;
            scratch.remove(&baseline_dir)?;
        }
        rows.push(Row {
            name: case.name.to_owned(),
            ours: median(ours_times),
            baseline: median(baseline_times),
            baseline_name: BASELINE_NAME.to_owned(),
        });
    }
    Ok(rows)
}

/// Run a command to completion, failing unless it exits 0; its wall time.
fn timed(command: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let took = started.elapsed();
    if !output.status.success() {
        bail!(
            "pki benchmark: {:?} {:?} failed with {}:\n{}",
            command.get_program(),
            command.get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(took)
}

/// The median; the mean of the two middle values for an even count.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let mid = times.len() / 2;
    if times.len().is_multiple_of(2) {
        (times[mid - 1] + times[mid]) / 2
    } else {
        times[mid]
    }
}

/// A scratch directory for the data dirs, removed when dropped.
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch> {
        let path = std::env::temp_dir().join(format!("plinth-bench-pki-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .with_context(|| format!("remove stale {}", path.display()))?;
        }
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Scratch { path })
    }

    /// A path for a data dir that does not exist yet (both tools create it).
    fn fresh(&self, name: &str) -> Result<PathBuf> {
        let dir = self.path.join(name);
        self.remove(&dir)?;
        Ok(dir)
    }

    fn remove(&self, dir: &Path) -> Result<()> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", dir.display()))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(vec![ms(9), ms(1), ms(5)]), ms(5));
        assert_eq!(median(vec![ms(4), ms(1), ms(2), ms(100)]), ms(3));
    }
}
