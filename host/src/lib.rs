//! Plinth: the bootstrap host of a k0s-style Kubernetes distribution.
//!
//! [`controller`] orders the phases; each phase lives in the module named
//! after it. The `plinth` binary (`main.rs`, `cli/`) only parses arguments
//! and maps error classes to exit codes.

mod bootstrap;
pub mod cli;
pub mod config;
pub mod console;
pub mod controller;
pub mod data_dir;
mod error;
mod error_class;
#[cfg(test)]
mod fuzz;
pub mod hooks;
pub mod images;
pub mod invoke;
pub(crate) mod join;
pub mod journal;
pub mod node;
pub(crate) mod phase;
pub mod pki;
pub mod plugin;
mod regular_file;
pub mod report;
mod retry;
pub mod run;
pub mod scaffold;
mod sha256;
pub mod stage;
pub mod status;
pub mod terminal;

pub use error::Error;
pub use error_class::ErrorClass;
pub use sha256::Sha256;
