"""{{name}}: a join-decision plugin. It sees what the host observed (etcd
data on disk, a join token) and the proposal so far, and returns the next
proposal or refuses. This one agrees with every proposal, except that it
refuses to create a new cluster when the setting `forbid-create` is `true`
(a site whose cluster exists: every new controller must join)."""

import wit_world
import wit_world.exports
from componentize_py_types import Err
from wit_world.exports import join_decision
from wit_world.imports import host
from wit_world.imports.types import Level, Metadata


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(name="{{name}}", version="0.1.0",
                        description="Agrees with the join decision; refuses a new cluster if told to.")

    def validate_settings(self) -> None:
        value = host.setting("forbid-create")
        if value not in (None, "true", "false"):
            raise Err([f"forbid-create = {value!r}: expected `true` or `false`"])


class JoinDecision(wit_world.exports.JoinDecision):
    def decide(self, facts: join_decision.JoinFacts,
               current: join_decision.Proposal) -> join_decision.Proposal:
        host.log(Level.INFO, f"{facts.hostname}: proposal so far: {current.reason}")
        if (current.action == join_decision.JoinAction.CREATE_CLUSTER
                and host.setting("forbid-create") == "true"):
            raise Err("this site forbids creating a cluster (forbid-create); "
                      "give the controller a join token")
        return current
