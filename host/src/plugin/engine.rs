//! The one wasmtime engine of a Plinth process, and the clock that enforces
//! call deadlines.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings::Full;
use super::error::PluginError;
use super::sandbox::{EPOCH_TICK, Sandbox};

/// The largest memory cap a manifest may ask for; the instance pool reserves
/// address space (not memory) for it.
pub(crate) const MAX_MEMORY_MIB: u64 = 1024;

/// Bytes of a memory slot reset in place rather than decommitted, when only
/// dirtied pages are reset: covers a Rust guest's 1 MiB stack, data and heap.
const KEEP_RESIDENT_WITH_PAGEMAP: usize = 4 << 20;
/// The same when every byte of the prefix must be memset.
const KEEP_RESIDENT_WITHOUT_PAGEMAP: usize = 64 << 10;

/// Instances that may be alive at once. Calls are sequential, so this only
/// bounds how many warm slots the pool keeps.
const POOLED_INSTANCES: u32 = 16;

/// A configured engine, the linker holding the host imports, and a thread
/// that advances the epoch so that a guest in an infinite loop is stopped.
///
/// One per process, shared: every [`Plugin`](super::Plugin) holds an `Arc`
/// of the runtime it was loaded with, so the epoch thread runs for as long
/// as any plugin can be called, and stops when the last one is dropped.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    ticker: Option<Ticker>,
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// How instances get their memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allocation {
    /// Slots reserved up front and reused: microsecond instantiation.
    Pooled,
    /// mmap per instance: slower, but needs no address-space reservation.
    OnDemand,
}

impl Runtime {
    /// A pooled runtime, or an on-demand one where the pool cannot be
    /// reserved (a tight `ulimit -v`, say).
    pub fn new() -> Result<Arc<Self>, PluginError> {
        Self::with_allocation(Allocation::Pooled).or_else(|error| {
            tracing::warn!("cannot reserve the instance pool ({error}); instantiating on demand");
            Self::with_allocation(Allocation::OnDemand)
        })
    }

    pub fn with_allocation(allocation: Allocation) -> Result<Arc<Self>, PluginError> {
        let engine = Engine::new(&engine_config(allocation)).map_err(PluginError::engine)?;
        let mut linker = Linker::new(&engine);
        // WASI is linked because wasm32-wasip2 guests import it through std
        // even when they do no I/O; the context grants nothing (sandbox.rs).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(PluginError::engine)?;
        Full::add_to_linker::<Sandbox, HasSelf<Sandbox>>(&mut linker, |sandbox| sandbox)
            .map_err(PluginError::engine)?;
        let ticker = Ticker::start(engine.clone());
        Ok(Arc::new(Self {
            engine,
            linker,
            ticker: Some(ticker),
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn linker(&self) -> &Linker<Sandbox> {
        &self.linker
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.stop.store(true, Ordering::Relaxed);
            let _ = ticker.thread.join();
        }
    }
}

impl Ticker {
    /// Tick on a schedule of the wall clock, not a sleep per tick: on a
    /// loaded machine every sleep overshoots, and 200 overshoots made a 2 s
    /// deadline 3 s. A tick that comes late is followed at once by the next.
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("plinth-epoch".into())
            .spawn(move || {
                let mut due = Instant::now();
                while !flag.load(Ordering::Relaxed) {
                    due += EPOCH_TICK;
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    engine.increment_epoch();
                }
            })
            .expect("spawning the epoch thread");
        Self { stop, thread }
    }
}

fn engine_config(allocation: Allocation) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    if allocation == Allocation::OnDemand {
        return config;
    }
    // A pool of pre-reserved instance slots makes instantiation a matter of
    // resetting a slot, which is what keeps a hook call in microseconds.
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 8)
        .total_memories(POOLED_INSTANCES * 2)
        .total_tables(POOLED_INSTANCES * 8)
        .max_memory_size(usize::try_from(MAX_MEMORY_MIB << 20).unwrap_or(usize::MAX))
        .table_keep_resident(1 << 16);
    // Resetting a slot for the next call is the largest cost of a call after
    // the guest's own work. Where the kernel can report which pages a call
    // dirtied (PAGEMAP_SCAN, Linux 6.7+), only those are reset, in place,
    // and stay resident: no madvise, no page faults next time. Elsewhere a
    // small resident prefix is memset and the rest given back.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_WITH_PAGEMAP);
    } else {
        pool.linear_memory_keep_resident(KEEP_RESIDENT_WITHOUT_PAGEMAP);
    }
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}
