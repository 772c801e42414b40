"""Check-Security-01 (SSH password login) on evidence bundles."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.checks import root_ssh_login, ssh_password_login, ssh_port
from nectar_audit.config import Config
from nectar_audit.evidence.bundle import CommandRecord, StatRecord
from nectar_audit.model import Status
from tests.checks.ssh_bundles import (
    MAIN,
    PASSWD,
    REG,
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
# Check 01
# ==================================================================================================
def test_01_not_installed() -> None:
    r = judge(ssh_password_login, bundle({}, installed=False))
    assert (r.status, r.summary) == (Status.NOT_APPLICABLE, "no SSH server (sshd) is installed")


def test_01_default_debian_fails_on_compiled_in_default() -> None:
    r = judge(ssh_password_login, bundle(debian12()))
    assert r.status is Status.FAIL
    assert r.summary == (
        "password login is on: PasswordAuthentication is not set anywhere, so OpenSSH's "
        "default 'yes' applies (affects ubuntu, alice, any account created later)"
    )
    f = r.findings[0]
    assert f.remediation is not None
    assert (
        "printf '%s\\n' 'PasswordAuthentication no' | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit.conf"
        in f.remediation
    )
    assert f.remediation.endswith("sudo sshd -t && sudo systemctl reload-or-restart ssh")


def test_01_cloud_init_dropin_reenables_passwords() -> None:
    r = judge(ssh_password_login, bundle(distro_files("ubuntu-24.04")))
    assert r.status is Status.FAIL
    assert r.summary.startswith(
        f"password login is on: PasswordAuthentication yes in {D}/50-cloud-init.conf:1 "
        "(written by cloud-init from its ssh_pwauth setting)"
    )
    rem = r.findings[0].remediation or ""
    assert "ssh_pwauth: false" in rem and "/etc/cloud/cloud.cfg.d/" in rem
    assert any(e.source == f"{D}/50-cloud-init.conf:1" for e in r.findings[0].evidence)


@pytest.mark.parametrize("distro", ["ubuntu-22.04", "ubuntu-20.04", "alma-9"])
def test_01_cloud_images_pass(distro: str) -> None:
    r = judge(ssh_password_login, bundle(distro_files(distro)))
    assert statuses(r) == ["pass"]
    assert r.summary.startswith(
        "password and keyboard-interactive login are off for every account "
        "(root, ubuntu, alice, any account created later) from any address"
    )


@pytest.mark.parametrize("distro", ["rocky-8", "rocky-9", "fedora-41", "debian-11", "debian-13"])
def test_01_distribution_defaults_fail(distro: str) -> None:
    r = judge(ssh_password_login, bundle(distro_files(distro), os_release=ROCKY))
    assert r.status is Status.FAIL
    assert "password login is on" in r.summary
    assert "systemctl reload-or-restart sshd" in (r.findings[0].remediation or "")


def test_01_rhel8_without_include_edits_the_line() -> None:
    r = judge(ssh_password_login, bundle(distro_files("rocky-8"), os_release=ROCKY))
    assert r.summary.startswith(f"password login is on: PasswordAuthentication yes in {MAIN}:70")
    assert f"change `PasswordAuthentication yes` at {MAIN}:70 to `PasswordAuthentication no`" in (
        r.findings[0].remediation or ""
    )


def test_01_match_user_block_enabling_passwords_is_named() -> None:
    files = debian12()
    files[f"{D}/10-no.conf"] = "PasswordAuthentication no\n"
    files[MAIN] += "Match User alice\n    PasswordAuthentication yes\n"
    r = judge(ssh_password_login, bundle(files))
    assert statuses(r) == ["fail"]
    line = len(debian12()[MAIN].splitlines()) + 1
    assert r.summary == (
        f"Match User alice ({MAIN}:{line}) turns on password login for alice: "
        f"PasswordAuthentication yes in {MAIN}:{line + 1}"
    )
    assert f"in the block `Match User alice` ({MAIN}:{line})" in (r.findings[0].remediation or "")


def test_01_match_group_uses_supplementary_groups() -> None:
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "Match Group sftponly\n  PasswordAuthentication yes\n"
    }
    r = judge(ssh_password_login, bundle(files))
    assert (
        r.summary == f"Match Group sftponly ({MAIN}:3) turns on password login for alice: "
        f"PasswordAuthentication yes in {MAIN}:4"
    )


def test_01_match_address_fails_unless_trusted() -> None:
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "Match Address 10.0.0.0/8\n  PasswordAuthentication yes\n"
    }
    r = judge(ssh_password_login, bundle(files))
    assert r.status is Status.FAIL
    assert "from 10.0.0.1" in r.summary and f"Match Address 10.0.0.0/8 ({MAIN}:3)" in r.summary
    trusted = Config(trusted_networks=(ipaddress.ip_network("10.0.0.0/8"),))
    r = judge(ssh_password_login, bundle(files), trusted)
    assert r.status is Status.WARN
    assert r.summary.endswith("only from loopback or the trusted networks")


def test_01_keyboard_interactive_with_pam_is_password_login() -> None:
    files = {MAIN: "PasswordAuthentication no\nChallengeResponseAuthentication yes\nUsePAM yes\n"}
    r = judge(ssh_password_login, bundle(files))
    assert r.status is Status.FAIL
    assert r.summary.startswith(
        "keyboard-interactive login through PAM asks for the account password: "
        f"ChallengeResponseAuthentication yes in {MAIN}:2 and UsePAM yes in {MAIN}:3"
    )
    # Without PAM, keyboard-interactive has no password backend on Linux.
    r = judge(ssh_password_login, bundle({MAIN: "PasswordAuthentication no\nUsePAM no\n"}))
    assert r.status is Status.PASS


def test_01_permit_empty_passwords_fails_where_a_password_method_is_on() -> None:
    r = judge(
        ssh_password_login,
        bundle({MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication yes\nUsePAM yes\n"
                      "PermitEmptyPasswords yes\n"}),
    )
    assert statuses(r) == ["fail", "fail"]
    assert any(f.message.startswith(
        f"accounts with an empty password can log in over SSH: PermitEmptyPasswords yes in {MAIN}:4")
        for f in r.findings)


def test_01_permit_empty_passwords_alone_is_no_failure() -> None:
    # sshd applies it only through password and keyboard-interactive authentication.
    for extra in ("", "AuthenticationMethods publickey\nPasswordAuthentication yes\n"):
        r = judge(
            ssh_password_login,
            bundle({MAIN: extra + "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                          "PermitEmptyPasswords yes\n"}),
        )
        assert statuses(r) == ["pass"], r.findings


def test_01_authentication_methods() -> None:
    r = judge(
        ssh_password_login, bundle({MAIN: "PasswordAuthentication yes\nAuthenticationMethods publickey\n"})
    )
    assert r.status is Status.PASS
    r = judge(
        ssh_password_login,
        bundle(
            {
                MAIN: "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                "AuthenticationMethods publickey,password\n"
            }
        ),
    )
    assert r.status is Status.PASS
    assert "a password is asked only after a key (AuthenticationMethods publickey,password in" in r.summary
    r = judge(ssh_password_login, bundle({MAIN: "AuthenticationMethods publickey,password password\n"}))
    assert r.status is Status.FAIL


def test_01_root_password_only_with_permit_root_login_yes() -> None:
    solo = "root:x:0:0:root:/root:/bin/bash\n"
    r = judge(
        ssh_password_login, bundle({MAIN: "PasswordAuthentication yes\nAllowUsers root\n"}, passwd=solo)
    )
    assert r.status is Status.PASS  # prohibit-password (default) refuses root passwords
    r = judge(
        ssh_password_login,
        bundle({MAIN: "PasswordAuthentication yes\nPermitRootLogin yes\nAllowUsers root\n"}, passwd=solo),
    )
    assert r.summary == f"password login is on: PasswordAuthentication yes in {MAIN}:1 (affects root)"


def test_01_sshd_T_is_authoritative_live() -> None:
    # The files say no, but sshd -T (which sees an Include the audit could not read) says yes.
    files = {MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"}
    cmd = runtime({u: SSHD_T_BASE.format(pa="yes") for u in ("root", "nectar-new-user", "ubuntu", "alice")})
    r = judge(ssh_password_login, bundle(files, live=True, commands={"sshd.T": cmd}))
    assert r.status is Status.FAIL
    assert r.summary == (
        "password login is on: sshd -T reports PasswordAuthentication yes (not found in the "
        "files the audit read) (affects ubuntu, alice, any account created later)"
    )
    srcs = [e.source for e in r.findings[0].evidence]
    assert "command: sshd -T -C user=ubuntu,host=198.51.100.7,addr=198.51.100.7" in srcs


def test_01_sshd_T_per_user_match() -> None:
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User alice\n"
        "  PasswordAuthentication yes\n"
    }
    cmd = runtime(
        {
            "root": SSHD_T_BASE.format(pa="no"),
            "nectar-new-user": SSHD_T_BASE.format(pa="no"),
            "ubuntu": SSHD_T_BASE.format(pa="no"),
            "alice": SSHD_T_BASE.format(pa="yes"),
        }
    )
    r = judge(ssh_password_login, bundle(files, live=True, commands={"sshd.T": cmd}))
    assert statuses(r) == ["fail"]
    assert r.summary.startswith(f"Match User alice ({MAIN}:3) turns on password login for alice")
    assert any(e.source.startswith("command: sshd -T -C user=alice") for e in r.findings[0].evidence)


def test_01_sshd_T_all_off_passes() -> None:
    files = {MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"}
    cmd = runtime({u: SSHD_T_BASE.format(pa="no") for u in ("root", "nectar-new-user", "ubuntu", "alice")})
    r = judge(ssh_password_login, bundle(files, live=True, commands={"sshd.T": cmd}))
    assert statuses(r) == ["pass"]
    assert r.summary.endswith("from any address (per sshd -T)")


def test_01_non_root_unreadable_config_is_an_error() -> None:
    b = bundle(
        {},
        live=True,
        uid=1000,
        os_release=ROCKY,
        unreadable={MAIN: "Permission denied"},
        commands={"sshd.T": CommandRecord("@@skipped not root\n")},
    )
    r = judge(ssh_password_login, b)
    assert (r.status, r.summary) == (Status.ERROR, "needs root to read /etc/ssh/sshd_config")


def test_01_unreadable_dropin_is_an_error() -> None:
    b = bundle(
        {MAIN: "Include /etc/ssh/sshd_config.d/*.conf\n"},
        live=True,
        uid=1000,
        unreadable={f"{D}/50-cloud-init.conf": "Permission denied"},
    )
    r = judge(ssh_password_login, b)
    assert (r.status, r.summary) == (Status.ERROR, f"needs root to read {D}/50-cloud-init.conf")


def test_01_non_root_readable_config_uses_parser() -> None:
    b = bundle(
        distro_files("ubuntu-22.04"),
        live=True,
        uid=1000,
        commands={"sshd.T": CommandRecord("@@skipped not root\n")},
    )
    r = judge(ssh_password_login, b)
    assert r.status is Status.PASS
    assert "sshd -T not run (not root)" in " ".join(e.detail for e in r.findings[0].evidence)


def test_01_config_errors_warn() -> None:
    r = judge(
        ssh_password_login,
        bundle(
            {MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User x\n  UsePAM yes\n"}
        ),
    )
    assert statuses(r) == ["pass", "warn"]
    assert r.summary == (
        f"sshd will refuse to start with this configuration: {MAIN}:4: Directive 'UsePAM' is "
        "not allowed within a Match block"
    )


def test_01_uncaptured_include_warns() -> None:
    b = bundle(
        {MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nInclude /etc/ssh/other/x\n"},
        stats={"/etc/ssh/other/x": StatRecord(REG, 0, 0, 10, 0)},
    )
    r = judge(ssh_password_login, b)
    assert r.status is Status.WARN
    assert "includes /etc/ssh/other/x, which the audit did not read" in r.summary


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4000), st.booleans())
def test_01_17_18_garbage_never_crash(data: bytes, live: bool) -> None:
    b = bundle({}, live=live)
    b.add_file(MAIN, data)
    b.add_file(f"{D}/x.conf", data[::-1])
    if live:
        b.commands["sshd.T"] = CommandRecord(data.decode("utf-8", "replace"))
    for module in (ssh_password_login, root_ssh_login, ssh_port):
        r = judge(module, b)
        assert not r.summary.startswith("internal error"), r.summary


def test_01_truncated_config_never_crashes() -> None:
    text = (SAMPLES / "rocky-8" / "sshd_config").read_text()
    for cut in range(0, len(text), 97):
        r = judge(ssh_password_login, bundle({MAIN: text[:cut]}, os_release=ROCKY))
        assert r.status in (Status.PASS, Status.FAIL, Status.WARN)


def test_01_huge_passwd_is_fine() -> None:
    passwd = PASSWD + "".join(f"u{i}:x:{2000 + i}:100::/home/u{i}:/usr/sbin/nologin\n" for i in range(100000))
    r = judge(ssh_password_login, bundle(distro_files("ubuntu-22.04"), passwd=passwd))
    assert r.status is Status.PASS


SFTP_CONFIG = (
    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    "Match Group sftponly\n    PasswordAuthentication yes\n    ForceCommand internal-sftp\n"
    "    ChrootDirectory /srv/sftp\n"
)
SFTP_PASSWD = PASSWD + "uploader:x:1200:1200::/srv/sftp/uploader:/usr/sbin/nologin\n"
SFTP_GROUP = "root:x:0:\nsftponly:x:1200:uploader\n"


@pytest.mark.parametrize("shadow, fails", [
    ("uploader:$y$j9T$salt$hash:19000:0:99999:7:::\n", True),
    ("uploader:!$y$j9T$salt$hash:19000:0:99999:7:::\n", False),  # locked: sshd refuses it
    ("uploader:*:19000:0:99999:7:::\n", False),  # no password to guess
])
def test_01_sftp_only_nologin_account_with_a_password(shadow: str, fails: bool) -> None:
    b = bundle({MAIN: SFTP_CONFIG, "/etc/shadow": shadow}, passwd=SFTP_PASSWD, group=SFTP_GROUP)
    r = judge(ssh_password_login, b)
    if not fails:
        assert statuses(r) == ["pass"], r.findings
        return
    assert statuses(r) == ["fail"]
    assert r.summary == (
        f"Match Group sftponly ({MAIN}:3) turns on password login for uploader: PasswordAuthentication yes in "
        f"{MAIN}:4 — the only affected accounts are SFTP-only (ForceCommand internal-sftp, no login shell): "
        "sshd still accepts their passwords, so they can be guessed and give access to their files"
    )


def test_01_nologin_account_with_a_password_without_forcecommand() -> None:
    config = ("PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
              "Match User svc\n  PasswordAuthentication yes\n")
    passwd = PASSWD + "svc:x:1300:1300::/var/lib/svc:/bin/false\n"
    b = bundle({MAIN: config, "/etc/shadow": "svc:$6$salt$hash:19000:0:99999:7:::\n"}, passwd=passwd)
    r = judge(ssh_password_login, b)
    assert statuses(r) == ["fail"]
    assert r.summary.endswith("— the only affected accounts have no login shell (nologin/false): sshd still "
                              "checks their passwords, so they can be guessed")
