"""What a check module defines, and the helpers checks share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from nectar_audit.facts import Facts
from nectar_audit.facts.host import host
from nectar_audit.model import Finding


@dataclass(frozen=True)
class Check:
    id: str
    severity: str  # high | medium | low
    run: Callable[[Facts], list[Finding]]
    # For `nectar-audit explain`: why the item matters and how this tool decides it.
    why: str
    how: str
    # Family ("debian", "rhel", "fedora") -> how to fix, in general terms (findings carry exact fixes).
    fix: Mapping[str, str] = field(default_factory=dict)


def for_family(facts: Facts, fixes: Mapping[str, str]) -> str | None:
    """The fix for this host's distribution family; every variant, labelled, when it is unknown."""
    try:
        family = facts.get(host).family
    except Exception:
        family = "unknown"
    if family in fixes:
        return fixes[family]
    if family == "fedora" and "rhel" in fixes:
        return fixes["rhel"]
    if not fixes:
        return None
    if len(set(fixes.values())) == 1:
        return next(iter(fixes.values()))
    return "\n".join(f"[{fam}] {text}" for fam, text in fixes.items())
