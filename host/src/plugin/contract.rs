//! Which contract version a component speaks, and which hooks it serves.

use std::collections::BTreeSet;
use std::path::Path;

use wasmtime::Engine;
use wasmtime::component::Component;

use super::PluginError;
use crate::hooks::Hook;

/// The version of `package plinth:bootstrap` this host implements.
pub const CONTRACT_VERSION: &str = "0.2.0";

const PACKAGE: &str = "plinth:bootstrap/";

/// The hooks `component` exports, after checking that it is a plugin of this
/// contract version.
pub fn exported_hooks(
    engine: &Engine,
    component: &Component,
    path: &Path,
) -> Result<BTreeSet<Hook>, PluginError> {
    let mut hooks = BTreeSet::new();
    let mut is_plugin = false;
    for (name, _) in component.component_type().exports(engine) {
        let Some(qualified) = name.strip_prefix(PACKAGE) else {
            continue;
        };
        let (interface, version) = qualified.split_once('@').unwrap_or((qualified, ""));
        if version != CONTRACT_VERSION {
            return Err(PluginError::ContractMismatch {
                path: path.to_owned(),
                found: version.to_owned(),
            });
        }
        match interface.parse::<Hook>() {
            Ok(hook) => {
                hooks.insert(hook);
            }
            Err(_) if interface == "plugin" => is_plugin = true,
            Err(_) => {}
        }
    }
    if !is_plugin {
        return Err(PluginError::NotAPlugin {
            path: path.to_owned(),
        });
    }
    Ok(hooks)
}
