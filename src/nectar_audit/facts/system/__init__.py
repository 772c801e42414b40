"""The running system: services and units, processes, listening sockets, logging.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import accounts, host
from nectar_audit.facts.system.logging import NEEDS as _logging_needs
from nectar_audit.facts.system.logging import Channel, LoggingState, logging_state
from nectar_audit.facts.system.processes import NEEDS as _processes_needs
from nectar_audit.facts.system.processes import Process, processes, running
from nectar_audit.facts.system.services import NEEDS as _services_needs
from nectar_audit.facts.system.services import Services, services, unit_base
from nectar_audit.facts.system.sockets import NEEDS as _sockets_needs
from nectar_audit.facts.system.sockets import Listener, listeners, sockets_source

NEEDS = merge([_logging_needs, _processes_needs, _services_needs, _sockets_needs, accounts.NEEDS, host.NEEDS])

__all__ = [
    "NEEDS",
    "Channel",
    "Listener",
    "LoggingState",
    "Process",
    "Services",
    "listeners",
    "logging_state",
    "processes",
    "running",
    "services",
    "sockets_source",
    "unit_base",
]
