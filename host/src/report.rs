//! What `plinth plugins inspect` and `plinth plugins plan` print.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bootstrap::Bootstrap;
use crate::error::Error;
use crate::hooks::builtin_of;
use crate::plugin::contract::{CONTRACT_VERSION, FailurePolicy, Hook};
use crate::plugin::signature::{AllowedSigners, Signer};
use crate::plugin::{
    Cache, Limits, LoadKind, Plugin, PluginError, PluginSet, Runtime, SignaturePolicy,
    SignatureStatus,
};
use crate::sha256::Sha256;
use crate::terminal::escape;

/// `plinth plugins inspect FILE`.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub file: PathBuf,
    pub name: String,
    pub version: String,
    pub description: String,
    pub contract: String,
    pub exported_hooks: Vec<Hook>,
    pub served_hooks: Vec<Hook>,
    pub sha256: Sha256,
    pub size_bytes: u64,
    /// Time to compile the component (inspect never uses the cache).
    pub compile_ms: f64,
    pub signature: SignatureStatus,
}

/// `plinth plugins inspect FILE [--allowed-signers FILE]`: a signature is
/// checked when an allowed-signers file is given, and refuses the plugin
/// as a bootstrap would when it does not verify.
pub fn inspect(file: &Path, allowed_signers: Option<&Path>) -> Result<Inspection, Error> {
    let signatures = SignaturePolicy::new(allowed_signers, false).map_err(PluginError::from)?;
    let runtime = Runtime::new()?;
    let plugin = Plugin::load(
        &runtime,
        &Cache::disabled(runtime.engine()),
        file,
        &signatures,
    )?;
    let LoadKind::Compiled { micros } = plugin.load_kind() else {
        unreachable!("no cache was given")
    };
    let metadata = plugin.metadata();
    Ok(Inspection {
        file: file.to_owned(),
        name: metadata.name.clone(),
        version: metadata.version.clone(),
        description: metadata.description.clone(),
        contract: format!("plinth:bootstrap@{CONTRACT_VERSION}"),
        exported_hooks: plugin.exported().iter().copied().collect(),
        served_hooks: plugin.hooks().iter().copied().collect(),
        sha256: plugin.sha256(),
        size_bytes: plugin.size(),
        compile_ms: micros as f64 / 1e3,
        signature: plugin.signature().clone(),
    })
}

/// `plinth plugins verify FILE --allowed-signers FILE`: the signature
/// check of a load under `requireSignatures`, alone, for CI pipelines.
#[derive(Debug, Serialize)]
pub struct Verification {
    pub file: PathBuf,
    pub signer: Signer,
}

pub fn verify(file: &Path, allowed_signers: &Path) -> Result<Verification, Error> {
    let allowed = AllowedSigners::read(allowed_signers).map_err(PluginError::from)?;
    let bytes =
        crate::regular_file::read(file, crate::plugin::MAX_WASM_BYTES).map_err(|source| {
            PluginError::Io {
                path: file.to_owned(),
                source,
            }
        })?;
    let signer = allowed
        .verify_file(file, &bytes)
        .map_err(PluginError::from)?;
    Ok(Verification {
        file: file.to_owned(),
        signer,
    })
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: signed by {}", self.file.display(), self.signer)
    }
}

impl fmt::Display for SignatureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureStatus::Verified { signer } => write!(f, "signed by {signer}"),
            SignatureStatus::Unsigned => write!(f, "unsigned (no .wasm.sig beside it)"),
            SignatureStatus::NotChecked => write!(
                f,
                "a .wasm.sig is present, not checked: give --allowed-signers"
            ),
        }
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hooks = |hooks: &[Hook]| {
            hooks
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "file:        {}", self.file.display())?;
        // What the plugin said about itself, escaped for the terminal.
        writeln!(f, "name:        {}", escape(&self.name))?;
        writeln!(f, "version:     {}", escape(&self.version))?;
        writeln!(f, "description: {}", escape(&self.description))?;
        writeln!(f, "contract:    {}", self.contract)?;
        writeln!(f, "exports:     {}", hooks(&self.exported_hooks))?;
        writeln!(f, "serves:      {}", hooks(&self.served_hooks))?;
        writeln!(f, "sha256:      {}", self.sha256)?;
        writeln!(f, "size:        {} bytes", self.size_bytes)?;
        writeln!(f, "compile:     {:.1} ms", self.compile_ms)?;
        write!(f, "signature:   {}", self.signature)
    }
}

/// `plinth plugins plan DIR`: every hook's chain in order.
#[derive(Debug, Serialize)]
pub struct Plan {
    pub directory: PathBuf,
    pub hooks: Vec<HookPlan>,
}

#[derive(Debug, Serialize)]
pub struct HookPlan {
    pub hook: Hook,
    pub chain: Vec<Link>,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub name: String,
    pub builtin: bool,
    pub order: Option<i64>,
    pub failure_policy: FailurePolicy,
    pub limits: Option<Limits>,
    pub sha256: Option<Sha256>,
}

pub fn plan(dir: &Path) -> Result<Plan, Error> {
    let plugins = PluginSet::open(Some(dir), None, &SignaturePolicy::default())?;
    let hooks = plugins
        .plan()
        .into_iter()
        .map(|(hook, chain)| {
            let builtin = builtin_of(hook).map(|name| Link {
                name: name.to_owned(),
                builtin: true,
                order: None,
                failure_policy: FailurePolicy::Fail,
                limits: None,
                sha256: None,
            });
            let plugins = chain.into_iter().map(|plugin| Link {
                name: plugin.name().to_owned(),
                builtin: false,
                order: plugin.order(),
                failure_policy: plugin.failure_policy(),
                limits: Some(plugin.limits()),
                sha256: Some(plugin.sha256()),
            });
            HookPlan {
                hook,
                chain: builtin.into_iter().chain(plugins).collect(),
            }
        })
        .collect();
    Ok(Plan {
        directory: dir.to_owned(),
        hooks,
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plugin chains for {}", self.directory.display())?;
        for hook in &self.hooks {
            write!(f, "\n{}:", hook.hook)?;
            if hook.chain.is_empty() {
                write!(f, " (nothing runs)")?;
            }
            for (position, link) in hook.chain.iter().enumerate() {
                write!(f, "\n  {}. {}", position + 1, link.name)?;
                if let Some(limits) = &link.limits {
                    let policy = match link.failure_policy {
                        FailurePolicy::Fail => "fail-closed",
                        FailurePolicy::Ignore => "failure ignored",
                    };
                    write!(
                        f,
                        "  [{policy}, timeout {} ms, memory {} MiB",
                        limits.timeout.as_millis(),
                        limits.memory_mib
                    )?;
                    if let Some(order) = link.order {
                        write!(f, ", order {order}")?;
                    }
                    write!(f, "]")?;
                }
            }
        }
        Ok(())
    }
}

/// The operator's summary of a finished `controller --init-only`.
pub struct Summary<'a>(pub &'a Bootstrap);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bootstrap = self.0;
        writeln!(f, "{:<14} {:>9}  what happened", "phase", "took")?;
        for phase in bootstrap.phases() {
            writeln!(
                f,
                "{:<14} {:>7.1}ms  {}",
                phase.phase.as_str(),
                phase.took.as_secs_f64() * 1e3,
                phase.summary
            )?;
        }
        let changed: Vec<_> = bootstrap
            .pki()
            .iter()
            .filter(|d| d.changed())
            .map(|d| d.name.as_str())
            .collect();
        let join = bootstrap.join();
        writeln!(
            f,
            "join decision: {} ({})",
            join.action.as_str(),
            escape(&join.reason)
        )?;
        if changed.is_empty() {
            writeln!(
                f,
                "pki: nothing new or reissued; every certificate and key kept"
            )?;
        } else {
            writeln!(
                f,
                "pki: {} new or reissued: {}",
                changed.len(),
                changed.join(", ")
            )?;
        }
        writeln!(f, "images: {}", bootstrap.images().len())?;
        for note in bootstrap.notes() {
            writeln!(f, "note: {note}")?;
        }
        let plugins: Vec<&str> = bootstrap.plugins().all().iter().map(Plugin::name).collect();
        write!(
            f,
            "plugins: {}",
            if plugins.is_empty() {
                "none".to_owned()
            } else {
                plugins.join(", ")
            }
        )
    }
}

/// `plinth etcd members`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Members(pub Vec<crate::run::etcd_client::Member>);

impl fmt::Display for Members {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_width = self
            .0
            .iter()
            .map(|m| m.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        write!(
            f,
            "{:<name_width$}  {:<16}  {:<7}  {:<7}  PEER URL",
            "NAME", "ID", "ROLE", "STARTED"
        )?;
        for member in &self.0 {
            write!(
                f,
                "\n{:<name_width$}  {:016x}  {:<7}  {:<7}  {}",
                crate::terminal::escape(if member.started() { &member.name } else { "-" }),
                member.id,
                if member.learner { "learner" } else { "voter" },
                if member.started() { "yes" } else { "no" },
                crate::terminal::escape(&member.peer_urls.join(",")),
            )?;
        }
        Ok(())
    }
}

/// What `plinth etcd leave` says once this controller's member is gone.
pub struct Left<'a>(pub &'a crate::run::etcd_client::Member);

impl fmt::Display for Left<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "member `{}` ({:016x}) removed from the cluster; stop this controller and remove its data dir",
            crate::terminal::escape(&self.0.name),
            self.0.id
        )
    }
}

/// `plinth token list`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Tokens(pub Vec<crate::run::tokens::StoredToken>);

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let now = time::OffsetDateTime::now_utc();
        write!(f, "{:<6}  {:<10}  {:<20}  EXPIRES", "ID", "ROLE", "CREATED")?;
        for token in &self.0 {
            let expires = match token.expires {
                None => "never".to_owned(),
                Some(at) if token.expired(now) => format!("{} (expired)", seconds(at)),
                Some(at) => seconds(at),
            };
            write!(
                f,
                "\n{:<6}  {:<10}  {:<20}  {expires}",
                token.id,
                token.role.as_str(),
                seconds(token.created),
            )?;
        }
        Ok(())
    }
}

/// RFC 3339 to the second, for tables.
fn seconds(at: time::OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(format)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}
