//! `cargo xtask demo`: the main job on the embedded default config, with the
//! plugins that ship with Plinth; then run mode: a three-controller cluster
//! on 127.0.0.1-3 (one creates, two join at once with one token), its
//! members, and a clean stop.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cluster::{Node, wait_for};
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
    run_cluster(&plinth, &workdir.join("cluster"))
}

/// `plinth status` of `node`, shown with the command.
fn show_status(plinth: &Path, node: &Node) -> Result<()> {
    let out = node.plinth_output(plinth, &["status"])?;
    println!(
        "$ plinth status --data-dir {}  # exit {}\n{}",
        node.data.display(),
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim_end()
    );
    Ok(())
}

/// Whether `plinth status` of `node` prints `text`.
fn status_says(plinth: &Path, node: &Node, text: &str) -> bool {
    node.plinth_output(plinth, &["status"])
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(text))
}

/// Run mode: three controllers on 127.0.0.1-3; c1 runs quorum-guard with
/// `min-voters = 3`, so it is not ready until the other two have joined.
fn run_cluster(plinth: &Path, base: &Path) -> Result<()> {
    let mut nodes = (1..=3)
        .map(|i| Node::new(base, 0, i))
        .collect::<Result<Vec<_>>>()?;
    let guard_dir = base.join("c1-plugins");
    std::fs::create_dir_all(&guard_dir)?;
    std::fs::copy(
        guests::wasm_path("quorum-guard"),
        guard_dir.join("40-quorum-guard.wasm"),
    )?;
    std::fs::copy(
        root().join("plugins/quorum-guard/demo.toml"),
        guard_dir.join("40-quorum-guard.toml"),
    )?;
    nodes[0].plugins = Some(guard_dir.clone());
    println!("\n=== Run mode: a cluster of three controllers on 127.0.0.1-3");
    println!(
        "$ plinth controller --data-dir {} --config {} --plugins {}  # api and etcd on 127.0.0.1; quorum-guard min-voters = 3",
        nodes[0].data.display(),
        nodes[0].config.display(),
        guard_dir.display()
    );
    let started = Instant::now();
    let mut guards = vec![nodes[0].start(plinth, None, "warn,plinth=info")?];
    wait_for("c1's etcd to be healthy", Duration::from_secs(60), || {
        nodes[0].healthy()
    })?;
    println!(
        "c1: etcd healthy after {:.2} s (new cluster)",
        started.elapsed().as_secs_f64()
    );
    wait_for("quorum-guard to hold c1", Duration::from_secs(60), || {
        status_says(plinth, &nodes[0], "1 of 3 voters")
    })?;
    show_status(plinth, &nodes[0])?;
    let token = nodes[0].token_file(plinth)?;
    let text = std::fs::read_to_string(&token)?;
    let shown = text
        .rsplit_once('.')
        .map_or(text.clone(), |(head, _)| format!("{head}.<secret>"));
    println!(
        "$ plinth token create --role controller --data-dir {}\n{shown}",
        nodes[0].data.display()
    );
    println!(
        "$ plinth controller --token-file TOKEN ...  # c2 on 127.0.0.2 and c3 on 127.0.0.3, at once"
    );
    let joining = Instant::now();
    for node in &nodes[1..] {
        guards.push(node.start(plinth, Some(&token), "warn,plinth=info")?);
    }
    wait_for("three voters", Duration::from_secs(120), || {
        nodes.iter().all(Node::healthy) && nodes[0].voters() == Some((3, 3))
    })?;
    println!(
        "c2, c3: voters after {:.2} s",
        joining.elapsed().as_secs_f64()
    );
    wait_for("c1 to be ready", Duration::from_secs(30), || {
        status_says(plinth, &nodes[0], "\nready")
    })?;
    show_status(plinth, &nodes[0])?;
    println!(
        "\n=== Members\n$ plinth etcd members --data-dir {}",
        nodes[0].data.display()
    );
    print!("{}", nodes[0].plinth(plinth, &["etcd", "members"])?);
    println!(
        "\n=== Tokens\n$ plinth token list --data-dir {}",
        nodes[0].data.display()
    );
    print!("{}", nodes[0].plinth(plinth, &["token", "list"])?);
    println!("\n=== Clean stop: SIGTERM to each controller (join API, then etcd)");
    for (node, guard) in nodes.iter().zip(&mut guards).rev() {
        let code = guard.terminate(Duration::from_secs(30))?;
        println!(
            "{}: exit {}",
            node.name,
            code.map_or("by signal".to_owned(), |c| c.to_string())
        );
    }
    Ok(())
}

pub fn run() -> Result<()> {
    guests::build_all()?;
    cargo(&["build", "-p", "plinth"])?;
    let workdir = std::env::temp_dir().join(format!("plinth-demo-{}", std::process::id()));
    let outcome = run_demo_in(&workdir);
    if outcome.is_err() {
        for log in ["c1", "c2", "c3"].map(|n| workdir.join("cluster").join(n).join("plinth.log")) {
            if let Ok(text) = std::fs::read_to_string(&log) {
                eprintln!("--- {}\n{text}", log.display());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&workdir);
    outcome
}
