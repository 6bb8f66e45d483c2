"""A hostile Python plugin for the sandbox tests: its image-resolve never
returns. Everything else about it is well-behaved, so it loads."""

import wit_world
import wit_world.exports
from wit_world.imports.types import Metadata


class Plugin(wit_world.exports.Plugin):
    def describe(self) -> Metadata:
        return Metadata(name="python-hostile", version="0.1.0",
                        description="Loops forever in image-resolve.")

    def validate_settings(self) -> None:
        return None


class ImageResolve(wit_world.exports.ImageResolve):
    def resolve(self, images):
        while True:
            pass
