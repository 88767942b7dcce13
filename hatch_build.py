"""Build hook: the sdist ships what its include list names, and not ``.gitignore``.

Hatchling force-includes the VCS ignore file in every sdist; for users of the sdist it is
stray (there is no repository around it), so it is taken out again here.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "sdist":
            return
        force_include: dict[str, str] = build_data["force_include"]
        for source in [source for source, target in force_include.items() if target == ".gitignore"]:
            del force_include[source]
