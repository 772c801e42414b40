"""What a check module defines, and the helpers checks share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

from nectar_audit.checklist import BY_ID
from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts import Facts
from nectar_audit.facts.host import host
from nectar_audit.facts.system import Listener, listeners, sockets_source
from nectar_audit.model import Finding, Status
from nectar_audit.remedy import Remedy


@dataclass(frozen=True)
class Check:
    """A checklist item's implementation and its metadata, written once (the title is the checklist's)."""

    id: str
    severity: str  # high | medium | low
    run: Callable[[Facts], list[Finding]]
    # The evidence of the fact packs ``run`` uses: a scan of this check gathers only that.
    needs: Needs
    # For `nectar-audit explain`: why the item matters and how this tool decides it.
    why: str
    how: str
    # Family ("debian", "rhel", "fedora") -> how to fix, in general terms (findings carry exact fixes).
    fix: Mapping[str, str] = field(default_factory=dict)
    # The structured fix of a failing host (``nectar-audit fix``), pure like ``run``; None: nothing to plan.
    plan: Callable[[Facts], Remedy | None] | None = None
    # Evidence the plan needs beyond ``needs`` (who could still log in after an SSH change, …).
    plan_needs: Needs = field(default_factory=Needs)

    @property
    def title(self) -> str:
        return BY_ID[self.id].question


def family(facts: Facts) -> str:
    """The host's distribution family ("debian", "rhel", "fedora"), "unknown" when it cannot be told."""
    try:
        return facts.get(host).family
    except EvidenceError:
        return "unknown"


def for_family(facts: Facts, fixes: Mapping[str, str]) -> str | None:
    """The fix for this host's distribution family; every variant, labelled, when it is unknown."""
    mine = family(facts)
    if mine in fixes:
        return fixes[mine]
    if mine == "fedora" and "rhel" in fixes:
        return fixes["rhel"]
    if not fixes:
        return None
    if len(set(fixes.values())) == 1:
        return next(iter(fixes.values()))
    return "\n".join(f"[{fam}] {text}" for fam, text in fixes.items())


def live_listeners(facts: Facts) -> tuple[list[Listener] | None, list[Finding], str]:
    """The host's listening sockets for a service check: (listeners, an error finding when they cannot
    be listed, where they were read from). None offline, where nothing listens yet."""
    if not facts.bundle.live:
        return None, [], ""
    try:
        found = facts.get(listeners)
    except EvidenceError as exc:
        return None, [Finding(Status.ERROR, f"cannot list listening sockets: {exc}")], ""
    return found, [], sockets_source(facts)
