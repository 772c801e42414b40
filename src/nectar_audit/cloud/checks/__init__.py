"""The cloud-side checks: checklist id -> function of (instance, host evidence) -> findings."""

from __future__ import annotations

from functools import partial
from typing import Callable

from nectar_audit.cloud.checks import firewall_layers, keys, open_ports, services, ssh_port
from nectar_audit.cloud.checks.base import CloudView
from nectar_audit.model import Finding

CloudCheck = Callable[[CloudView], "list[Finding]"]

CLOUD_CHECKS: dict[str, CloudCheck] = {
    services.MAIL.id: partial(services.judge, svc=services.MAIL),
    services.DNS.id: partial(services.judge, svc=services.DNS),
    services.NTP.id: partial(services.judge, svc=services.NTP),
    firewall_layers.ID: firewall_layers.run,
    keys.ID: keys.run,
    open_ports.ID: open_ports.run,
    ssh_port.ID: ssh_port.run,
}
