"""Cleanup of lab resources left behind by dead (or, at session end, this) pytest processes."""

from __future__ import annotations

import os

from .netns import sweep_slots
from .rootfs import sweep_mounts


def sweep(include_own: bool = False) -> list[str]:
    """Remove namespaces/veths/etc dirs and overlay mounts whose owner process is gone.

    include_own=True also removes this process's leftovers (pytest session end). Returns what was
    removed. A no-op when not root or when nothing was ever recorded.
    """
    if os.geteuid() != 0:
        return []
    return sweep_slots(include_own) + sweep_mounts(include_own)
