//! Host-side bindings generated from `wit/plinth.wit`.
//!
//! The `full` world is used for its types and per-interface export
//! accessors; a plugin need not export every interface, so the host never
//! instantiates the world as a whole.

wasmtime::component::bindgen!({
    world: "full",
    path: "../wit",
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq, Eq, Hash],
});
