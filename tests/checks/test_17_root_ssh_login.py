"""Check-Security-17 (root SSH login) on evidence bundles."""

from __future__ import annotations

import pytest

from nectar_audit.checks import root_ssh_login
from nectar_audit.evidence.bundle import CommandRecord
from nectar_audit.model import Status
from tests.checks.ssh_bundles import (
    MAIN,
    ROCKY,
    SAMPLES,
    SSHD_T_BASE,
    D,
    bundle,
    debian12,
    distro_files,
    judge,
    runtime,
    statuses,
)


# ==================================================================================================
# Check 17
# ==================================================================================================
def keys(name: str) -> str:
    return (SAMPLES / "authorized_keys" / name).read_text()


def test_17_permit_root_login_no_passes() -> None:
    r = judge(root_ssh_login, bundle({MAIN: "PermitRootLogin no\n"}))
    assert (r.status, r.summary) == (
        Status.PASS,
        f"root cannot log in over SSH: PermitRootLogin no in {MAIN}:1",
    )


def test_17_yes_fails_even_with_cloud_init_keys() -> None:
    files = distro_files("rocky-8")
    files["/root/.ssh/authorized_keys"] = keys("root-cloud-init-refusal")
    r = judge(root_ssh_login, bundle(files, os_release=ROCKY))
    assert statuses(r) == ["fail"]
    assert r.summary == (
        f"root can log in over SSH with a password or a key: PermitRootLogin yes in {MAIN}:43"
    )
    rem = r.findings[0].remediation or ""
    assert f"change `PermitRootLogin yes` at {MAIN}:43 to `PermitRootLogin no`" in rem
    assert rem.endswith("sudo systemctl reload-or-restart sshd")


def test_17_rhel9_anaconda_dropin() -> None:
    r = judge(root_ssh_login, bundle(distro_files("alma-9"), os_release=ROCKY))
    assert r.status is Status.FAIL
    assert r.summary.endswith(f"PermitRootLogin yes in {D}/01-permitrootlogin.conf:1")
    assert "with a key (and with a password as soon as password login is on)" in r.summary


def test_17_default_without_keys_warns() -> None:
    r = judge(root_ssh_login, bundle(debian12()))
    assert statuses(r) == ["warn"]
    assert r.summary == (
        "root can log in over SSH with a key (PermitRootLogin is not set anywhere, so OpenSSH's "
        "default 'prohibit-password' applies); root has no authorized key now, but any key added "
        "to /root/.ssh/authorized_keys or /root/.ssh/authorized_keys2 would work"
    )


@pytest.mark.parametrize("name", ["root-cloud-init-refusal", "root-cloud-init-refusal-old"])
def test_17_cloud_init_refusal_on_every_key_passes(name: str) -> None:
    files = debian12()
    files["/root/.ssh/authorized_keys"] = keys(name)
    r = judge(root_ssh_login, bundle(files))
    assert statuses(r) == ["pass"]
    assert r.summary.startswith(
        "root's SSH login is refused by cloud-init: every key in /root/.ssh/authorized_keys "
        '(1 key) is forced to print "Please login as the user …" and exit'
    )
    assert any("forced to cloud-init's refusal message" in e.detail for e in r.findings[0].evidence)


def test_17_one_plain_key_among_refusals_warns() -> None:
    files = debian12()
    files["/root/.ssh/authorized_keys"] = keys("root-mixed")
    r = judge(root_ssh_login, bundle(files))
    assert statuses(r) == ["warn"]
    assert r.summary.startswith("root can log in over SSH with 1 key (PermitRootLogin is not set anywhere")
    assert "/root/.ssh/authorized_keys:2 ssh-ed25519 SHA256:" in r.summary and "alice@laptop" in r.summary


def test_17_fake_refusal_is_not_trusted() -> None:
    files = debian12()
    files["/root/.ssh/authorized_keys"] = keys("root-fake-refusal")
    r = judge(root_ssh_login, bundle(files))
    assert r.status is Status.WARN and "sneaky" in r.summary


def test_17_forced_commands_only() -> None:
    files = {
        MAIN: "PermitRootLogin forced-commands-only\n",
        "/root/.ssh/authorized_keys": keys("root-forced-command") + keys("root-plain"),
    }
    r = judge(root_ssh_login, bundle(files))
    assert r.status is Status.WARN
    assert r.summary.startswith(
        "root can run its forced command over SSH with 1 key (PermitRootLogin "
        f"forced-commands-only in {MAIN}:1)"
    )
    assert "backup" in r.summary and "alice@laptop" not in r.summary


def test_17_match_block_enabling_root_fails_naming_it() -> None:
    files = {MAIN: "PermitRootLogin no\nMatch Address 10.0.0.0/8\n  PermitRootLogin yes\n"}
    r = judge(root_ssh_login, bundle(files))
    assert statuses(r) == ["fail"]
    assert r.summary == (
        f"root can log in over SSH with a password or a key (from 10.0.0.1): Match Address "
        f"10.0.0.0/8 ({MAIN}:2) allows PermitRootLogin yes in {MAIN}:3"
    )
    assert f"in the block `Match Address 10.0.0.0/8` ({MAIN}:2)" in (r.findings[0].remediation or "")


@pytest.mark.parametrize(
    ("line", "culprit"),
    [
        ("DenyUsers root", "DenyUsers root"),
        ("AllowUsers ubuntu alice", "AllowUsers ubuntu alice"),
        ("DenyGroups root", "DenyGroups root"),
        ("AllowGroups sudo", "AllowGroups sudo"),
    ],
)
def test_17_access_lists_keep_root_out(line: str, culprit: str) -> None:
    r = judge(root_ssh_login, bundle({MAIN: f"PermitRootLogin yes\n{line}\n"}))
    assert (r.status, r.summary) == (
        Status.PASS,
        f"root cannot log in over SSH: root is kept out by {culprit} in {MAIN}:2",
    )


def test_17_allow_users_root_from_a_network() -> None:
    files = {MAIN: "AllowUsers ubuntu root@192.0.2.0/24\n", "/root/.ssh/authorized_keys": keys("root-plain")}
    r = judge(root_ssh_login, bundle(files))
    assert statuses(r) == ["warn"]
    assert "root can log in over SSH with 1 key (from 192.0.2.1)" in r.summary


def test_17_non_root_cannot_see_keys() -> None:
    b = bundle(debian12(), live=True, uid=1000, commands={"sshd.T": CommandRecord("@@skipped not root\n")})
    r = judge(root_ssh_login, b)
    assert r.status is Status.WARN
    assert r.summary.endswith(
        "root's keys could not be checked: needs root to read /root/.ssh/authorized_keys"
    )


def test_17_authorized_keys_file_elsewhere() -> None:
    files = {
        MAIN: "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n",
        "/etc/ssh/authorized_keys/root": keys("root-cloud-init-refusal"),
    }
    r = judge(root_ssh_login, bundle(files))
    assert r.status is Status.PASS
    assert "/etc/ssh/authorized_keys/root" in r.summary


def test_17_sshd_T_live() -> None:
    cmd = runtime(
        {
            "root": SSHD_T_BASE.format(pa="no").replace("without-password", "no"),
            "nectar-new-user": SSHD_T_BASE.format(pa="no"),
        }
    )
    r = judge(
        root_ssh_login,
        bundle(
            {MAIN: "# PermitRootLogin comes from an Include the audit could not read\n"},
            live=True,
            commands={"sshd.T": cmd},
        ),
    )
    assert (r.status, r.summary) == (
        Status.PASS,
        "root cannot log in over SSH: sshd -T reports PermitRootLogin no "
        "(not found in the files the audit read)",
    )


def test_17_not_installed() -> None:
    assert judge(root_ssh_login, bundle({}, installed=False)).status is Status.NOT_APPLICABLE
