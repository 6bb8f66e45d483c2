//! Every template of `plinth plugins new`, as a plugin author meets it:
//! made, built with the command its README gives, and invoked on the
//! hook's example fixture, unchanged. Rust for every hook, Python too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{HOOKS, plinth, temp_file};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

/// `plinth plugins new NAME --hook HOOK --lang LANG --dir DIR`.
fn new_project(dir: &Path, name: &str, hook: &str, lang: &str) -> PathBuf {
    let project = dir.join(name);
    let path = project.display().to_string();
    let run = plinth(&[
        "plugins", "new", name, "--hook", hook, "--lang", lang, "--dir", &path,
    ]);
    run.expect_code(0);
    assert!(run.stdout.contains("next:"), "{}", run.stdout);
    project
}

fn run_ok(command: &mut Command) {
    let output = command.output().expect("start the build");
    assert!(
        output.status.success(),
        "{command:?}\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Invoke the built plugin on the hook's example with its own manifest:
/// it must answer, and allow.
fn invoke_example(wasm: &Path, hook: &str, manifest: &Path) {
    let example = plinth(&["plugins", "invoke", "--hook", hook, "--example"]);
    example.expect_code(0);
    let (_dir, fixture) = temp_file("example.json", &example.stdout);
    let (wasm, fixture, manifest) = (
        wasm.display().to_string(),
        fixture.display().to_string(),
        manifest.display().to_string(),
    );
    let run = plinth(&[
        "plugins",
        "invoke",
        &wasm,
        "--hook",
        hook,
        "--input",
        &fixture,
        "--manifest",
        &manifest,
    ]);
    run.expect_code(0);
    assert!(
        run.stdout.contains("verdict: allowed"),
        "{hook}: {}",
        run.stdout
    );
}

#[test]
fn every_rust_template_builds_and_passes_invoke_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    // One target dir for the five projects, so wit-bindgen builds once.
    let target = target_dir().join("plugin-templates");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    for hook in HOOKS {
        let name = format!("rust-{hook}");
        let project = new_project(dir.path(), &name, hook, "rust");
        // The README's build command, offline: wit-bindgen is in the local
        // registry once the workspace's guests are built.
        run_ok(
            Command::new(&cargo)
                .args([
                    "build",
                    "--offline",
                    "--quiet",
                    "--target",
                    "wasm32-wasip2",
                    "--release",
                ])
                .current_dir(&project)
                .env("CARGO_TARGET_DIR", &target),
        );
        let wasm = target
            .join("wasm32-wasip2/release")
            .join(format!("{}.wasm", name.replace('-', "_")));
        invoke_example(&wasm, hook, &project.join(format!("{name}.toml")));
    }
}

#[test]
fn every_python_template_builds_and_passes_invoke_unchanged() {
    let componentize_py = target_dir().join("componentize-py/bin/componentize-py");
    assert!(
        componentize_py.is_file(),
        "{} is missing: `cargo xtask plugins` installs it (`cargo xtask test` does)",
        componentize_py.display()
    );
    let dir = tempfile::tempdir().unwrap();
    for hook in HOOKS {
        let name = format!("python-{hook}");
        let project = new_project(dir.path(), &name, hook, "python");
        let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
        // The README's build command, with the venv's componentize-py.
        let build = readme
            .lines()
            .find_map(|line| line.strip_prefix(".venv/bin/componentize-py "))
            .expect("the README gives the build command");
        run_ok(
            Command::new(&componentize_py)
                .arg("--quiet")
                .args(build.split_whitespace())
                .current_dir(&project),
        );
        let wasm = project.join(format!("{}.wasm", name.replace('-', "_")));
        invoke_example(&wasm, hook, &project.join(format!("{name}.toml")));
    }
}
