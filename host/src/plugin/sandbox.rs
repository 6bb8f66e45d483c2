//! One call into a plugin: a fresh Store with nothing granted, a deadline, a
//! memory cap, and the guest's output routed to the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::component::{Instance, InstancePre, ResourceTable};
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::plinth::bootstrap::{host, types};
use super::contract::Hook;
use crate::journal::LogDropped;
use crate::terminal::escape;

/// How often the engine's epoch advances (`engine.rs` ticks it); deadlines
/// are counted in ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Bytes of stdout or stderr kept from one call; the rest is dropped.
const OUTPUT_CAPTURE_BYTES: usize = 64 * 1024;
/// Longest log line a plugin may write through `host.log`.
const LOG_LINE_BYTES: usize = 4096;
/// Most log lines (`host.log`, stdout and stderr together) one call may
/// write, and their bytes; the rest is dropped and counted, and one notice
/// says how much (a plugin wrote 163 MB in 2 s without it).
pub(crate) const LOG_BUDGET_LINES: u64 = 1000;
pub(crate) const LOG_BUDGET_BYTES: u64 = 256 * 1024;

/// Per-call resource limits from the plugin's manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    #[serde(serialize_with = "as_millis")]
    pub timeout: Duration,
    pub memory_mib: u64,
}

fn as_millis<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u128(duration.as_millis())
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            memory_mib: 64,
        }
    }
}

/// Why a call did not produce an answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("exceeded its memory cap of {0} MiB")]
    MemoryCap(u64),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("gave a malformed answer: {0}")]
    Malformed(String),
    #[error("does not export {0}")]
    NotExported(Hook),
}

/// What is left of one call's log budget.
struct LogBudget {
    lines: u64,
    bytes: u64,
    dropped: LogDropped,
}

impl LogBudget {
    fn new() -> Self {
        Self {
            lines: LOG_BUDGET_LINES,
            bytes: LOG_BUDGET_BYTES,
            dropped: LogDropped::default(),
        }
    }

    /// Whether a line of `len` bytes may still be written.
    fn spend(&mut self, len: usize) -> bool {
        let len = len as u64;
        if self.lines == 0 || self.bytes < len {
            self.dropped.lines += 1;
            self.dropped.bytes += len;
            return false;
        }
        self.lines -= 1;
        self.bytes -= len;
        true
    }
}

/// The data of one call's Store.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    cap: MemoryCap,
    plugin: Arc<str>,
    hook: &'static str,
    settings: Arc<BTreeMap<String, String>>,
    budget: LogBudget,
}

struct MemoryCap {
    bytes: usize,
    exceeded: bool,
    /// Linear memory of every memory of the instance, grown so far: memory
    /// never shrinks, so this is the call's peak.
    total: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.bytes {
            self.exceeded = true;
            // An error, not `Ok(false)`: a guest allocator that is refused
            // memory may spin or abort in ways that hide the cause.
            return Err(wasmtime::format_err!("memory cap reached"));
        }
        self.total = self.total.saturating_add(desired.saturating_sub(current));
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Who is being called, for the Store and the log.
#[derive(Clone, Debug)]
pub(crate) struct CallTarget {
    pub plugin: Arc<str>,
    pub settings: Arc<BTreeMap<String, String>>,
    pub limits: Limits,
    /// Log lines dropped by calls since the caller last took the count
    /// ([`CallTarget::take_log_dropped`]), for its journal entry.
    pub log_dropped: Arc<Mutex<LogDropped>>,
    /// The last call's record: one slot, overwritten, so a plugin called
    /// every second for days keeps no history.
    pub last_call: Arc<Mutex<Option<CallRecord>>>,
}

impl CallTarget {
    pub(crate) fn new(plugin: &str, settings: BTreeMap<String, String>, limits: Limits) -> Self {
        Self {
            plugin: Arc::from(plugin),
            settings: Arc::new(settings),
            limits,
            log_dropped: Arc::default(),
            last_call: Arc::default(),
        }
    }

    /// The log lines dropped since the last time this was asked, if any.
    pub(crate) fn take_log_dropped(&self) -> Option<LogDropped> {
        let mut dropped = self
            .log_dropped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(std::mem::take(&mut *dropped)).filter(|d| d.lines > 0)
    }
}

/// What one call cost, as `plugins invoke` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// Instantiation, the call and dropping the Store.
    pub took: Duration,
    /// Peak linear memory of the instance, all its memories together.
    pub peak_memory_bytes: usize,
}

/// Instantiate `pre` in a fresh Store and run `body` against the instance.
/// The Store, trapped or not, is dropped when this returns.
pub fn call<R>(
    pre: &InstancePre<Sandbox>,
    target: &CallTarget,
    hook: &'static str,
    body: impl FnOnce(&mut Store<Sandbox>, &Instance) -> wasmtime::Result<R>,
) -> Result<R, CallFailure> {
    let started = Instant::now();
    let stdout = MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES);
    let stderr = MemoryOutputPipe::new(OUTPUT_CAPTURE_BYTES);
    // Nothing granted: the builder's defaults have no preopens, arguments or
    // environment; sockets are switched off outright rather than left to an
    // empty allow-list.
    let wasi = WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let memory_bytes = usize::try_from(target.limits.memory_mib << 20).unwrap_or(usize::MAX);
    let sandbox = Sandbox {
        wasi,
        table: ResourceTable::new(),
        cap: MemoryCap {
            bytes: memory_bytes,
            exceeded: false,
            total: 0,
        },
        plugin: Arc::clone(&target.plugin),
        hook,
        settings: Arc::clone(&target.settings),
        budget: LogBudget::new(),
    };
    let mut store = Store::new(pre.engine(), sandbox);
    store.limiter(|sandbox| &mut sandbox.cap);
    // One tick more than the timeout holds: the next tick may come at once,
    // and a plugin gets at least its whole timeout.
    let ticks = target
        .limits
        .timeout
        .as_millis()
        .div_ceil(EPOCH_TICK.as_millis())
        + 1;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    store.epoch_deadline_trap();

    let outcome = pre
        .instantiate(&mut store)
        .and_then(|instance| body(&mut store, &instance));
    let budget = &mut store.data_mut().budget;
    log_output(&target.plugin, hook, "stdout", &stdout, budget);
    log_output(&target.plugin, hook, "stderr", &stderr, budget);
    let dropped = budget.dropped;
    if dropped.lines > 0 {
        tracing::warn!(
            plugin = &*target.plugin,
            hook,
            "the plugin's log exceeded its budget of {LOG_BUDGET_LINES} lines and {} KiB for one call: {} more line(s), {} bytes, dropped",
            LOG_BUDGET_BYTES / 1024,
            dropped.lines,
            dropped.bytes
        );
        let mut total = target
            .log_dropped
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        total.lines += dropped.lines;
        total.bytes += dropped.bytes;
    }
    let (exceeded, peak_memory_bytes) = (store.data().cap.exceeded, store.data().cap.total);
    drop(store);
    let record = CallRecord {
        took: started.elapsed(),
        peak_memory_bytes,
    };
    *target
        .last_call
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(record);
    outcome.map_err(|error| classify(&error, exceeded, &target.limits))
}

fn classify(error: &wasmtime::Error, memory_exceeded: bool, limits: &Limits) -> CallFailure {
    if memory_exceeded {
        return CallFailure::MemoryCap(limits.memory_mib);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Timeout(limits.timeout),
        Some(trap) => CallFailure::Trap(trap.to_string()),
        None => CallFailure::Trap(error.root_cause().to_string()),
    }
}

fn log_output(
    plugin: &str,
    hook: &str,
    stream: &str,
    pipe: &MemoryOutputPipe,
    budget: &mut LogBudget,
) {
    let bytes = pipe.contents();
    for line in String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| !line.trim().is_empty())
    {
        if budget.spend(line.len()) {
            let line = escape(line);
            tracing::info!(target: "plinth::plugin::output", plugin, hook, stream, "{line}");
        }
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for Sandbox {}

impl host::Host for Sandbox {
    fn log(&mut self, level: types::Level, message: String) {
        let mut message = message;
        if !self.budget.spend(message.len().min(LOG_LINE_BYTES)) {
            return;
        }
        if message.len() > LOG_LINE_BYTES {
            let mut end = LOG_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str(" [truncated]");
        }
        let message = escape(&message);
        let (plugin, hook) = (&*self.plugin, self.hook);
        match level {
            types::Level::Trace => {
                tracing::trace!(target: "plinth::plugin", plugin, hook, "{message}")
            }
            types::Level::Debug => {
                tracing::debug!(target: "plinth::plugin", plugin, hook, "{message}")
            }
            types::Level::Info => {
                tracing::info!(target: "plinth::plugin", plugin, hook, "{message}")
            }
            types::Level::Warn => {
                tracing::warn!(target: "plinth::plugin", plugin, hook, "{message}")
            }
            types::Level::Error => {
                tracing::error!(target: "plinth::plugin", plugin, hook, "{message}")
            }
        }
    }

    fn setting(&mut self, key: String) -> Option<String> {
        self.settings.get(&key).cloned()
    }
}
