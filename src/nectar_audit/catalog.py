"""The one place that loads the checks and the evidence they need.

Every checklist item has a module under ``checks/`` (listed here in checklist order) defining
``CHECK = Check(...)``: its severity, why and how, its fix, and the ``Needs`` of the fact packs it uses.
A scan gathers the union of what the selected checks need (``--checks 18`` reads sshd's files, not apt's
lists). An item whose module does not exist yet is "planned": listed by ``nectar-audit checks`` and left
out of scans. Probes and the cloud side take titles and severities from here too, so they never drift.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from nectar_audit.checklist import BY_ID, CHECKLIST
from nectar_audit.checks.base import Check
from nectar_audit.evidence import Needs, merge
from nectar_audit.facts import host

MODULES: dict[str, str] = {
    "Check-Security-01": "ssh_password_login",
    "Check-Security-02": "mail_server",
    "Check-Security-03": "automatic_updates",
    "Check-Security-04": "kernel_current",
    "Check-Security-05": "dns_recursion",
    "Check-Security-06": "ntp_service",
    "Check-Security-07": "security_announcements",
    "Check-Security-08": "host_firewall",
    "Check-Security-09": "unneeded_accounts",
    "Check-Security-10": "keys_in_image",
    "Check-Security-11": "attack_banning",
    "Check-Security-12": "unneeded_services",
    "Check-Security-13": "encrypted_communications",
    "Check-Security-14": "secure_logging",
    "Check-Security-15": "open_ports",
    "Check-Security-16": "least_privilege",
    "Check-Security-17": "root_ssh_login",
    "Check-Security-18": "ssh_port",
}
assert list(MODULES) == [item.id for item in CHECKLIST]


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    module: str
    check: Check | None

    @property
    def implemented(self) -> bool:
        return self.check is not None


@lru_cache(maxsize=1)
def entries() -> tuple[Entry, ...]:
    out = []
    for check_id, module in MODULES.items():
        name = f"nectar_audit.checks.{module}"
        check: Check | None = None
        if importlib.util.find_spec(name) is not None:
            check = importlib.import_module(name).CHECK
            assert check.id == check_id, f"{name} defines {check.id}, expected {check_id}"
        out.append(Entry(check_id, BY_ID[check_id].question, module, check))
    return tuple(out)


def implemented() -> list[Entry]:
    return [e for e in entries() if e.implemented]


def entry(check_id: str) -> Entry:
    """The entry of ``Check-Security-NN`` (or ``NN``)."""
    full = check_id if check_id.startswith("Check-") else f"Check-Security-{int(check_id):02d}"
    return next(e for e in entries() if e.id == full)


def severity(check_id: str) -> str:
    """The check's severity as its module declares it (probes and the cloud side report under it)."""
    found = entry(check_id).check
    return found.severity if found is not None else "medium"


def needs_for(selected: Iterable[Entry], *more: Needs) -> Needs:
    """What a scan of ``selected`` gathers: their checks' needs, the host's identity, and ``more``."""
    return merge([host.NEEDS, *(e.check.needs for e in selected if e.check is not None), *more])


@lru_cache(maxsize=1)
def all_needs() -> Needs:
    """Everything every check needs (a full scan)."""
    return needs_for(implemented())
