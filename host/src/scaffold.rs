//! `plinth plugins new`: a ready-to-build plugin project for one hook, from
//! the templates in `templates/` and the contract in `wit/`, both compiled
//! into the binary so that the project targets the contract this Plinth
//! speaks.
//!
//! The project is written into a temporary sibling of its directory and
//! renamed into place, so an interrupted `new` leaves nothing half-written.

use std::path::{Path, PathBuf};

use crate::ErrorClass;
use crate::plugin::contract::{CONTRACT_VERSION, Hook};

/// The contract, copied into every project as `wit/plinth.wit`.
const CONTRACT: &str = include_str!("../../wit/plinth.wit");

const MANIFEST: &str = include_str!("../../templates/manifest.toml.template");
const RUST_CARGO_TOML: &str = include_str!("../../templates/rust/Cargo.toml.template");
const RUST_README: &str = include_str!("../../templates/rust/README.md.template");
const PYTHON_README: &str = include_str!("../../templates/python/README.md.template");

/// Longest plugin name: a DNS label, as a chain's names are.
const MAX_NAME_BYTES: usize = 63;

/// The language of a new plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{name}` is not a plugin name: use 1 to 63 lowercase letters, digits and inner `-`, starting with a letter"
    )]
    InvalidName { name: String },
    #[error("{path} already exists and is not an empty directory; choose another --dir")]
    NotEmpty { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ScaffoldError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidName { .. } | Self::NotEmpty { .. } => ErrorClass::Invalid,
            Self::Io { .. } => ErrorClass::Internal,
        }
    }
}

/// What `new` made.
#[derive(Debug, serde::Serialize)]
pub struct Project {
    pub dir: PathBuf,
    pub name: String,
    pub hook: Hook,
    /// Relative paths, in the order written.
    pub files: Vec<PathBuf>,
    /// The command that builds the component, run in `dir`.
    pub build: String,
    /// Where the built component lands, relative to `dir`.
    pub wasm: PathBuf,
}

/// The contract world that exports exactly `hook`.
pub fn world_of(hook: Hook) -> &'static str {
    match hook {
        Hook::PreInit => "config-validator",
        Hook::JoinDecision => "join-decider",
        Hook::PostPki => "cert-auditor",
        Hook::ImageResolve => "image-resolver",
        Hook::Readiness => "readiness-checker",
    }
}

fn rust_source(hook: Hook) -> &'static str {
    match hook {
        Hook::PreInit => include_str!("../../templates/rust/pre-init.rs"),
        Hook::JoinDecision => include_str!("../../templates/rust/join-decision.rs"),
        Hook::PostPki => include_str!("../../templates/rust/post-pki.rs"),
        Hook::ImageResolve => include_str!("../../templates/rust/image-resolve.rs"),
        Hook::Readiness => include_str!("../../templates/rust/readiness.rs"),
    }
}

fn python_source(hook: Hook) -> &'static str {
    match hook {
        Hook::PreInit => include_str!("../../templates/python/pre-init.py"),
        Hook::JoinDecision => include_str!("../../templates/python/join-decision.py"),
        Hook::PostPki => include_str!("../../templates/python/post-pki.py"),
        Hook::ImageResolve => include_str!("../../templates/python/image-resolve.py"),
        Hook::Readiness => include_str!("../../templates/python/readiness.py"),
    }
}

/// Write a new project for `name` serving `hook` into `dir` (`./NAME` when
/// `None`). `dir` must not exist, or be an empty directory.
pub fn new_project(
    name: &str,
    hook: Hook,
    language: Language,
    dir: Option<&Path>,
) -> Result<Project, ScaffoldError> {
    check_name(name)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_owned);
    let crate_name = name.replace('-', "_");
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{crate}}", &crate_name)
            .replace("{{hook}}", hook.as_str())
            .replace("{{world}}", world_of(hook))
            .replace("{{contract}}", CONTRACT_VERSION)
    };
    let manifest = format!("{name}.toml");
    let (files, build, wasm) = match language {
        Language::Rust => (
            vec![
                ("Cargo.toml".to_owned(), fill(RUST_CARGO_TOML)),
                ("src/lib.rs".to_owned(), rust_source(hook).to_owned()),
                ("wit/plinth.wit".to_owned(), CONTRACT.to_owned()),
                (manifest, fill(MANIFEST)),
                ("README.md".to_owned(), fill(RUST_README)),
            ],
            "cargo build --target wasm32-wasip2 --release".to_owned(),
            PathBuf::from(format!("target/wasm32-wasip2/release/{crate_name}.wasm")),
        ),
        Language::Python => (
            vec![
                ("app.py".to_owned(), fill(python_source(hook))),
                ("wit/plinth.wit".to_owned(), CONTRACT.to_owned()),
                (manifest, fill(MANIFEST)),
                ("README.md".to_owned(), fill(PYTHON_README)),
            ],
            format!(
                "componentize-py -d wit -w {} componentize app -o {crate_name}.wasm",
                world_of(hook)
            ),
            PathBuf::from(format!("{crate_name}.wasm")),
        ),
    };
    write_atomically(&dir, &files)?;
    Ok(Project {
        dir,
        name: name.to_owned(),
        hook,
        files: files
            .into_iter()
            .map(|(path, _)| PathBuf::from(path))
            .collect(),
        build,
        wasm,
    })
}

fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bytes = name.as_bytes();
    let valid = (1..=MAX_NAME_BYTES).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && !name.ends_with('-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ScaffoldError::InvalidName {
            name: name.escape_default().to_string(),
        })
    }
}

/// Write `files` into a fresh sibling of `dir`, then rename it to `dir`.
fn write_atomically(dir: &Path, files: &[(String, String)]) -> Result<(), ScaffoldError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Io { path, source }
    };
    match std::fs::symlink_metadata(dir) {
        Ok(metadata)
            if metadata.is_dir() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_none() => {}
        Ok(_) => {
            return Err(ScaffoldError::NotEmpty {
                path: dir.to_owned(),
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(dir)(error)),
    }
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let staging = parent.join(format!(".plinth-new-{}", std::process::id()));
    std::fs::create_dir(&staging).map_err(io(&staging))?;
    let written = files.iter().try_for_each(|(relative, text)| {
        let path = staging.join(relative);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        std::fs::write(&path, text).map_err(io(&dir.join(relative)))
    });
    // A rename onto an empty directory replaces it; onto a non-empty one it
    // fails, so a directory filled meanwhile is never overwritten.
    let renamed = written.and_then(|()| std::fs::rename(&staging, dir).map_err(io(dir)));
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    renamed
}

impl std::fmt::Display for Project {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "created {} ({} plugin {})",
            self.dir.display(),
            self.hook,
            self.name
        )?;
        for file in &self.files {
            writeln!(f, "  {}", file.display())?;
        }
        writeln!(f, "next:")?;
        writeln!(f, "  cd {}", self.dir.display())?;
        writeln!(f, "  {}", self.build)?;
        writeln!(
            f,
            "  plinth plugins invoke --hook {} --example > example.json",
            self.hook
        )?;
        write!(
            f,
            "  plinth plugins invoke {} --hook {} --input example.json --manifest {}.toml",
            self.wasm.display(),
            self.hook,
            self.name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_labels() {
        for good in ["a", "my-policy", "x2", &"a".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "My",
            "2x",
            "a-",
            "a_b",
            "a/b",
            "..",
            &"a".repeat(64),
            "a\u{1b}[2J",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let dir = tempfile::tempdir().unwrap();
        for language in [Language::Rust, Language::Python] {
            for hook in Hook::ALL {
                let path = dir.path().join(format!("{language:?}-{hook}"));
                let project = new_project("my-policy", hook, language, Some(&path)).unwrap();
                for file in &project.files {
                    let text = std::fs::read_to_string(path.join(file)).unwrap();
                    assert!(
                        !text.contains("{{"),
                        "{language:?} {hook} {}",
                        file.display()
                    );
                }
            }
        }
    }

    #[test]
    fn a_directory_with_files_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let error = new_project("p", Hook::PostPki, Language::Rust, Some(dir.path())).unwrap_err();
        assert!(matches!(error, ScaffoldError::NotEmpty { .. }), "{error}");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "nothing was added"
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        new_project("p", Hook::PostPki, Language::Rust, Some(&empty)).unwrap();
        assert!(empty.join("Cargo.toml").is_file());
    }
}
