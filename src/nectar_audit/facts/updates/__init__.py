"""Packages and their versions, apt's configuration, automatic and pending updates, the kernel.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import host, system
from nectar_audit.facts.updates.apt_config import MAIN_FILE as APT_MAIN_FILE
from nectar_audit.facts.updates.apt_config import NEEDS as _apt_config_needs
from nectar_audit.facts.updates.apt_config import PARTS_DIR as APT_PARTS_DIR
from nectar_audit.facts.updates.apt_config import Setting, accepted_part, apt_config
from nectar_audit.facts.updates.autoupdate import (
    APT_CRON,
    DNF4_CONF,
    UPGRADE_STAMP,
    UU_LOG,
    YUM_CRON_JOB,
    AutoConfig,
    CronDaemon,
    DnfAutomatic,
    Repo,
    TimerState,
    UnattendedUpgrades,
    cron_daemon,
    dnf_automatic,
    expand,
    parse_ini,
    pattern_matches,
    periodic_enabled,
    unattended_upgrades,
)
from nectar_audit.facts.updates.autoupdate import (
    NEEDS as _autoupdate_needs,
)
from nectar_audit.facts.updates.kernel import (
    NEEDS as _kernel_needs,
)
from nectar_audit.facts.updates.kernel import (
    InstalledKernel,
    KernelState,
    kernel_flavour,
    kernel_state,
)
from nectar_audit.facts.updates.packages import NEEDS as _packages_needs
from nectar_audit.facts.updates.packages import packages
from nectar_audit.facts.updates.pending import (
    ALIASES,
    LISTS,
    NO_SECURITY_LISTS,
    ROOT_FORWARD,
    NoPackageLists,
    PendingUpdate,
    apt_kernel_updates,
    pending_updates,
    root_mail,
)
from nectar_audit.facts.updates.pending import (
    NEEDS as _pending_needs,
)
from nectar_audit.facts.updates.sources import NEEDS as _sources_needs
from nectar_audit.facts.updates.sources import SOURCE_LIST, AptSources, SourceEntry, apt_sources

NEEDS = merge(
    [
        _apt_config_needs,
        _autoupdate_needs,
        _kernel_needs,
        _packages_needs,
        _pending_needs,
        _sources_needs,
        host.NEEDS,
        system.NEEDS,
    ]
)

__all__ = [
    "ALIASES",
    "APT_CRON",
    "APT_MAIN_FILE",
    "APT_PARTS_DIR",
    "DNF4_CONF",
    "LISTS",
    "NEEDS",
    "NO_SECURITY_LISTS",
    "ROOT_FORWARD",
    "SOURCE_LIST",
    "UPGRADE_STAMP",
    "UU_LOG",
    "YUM_CRON_JOB",
    "AptSources",
    "AutoConfig",
    "CronDaemon",
    "DnfAutomatic",
    "InstalledKernel",
    "KernelState",
    "NoPackageLists",
    "PendingUpdate",
    "Repo",
    "Setting",
    "SourceEntry",
    "TimerState",
    "UnattendedUpgrades",
    "accepted_part",
    "apt_config",
    "apt_kernel_updates",
    "apt_sources",
    "cron_daemon",
    "dnf_automatic",
    "expand",
    "kernel_flavour",
    "kernel_state",
    "packages",
    "parse_ini",
    "pattern_matches",
    "pending_updates",
    "periodic_enabled",
    "root_mail",
    "unattended_upgrades",
]
