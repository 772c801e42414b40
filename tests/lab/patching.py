"""Lab helpers for the patching/logging lab tests: scan an offline root with the CLI, audit a chroot host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nectar_audit
from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.model import HostResult
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

SRC = Path(nectar_audit.__file__).resolve().parent.parent


def scan_root(root: Path, checks: str) -> dict[str, Any]:
    """``nectar-audit scan root:ROOT --format json --checks …`` (this working tree's code); the check map."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nectar_audit",
            "scan",
            f"root:{root}",
            "--format",
            "json",
            "--checks",
            checks,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    host = report["hosts"][0]
    assert host["error"] is None, host["error"]
    return {c["id"]: c for c in host["checks"]}


def audit_chroot(host: lab.ChrootHost, *check_ids: str) -> HostResult:
    """Run the real gather script inside a chroot host (live target) and judge the given checks."""
    target = ScriptTarget(host.hostname, host.sh_argv(), timeout=60)
    selected = [e for e in entries() if e.id in check_ids]
    assert len(selected) == len(check_ids)
    result, _ = audit(target, selected, Config())
    assert result.error is None, result.error
    return result
