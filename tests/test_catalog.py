"""The catalog: one entry per checklist item, metadata written once, and a scan that gathers only what the
selected checks read, yet judges them exactly as a full scan does (offline image and live host)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nectar_audit import catalog
from nectar_audit.checklist import CHECKLIST
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.facts import host
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab


def test_every_checklist_item_has_one_entry_in_order() -> None:
    assert [e.id for e in catalog.entries()] == [item.id for item in CHECKLIST]
    assert catalog.entry("7") is catalog.entry("Check-Security-07")
    for e in catalog.implemented():
        assert e.check is not None and catalog.severity(e.id) == e.check.severity


def test_a_subset_gathers_less() -> None:
    full = catalog.all_needs()
    ssh_port = catalog.needs_for([catalog.entry("18")])
    assert set(ssh_port.files) < set(full.files) and set(ssh_port.commands) < set(full.commands)
    assert "/var/lib/dpkg/status" not in ssh_port.files and not ssh_port.searches
    assert "sshd.T" in ssh_port.commands
    assert catalog.needs_for([]).files == host.NEEDS.files


def _checks(result: Any) -> dict[str, Any]:
    return {c["id"]: c for c in result.to_json()["checks"]}


def _same_verdicts(target: Any, attempts: int = 1) -> None:
    """Each check alone judges as in a full scan. A live host may change between two gathers (a process
    starts): a difference is gathered again, full and alone, before it counts."""
    full, _ = audit(target, catalog.implemented(), Config())
    assert full.error is None
    want = _checks(full)
    for e in catalog.implemented():
        for attempt in range(attempts):
            alone, _ = audit(target, [e], Config())
            got = _checks(alone)
            assert list(got) == [e.id]
            same = json.dumps(got[e.id], sort_keys=True) == json.dumps(want[e.id], sort_keys=True)
            if same or attempt == attempts - 1:
                break
            want = _checks(audit(target, catalog.implemented(), Config())[0])
        assert same, (e.id, got[e.id]["summary"], want[e.id]["summary"])


@pytest.mark.lab
def test_each_check_alone_judges_an_image_as_a_full_scan(debian_root: Path) -> None:
    _same_verdicts(RootFsTarget(str(debian_root)))


@pytest.mark.lab
def test_each_check_alone_judges_a_live_host_as_a_full_scan(lab_root: Path) -> None:
    lab.require_netns()
    with lab.chroot_host(lab_root, hostname="subset") as h:
        h.start(["/usr/sbin/sshd", "-D", "-e"])
        lab.wait_until(lambda: h.exec(["sh", "-c", "ss -ltn | grep -q ':22 '"]).returncode == 0, 10, "sshd")
        _same_verdicts(ScriptTarget("lab", h.sh_argv(), timeout=60), attempts=3)
