//! Plinth: the bootstrap host of a k0s-style Kubernetes distribution.
//!
//! [`controller`] orders the phases; each phase lives in the module named
//! after it. The `plinth` binary (`main.rs`, `cli/`) only parses arguments
//! and maps errors to exit codes.

pub mod cli;
pub mod config;
pub mod controller;
mod error;
pub mod hooks;
pub mod images;
pub mod join;
pub mod journal;
pub mod node;
pub mod pki;
pub mod plugin;
pub mod report;
pub mod scaffold;
pub mod stage;

pub use error::{Error, ExitCode};

/// mimalloc instead of the system allocator: a plugin call moves every
/// string of its input and answer through the host's heap (4000 of them for
/// 1000 images), and glibc's malloc made that a third of the call's cost.
/// Set in the library so tests and benchmarks measure what the binary runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
