from __future__ import annotations

from typing import Protocol

from nectar_audit.evidence import Bundle, Needs


class TargetError(Exception):
    """The target could not be audited at all (unreachable, not a root filesystem, bad bundle)."""


class Target(Protocol):
    name: str

    def gather(self, needs: Needs) -> Bundle:
        """Collect every piece of evidence in ``needs`` in one pass."""
        ...
