"""python-image-policy: a Plinth plugin written in Python.

image-resolve: refuses every image that is not pinned to a content digest
(`repository@sha256:...`), unless the manifest setting `allow-tags` is
`true`, in which case tag-only images pass with a warning in the log.

post-pki: denies a leaf certificate valid for longer than `max-leaf-days`
days (default 398, the CA/Browser Forum limit for public TLS certificates).

Build: see README.md (`cargo xtask plugins` builds it too).
"""

import wit_world
import wit_world.exports
from wit_world.exports import image_resolve, post_pki
from wit_world.imports import host
from wit_world.imports.types import Finding, Level, Metadata, Severity
from componentize_py_types import Err

DEFAULT_MAX_LEAF_DAYS = 398
SECONDS_PER_DAY = 86400


def allow_tags() -> bool:
    """The `allow-tags` setting; validate_settings has checked its value."""
    return host.setting("allow-tags") == "true"


def max_leaf_days() -> int:
    value = host.setting("max-leaf-days")
    return DEFAULT_MAX_LEAF_DAYS if value is None else int(value)


def settings_problems() -> list[str]:
    """One message per bad setting, naming the key, the value and what is expected."""
    problems = []
    tags = host.setting("allow-tags")
    if tags not in (None, "true", "false"):
        problems.append(f"allow-tags = {tags!r}: expected `true` or `false`")
    days = host.setting("max-leaf-days")
    if days is not None and not (days.isdigit() and int(days) >= 1):
        problems.append(f"max-leaf-days = {days!r}: expected a whole number of days, at least 1")
    return problems


def reference(image: image_resolve.Image) -> str:
    return f"{image.repository}:{image.tag}"


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(
            name="python-image-policy",
            version="0.1.0",
            description="Refuses images without a digest unless tags are allowed; "
            "denies leaf certificates valid longer than max-leaf-days.",
        )

    def validate_settings(self) -> None:
        problems = settings_problems()
        if problems:
            raise Err(problems)


class ImageResolve(wit_world.exports.ImageResolve):
    def resolve(self, images: list[image_resolve.Image]) -> list[image_resolve.Image]:
        unpinned = [reference(image) for image in images if image.digest is None]
        if not unpinned:
            return images
        if allow_tags():
            host.log(Level.WARN, f"{len(unpinned)} images are not pinned to a digest: "
                     + ", ".join(unpinned))
            return images
        raise Err(f"{len(unpinned)} images are not pinned to a digest "
                  f"(first: {unpinned[0]}); pin them (airgap-mirror's `digests` setting) "
                  "or set allow-tags = \"true\"")


class PostPki(wit_world.exports.PostPki):
    def audit(self, certificates: list[post_pki.Certificate]) -> list[Finding]:
        limit = max_leaf_days()
        findings = []
        for certificate in certificates:
            if certificate.is_ca:
                continue
            # Whole days, rounded up: one second over the limit is over it.
            days = -(-(certificate.not_after - certificate.not_before) // SECONDS_PER_DAY)
            if days > limit:
                findings.append(Finding(
                    severity=Severity.DENY,
                    subject=certificate.name,
                    rule="max-leaf-days",
                    message=f"leaf certificate `{certificate.name}` is valid for {days} days; "
                    f"max-leaf-days is {limit}",
                ))
        return findings
