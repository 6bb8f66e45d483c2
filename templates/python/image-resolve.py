"""{{name}}: an image-resolve plugin. It sees the list of container images
the controller will use and returns the next list (or refuses). This one
moves every image to the registry named by the setting `registry`
(`registry.k8s.io/pause` -> `mirror.example:5000/pause`), and changes
nothing when the setting is absent."""

import wit_world
import wit_world.exports
from componentize_py_types import Err
from wit_world.exports import image_resolve
from wit_world.imports import host
from wit_world.imports.types import Metadata


def path_in_registry(repository: str) -> str:
    """The repository without its registry host, if it names one: the first
    path segment is a host when it has a `.` or a `:`, or is `localhost`."""
    host_part, slash, path = repository.partition("/")
    if slash and ("." in host_part or ":" in host_part or host_part == "localhost"):
        return path
    return repository


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(name="{{name}}", version="0.1.0",
                        description="Moves every image to the registry of the `registry` setting.")

    def validate_settings(self) -> None:
        registry = host.setting("registry")
        if registry is not None and (not registry or "/" in registry or " " in registry):
            raise Err([f"registry = {registry!r}: expected a host with an optional port, "
                       "e.g. mirror.example:5000"])


class ImageResolve(wit_world.exports.ImageResolve):
    def resolve(self, images: list[image_resolve.Image]) -> list[image_resolve.Image]:
        registry = host.setting("registry")
        if registry is not None:
            for image in images:
                image.repository = f"{registry}/{path_in_registry(image.repository)}"
        return images
