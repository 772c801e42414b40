"""The OpenSSH server (configuration, Match, the effective model, socket activation) and fail2ban.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import accounts, host, system
from nectar_audit.facts.ssh.access import (
    access_denied,
    auth_chains,
    authorized_keys_paths,
    dropin_read_before,
    in_trusted,
    includes_dropins,
    is_cloud_init_refusal,
)
from nectar_audit.facts.ssh.fail2ban import (
    F2B_LOG,
    LOG_FILES,
    TOOL_DIRS,
    UFW_CONF,
    ActionRef,
    Banning,
    Fail2ban,
    Jail,
    JailStatus,
    OtherTool,
    banning,
    parse_ports,
)
from nectar_audit.facts.ssh.fail2ban import (
    NEEDS as _fail2ban_needs,
)
from nectar_audit.facts.ssh.files import DROPIN_DIR, GENERIC_USER, MAIN_CONFIG
from nectar_audit.facts.ssh.match import Context
from nectar_audit.facts.ssh.model import Setting, SshdConfig
from nectar_audit.facts.ssh.sshd import NEEDS as _sshd_needs
from nectar_audit.facts.ssh.sshd import sshd_config, sshd_listen_ports, sshd_listeners
from nectar_audit.facts.ssh.units import ListenInfo

NEEDS = merge([_fail2ban_needs, _sshd_needs, accounts.NEEDS, host.NEEDS, system.NEEDS])

__all__ = [
    "DROPIN_DIR",
    "F2B_LOG",
    "GENERIC_USER",
    "LOG_FILES",
    "MAIN_CONFIG",
    "NEEDS",
    "TOOL_DIRS",
    "UFW_CONF",
    "ActionRef",
    "Banning",
    "Context",
    "Fail2ban",
    "Jail",
    "JailStatus",
    "ListenInfo",
    "OtherTool",
    "Setting",
    "SshdConfig",
    "access_denied",
    "auth_chains",
    "authorized_keys_paths",
    "banning",
    "dropin_read_before",
    "in_trusted",
    "includes_dropins",
    "is_cloud_init_refusal",
    "parse_ports",
    "sshd_config",
    "sshd_listen_ports",
    "sshd_listeners",
]
