"""What an unprivileged user can plant in their home cannot change a verdict: names with newlines (the old
blinding attack: a directory ``k<newline>`` holding ``etc/sudoers`` with a key marker), undecodable bytes,
fake key markers, symlinks into root's files, FIFOs, sparse giants and a flood of files matching what is
gathered. The same real Debian root is audited clean and planted, offline (``root:``) and live (a chroot
host), and every check but 10 (which may find a real key) says the same."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import implemented
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.evidence import Budget
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

pytestmark = pytest.mark.lab
USER = "mallory:x:1500:1500:Mallory:/home/mallory:/bin/bash\n"
MARKER = "-----BEGIN OPENSSH PRIVATE KEY-----\n"


def _add_user(root: Path) -> None:
    with (root / "etc/passwd").open("a") as f:
        f.write(USER)
    with (root / "etc/group").open("a") as f:
        f.write("mallory:x:1500:\n")
    with (root / "etc/shadow").open("a") as f:
        f.write("mallory:!:19000:0:99999:7:::\n")
    home = root / "home/mallory"
    (home / ".ssh").mkdir(parents=True)
    os.chown(home, 1500, 1500)


def _plant(root: Path) -> None:
    home = root / "home/mallory"
    ssh = home / ".ssh"
    # The old attack: a newline in a directory name made a search hit read as "/etc/sudoers".
    for target in ("etc/sudoers", "etc/shadow", "etc/passwd"):
        fake = home / "k\n" / target
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text(MARKER + "not a key\n")
    (home / "id\nrsa").write_text(MARKER)
    (home / b"\xff\xfe-key".decode("utf-8", "surrogateescape")).write_text(MARKER)
    (home / "\x1b[2J\x1b[32mALL CHECKS PASS").write_text(MARKER)
    os.mkfifo(ssh / "id_fifo")
    (ssh / "id_link").symlink_to("/etc/shadow")
    (home / "loop").symlink_to("loop")
    with open(home / "sparse.pem", "wb") as f:  # a giant the key search skips by size
        f.truncate(4 * 1024 * 1024 * 1024)
    for i in range(100):  # a flood of names the gather reads (~/.ssh/*.pub), each a sparse giant
        with open(ssh / f"flood{i}.pub", "wb") as f:
            f.truncate(64 * 1024 * 1024)
    deep = home
    for _ in range(40):
        deep = deep / "d"
    deep.mkdir(parents=True)


def _verdicts(target: Any) -> dict[str, Any]:
    result, _ = audit(target, implemented(), Config())
    assert result.error is None
    out = {c.id: (c.status.value, c.summary) for c in result.checks if c.id != "Check-Security-10"}
    return {"checks": out, "incomplete": result.extra.get("evidence_incomplete"),
            "json": json.dumps(result.to_json())}


def test_planted_home_changes_no_verdict_offline(debian_root: Path, tmp_path: Path) -> None:
    for d in ("clean", "planted"):
        (tmp_path / d).mkdir()
    with lab.overlay_root(tmp_path / "clean", lower=debian_root) as clean, \
            lab.overlay_root(tmp_path / "planted", lower=debian_root) as planted:
        _add_user(clean)
        _add_user(planted)
        _plant(planted)
        want = _verdicts(RootFsTarget(str(clean)))
        got = _verdicts(RootFsTarget(str(planted)))
    _same_but_what_reads_homes(want, got)
    assert "\x1b" not in got["json"]


def test_planted_home_changes_no_verdict_live(debian_root: Path, tmp_path: Path) -> None:
    lab.require_netns()
    results = []
    for name, plant in (("clean", False), ("planted", True)):
        (tmp_path / name).mkdir()
        with lab.overlay_root(tmp_path / name, lower=debian_root) as root:
            _add_user(root)
            if plant:
                _plant(root)
            with lab.chroot_host(root, hostname="userhost") as h:
                results.append(_verdicts(ScriptTarget("lab", h.sh_argv(), timeout=120, budget=Budget())))
    _same_but_what_reads_homes(*results)


def _same_but_what_reads_homes(want: dict[str, Any], got: dict[str, Any]) -> None:
    """The flood spends the budget within the users' own part: that part is cut, every other part is
    whole, and a check that read the homes says it cannot know (error); no verdict is different."""
    assert want["incomplete"] is None
    assert got["incomplete"] is not None and "budget" in got["incomplete"]["reason"]
    assert "user_files" not in got["incomplete"]["complete_parts"]
    assert {"files", "stats", "commands"} <= set(got["incomplete"]["complete_parts"])
    differ = {k: (want["checks"][k], got["checks"].get(k)) for k in want["checks"]
              if got["checks"].get(k) != want["checks"][k]}
    assert all(new is not None and new[0] == "error" for _old, new in differ.values()), differ
    assert len(differ) <= 4, differ
