//! `cargo xtask demo`: the main job on the embedded default config, with the
//! plugins that ship with Plinth.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo, exec, guests, root, target_dir};

/// (package, file name in the plugin directory, manifest shipped with it)
const DEMO_PLUGINS: &[(&str, &str, &str)] = &[
    (
        "cert-audit",
        "10-cert-audit",
        "plugins/cert-audit/demo.toml",
    ),
    (
        "airgap-mirror",
        "20-airgap-mirror",
        "plugins/airgap-mirror/demo.toml",
    ),
    (
        "join-guard",
        "30-join-guard",
        "examples/join-guard/demo.toml",
    ),
];

fn run_demo_in(workdir: &Path) -> Result<()> {
    let plugins = workdir.join("plugins.d");
    let data = workdir.join("data");
    std::fs::create_dir_all(&plugins)?;
    for (package, name, manifest) in DEMO_PLUGINS {
        std::fs::copy(
            guests::wasm_path(package),
            plugins.join(format!("{name}.wasm")),
        )
        .with_context(|| format!("copying the {package} plugin"))?;
        std::fs::copy(root().join(manifest), plugins.join(format!("{name}.toml")))
            .with_context(|| format!("copying {manifest}"))?;
    }
    let plinth = target_dir().join("debug/plinth");
    let step = |title: &str, args: &[&str]| {
        println!("\n=== {title}\n$ plinth {}", args.join(" "));
        exec(Command::new(&plinth).args(args))
    };
    let (plugins, data) = (
        plugins.to_string_lossy().into_owned(),
        data.to_string_lossy().into_owned(),
    );
    step("The plugin chains", &["plugins", "plan", &plugins])?;
    let init = [
        "controller",
        "--init-only",
        "--plugins",
        &plugins,
        "--data-dir",
        &data,
    ];
    step(
        "First run: PKI, configuration and images, every hook through the plugins",
        &init,
    )?;
    let quiet_init: Vec<&str> = std::iter::once("-q").chain(init).collect();
    step(
        "Second run: nothing to reissue, plugins loaded from the compiled cache",
        &quiet_init,
    )?;
    step(
        "Images to mirror for this site",
        &["airgap", "list-images", "--plugins", &plugins],
    )?;
    step(
        "Certificate expiry",
        &["pki", "check-expiration", "--data-dir", &data],
    )?;
    let journal = std::fs::read_to_string(Path::new(&data).join("journal/bootstrap.jsonl"))?;
    println!(
        "\n=== Journal: {} entries in {data}/journal/bootstrap.jsonl",
        journal.lines().count()
    );
    Ok(())
}

pub fn run() -> Result<()> {
    guests::build_all()?;
    cargo(&["build", "-p", "plinth"])?;
    let workdir = std::env::temp_dir().join(format!("plinth-demo-{}", std::process::id()));
    let outcome = run_demo_in(&workdir);
    let _ = std::fs::remove_dir_all(&workdir);
    outcome
}
