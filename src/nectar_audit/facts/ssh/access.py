"""What the SSH checks share: who is let in at all, authentication chains, trusted sources, drop-in order,
cloud-init's refusal command, where authorized_keys are read."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nectar_audit.facts.net import Net
    pass
from nectar_audit.facts.ssh.files import DROPIN_DIR, SSHDIR
from nectar_audit.facts.ssh.keywords import DEFAULTS
from nectar_audit.facts.ssh.match import Context, match_pattern, user_at_host_match
from nectar_audit.facts.ssh.model import Setting, SshdConfig
from nectar_audit.facts.ssh.parser import glob_paths

if TYPE_CHECKING:
    from nectar_audit.facts.net import Net


# --------------------------------------------------------------------------------------------------
# Helpers the SSH checks share
# --------------------------------------------------------------------------------------------------
def access_denied(settings: Mapping[str, Setting], ctx: Context) -> Setting | None:
    """The setting that keeps ``ctx.user`` out entirely (DenyUsers, AllowUsers, DenyGroups,
    AllowGroups, RefuseConnection), as sshd's allowed_user() decides; None when the user may log in."""
    refuse = settings.get("refuseconnection")
    if refuse is not None and refuse.value == "yes":
        return refuse
    deny = settings.get("denyusers")
    if deny is not None and any(user_at_host_match(ctx.user, ctx, p) for p in deny.value.split()):
        return deny
    allow = settings.get("allowusers")
    if (
        allow is not None
        and allow.value
        and not any(user_at_host_match(ctx.user, ctx, p) for p in allow.value.split())
    ):
        return allow
    dgroups = settings.get("denygroups")
    if dgroups is not None and any(match_pattern(g, p) for g in ctx.groups for p in dgroups.value.split()):
        return dgroups
    agroups = settings.get("allowgroups")
    if (
        agroups is not None
        and agroups.value
        and not any(match_pattern(g, p) for g in ctx.groups for p in agroups.value.split())
    ):
        return agroups
    return None


def auth_chains(settings: Mapping[str, Setting]) -> list[list[str]]:
    """AuthenticationMethods as lists of methods; [] for "any"."""
    am = settings.get("authenticationmethods")
    if am is None or am.value.strip() in ("", "any"):
        return []
    return [chain.split(",") for chain in am.value.split()]


def in_trusted(addr: str, networks: Iterable[Net]) -> bool:
    """Loopback, or inside one of the configured trusted networks."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if ip.is_loopback:
        return True
    return any(ip.version == n.version and ip in n for n in networks)


def dropin_read_before(cfg: SshdConfig, keyword: str, name: str = "00-nectar-audit.conf") -> bool:
    """Would a new /etc/ssh/sshd_config.d/<name> be read before the first global ``keyword`` line?"""
    path = f"{DROPIN_DIR}/{name}"
    first = next((d for d in cfg.global_directives if d.keyword == keyword), None)
    for inc, _ in cfg.includes:
        if inc.block is not None:
            continue
        for arg in inc.args:
            pattern = arg if arg.startswith("/") else f"{SSHDIR}/{arg}"
            if glob_paths(pattern, [path]):
                return first is None or inc.order < first.order
    return False


def includes_dropins(cfg: SshdConfig) -> bool:
    """The main file includes /etc/ssh/sshd_config.d/*.conf from its global section."""
    for inc, _ in cfg.includes:
        if inc.block is None and any(
            glob_paths(a if a.startswith("/") else f"{SSHDIR}/{a}", [f"{DROPIN_DIR}/00-x.conf"])
            for a in inc.args
        ):
            return True
    return False


_REFUSAL_RE = re.compile(
    r"""echo\s+'Please login as the user \\?"[^"'\\]*\\?" rather than the user \\?"[^"'\\]*\\?"\.?'\s*;"""
    r"""\s*echo\s*;\s*sleep\s+\d+\s*(?:;\s*exit\s+\d+\s*)?;?"""
)


def is_cloud_init_refusal(command: str | None) -> bool:
    """cloud-init's ``disable_root`` forced command: prints "Please login as the user …", sleeps and
    exits. Anything else after it (a shell, another command) does not count."""
    return command is not None and _REFUSAL_RE.fullmatch(command.strip()) is not None


def authorized_keys_paths(settings: Mapping[str, Setting], user: str, home: str, uid: int = 0) -> list[str]:
    """AuthorizedKeysFile expanded for one user (%h %u %U %%; relative paths under the home)."""
    value = settings.get("authorizedkeysfile")
    raw = value.value if value is not None else DEFAULTS["authorizedkeysfile"]
    out: list[str] = []
    tokens = {"%": "%", "h": home, "u": user, "U": str(uid)}
    for item in raw.split():
        if item.lower() == "none":
            continue
        path = re.sub(r"%([%hUu])", lambda m: tokens[m.group(1)], item)
        if not path.startswith("/"):
            path = f"{home.rstrip('/')}/{path}"
        out.append(path)
    return out
