"""{{name}}: a readiness plugin. It names URLs for the host to probe (only
those its manifest lists in `allow-urls` are fetched) and judges what the
host saw. This one probes the URL of the setting `url`, if any, and is
ready on an HTTP 2xx answer; anything else is waiting, never failed."""

import wit_world
import wit_world.exports
from componentize_py_types import Err
from wit_world.exports import readiness
from wit_world.imports import host
from wit_world.imports.types import Metadata

CHECK = "url"
INTERVAL_MS = 1000


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(name="{{name}}", version="0.1.0",
                        description="Ready when the URL of the `url` setting answers 2xx.")

    def validate_settings(self) -> None:
        url = host.setting("url")
        if url is not None and not url.startswith(("http://", "https://")):
            raise Err([f"url = {url!r}: expected an http:// or https:// URL"])


class Readiness(wit_world.exports.Readiness):
    def checks(self) -> list[readiness.CheckSpec]:
        url = host.setting("url")
        if url is None:
            return []
        return [readiness.CheckSpec(name=CHECK, url=url, interval_ms=INTERVAL_MS)]

    def evaluate(self, check: str, seen: readiness.Observation) -> readiness.ProbeResult:
        if seen.status is not None and 200 <= seen.status < 300:
            return readiness.ProbeResult_Ready()
        if seen.status is not None:
            return readiness.ProbeResult_Waiting(f"HTTP {seen.status}")
        return readiness.ProbeResult_Waiting(seen.error or "no answer")
