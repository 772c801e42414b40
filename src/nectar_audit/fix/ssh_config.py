"""After SSH moved (fix 18): the ssh_config stanza a user adds, or (``--update-ssh-config``) the edit of
``~/.ssh/config`` for targets given by alias, made after a backup."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from nectar_audit.fix.run import HostFix
from nectar_audit.model import visible

CHECK = "Check-Security-18"
_HOST = re.compile(r"^\s*Host\s+(.*)$", re.IGNORECASE)
_PORT = re.compile(r"^(\s*)Port(\s+|\s*=\s*)\S+\s*$", re.IGNORECASE)


def _moved(fix: HostFix) -> bool:
    return any(o.check == CHECK and o.status == "applied" for o in fix.outcomes)


def _alias(fix: HostFix) -> str | None:
    """The ssh_config alias the target was given as (no user@, no :port, not an address)."""
    t = fix.target
    if getattr(t, "kind", "") != "ssh":
        return None
    name = str(getattr(t, "name", ""))
    if "@" in name or ":" in name or "/" in name or re.fullmatch(r"[0-9.]+", name):
        return None
    return name


def set_port(text: str, alias: str, port: int) -> str:
    """``text`` (an ssh_config) with ``Port`` set in the ``Host`` stanza naming exactly ``alias`` (a new
    stanza at the end when there is none)."""
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = _HOST.match(line)
        if not m or alias not in m.group(1).split():
            continue
        j = i + 1
        while j < len(lines) and not _HOST.match(lines[j]) and not re.match(r"^\s*Match\s", lines[j], re.I):
            pm = _PORT.match(lines[j])
            if pm:
                lines[j] = f"{pm.group(1)}Port {port}"
                return "\n".join(lines)
            j += 1
        lines.insert(i + 1, f"    Port {port}")
        return "\n".join(lines)
    tail = "" if text.endswith("\n") or not text else "\n"
    return f"{text}{tail}\nHost {alias}\n    Port {port}\n"


def report_ssh_config(fixes: Sequence[HostFix], port: int, update: bool,
                      path: Path | None = None) -> list[str]:
    """Lines for the user: the stanza to add per moved host, and what --update-ssh-config changed."""
    out: list[str] = []
    config = path or Path("~/.ssh/config").expanduser()
    for fix in fixes:
        if not _moved(fix):
            continue
        alias = _alias(fix)
        if not update or alias is None:
            name = alias or visible(str(getattr(fix.target, "host", fix.name)))
            out.append(f"SSH on {visible(fix.name)} now listens on {port}; add to ~/.ssh/config:\n"
                       f"Host {name}\n    Port {port}")
            if update:
                out.append(f"  (not edited: {visible(fix.name)} was not given as an ssh_config alias)")
            continue
        try:
            before = config.read_text(encoding="utf-8") if config.exists() else ""
            if config.exists():
                stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
                backup = config.with_name(f"{config.name}.nectar-audit-{stamp}")
                shutil.copy2(config, backup)
            else:
                backup = None
                config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            after = set_port(before, alias, port)
            tmp = config.with_name(f".{config.name}.nectar-audit-tmp")
            tmp.write_text(after, encoding="utf-8")
            os.chmod(tmp, 0o600)
            os.replace(tmp, config)
        except OSError as exc:
            out.append(f"cannot edit {config}: {exc.strerror or exc}; add: Host {alias} / Port {port}")
            continue
        out.append(f"{config}: Host {alias} now has Port {port}"
                   + (f" (backup: {backup})" if backup else ""))
    return out
