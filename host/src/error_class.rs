//! What kind of failure an error is, independent of the module it comes
//! from: `main.rs` maps a class to an exit code, and the join API will map
//! the same class to an HTTP status.

/// The kind of a failure. Every module error has `fn class(&self)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// Bad command line, config, manifest, plugin file, plugin settings or
    /// on-disk state handed over by the user: theirs to fix.
    Invalid,
    /// A plugin or built-in policy said no.
    Denied,
    /// A plugin trapped, timed out or answered malformed, under fail-closed.
    PluginFailed,
    /// A required component or peer cannot be reached.
    Unreachable,
    /// Someone else holds what this needs (another Plinth on the data dir).
    Busy,
    /// A bug, or the machine refused something Plinth needs (disk, memory).
    Internal,
}
