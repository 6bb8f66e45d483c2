//! A plugin's checks: probe the URL, hand the observation to `evaluate`,
//! record the verdict, wait the interval, again; until ready or failed.
//!
//! Plugin calls block (wasmtime runs the guest on the calling thread, up to
//! its deadline), so they never run on an async worker: each goes to the
//! blocking pool through the plugin's [`Lane`], which lets one call of a
//! plugin run at a time. A plugin stuck in a loop thus holds only its own
//! checks back, and only until its deadline; everyone else goes on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, sleep_until};
use url::Url;

use super::board::{CheckHandle, Failure, FailureCause, State};
use super::kernel_modules::KernelModules;
use super::probe::{Prober, Seen};
use crate::hooks::readiness::{self, MIN_INTERVAL, PluginCheck};
use crate::plugin::contract::{ClusterFacts, FailurePolicy, Observation, ProbeResult};
use crate::plugin::{CallFailure, Plugin, PluginSet};

/// Plugin calls in flight at once, all plugins together: well inside the
/// engine's pool of instances (16), and more than two cores can run.
pub const MAX_CALLS_IN_FLIGHT: usize = 4;

/// The way into one plugin: one call at a time, on the blocking pool, and
/// at most [`MAX_CALLS_IN_FLIGHT`] calls of all plugins (`shared`).
#[derive(Clone)]
pub struct Lane {
    plugins: Arc<PluginSet>,
    index: usize,
    gate: Arc<Semaphore>,
    shared: Arc<Semaphore>,
}

impl Lane {
    pub fn new(plugins: Arc<PluginSet>, index: usize, shared: Arc<Semaphore>) -> Self {
        Self {
            plugins,
            index,
            gate: Arc::new(Semaphore::new(1)),
            shared,
        }
    }

    pub fn plugin(&self) -> &Plugin {
        &self.plugins.all()[self.index]
    }

    /// `checks()`, validated.
    pub async fn checks(&self) -> Result<Vec<PluginCheck>, CallFailure> {
        self.call(|plugin| readiness::checks_of(plugin)).await
    }

    /// `evaluate(check, seen)`, validated.
    pub async fn evaluate(
        &self,
        check: &str,
        seen: Observation,
    ) -> Result<ProbeResult, CallFailure> {
        let check = check.to_owned();
        self.call(move |plugin| readiness::verdict_of(plugin, &check, &seen))
            .await
    }

    async fn call<R: Send + 'static>(
        &self,
        body: impl FnOnce(&Plugin) -> Result<R, CallFailure> + Send + 'static,
    ) -> Result<R, CallFailure> {
        // The semaphores are never closed, so acquiring cannot fail.
        let _turn = self.gate.acquire().await.expect("lane semaphore closed");
        let _slot = self.shared.acquire().await.expect("call semaphore closed");
        let (plugins, index) = (Arc::clone(&self.plugins), self.index);
        tokio::task::spawn_blocking(move || body(&plugins.all()[index]))
            .await
            .unwrap_or_else(|error| {
                Err(CallFailure::Trap(format!(
                    "the host's call task died: {error}"
                )))
            })
    }
}

/// One check of one plugin, as `checks()` gave it and the manifest admitted.
pub struct CheckPlan {
    pub lane: Lane,
    pub name: String,
    /// Already checked against `allow-urls`.
    pub url: Option<Url>,
    pub interval: Duration,
    pub prober: Arc<Prober>,
}

/// A planned check with what it observes and where it reports.
pub struct PluginCheckTask {
    pub plan: CheckPlan,
    pub facts: watch::Receiver<Option<ClusterFacts>>,
    pub modules: KernelModules,
    pub handle: CheckHandle,
}

impl PluginCheckTask {
    pub async fn run(mut self) {
        let CheckPlan {
            lane,
            name,
            url,
            interval,
            prober,
        } = &self.plan;
        let policy = lane.plugin().failure_policy();
        let mut attempt: u32 = 0;
        loop {
            let probed_at = Instant::now();
            let seen = match url {
                Some(url) => prober.get(url).await,
                None => Seen::default(),
            };
            attempt = attempt.saturating_add(1);
            let observation = Observation {
                status: seen.status,
                body: seen.body,
                error: seen.error,
                attempt,
                cluster: *self.facts.borrow_and_update(),
                kernel_modules: self.modules.read(),
            };
            let state = match lane.evaluate(name, observation).await {
                Ok(ProbeResult::Ready) => State::Ready,
                Ok(ProbeResult::Waiting(reason)) => State::Waiting(reason),
                Ok(ProbeResult::Failed(reason)) => State::Failed(Failure {
                    reason,
                    cause: FailureCause::Verdict,
                }),
                Err(failure) if policy == FailurePolicy::Ignore => {
                    tracing::warn!(
                        plugin = lane.plugin().name(),
                        check = name,
                        "evaluate {failure}; failure-policy ignore: not ready"
                    );
                    State::Waiting(format!("evaluate {failure}"))
                }
                Err(failure) => State::Failed(Failure {
                    reason: format!("evaluate {failure}"),
                    cause: FailureCause::PluginBroke,
                }),
            };
            let done = state.is_final();
            self.handle.observe(state);
            if done {
                return;
            }
            // Again after the interval, or sooner when the cluster changed:
            // the verdict may depend on it. Never sooner than the floor.
            tokio::select! {
                () = sleep_until(probed_at + *interval) => {}
                Ok(()) = self.facts.changed() => sleep_until(probed_at + MIN_INTERVAL).await,
            }
        }
    }
}
