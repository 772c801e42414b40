from __future__ import annotations

from nectar_audit.targets.script_runner import ScriptTarget


class LocalTarget(ScriptTarget):
    """This machine: the gather script runs in one ``sh`` process."""

    kind = "local"

    def __init__(self, timeout: float = 120.0) -> None:
        super().__init__("local", ["/bin/sh", "-s"], timeout)
