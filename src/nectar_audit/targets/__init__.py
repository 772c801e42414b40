"""Targets gather raw evidence from one host; they interpret nothing."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from nectar_audit.targets.base import Target, TargetError
from nectar_audit.targets.local import LocalTarget
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.saved import SavedTarget

if TYPE_CHECKING:
    from nectar_audit.targets.ssh_options import SshOptions

TARGET_FORMS = ("local, root:PATH, evidence:FILE.json, user@host[:port], ssh://user@host[:port], "
                "[ipv6]:port or an ssh_config host alias")


def parse_target(spec: str, ssh: SshOptions | None = None) -> Target:
    """Turn a command-line target into a Target.

    ``local``/``localhost`` is this machine; ``root:PATH`` and ``evidence:FILE`` are the offline forms.
    Everything else is SSH: ``ssh://[user@]host[:port]``, ``[user@]host[:port]``, ``[user@][v6]:port``,
    a bare IPv6 address, or a bare word, which is an ssh_config alias (or a DNS name). A bare word that
    names an existing local file or directory is refused as ambiguous: ``root:``/``evidence:`` or
    ``ssh://`` say which was meant. ``ssh`` is the scan's ``SshOptions``.
    """
    if spec in ("local", "localhost"):
        return LocalTarget()
    if spec.startswith("root:"):
        return RootFsTarget(spec[len("root:"):])
    if spec.startswith("evidence:"):
        return SavedTarget(spec[len("evidence:"):])
    from nectar_audit.targets.ssh import SshTarget, looks_like_ssh

    if not spec or not looks_like_ssh(spec):
        raise TargetError(f"unknown target {spec!r}: use {TARGET_FORMS}")
    bare = not spec.startswith(("ssh://", "[")) and "@" not in spec
    if bare and os.path.exists(spec):
        kind = "directory" if os.path.isdir(spec) else "file"
        raise TargetError(
            f"{spec!r} is ambiguous: it is a local {kind} and could be an SSH host. Write "
            f"{'root:' if kind == 'directory' else 'evidence:'}{spec} to audit the local {kind}, or "
            f"ssh://{spec} for the SSH host"
        )
    return SshTarget.from_spec(spec, ssh)


__all__ = [
    "TARGET_FORMS", "LocalTarget", "RootFsTarget", "SavedTarget", "Target", "TargetError", "parse_target",
]
