//! `cargo xtask demo|test|plugins|bench`: the build glue of the Plinth
//! workspace. Everything a fresh machine needs beyond Rust itself is set up
//! here (the wasm32-wasip2 target; componentize-py; etcd and friends for the
//! tests).

mod bench;
mod cluster;
mod demo;
mod guests;
mod python;
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const USAGE: &str = "usage: cargo xtask <command>

commands:
  plugins   build every WASM guest (plugins/, examples/, host/tests/guests/);
            Python ones with componentize-py, installed into a venv under the
            target dir
  demo      build everything, then run `plinth controller --init-only` with the
            shipped plugins on a temporary data dir and show what each phase did
  test      install missing test tools, build the guests, check formatting and
            lints, and run every test
  bench     build in release and print the benchmark tables
  bench-run build in release and print only the run-mode benchmarks (start,
            joins, readiness reaction)
  joins [N] start one controller and four joiners at once, N times (default
            10), and report how many rounds ended as one cluster of five voters";

fn main() -> Result<()> {
    let command = std::env::args().nth(1).unwrap_or_default();
    match command.as_str() {
        "plugins" => guests::build_all().map(|_| ()),
        "demo" => demo::run(),
        "test" => test(),
        "bench" => bench::run(),
        "bench-run" => bench::run_mode_only(),
        "joins" => joins(std::env::args().nth(2).as_deref().unwrap_or("10")),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn test() -> Result<()> {
    tools::ensure_test_tools()?;
    guests::build_all()?;
    cargo(&["fmt", "--all", "--", "--check"]).context("run `cargo fmt --all` to fix formatting")?;
    cargo(&["clippy", "--all-targets", "--", "-D", "warnings"])?;
    // Guest logic is plain Rust and is unit-tested natively; the host's
    // integration tests load the wasm builds made above. No doc-tests: the
    // crates have none, and a run closing on "0 passed" would read as if
    // nothing had been tested.
    let targets = ["--lib", "--bins", "--tests"];
    let packages = [
        "plinth",
        "xtask",
        "cert-audit",
        "airgap-mirror",
        "quorum-guard",
        "scripted",
    ];
    let mut args = vec!["test"];
    packages
        .iter()
        .for_each(|package| args.extend(["-p", package]));
    args.extend(targets);
    cargo(&args)?;
    // join-guard has a workspace of its own, as a vendor's plugin would.
    let join_guard = root().join("examples/join-guard/Cargo.toml");
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    exec(
        Command::new(cargo_bin)
            .args(["test", "--manifest-path"])
            .arg(join_guard)
            .env("CARGO_TARGET_DIR", target_dir()),
    )
}

/// The parallel-join test, `rounds` times in a row (it prints k/N).
fn joins(rounds: &str) -> Result<()> {
    let rounds: usize = rounds
        .parse()
        .with_context(|| format!("`{rounds}` is not a number of rounds"))?;
    tools::ensure_test_tools()?;
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    exec(
        Command::new(cargo_bin)
            .args(["test", "-p", "plinth", "--test", "run_mode", "--"])
            .args([
                "--exact",
                "four_controllers_started_at_once_with_one_token_form_one_cluster_of_five",
                "--nocapture",
            ])
            .env("PLINTH_JOIN_ROUNDS", rounds.to_string())
            .current_dir(root()),
    )
}

/// The workspace root (this crate's parent).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// The cargo target directory, honouring CARGO_TARGET_DIR as cargo does.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// Run cargo from the workspace root with `args`, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    exec(Command::new(cargo).args(args).current_dir(root()))
}

/// Run a command, echoing it, failing on a non-zero exit.
pub fn exec(command: &mut Command) -> Result<()> {
    eprintln!("xtask: {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(command));
    }
    Ok(())
}

fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}
