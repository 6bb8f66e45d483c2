"""{{name}}: a pre-init plugin. It sees the effective cluster configuration
(as JSON) and facts about the node before anything is created, and may deny
or return a JSON merge patch. This one warns when the node has no address
but loopback (other controllers could not reach it), and denies instead when
the setting `require-address` is `true`."""

import wit_world
import wit_world.exports
from componentize_py_types import Err
from wit_world.exports import pre_init
from wit_world.imports import host
from wit_world.imports.types import Finding, Metadata, Severity


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(name="{{name}}", version="0.1.0",
                        description="Warns (or denies) when the node has no address but loopback.")

    def validate_settings(self) -> None:
        value = host.setting("require-address")
        if value not in (None, "true", "false"):
            raise Err([f"require-address = {value!r}: expected `true` or `false`"])


class PreInit(wit_world.exports.PreInit):
    def check(self, config_json: str, facts: pre_init.NodeFacts) -> pre_init.PreInitAnswer:
        findings = []
        if not facts.addresses:
            deny = host.setting("require-address") == "true"
            findings.append(Finding(
                severity=Severity.DENY if deny else Severity.WARNING,
                subject="node",
                rule="require-address",
                message=f"node {facts.hostname} has no address but loopback; "
                "other controllers cannot reach it",
            ))
        return pre_init.PreInitAnswer(findings=findings, patch=None)
