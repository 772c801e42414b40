"""Keys and credentials: private keys, authorized_keys, cloud-init's key handling.

Other packs and the checks import this pack only from here. ``NEEDS`` is the evidence of every module
of the pack and of the packs it builds on.
"""

from __future__ import annotations

from nectar_audit.evidence import merge
from nectar_audit.facts import accounts, ssh
from nectar_audit.facts.keys.authorized import (
    NEEDS as _authorized_needs,
)
from nectar_audit.facts.keys.authorized import (
    AuthorizedKey,
    collect_authorized_keys,
    parse_authorized_keys,
)
from nectar_audit.facts.keys.cloudinit import NEEDS as _cloudinit_needs
from nectar_audit.facts.keys.cloudinit import CloudInit, cloudinit
from nectar_audit.facts.keys.private import (
    NEEDS as _private_needs,
)
from nectar_audit.facts.keys.private import (
    HostKey,
    PrivateKey,
    credential_files,
    host_keys,
    private_keys,
)

NEEDS = merge([_authorized_needs, _cloudinit_needs, _private_needs, accounts.NEEDS, ssh.NEEDS])

__all__ = [
    "NEEDS",
    "AuthorizedKey",
    "CloudInit",
    "HostKey",
    "PrivateKey",
    "cloudinit",
    "collect_authorized_keys",
    "credential_files",
    "host_keys",
    "parse_authorized_keys",
    "private_keys",
]
