"""Host firewalls: the model, nftables and iptables rulesets, ufw and firewalld, evaluated per family.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import system
from nectar_audit.facts.firewall.effective import NEEDS as _effective_needs
from nectar_audit.facts.firewall.effective import Firewall, firewall
from nectar_audit.facts.firewall.model import PortRange, Verdict, chain_label

NEEDS = merge([_effective_needs, system.NEEDS])

__all__ = ["NEEDS", "Firewall", "PortRange", "Verdict", "chain_label", "firewall"]
