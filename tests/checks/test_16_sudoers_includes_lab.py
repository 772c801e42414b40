"""Lab tests of Check-Security-16 on sudo policies whose includes point anywhere, with real sudo deciding.

The policy on an overlay of the cached Debian root includes files outside /etc/sudoers.d: an absolute
``@include``, a relative ``#include`` with ``%h``, a quoted ``@includedir`` with a space whose directory
holds names sudo skips. ``visudo -c`` and ``sudo -l -U USER`` of the root itself (run under the host's
own name) say what the policy grants; the audit must say the same offline (``root:``) and live (the
gather script in a chroot host following the include lines itself).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nectar_audit.catalog import entries
from nectar_audit.config import Config
from nectar_audit.engine import audit
from nectar_audit.evidence import Bundle
from nectar_audit.model import CheckResult
from nectar_audit.targets.rootfs import RootFsTarget
from nectar_audit.targets.script_runner import ScriptTarget
from tests import lab

pytestmark = pytest.mark.lab

ID = "Check-Security-16"
HOST = "inc-host"
SITE = "/opt/site/sudo/main"
HOST_RULES = f"/opt/site/sudo/rules/{HOST}"
POLICY_DIR = "/srv/policy dir"


def chroot(root: Path, *argv: str, input: str | None = None) -> str:
    """One of the root's own tools, run under the host's name (sudo's %h and host matching)."""
    res = lab.run(["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec chroot "$@"', HOST, str(root), *argv],
                  input=input, timeout=60, env={**lab.HOST_ENV}, text=True, check=False)
    return str(res.stdout) + str(res.stderr)


def _write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    os.chown(target, 0, 0)
    target.chmod(0o440)


def policy(root: Path) -> None:
    for user in ("alice", "bob", "carol"):
        chroot(root, "useradd", "-m", "-s", "/bin/bash", user)
    (root / "etc/hostname").write_text(HOST + "\n")
    _write(root, "/etc/sudoers.d/10-site", f"# the site's policy lives with its config management\n"
                                           f"@include {SITE}\n")
    _write(root, SITE, f'#include rules/%h\n@includedir "{POLICY_DIR}"\n')
    _write(root, HOST_RULES, "alice ALL=(ALL) NOPASSWD: ALL\n")
    _write(root, f"{POLICY_DIR}/bob", "bob ALL=(ALL:ALL) ALL\n")
    _write(root, f"{POLICY_DIR}/carol.disabled", "carol ALL=(ALL) NOPASSWD: ALL\n")  # sudo skips "."
    _write(root, f"{POLICY_DIR}/carol~", "carol ALL=(ALL) NOPASSWD: ALL\n")  # and "~"


def sudo_says(root: Path) -> dict[str, str]:
    check = chroot(root, "visudo", "-c")
    assert "parsed OK" in check and "syntax error" not in check, check
    for path in ("/etc/sudoers", "/etc/sudoers.d/10-site", SITE, HOST_RULES, f"{POLICY_DIR}/bob"):
        assert f"{path}: parsed OK" in check, check
    assert "carol" not in check, check
    return {user: chroot(root, "sudo", "-l", "-U", user) for user in ("alice", "bob", "carol")}


def check_result(target: RootFsTarget | ScriptTarget) -> tuple[CheckResult, Bundle]:
    result, bundle = audit(target, [e for e in entries() if e.id == ID], Config())
    assert result.error is None, result.error
    return result.checks[0], bundle


def assert_verdict(c16: CheckResult, bundle: Bundle) -> None:
    assert c16.status.value == "fail", c16.findings
    assert c16.summary == f"alice can run any command as root without a password (NOPASSWD:ALL at {HOST_RULES}:1)"
    assert not [f for f in c16.findings if f.status.value == "error"], c16.findings
    with_password = [f.message for f in c16.findings if f.message.startswith("can run any command as root with")]
    assert with_password == ["can run any command as root with their password: bob"], c16.findings
    assert all(f.message.startswith("home directory") for f in c16.findings if "carol" in f.message), c16.findings
    found = bundle.searches["sudoers.includes"]
    assert {"/etc/sudoers", "/etc/sudoers.d/10-site", SITE, HOST_RULES, f"{POLICY_DIR}/bob"} <= set(found)
    assert not [p for p in found if "carol" in p]


def test_includes_at_any_path_offline(lab_root: Path) -> None:
    policy(lab_root)
    said = sudo_says(lab_root)
    assert "(ALL) NOPASSWD: ALL" in said["alice"], said["alice"]
    assert "(ALL : ALL) ALL" in said["bob"], said["bob"]
    assert "is not allowed to run sudo" in said["carol"], said["carol"]
    assert_verdict(*check_result(RootFsTarget(str(lab_root))))


def test_includes_at_any_path_live(lab_root: Path) -> None:
    lab.require_netns()
    policy(lab_root)
    with lab.chroot_host(lab_root, hostname=HOST) as host:
        said = {u: host.exec(["sudo", "-l", "-U", u], text=True, timeout=30).stdout for u in ("alice", "carol")}
        assert "(ALL) NOPASSWD: ALL" in said["alice"] and "is not allowed" in said["carol"], said
        assert_verdict(*check_result(ScriptTarget(f"lab:{HOST}", host.sh_argv(), timeout=120)))


def test_an_include_sudo_cannot_open_is_named(lab_root: Path) -> None:
    lab_root.joinpath("etc/hostname").write_text(HOST + "\n")
    _write(lab_root, "/etc/sudoers.d/20-gone", "@include /opt/gone/sudoers\n")
    said = chroot(lab_root, "visudo", "-c")
    assert "/opt/gone/sudoers" in said, said
    c16, _ = check_result(RootFsTarget(str(lab_root)))
    errors = [f.message for f in c16.findings if f.status.value == "error"]
    assert errors == ["sudo policy incomplete: /opt/gone/sudoers (included at /etc/sudoers.d/20-gone:1) could not "
                      "be read"], c16.findings
