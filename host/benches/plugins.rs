//! Plugin runtime benchmarks (criterion). `cargo xtask bench` builds the
//! guests, runs these in release and prints a table of ratios.
//!
//! - `hook_call/*`: one image-resolve call (instantiate from `InstancePre`,
//!   call, drop the Store) of the `rewrite` test guest and of the shipped
//!   airgap-mirror, with the pooled runtime Plinth uses and with an
//!   on-demand runtime as the baseline.
//! - `plugin_load/*`: compiling a component vs loading it from the cache,
//!   for the Rust airgap-mirror and the Python example; `cached_plugin` is
//!   the whole cached `Plugin::load` (link, describe, validate-settings).
//! - `cached_load_steps/*`: what a cached load of airgap-mirror spends its
//!   time on: reading the entry, checking its checksum, wasmtime's
//!   deserialize (copy into fresh memory, relocate, publish), the same from
//!   a file mapping, and what `Plugin::load` adds on top.
//! - `python_call/*`: one image-resolve call of the Python example beside
//!   the same rule in Rust (`image-policy-rust`), 10 pinned images.
//! - `readiness_evaluate/*`: one readiness `evaluate` of the shipped
//!   quorum-guard (its `voters` check, with the cluster facts and 150 kernel
//!   modules in the observation, as a real node has), pooled vs on demand.
//! - `image_resolve_chain/*`: 1000 images through the chain: the built-in
//!   alone (baseline), followed by the `rewrite` guest twice (the host's
//!   share), and by two shipped plugins: airgap-mirror rewriting to a
//!   mirror, then airgap-mirror again pinning a digest for every image.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use plinth::Sha256;
use plinth::data_dir::DataDir;
use plinth::hooks::Participant;
use plinth::hooks::image_resolve::{self, ImageResolver};
use plinth::hooks::readiness;
use plinth::journal::Journal;
use plinth::plugin::contract::{ClusterFacts, Image, Observation, Origin, ProbeResult, PullPolicy};
use plinth::plugin::{Allocation, Cache, CallFailure, Plugin, Runtime, SignaturePolicy};

/// The binary's allocator, so the figures are the binary's (see main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `package` installed in `dir` as `stem.wasm` with `settings`.
fn install(dir: &Path, stem: &str, package: &str, settings: &str) -> PathBuf {
    let wasm = dir.join(format!("{stem}.wasm"));
    std::fs::copy(common::guest(package), &wasm).unwrap();
    std::fs::write(
        dir.join(format!("{stem}.toml")),
        format!("[settings]\n{settings}\n"),
    )
    .unwrap();
    wasm
}

fn images(count: usize) -> Vec<Image> {
    (0..count)
        .map(|i| Image {
            component: format!("component-{i}"),
            repository: format!("registry.k8s.io/team-{}/image-{i}", i % 7),
            tag: format!("v1.{i}.0"),
            digest: None,
            origin: if i % 3 == 0 {
                Origin::Explicit
            } else {
                Origin::Default
            },
            pull_policy: PullPolicy::IfNotPresent,
        })
        .collect()
}

/// One call of a guest: `rewrite` (the host's overhead) and the shipped
/// airgap-mirror (a real policy), each pooled and on demand.
fn hook_call(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let guests = [
        ("rewrite", install(dir.path(), "10-rewrite", "rewrite", "")),
        (
            "mirror",
            install(
                dir.path(),
                "20-mirror",
                "airgap-mirror",
                "registry = \"mirror.local:5000\"",
            ),
        ),
    ];
    let mut group = c.benchmark_group("hook_call");
    for (guest, wasm) in &guests {
        for (allocation_name, allocation) in [
            ("pooled", Allocation::Pooled),
            ("on_demand", Allocation::OnDemand),
        ] {
            let runtime = Runtime::with_allocation(allocation).unwrap();
            let plugin = Plugin::load(
                &runtime,
                &Cache::disabled(runtime.engine()),
                wasm,
                &SignaturePolicy::default(),
            )
            .unwrap();
            for count in [10, 1000] {
                let input = images(count);
                let id = BenchmarkId::new(format!("{guest}_{allocation_name}"), count);
                group.bench_with_input(id, &input, |b, input| {
                    b.iter(|| plugin.image_resolve(black_box(input)).unwrap().unwrap())
                });
            }
        }
    }
    group.finish();
}

/// One image-resolve call of the Python example and of the same rule in
/// Rust, on ten images pinned to a digest (both return the list as is).
fn python_call(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new().unwrap();
    let data_dir = DataDir::lock(dir.path().join("data")).unwrap();
    let cache = Cache::in_data_dir(&data_dir, runtime.engine());
    let pinned: Vec<Image> = images(10)
        .into_iter()
        .enumerate()
        .map(|(i, image)| Image {
            digest: Some(format!("sha256:{i:064x}")),
            ..image
        })
        .collect();
    let mut group = c.benchmark_group("python_call");
    for (name, package) in [
        ("python", "python-image-policy"),
        ("rust", "image-policy-rust"),
    ] {
        let wasm = install(dir.path(), name, package, "");
        let plugin = Plugin::load(&runtime, &cache, &wasm, &SignaturePolicy::default()).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| plugin.image_resolve(black_box(&pinned)).unwrap().unwrap())
        });
    }
    group.finish();
}

/// The parts of a cached load of airgap-mirror, each alone.
fn cached_load_steps(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let wasm_path = install(
        dir.path(),
        "20-mirror",
        "airgap-mirror",
        "registry = \"mirror.local\"",
    );
    let wasm = std::fs::read(&wasm_path).unwrap();
    let runtime = Runtime::new().unwrap();
    let engine = runtime.engine();
    let data_dir = DataDir::lock(dir.path().join("data")).unwrap();
    let cache = Cache::in_data_dir(&data_dir, engine);
    cache
        .load(engine, &wasm, &Sha256::of(&wasm), &wasm_path)
        .unwrap();
    let entry = std::fs::read_dir(data_dir.plugin_cache_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
        .unwrap();
    let bytes = std::fs::read(&entry).unwrap();
    // The artifact alone: the entry less its trailer (a 32-byte checksum
    // and `PLINTHC2`), also as a file of its own for wasmtime's mapping.
    let artifact = bytes[..bytes.len() - 40].to_vec();
    let artifact_file = dir.path().join("artifact.cwasm");
    std::fs::write(&artifact_file, &artifact).unwrap();
    let mut group = c.benchmark_group("cached_load_steps");
    group.bench_function("read_entry", |b| {
        b.iter(|| std::fs::read(black_box(&entry)).unwrap())
    });
    group.bench_function("sha256_artifact", |b| {
        b.iter(|| Sha256::of(black_box(&artifact)))
    });
    group.bench_function("blake3_artifact", |b| {
        b.iter(|| blake3::hash(black_box(&artifact)))
    });
    group.bench_function("deserialize_copy", |b| {
        // SAFETY: the artifact was just made by this engine.
        b.iter(|| {
            unsafe { wasmtime::component::Component::deserialize(engine, &artifact) }.unwrap()
        })
    });
    group.bench_function("deserialize_mmap", |b| {
        // SAFETY: the file holds an artifact just made by this engine.
        b.iter(|| {
            unsafe { wasmtime::component::Component::deserialize_file(engine, &artifact_file) }
                .unwrap()
        })
    });
    group.bench_function("cache_load", |b| {
        b.iter(|| {
            cache
                .load(engine, &wasm, &Sha256::of(&wasm), &wasm_path)
                .unwrap()
        })
    });
    group.bench_function("plugin_load", |b| {
        b.iter(|| Plugin::load(&runtime, &cache, &wasm_path, &SignaturePolicy::default()).unwrap())
    });
    group.finish();
}

/// Compiling a component vs loading it from the cache: airgap-mirror
/// (97 KB of Rust) and the Python example (18 MB, about ten seconds a
/// compile, so ten compiles, the fewest criterion takes).
fn plugin_load(c: &mut Criterion) {
    compile_vs_cached(c, "", "airgap-mirror", 20);
    compile_vs_cached(c, "python_", "python-image-policy", 10);
}

/// `plugin_load/{prefix}compile` and `plugin_load/{prefix}cached` of `package`.
fn compile_vs_cached(c: &mut Criterion, prefix: &str, package: &str, compiles: usize) {
    let dir = tempfile::tempdir().unwrap();
    let wasm_path = install(dir.path(), "20-plugin", package, "");
    let wasm = std::fs::read(&wasm_path).unwrap();
    let runtime = Runtime::new().unwrap();
    let engine = runtime.engine();
    let sha256 = Sha256::of(&wasm);
    let mut group = c.benchmark_group("plugin_load");
    group.sample_size(compiles);
    group.sampling_mode(criterion::SamplingMode::Flat);
    let uncached = Cache::disabled(engine);
    group.bench_function(format!("{prefix}compile"), |b| {
        b.iter(|| uncached.load(engine, &wasm, &sha256, &wasm_path).unwrap())
    });
    let data_dir = DataDir::lock(dir.path().join("data")).unwrap();
    let cache = Cache::in_data_dir(&data_dir, engine);
    cache.load(engine, &wasm, &sha256, &wasm_path).unwrap();
    group.sample_size(100);
    group.sampling_mode(criterion::SamplingMode::Auto);
    group.bench_function(format!("{prefix}cached"), |b| {
        b.iter(|| cache.load(engine, &wasm, &sha256, &wasm_path).unwrap())
    });
    group.finish();
}

/// A built-in standing for a catalog of 1000 components.
struct ThousandImages(Vec<Image>);

impl Participant for ThousandImages {
    fn name(&self) -> &str {
        "builtin:bench"
    }
}

impl ImageResolver for ThousandImages {
    fn resolve(&self, _: &[Image]) -> Result<Result<Vec<Image>, String>, CallFailure> {
        Ok(Ok(self.0.clone()))
    }

    fn may_change_image_set(&self) -> bool {
        true
    }
}

fn image_resolve_chain(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new().unwrap();
    let cache = Cache::disabled(runtime.engine());
    let mirror = install(
        dir.path(),
        "20-mirror",
        "airgap-mirror",
        "registry = \"mirror.local:5000\"\nprefix = \"k8s\"",
    );
    let pins: Vec<String> = images(1000)
        .iter()
        .enumerate()
        .map(|(i, image)| format!("{}=sha256:{i:064x}", image.component))
        .collect();
    let pin = install(
        dir.path(),
        "30-pin",
        "airgap-mirror",
        &format!(
            "registry = \"mirror.local:5000\"\nprefix = \"k8s\"\ndigests = \"{}\"",
            pins.join(",")
        ),
    );
    let rewrite = install(dir.path(), "10-rewrite", "rewrite", "");
    let rewrite = Plugin::load(&runtime, &cache, &rewrite, &SignaturePolicy::default()).unwrap();
    let mirror = Plugin::load(&runtime, &cache, &mirror, &SignaturePolicy::default()).unwrap();
    let pin = Plugin::load(&runtime, &cache, &pin, &SignaturePolicy::default()).unwrap();
    let builtin = ThousandImages(images(1000));
    let mut group = c.benchmark_group("image_resolve_chain");
    group.bench_function("builtin_only", |b| {
        b.iter(|| {
            image_resolve::run_resolvers(&[&builtin], Vec::new(), &Journal::discard()).unwrap()
        })
    });
    group.bench_function("two_rewrite_guests", |b| {
        b.iter(|| {
            image_resolve::run_resolvers(
                &[&builtin, &rewrite, &rewrite],
                Vec::new(),
                &Journal::discard(),
            )
            .unwrap()
        })
    });
    group.bench_function("two_plugins", |b| {
        b.iter(|| {
            image_resolve::run_resolvers(
                &[&builtin, &mirror, &pin],
                Vec::new(),
                &Journal::discard(),
            )
            .unwrap()
        })
    });
    group.finish();
}

/// One `evaluate` of quorum-guard's `voters` check, as the readiness phase
/// makes it: instantiate, call with a full observation, drop the Store.
fn readiness_evaluate(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = install(
        dir.path(),
        "40-quorum-guard",
        "quorum-guard",
        "min-voters = \"3\"",
    );
    let seen = Observation {
        status: None,
        body: String::new(),
        error: None,
        attempt: 7,
        cluster: Some(ClusterFacts {
            members: 3,
            voters: 3,
            learners: 0,
            this_node_voter: true,
            cluster_id: 0x8e9e_05c5_2164_694d,
        }),
        kernel_modules: Some((0..150).map(|i| format!("module_{i}")).collect()),
    };
    let mut group = c.benchmark_group("readiness_evaluate");
    for (allocation_name, allocation) in [
        ("pooled", Allocation::Pooled),
        ("on_demand", Allocation::OnDemand),
    ] {
        let runtime = Runtime::with_allocation(allocation).unwrap();
        let plugin = Plugin::load(
            &runtime,
            &Cache::disabled(runtime.engine()),
            &wasm,
            &SignaturePolicy::default(),
        )
        .unwrap();
        group.bench_function(format!("quorum_guard_{allocation_name}"), |b| {
            b.iter(|| {
                let verdict = readiness::verdict_of(&plugin, "voters", black_box(&seen)).unwrap();
                assert_eq!(verdict, ProbeResult::Ready);
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    hook_call,
    plugin_load,
    readiness_evaluate,
    cached_load_steps,
    python_call,
    image_resolve_chain
);
criterion_main!(benches);
