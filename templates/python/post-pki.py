"""{{name}}: a post-pki plugin. It sees every certificate of the
control-plane PKI (DER and parsed fields, never a private key) and reports
findings; a finding of severity DENY stops the bootstrap. This one warns
about every certificate that expires within `expiry-warning-days` (default
30)."""

import time

import wit_world
import wit_world.exports
from componentize_py_types import Err
from wit_world.exports import post_pki
from wit_world.imports import host
from wit_world.imports.types import Finding, Metadata, Severity

DEFAULT_WARNING_DAYS = 30
SECONDS_PER_DAY = 86400


def warning_days() -> int:
    value = host.setting("expiry-warning-days")
    return DEFAULT_WARNING_DAYS if value is None else int(value)


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(name="{{name}}", version="0.1.0",
                        description="Warns about certificates that expire soon.")

    def validate_settings(self) -> None:
        value = host.setting("expiry-warning-days")
        if value is not None and not value.isdigit():
            raise Err([f"expiry-warning-days = {value!r}: "
                       "expected a whole number of days, at least 0"])


class PostPki(wit_world.exports.PostPki):
    def audit(self, certificates: list[post_pki.Certificate]) -> list[Finding]:
        now = int(time.time())
        horizon = now + warning_days() * SECONDS_PER_DAY
        return [
            Finding(
                severity=Severity.WARNING,
                subject=certificate.name,
                rule="expiry-warning-days",
                message=f"certificate `{certificate.name}` expires in "
                f"{(certificate.not_after - now) // SECONDS_PER_DAY} days",
            )
            for certificate in certificates
            if certificate.not_after < horizon
        ]
