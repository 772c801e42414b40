"""Shared by the fix lab tests of checks 03, 07, 11 and 14: a chroot host as a fix target, file snapshots."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from nectar_audit.catalog import Entry, entry
from nectar_audit.config import Config
from nectar_audit.fix.run import HostFix, apply_host, plan_host, undo_host
from nectar_audit.remedy import Remedy
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab


def target(host: lab.ChrootHost) -> ScriptTarget:
    return ScriptTarget(f"fix-{host.hostname}", host.sh_argv(), timeout=180)


def entries(*ids: str) -> list[Entry]:
    return [entry(i) for i in ids]


def plan(host: lab.ChrootHost, ids: Sequence[str], config: Config | None = None) -> HostFix:
    fix = plan_host(target(host), entries(*ids), config or Config())
    assert fix.error is None, fix.error
    return fix


def remedy(fix: HostFix, check: str) -> Remedy:
    (found,) = [r for r in fix.remedies if r.check == check]
    return found


def apply(fix: HostFix, ids: Sequence[str], named: set[str] | None = None, config: Config | None = None) -> None:
    apply_host(fix, entries(*ids), config or Config(), named if named is not None else set())
    assert fix.error is None, fix.error


def undo(host: lab.ChrootHost, run_id: str | None) -> list[tuple[str, str, str]]:
    records, error = undo_host(target(host), run_id)
    assert error is None, error
    return records


def snapshot(host: lab.ChrootHost, *tops: str) -> dict[str, str]:
    """Every file (content, mode, owner) and directory under ``tops`` inside the host."""
    out: dict[str, str] = {}
    for top in tops:
        base = host.path(top)
        if not base.exists():
            out[top] = "absent"
            continue
        for path in sorted([base, *base.rglob("*")]):
            rel = "/" + str(path.relative_to(host.root))
            if path.is_symlink():
                out[rel] = "-> " + str(path.readlink())
            elif path.is_file():
                st = path.stat()
                out[rel] = f"{hashlib.sha256(path.read_bytes()).hexdigest()} {st.st_mode:o} {st.st_uid}:{st.st_gid}"
            elif path.is_dir():
                out[rel + "/"] = f"dir {path.stat().st_mode:o}"
    return out
