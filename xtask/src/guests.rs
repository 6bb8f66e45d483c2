//! Building the WebAssembly guests: Rust ones with cargo, Python ones with
//! componentize-py (`python.rs`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo, exec, python, root, target_dir};

/// Guests that are members of the workspace, by package name.
const WORKSPACE_GUESTS: &[&str] = &[
    "cert-audit",
    "airgap-mirror",
    "quorum-guard",
    "scripted",
    "other-contract",
    "rewrite",
    "image-policy-rust",
];
/// Guests with a workspace of their own, as a vendor's would be.
const EXAMPLE_GUESTS: &[&str] = &["examples/join-guard"];

pub const TARGET: &str = "wasm32-wasip2";
pub const PROFILE: &str = "guest";

/// Where a built guest lands, by package name.
pub fn wasm_path(package: &str) -> PathBuf {
    target_dir()
        .join(TARGET)
        .join(PROFILE)
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Build every guest; returns the paths of the built components.
pub fn build_all() -> Result<Vec<PathBuf>> {
    ensure_target()?;
    let mut args = vec!["build", "--target", TARGET, "--profile", PROFILE];
    for package in WORKSPACE_GUESTS {
        args.extend(["-p", package]);
    }
    cargo(&args)?;
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    for example in EXAMPLE_GUESTS {
        let manifest = root().join(example).join("Cargo.toml");
        exec(
            Command::new(&cargo_bin)
                .args([
                    "build",
                    "--target",
                    TARGET,
                    "--profile",
                    PROFILE,
                    "--manifest-path",
                ])
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", target_dir()),
        )?;
    }
    python::build_all()?;
    let mut built = Vec::new();
    let packages = WORKSPACE_GUESTS
        .iter()
        .copied()
        .chain(
            EXAMPLE_GUESTS
                .iter()
                .map(|e| e.rsplit('/').next().unwrap_or(e)),
        )
        .chain(python::PYTHON_GUESTS.iter().map(|guest| guest.name));
    for package in packages {
        let path = wasm_path(package);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("{} was not built", path.display()))?
            .len();
        eprintln!("xtask: {package}: {} ({} KiB)", path.display(), size / 1024);
        built.push(path);
    }
    Ok(built)
}

/// `rustup target add wasm32-wasip2` when the target is missing.
fn ensure_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("rustup is needed to add the wasm32-wasip2 target")?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        exec(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    Ok(())
}
