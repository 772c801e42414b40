"""Local accounts: passwd/shadow/group (the one parser), last logins, sudo rights.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import host
from nectar_audit.facts.accounts.passwd import PasswdEntry, parse_accounts, sh_no_session_case, uid_names
from nectar_audit.facts.accounts.sudoers import (
    NEEDS as _sudoers_needs,
)
from nectar_audit.facts.accounts.sudoers import (
    SUDOERS,
    SUDOERS_D,
    Grant,
    SudoRights,
    sudo_rights,
)
from nectar_audit.facts.accounts.users import (
    IMAGE_DEFAULT_USERS,
    Account,
    Accounts,
    accounts,
    home_stats,
)
from nectar_audit.facts.accounts.users import (
    NEEDS as _users_needs,
)

NEEDS = merge([_sudoers_needs, _users_needs, host.NEEDS])

__all__ = [
    "IMAGE_DEFAULT_USERS",
    "NEEDS",
    "SUDOERS",
    "SUDOERS_D",
    "Account",
    "Accounts",
    "Grant",
    "PasswdEntry",
    "SudoRights",
    "accounts",
    "home_stats",
    "parse_accounts",
    "sh_no_session_case",
    "sudo_rights",
    "uid_names",
]
