"""The single list of checks: every checklist item, and the module that implements it.

An item whose module does not exist yet is "planned": listed by ``nectar-audit checks`` and left out
of scans (a planned check never produces a result).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache

from nectar_audit.checklist import BY_ID
from nectar_audit.checks.base import Check

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
