//! The chain itself, the same for every hook: who takes part, what one
//! answer is, and how answers, findings and failures add up.

use std::fmt;
use std::time::Instant;

use serde::Serialize;

use crate::error_class::ErrorClass;
use crate::journal::{self, Entry, Journal, JournalError, LogDropped, Verdict};
use crate::plugin::contract::{FailurePolicy, Finding, Hook, Severity};
use crate::plugin::{CallFailure, Plugin};
use crate::sha256::Sha256;
use crate::terminal::escape;

/// Most findings one participant may return in one call.
pub const MAX_FINDINGS: usize = 10_000;
/// Longest text field a participant may return (a message, a reason, ...).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Longest name a participant may give something that names files, log
/// fields or checks: a DNS label (RFC 1123).
pub(crate) const MAX_DNS_LABEL_BYTES: usize = 63;

/// Anything that can take part in a chain.
pub trait Participant {
    /// `builtin:<name>` for built-ins, the file stem for plugins.
    fn name(&self) -> &str;

    fn sha256(&self) -> Option<Sha256> {
        None
    }

    fn failure_policy(&self) -> FailurePolicy {
        FailurePolicy::Fail
    }

    /// Log lines dropped past the per-call budget since last asked.
    fn take_log_dropped(&self) -> Option<LogDropped> {
        None
    }
}

impl Participant for Plugin {
    fn name(&self) -> &str {
        Plugin::name(self)
    }

    fn sha256(&self) -> Option<Sha256> {
        Some(Plugin::sha256(self))
    }

    fn failure_policy(&self) -> FailurePolicy {
        Plugin::failure_policy(self)
    }

    fn take_log_dropped(&self) -> Option<LogDropped> {
        Plugin::take_log_dropped(self)
    }
}

/// A finding with the participant that made it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attributed {
    pub participant: String,
    pub finding: Finding,
}

impl fmt::Display for Attributed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Finding {
            subject,
            rule,
            message,
            ..
        } = &self.finding;
        // A plugin's words, shown on a terminal: escaped.
        write!(
            f,
            "{} [{}] {}: {}",
            self.participant,
            escape(rule),
            escape(subject),
            escape(message)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{hook} denied: {}", denials.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Denied {
        hook: Hook,
        denials: Vec<Attributed>,
    },
    #[error("plugin {participant} failed in {hook}: {failure}")]
    Failed {
        hook: Hook,
        participant: String,
        failure: CallFailure,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl HookError {
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Denied { .. } => ErrorClass::Denied,
            Self::Failed { .. } => ErrorClass::PluginFailed,
            Self::Journal(error) => error.class(),
        }
    }
}

/// One participant's answer: the next value, and what it found.
pub struct Answer<T> {
    pub next: T,
    pub findings: Vec<Finding>,
    /// Hook-specific summary for the journal.
    pub detail: Option<serde_json::Value>,
}

impl<T> Answer<T> {
    pub fn next(next: T) -> Self {
        Self {
            next,
            findings: Vec::new(),
            detail: None,
        }
    }

    /// Keep `current`, and deny with `reason` (a refusal of a mutating hook).
    pub(crate) fn refuse(current: T, hook: Hook, reason: String) -> Self {
        let finding = Finding {
            severity: Severity::Deny,
            subject: hook.as_str().to_owned(),
            rule: "refused".to_owned(),
            message: reason,
        };
        Self {
            next: current,
            findings: vec![finding],
            detail: None,
        }
    }
}

/// The result of a chain: the final value and the findings that did not deny.
pub struct Outcome<T> {
    pub value: T,
    pub notes: Vec<Attributed>,
}

/// Run `participants` in order over `initial`. `call` asks one participant
/// for its answer and checks it (size caps, hook rules), returning
/// [`CallFailure::Malformed`] for an answer it will not accept.
pub(crate) fn run_chain<P: Participant + ?Sized, T: Serialize>(
    hook: Hook,
    journal: &Journal,
    participants: &[&P],
    initial: T,
    mut call: impl FnMut(&P, &T) -> Result<Answer<T>, CallFailure>,
) -> Result<Outcome<T>, HookError> {
    let mut current = initial;
    let mut denials = Vec::new();
    let mut notes = Vec::new();
    for participant in participants {
        let mut entry = Entry::new(hook.phase(), participant.name(), Verdict::Allowed);
        entry.sha256 = participant.sha256();
        entry.input_digest = Some(journal::digest(&current));
        let started = Instant::now();
        let answer = call(participant, &current)
            .and_then(|answer| check_findings(answer, participant.name()));
        let mut entry = entry.took(started.elapsed());
        entry.log_dropped = participant.take_log_dropped();
        match answer {
            Ok(answer) => {
                let attributed = answer.findings.into_iter().map(|finding| Attributed {
                    participant: participant.name().to_owned(),
                    finding,
                });
                let (denied, other): (Vec<_>, Vec<_>) =
                    attributed.partition(|a| a.finding.severity == Severity::Deny);
                let verdict = if denied.is_empty() {
                    Verdict::Allowed
                } else {
                    Verdict::Denied
                };
                let mut entry = Entry {
                    verdict,
                    detail: answer.detail,
                    ..entry
                };
                entry.findings = denied
                    .iter()
                    .chain(&other)
                    .map(|a| serde_json::json!(a.finding))
                    .collect();
                journal.record(entry)?;
                for note in &other {
                    tracing::warn!(hook = hook.as_str(), "{note}");
                }
                denials.extend(denied);
                notes.extend(other);
                current = answer.next;
            }
            Err(failure) if participant.failure_policy() == FailurePolicy::Ignore => {
                tracing::warn!(
                    hook = hook.as_str(),
                    plugin = participant.name(),
                    "ignoring failure: {failure}"
                );
                journal.record(Entry {
                    verdict: Verdict::FailureIgnored,
                    trap: Some(failure.to_string()),
                    ..entry
                })?;
            }
            Err(failure) => {
                journal.record(Entry {
                    verdict: Verdict::Failed,
                    trap: Some(failure.to_string()),
                    ..entry
                })?;
                return Err(HookError::Failed {
                    hook,
                    participant: participant.name().to_owned(),
                    failure,
                });
            }
        }
    }
    if denials.is_empty() {
        Ok(Outcome {
            value: current,
            notes,
        })
    } else {
        Err(HookError::Denied { hook, denials })
    }
}

fn check_findings<T>(answer: Answer<T>, participant: &str) -> Result<Answer<T>, CallFailure> {
    if answer.findings.len() > MAX_FINDINGS {
        return Err(CallFailure::Malformed(format!(
            "{} returned {} findings; at most {MAX_FINDINGS} are accepted",
            participant,
            answer.findings.len()
        )));
    }
    for finding in &answer.findings {
        if finding.message.trim().is_empty()
            || finding.rule.trim().is_empty()
            || finding.subject.trim().is_empty()
        {
            return Err(CallFailure::Malformed(
                "a finding without a subject, rule or message".to_owned(),
            ));
        }
        check_text("finding message", &finding.message)?;
        check_text("finding subject", &finding.subject)?;
        check_text("finding rule", &finding.rule)?;
    }
    Ok(answer)
}

/// Refuse a text field over [`MAX_TEXT_BYTES`].
pub(crate) fn check_text(what: &str, text: &str) -> Result<(), CallFailure> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(CallFailure::Malformed(format!(
            "a {what} of {} bytes; at most {MAX_TEXT_BYTES} are accepted",
            text.len()
        )));
    }
    Ok(())
}

/// 1 to 63 lowercase letters, digits and inner `-` (an RFC 1123 label).
pub(crate) fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let label = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=MAX_DNS_LABEL_BYTES).contains(&bytes.len())
        && bytes.first().is_some_and(label)
        && bytes.last().is_some_and(label)
        && bytes.iter().all(|b| label(b) || *b == b'-')
}
