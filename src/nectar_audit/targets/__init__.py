"""Targets gather raw evidence from one host; they interpret nothing."""

from __future__ import annotations

from nectar_audit.targets.base import Target, TargetError
from nectar_audit.targets.local import LocalTarget
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.saved import SavedTarget


def parse_target(spec: str) -> Target:
    """``local``, ``root:PATH`` or ``evidence:FILE.json``."""
    if spec in ("local", "localhost"):
        return LocalTarget()
    if spec.startswith("root:"):
        return RootFsTarget(spec[len("root:"):])
    if spec.startswith("evidence:"):
        return SavedTarget(spec[len("evidence:"):])
    raise TargetError(f"unknown target {spec!r}: use local, root:PATH or evidence:FILE.json")


__all__ = ["LocalTarget", "RootFsTarget", "SavedTarget", "Target", "TargetError", "parse_target"]
