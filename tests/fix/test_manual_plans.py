"""Plans judged on evidence bundles: RHEL's dnf-automatic edits (03, with its awk validator run on the
planned file), and the manual-only plans of 09, 10, 12 and 16 (nothing applied, exact commands)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from nectar_audit.checks import keys_in_image, least_privilege, unneeded_accounts, unneeded_services
from nectar_audit.checks.updates_fix import _CHECK_COMMANDS_AWK, plan_03, plan_07
from nectar_audit.remedy import apply_line_edits
from tests.patching_helpers import Host, sample


def rhel_host(os: str = "rocky9") -> Host:
    h = Host(os).systemd()
    h.stat("/usr/lib/systemd/system/dnf-automatic.timer").stat("/usr/lib/systemd/system/dnf-automatic-install.timer")
    return h


def _validates(text: str, tmp_path: Path) -> bool:
    conf = tmp_path / "automatic.conf"
    conf.write_text(text)
    return subprocess.run(["sh", "-c", f"{_CHECK_COMMANDS_AWK} {conf}"], check=False).returncode == 0


def test_03_rhel_lines_edited_in_place_and_timer_enabled(tmp_path: Path) -> None:
    text = sample("dnf/el9-automatic.conf")
    h = rhel_host().file("/etc/dnf/automatic.conf", text)
    assert h.check(3).status.value == "fail"
    r = plan_03(h.facts())
    assert r is not None and r.applicable and not r.explicit
    [change] = r.changes
    assert change.path == "/etc/dnf/automatic.conf" and not change.whole
    assert [(e.expected, e.new) for e in change.edits] == [
        ("upgrade_type = default", ("# upgrade_type = default  # replaced by nectar-audit", "upgrade_type = security")),
        ("apply_updates = no", ("# apply_updates = no  # replaced by nectar-audit", "apply_updates = yes")),
    ] or [(e.expected, e.new) for e in change.edits] == [
        ("apply_updates = no", ("# apply_updates = no  # replaced by nectar-audit", "apply_updates = yes")),
        ("upgrade_type = default", ("# upgrade_type = default  # replaced by nectar-audit", "upgrade_type = security")),
    ]
    assert apply_line_edits(text, change.edits) == change.after
    # Every other line is kept: only the two settings differ.
    assert len(change.after.splitlines()) == len(text.splitlines()) + 2
    assert [s.sh for s in r.commands] == ["systemctl enable --now dnf-automatic.timer"]
    # The validator refuses the file as it was and accepts it as planned.
    assert not _validates(text, tmp_path) and _validates(change.after, tmp_path)
    # Applied (as the host would), the check passes and nothing more is planned.
    done = rhel_host().file("/etc/dnf/automatic.conf", change.after).enabled("dnf-automatic.timer")
    assert done.check(3).status.value == "pass"


def test_03_rhel_missing_keys_added_under_commands(tmp_path: Path) -> None:
    text = "[commands]\ndownload_updates = yes\n\n[emitters]\nemit_via = stdio\n"
    h = rhel_host().file("/etc/dnf/automatic.conf", text).enabled("dnf-automatic.timer")
    r = plan_03(h.facts())
    assert r is not None
    [change] = r.changes
    assert change.after.startswith("[commands]\n# added by nectar-audit:\napply_updates = yes\n"
                                   "upgrade_type = security\ndownload_updates = yes\n")
    assert r.commands == ()  # the timer is already enabled
    assert _validates(change.after, tmp_path)


def test_07_rhel_security_upgrade_is_explicit() -> None:
    h = Host("rocky9", live=True).command(
        "updates.dnf", sample("dnf/debian12-dnf4-updateinfo-security.txt"))
    r = plan_07(h.facts())
    assert r is not None and r.explicit


def _account_host() -> Host:
    h = Host("debian12", live=True)
    h.file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\n"
                          "guest:x:1001:1001::/home/guest:/bin/bash\n")
    h.file("/etc/shadow", "root:!:19000::::::\ntoor:!:19000::::::\nguest::19000::::::\n")
    h.file("/etc/group", "root:x:0:\nguest:x:1001:\n")
    return h


def test_09_accounts_are_decided_by_a_human() -> None:
    facts = _account_host().facts()
    r = unneeded_accounts.plan(facts)
    assert r is not None and not r.applicable and r.changes == () and r.commands == ()
    text = "\n".join(r.manual)
    assert "usermod -L -e 1 -s /usr/sbin/nologin toor" in text
    assert "passwd -l guest" in text


@pytest.mark.parametrize("module", [unneeded_accounts, keys_in_image, unneeded_services, least_privilege])
def test_manual_plans_never_change_anything(module: object) -> None:
    r = module.plan(_account_host().facts())  # type: ignore[attr-defined]
    assert r is None or (not r.applicable and r.changes == () and r.commands == () and r.manual)
    if r is not None:
        assert all(m.startswith("decide: ") and " -- to act: " in m for m in r.manual)

