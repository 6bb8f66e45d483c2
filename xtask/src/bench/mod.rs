//! `cargo xtask bench`: every benchmark in release, in one run, printed as
//! ratios against a baseline measured in that same run.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::{cargo, guests, target_dir};

mod pki;
mod readiness;
mod run_mode;

/// Runs of `controller --init-only` and of the openssl script, each.
const PKI_ROUNDS: usize = 7;
/// Single starts and join rounds of the run-mode benchmark. A single start
/// is dominated by etcd's randomised election timeout (0.1-1.1 s for a lone
/// member), so it takes more rounds than the joins for a stable median.
const START_ROUNDS: usize = 15;
const JOIN_ROUNDS: usize = 3;
/// Controllers started per side of the readiness-reaction benchmark: the
/// switch falls at a random phase of the probe interval, so a round's
/// figure is spread over one interval and a stable median needs rounds.
const READY_ROUNDS: usize = 11;

/// One line of the table: our figure, the baseline's, and the goal.
pub struct Row {
    pub name: String,
    pub ours: Duration,
    pub baseline: Duration,
    pub baseline_name: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.baseline.as_secs_f64() / self.ours.as_secs_f64()
    }
}

pub fn run() -> Result<()> {
    guests::build_all()?;
    cargo(&["build", "--release", "-p", "plinth"])?;
    cargo(&["bench", "-p", "plinth", "--bench", "plugins"])?;
    let criterion = target_dir().join("criterion");
    let estimate = |id: &str| median(&criterion, id);
    let mut rows = Vec::new();
    for guest in ["rewrite", "mirror"] {
        for count in [10, 1000] {
            rows.push(Row {
                name: format!("hook call, {guest} guest, {count} images"),
                ours: estimate(&format!("hook_call/{guest}_pooled/{count}"))?,
                baseline: estimate(&format!("hook_call/{guest}_on_demand/{count}"))?,
                baseline_name: "on-demand instantiation".to_owned(),
            });
        }
    }
    rows.push(Row {
        name: "readiness evaluate, quorum-guard".to_owned(),
        ours: estimate("readiness_evaluate/quorum_guard_pooled")?,
        baseline: estimate("readiness_evaluate/quorum_guard_on_demand")?,
        baseline_name: "on-demand instantiation".to_owned(),
    });
    rows.push(Row {
        name: "plugin load, airgap-mirror (Rust, 97 KB)".to_owned(),
        ours: estimate("plugin_load/cached")?,
        baseline: estimate("plugin_load/compile")?,
        baseline_name: "compiling (first run)".to_owned(),
    });
    rows.push(Row {
        name: "plugin load, python-image-policy (Python, 18 MB)".to_owned(),
        ours: estimate("plugin_load/python_cached")?,
        baseline: estimate("plugin_load/python_compile")?,
        baseline_name: "compiling (first run)".to_owned(),
    });
    rows.push(Row {
        name: "image-resolve call, 10 pinned images, Python example".to_owned(),
        ours: estimate("python_call/python")?,
        baseline: estimate("python_call/rust")?,
        baseline_name: "the same rule in Rust".to_owned(),
    });
    rows.push(Row {
        name: "1000 images, built-in + 2 rewrite guests".to_owned(),
        ours: estimate("image_resolve_chain/two_rewrite_guests")?,
        baseline: estimate("image_resolve_chain/builtin_only")?,
        baseline_name: "built-in alone".to_owned(),
    });
    rows.push(Row {
        name: "1000 images, built-in + airgap-mirror + airgap-mirror pinning all".to_owned(),
        ours: estimate("image_resolve_chain/two_plugins")?,
        baseline: estimate("image_resolve_chain/builtin_only")?,
        baseline_name: "built-in alone".to_owned(),
    });
    let plinth = target_dir().join("release/plinth");
    rows.extend(pki::pki_vs_openssl(&plinth, PKI_ROUNDS)?);
    let single = run_mode::single_start(&plinth, START_ROUNDS)?;
    let joins = run_mode::four_joiners(&plinth, JOIN_ROUNDS)?;
    let (ours, k3s) = readiness_reaction(&plinth)?;
    print_table(&rows);
    print_load_steps(&criterion)?;
    run_mode::print(&single, &joins);
    readiness::print(&ours, &k3s);
    println!(
        "\ngoals: hook call with 10 images <= 20 us; readiness evaluate <= 50 us; cached load >= 100x faster than compiling;"
    );
    println!(
        "       1000 images through two plugins <= 2 ms; PKI >= 5x faster than openssl with ECDSA"
    );
    Ok(())
}

/// Readiness reaction at the 100 ms floor, and with k3s's 2 s poll.
fn readiness_reaction(
    plinth: &Path,
) -> Result<(Vec<readiness::Reaction>, Vec<readiness::Reaction>)> {
    Ok((
        readiness::reaction(plinth, 100, READY_ROUNDS)?,
        readiness::reaction(plinth, 2000, READY_ROUNDS)?,
    ))
}

/// `cargo xtask bench-run`: the run-mode benchmark alone.
pub fn run_mode_only() -> Result<()> {
    guests::build_all()?;
    cargo(&["build", "--release", "-p", "plinth"])?;
    let plinth = target_dir().join("release/plinth");
    let single = run_mode::single_start(&plinth, START_ROUNDS)?;
    let joins = run_mode::four_joiners(&plinth, JOIN_ROUNDS)?;
    let (ours, k3s) = readiness_reaction(&plinth)?;
    run_mode::print(&single, &joins);
    readiness::print(&ours, &k3s);
    Ok(())
}

/// What a cached load of airgap-mirror spends its time on, step by step.
fn print_load_steps(criterion: &Path) -> Result<()> {
    const STEPS: &[(&str, &str)] = &[
        ("read_entry", "before: read the whole entry into memory"),
        ("sha256_artifact", "before: SHA-256 of the artifact"),
        (
            "deserialize_copy",
            "before: Component::deserialize of those bytes (copy, relocate, publish)",
        ),
        ("blake3_artifact", "now: BLAKE3 of the artifact"),
        (
            "deserialize_mmap",
            "now: Component::deserialize_file (map the file, publish)",
        ),
        (
            "cache_load",
            "now: Cache::load (open, fstat, checksum through the file, map)",
        ),
        (
            "plugin_load",
            "now: Plugin::load from the cache (+ contract check, link, describe, validate-settings)",
        ),
    ];
    println!("\ncached load of airgap-mirror, step by step (medians):");
    for (id, what) in STEPS {
        let took = median(criterion, &format!("cached_load_steps/{id}"))?;
        println!("  {:>10}  {what}", human(took));
    }
    Ok(())
}

/// Criterion's median estimate for benchmark `id`.
fn median(criterion: &Path, id: &str) -> Result<Duration> {
    let path = criterion.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("no criterion result at {}", path.display()))?;
    let estimates: serde_json::Value = serde_json::from_str(&text)?;
    let nanos = estimates["median"]["point_estimate"]
        .as_f64()
        .context("estimates.json has no median")?;
    Ok(Duration::from_secs_f64(nanos / 1e9))
}

fn print_table(rows: &[Row]) {
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0);
    println!(
        "\n{:<width$} {:>12} {:>12}  {:>8}  baseline",
        "benchmark", "ours", "baseline", "ratio"
    );
    for row in rows {
        // A ratio below one (a Python call beside Rust's) keeps its digits.
        let ratio = if row.ratio() < 0.1 {
            format!("{:.4}", row.ratio())
        } else {
            format!("{:.2}", row.ratio())
        };
        println!(
            "{:<width$} {:>12} {:>12}  {ratio:>7}x  {}",
            row.name,
            human(row.ours),
            human(row.baseline),
            row.baseline_name
        );
    }
}

fn human(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} us")
    } else if micros < 1e6 {
        format!("{:.2} ms", micros / 1e3)
    } else {
        format!("{:.2} s", micros / 1e6)
    }
}
