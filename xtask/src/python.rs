//! Python guests, built with componentize-py.
//!
//! componentize-py comes from PyPI, pinned, into a venv under the target
//! dir: nothing is installed into the machine's Python, and a second run
//! finds it there. A guest is a directory holding `app.py`; any `*.wit`
//! files beside it are worlds of its own (a world that includes two of the
//! contract's), added to a copy of the contract package so that the
//! contract's version is written in `wit/plinth.wit` alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::{exec, guests, root, target_dir};

/// The componentize-py release the guests are built and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A Python guest: its directory, the world it targets, the package name
/// its component is named after (as Rust guests are).
pub struct PythonGuest {
    pub dir: &'static str,
    pub world: &'static str,
    pub name: &'static str,
}

pub const PYTHON_GUESTS: &[PythonGuest] = &[
    PythonGuest {
        dir: "examples/python-image-policy",
        world: "image-policy",
        name: "python-image-policy",
    },
    PythonGuest {
        dir: "host/tests/guests-python/hostile",
        world: "image-resolver",
        name: "python-hostile",
    },
];

/// The componentize-py executable, installed first if the venv lacks it.
pub fn componentize_py() -> Result<PathBuf> {
    let venv = target_dir().join("componentize-py");
    let program = venv.join("bin/componentize-py");
    if installed_version(&program).as_deref() == Some(COMPONENTIZE_PY_VERSION) {
        return Ok(program);
    }
    exec(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
        "componentize-py needs a Python 3 with venv (Debian: apt-get install -y python3-venv)",
    )?;
    exec(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
    )?;
    match installed_version(&program) {
        Some(version) if version == COMPONENTIZE_PY_VERSION => Ok(program),
        other => bail!(
            "{} reports version {other:?} after installing {COMPONENTIZE_PY_VERSION}",
            program.display()
        ),
    }
}

/// `componentize-py --version` prints `componentize-py 0.25.1`.
fn installed_version(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    Some(text.split_whitespace().last()?.to_owned())
}

/// Build every Python guest whose component is older than its sources.
pub fn build_all() -> Result<Vec<PathBuf>> {
    let componentize_py = componentize_py()?;
    PYTHON_GUESTS
        .iter()
        .map(|guest| build(&componentize_py, guest))
        .collect()
}

fn build(componentize_py: &Path, guest: &PythonGuest) -> Result<PathBuf> {
    let source = root().join(guest.dir);
    let output = guests::wasm_path(guest.name);
    let contract = root().join("wit/plinth.wit");
    let own_worlds = wit_files(&source)?;
    let inputs: Vec<PathBuf> = [
        source.join("app.py"),
        contract.clone(),
        componentize_py.to_owned(),
    ]
    .into_iter()
    .chain(own_worlds.iter().cloned())
    .collect();
    if newer_than_all(&output, &inputs)? {
        return Ok(output);
    }
    let wit = target_dir().join("python-wit").join(guest.name);
    if wit.exists() {
        std::fs::remove_dir_all(&wit)?;
    }
    std::fs::create_dir_all(&wit)?;
    std::fs::copy(&contract, wit.join("plinth.wit"))?;
    for world in &own_worlds {
        std::fs::copy(world, wit.join(world.file_name().expect("a file")))?;
    }
    std::fs::create_dir_all(output.parent().expect("under the target dir"))?;
    exec(
        Command::new(componentize_py)
            .arg("--quiet")
            .arg("-d")
            .arg(&wit)
            .args(["-w", guest.world, "componentize", "-p"])
            .arg(&source)
            .args(["app", "-o"])
            .arg(&output),
    )?;
    Ok(output)
}

fn wit_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "wit") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Whether `output` exists and is newer than every one of `inputs`.
fn newer_than_all(output: &Path, inputs: &[PathBuf]) -> Result<bool> {
    let modified = |path: &Path| -> Result<SystemTime> {
        Ok(std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .modified()?)
    };
    let Ok(built) = modified(output) else {
        return Ok(false);
    };
    for input in inputs {
        if modified(input)? >= built {
            return Ok(false);
        }
    }
    Ok(true)
}
