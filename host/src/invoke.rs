//! `plinth plugins invoke`: one hook of one plugin, called on a JSON
//! fixture in the sandbox and with the limits of a bootstrap, its answer
//! checked by the hook's own chain rule (the plugin alone in the chain,
//! the fixture as the value it receives), timed over N calls.
//!
//! The fixture's JSON form follows the WIT: field and enum names in
//! kebab-case (`pull-policy`, `if-not-present`), a certificate's DER in
//! base64. [`example`] prints one per hook to start from.

mod forms;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::Config;
use crate::error::Error;
use crate::hooks::HookError;
use crate::hooks::{image_resolve, join_decision, post_pki, pre_init};
use crate::journal::Journal;
use crate::node::NodeFacts;
use crate::plugin::contract::{Hook, ProbeResult};
use crate::plugin::{Cache, CallFailure, CallRecord, Plugin, Runtime, SignaturePolicy};
use forms::{Fixture, ProbeResultForm};

pub use forms::example;

/// Largest fixture read: a PKI of a few dozen certificates is well under
/// a megabyte; a thousand images about 100 KB.
const MAX_INPUT_BYTES: u64 = 64 << 20;

/// What to invoke, from the command line.
pub struct InvokeOptions<'a> {
    pub file: &'a Path,
    pub hook: Hook,
    pub input: &'a Path,
    /// The manifest to use; `NAME.toml` beside the file when `None`.
    pub manifest: Option<&'a Path>,
    pub repeat: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot read the fixture {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fixture {path} is larger than 64 MiB")]
    TooLarge { path: PathBuf },
    #[error(
        "the fixture {path} is not a {hook} input: {message}; `plinth plugins invoke --hook {hook} --example` prints one"
    )]
    Fixture {
        path: PathBuf,
        hook: Hook,
        message: String,
    },
    #[error("{path} does not serve {hook} (it serves: {served}); choose another --hook")]
    NotServed {
        path: PathBuf,
        hook: Hook,
        served: String,
    },
}

impl InvokeError {
    pub fn class(&self) -> crate::ErrorClass {
        crate::ErrorClass::Invalid
    }
}

/// The outcome of `plugins invoke`.
#[derive(Debug, Serialize)]
pub struct Invocation {
    pub file: PathBuf,
    pub plugin: String,
    pub hook: Hook,
    /// `allowed`, or `denied` when the answer denies or refuses.
    pub verdict: &'static str,
    /// The answer as JSON: the next value of a mutating hook, findings of
    /// a validating one.
    pub answer: serde_json::Value,
    /// Why the answer denies, one line per finding or refusal.
    pub denials: Vec<String>,
    pub calls: u32,
    #[serde(serialize_with = "micros")]
    pub min: Duration,
    #[serde(serialize_with = "micros")]
    pub median: Duration,
    #[serde(serialize_with = "micros")]
    pub max: Duration,
    pub peak_memory_bytes: usize,
    pub memory_cap_mib: u64,
}

fn micros<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1e6)
}

impl Invocation {
    pub fn denied(&self) -> bool {
        self.verdict == "denied"
    }
}

/// Call `options.hook` of the plugin `options.file` `repeat` times.
pub fn invoke(options: &InvokeOptions<'_>) -> Result<Invocation, Error> {
    let fixture = read_fixture(options.input, options.hook)?;
    let runtime = Runtime::new()?;
    let cache = Cache::disabled(runtime.engine());
    let manifest = options
        .manifest
        .map_or_else(|| options.file.with_extension("toml"), Path::to_owned);
    let plugin = Plugin::load_with_manifest(
        &runtime,
        &cache,
        options.file,
        &manifest,
        &SignaturePolicy::default(),
    )?;
    if !plugin.hooks().contains(&options.hook) {
        let served: Vec<_> = plugin.hooks().iter().map(|h| h.as_str()).collect();
        return Err(InvokeError::NotServed {
            path: options.file.to_owned(),
            hook: options.hook,
            served: if served.is_empty() {
                "nothing".to_owned()
            } else {
                served.join(", ")
            },
        }
        .into());
    }
    let mut answered = call(&plugin, &fixture)?;
    let mut records = vec![plugin.last_call()];
    for _ in 1..options.repeat {
        answered = call(&plugin, &fixture)?;
        records.push(plugin.last_call());
    }
    let (answer, denials) = answered;
    let records: Vec<CallRecord> = records.into_iter().flatten().collect();
    let peak = records
        .iter()
        .map(|r| r.peak_memory_bytes)
        .max()
        .unwrap_or(0);
    let mut times: Vec<Duration> = records.iter().map(|r| r.took).collect();
    times.sort();
    let at = |index: usize| times.get(index).copied().unwrap_or_default();
    Ok(Invocation {
        file: options.file.to_owned(),
        plugin: plugin.name().to_owned(),
        hook: options.hook,
        verdict: if denials.is_empty() {
            "allowed"
        } else {
            "denied"
        },
        answer,
        denials,
        calls: options.repeat.max(1),
        min: at(0),
        median: at(times.len() / 2),
        max: at(times.len().saturating_sub(1)),
        peak_memory_bytes: peak,
        memory_cap_mib: plugin.limits().memory_mib,
    })
}

fn read_fixture(path: &Path, hook: Hook) -> Result<Fixture, InvokeError> {
    let read = |source| InvokeError::Read {
        path: path.to_owned(),
        source,
    };
    let text = crate::regular_file::read_text(path, MAX_INPUT_BYTES).map_err(|source| {
        if source.kind() == std::io::ErrorKind::FileTooLarge {
            InvokeError::TooLarge {
                path: path.to_owned(),
            }
        } else {
            read(source)
        }
    })?;
    Fixture::parse(hook, &text).map_err(|message| InvokeError::Fixture {
        path: path.to_owned(),
        hook,
        message,
    })
}

/// One call through the hook's chain rule: the answer as JSON, and the
/// denials (empty when it allowed). A failed call is the error a bootstrap
/// would stop with.
fn call(plugin: &Plugin, fixture: &Fixture) -> Result<(serde_json::Value, Vec<String>), Error> {
    let journal = Journal::discard();
    let outcome = match fixture {
        Fixture::PreInit { config, facts } => {
            let node = NodeFacts {
                hostname: facts.hostname.clone(),
                addresses: facts
                    .addresses
                    .iter()
                    .filter_map(|address| address.parse().ok())
                    .collect(),
            };
            let config = Config::from_yaml(&config.to_string(), "the fixture's config", &node)?;
            pre_init::run_validators(&[plugin as _], config, facts, &node, &journal)
                .map(|outcome| forms::pre_init_answer(&outcome))
        }
        Fixture::JoinDecision { facts, current } => {
            join_decision::run_deciders(&[plugin as _], facts, current.clone(), &journal)
                .map(|proposal| forms::proposal(&proposal))
        }
        Fixture::PostPki { certificates } => {
            post_pki::run_auditors(&[plugin as _], certificates, &journal)
                .map(|audit| forms::notes(&audit.notes))
        }
        Fixture::ImageResolve { images } => {
            image_resolve::run_resolvers(&[plugin as _], images.clone(), &journal)
                .map(|outcome| forms::images(&outcome.value))
        }
        Fixture::Readiness { check, observation } => {
            return readiness(plugin, check, observation);
        }
    };
    match outcome {
        Ok(answer) => Ok((answer, Vec::new())),
        Err(HookError::Denied { denials, .. }) => Ok((
            serde_json::json!({"denied": denials.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            denials.iter().map(ToString::to_string).collect(),
        )),
        Err(error) => Err(error.into()),
    }
}

/// readiness has no chain in an init-only bootstrap: `checks`, then
/// `evaluate` of the fixture's observation; `failed` denies.
fn readiness(
    plugin: &Plugin,
    check: &str,
    observation: &crate::plugin::contract::Observation,
) -> Result<(serde_json::Value, Vec<String>), Error> {
    let failed = |failure: CallFailure| {
        Error::from(HookError::Failed {
            hook: Hook::Readiness,
            participant: plugin.name().to_owned(),
            failure,
        })
    };
    let checks = plugin.readiness_checks().map_err(failed)?;
    let result = plugin
        .readiness_evaluate(check, observation)
        .map_err(failed)?;
    let denials = match &result {
        ProbeResult::Failed(reason) => {
            vec![format!("{} [readiness] {check}: {reason}", plugin.name())]
        }
        _ => Vec::new(),
    };
    Ok((
        serde_json::json!({
            "checks": forms::checks(&checks),
            "evaluation": ProbeResultForm::from(&result),
        }),
        denials,
    ))
}

impl fmt::Display for Invocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let answer = serde_json::to_string_pretty(&self.answer).map_err(|_| fmt::Error)?;
        writeln!(f, "plugin:  {} ({})", self.plugin, self.file.display())?;
        writeln!(f, "hook:    {}", self.hook)?;
        writeln!(f, "verdict: {}", self.verdict)?;
        for denial in &self.denials {
            writeln!(f, "  {denial}")?;
        }
        writeln!(f, "answer:")?;
        for line in answer.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(
            f,
            "time:    {} call(s): min {}, median {}, max {} (instantiate, call, drop)",
            self.calls,
            human(self.min),
            human(self.median),
            human(self.max)
        )?;
        write!(
            f,
            "memory:  peak {:.1} MiB of the {} MiB cap",
            self.peak_memory_bytes as f64 / f64::from(1 << 20),
            self.memory_cap_mib
        )
    }
}

fn human(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 1000.0 {
        format!("{micros:.1} µs")
    } else {
        format!("{:.2} ms", micros / 1e3)
    }
}
