"""Checks 01 (SSH password login), 17 (root SSH login) and 18 (SSH port) on evidence bundles.

Each trap the issue lists has a bundle here; statuses and messages are asserted exactly enough that a
wrong culprit or a silent pass fails the test.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import Entry
from nectar_audit.checks import root_ssh_login, ssh_password_login, ssh_port
from nectar_audit.config import Config
from nectar_audit.engine import run_check
from nectar_audit.evidence.bundle import Bundle, CommandRecord, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.model import CheckResult, Status
from tests import SAMPLES

SAMPLES = SAMPLES / "sshd"
MAIN = "/etc/ssh/sshd_config"
D = "/etc/ssh/sshd_config.d"
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
ROCKY = (
    'PRETTY_NAME="Rocky Linux 9.4 (Blue Onyx)"\nNAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\n'
    'ID_LIKE="rhel centos fedora"\n'
)
PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "ubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\nalice:x:1001:1001::/home/alice:/bin/bash\n"
    "svc:x:998:998::/var/lib/svc:/usr/sbin/nologin\n"
)
GROUP = "root:x:0:\nsudo:x:27:ubuntu\nubuntu:x:1000:\nalice:x:1001:\nsftponly:x:1002:alice\n"
REG = 0o100644


def debian12() -> dict[str, str]:
    return {MAIN: (SAMPLES / "debian-12" / "sshd_config").read_text()}


def distro_files(distro: str) -> dict[str, str]:
    base = SAMPLES / distro
    files = {MAIN: (base / "sshd_config").read_text()}
    if (base / "sshd_config.d").is_dir():
        for f in sorted((base / "sshd_config.d").iterdir()):
            files[f"{D}/{f.name}"] = f.read_text()
    return files


def bundle(
    files: dict[str, str],
    *,
    live: bool = False,
    uid: int | None = 0,
    os_release: str = UBUNTU,
    installed: bool = True,
    commands: dict[str, CommandRecord] | None = None,
    stats: dict[str, StatRecord] | None = None,
    unreadable: dict[str, str] | None = None,
    passwd: str = PASSWD,
    group: str = GROUP,
) -> Bundle:
    b = Bundle("test", "local" if live else "rootfs", live, uid=uid if live else None)
    b.add_file("/etc/os-release", os_release.encode())
    b.add_file("/etc/passwd", passwd.encode())
    b.add_file("/etc/group", group.encode())
    for path, text in files.items():
        b.add_file(path, text.encode())
    for path, reason in (unreadable or {}).items():
        b.add_unreadable(path, reason)
    if installed:
        b.stats["/usr/sbin/sshd"] = StatRecord(0o100755, 0, 0, 900000, 0)
    b.stats["/etc/ssh"] = StatRecord(0o40755, 0, 0, 4096, 0)
    for path in files:
        if path.startswith("/etc/ssh/"):
            b.stats[path] = StatRecord(REG, 0, 0, len(files[path]), 0)
    b.stats.update(stats or {})
    b.commands.update(commands or {})
    return b


def judge(module: object, b: Bundle, config: Config | None = None) -> CheckResult:
    check = module.CHECK  # type: ignore[attr-defined]
    return run_check(Entry(check.id, "q", "m", check), Facts(b, config or Config()))


def statuses(result: CheckResult) -> list[str]:
    return [f.status.value for f in result.findings]


def runtime(per_user: dict[str, str]) -> CommandRecord:
    """The sshd.T command output: sshd -T lines per user (given as one text each)."""
    parts = [f"@@user {u}\n{text.strip()}\n@@rc 0" for u, text in per_user.items()]
    return CommandRecord("\n".join(parts) + "\n")


SSHD_T_BASE = """port 22
addressfamily any
listenaddress [::]:22
listenaddress 0.0.0.0:22
usepam yes
permitrootlogin without-password
pubkeyauthentication yes
passwordauthentication {pa}
kbdinteractiveauthentication no
permitemptypasswords no
authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2
authenticationmethods any
"""


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


def test_01_permit_empty_passwords_fails() -> None:
    r = judge(
        ssh_password_login,
        bundle(
            {MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitEmptyPasswords yes\n"}
        ),
    )
    assert statuses(r) == ["fail"]
    assert r.summary.startswith(
        f"accounts with an empty password can log in over SSH: PermitEmptyPasswords yes in {MAIN}:3"
    )


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


# ==================================================================================================
# Check 18
# ==================================================================================================
LINK = 0o120777


def test_18_default_port_fails() -> None:
    r = judge(ssh_port, bundle(debian12()))
    assert statuses(r) == ["fail"]
    assert r.summary == "SSH listens on port 22: 22 is the default port every scanner tries"
    rem = r.findings[0].remediation or ""
    assert rem.startswith("NEWPORT=2222")
    assert "sudo ufw allow" in rem and "jail.d/nectar-audit-ssh-port.local" in rem
    assert 'echo "Port $NEWPORT" | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit-port.conf' in rem
    assert "sudo systemctl restart ssh" in rem


def test_18_custom_port_passes_with_reminder() -> None:
    files = debian12()
    files[f"{D}/port.conf"] = "Port 2222\n"
    r = judge(ssh_port, bundle(files))
    assert statuses(r) == ["pass"]
    assert r.summary == (
        "SSH listens on port 2222, not 22 and not below 1024; remember: the Nectar security group "
        "of this instance must allow TCP 2222 (and then no longer 22), and the fail2ban sshd jail "
        "must watch port 2222"
    )
    assert r.findings[0].evidence[0].source == f"{D}/port.conf:1"


def test_18_low_port_and_second_port() -> None:
    r = judge(ssh_port, bundle({MAIN: "Port 222\n"}))
    assert r.summary == (
        "SSH listens on port 222: ports below 1024 are reserved for system services; use one "
        "from 1024 to 65535"
    )
    r = judge(ssh_port, bundle({MAIN: "Port 22\nPort 2222\n"}))
    assert statuses(r) == ["fail"]
    assert r.summary.endswith("(it also listens on 2222)")
    assert f"remove `Port 22` at {MAIN}:1" in (r.findings[0].remediation or "")


def test_18_listen_address_with_port() -> None:
    r = judge(ssh_port, bundle({MAIN: "Port 22\nListenAddress 0.0.0.0:2200\n"}))
    assert r.status is Status.PASS and "port 2200" in r.summary


def test_18_rhel_remediation() -> None:
    r = judge(ssh_port, bundle(distro_files("rocky-9"), os_release=ROCKY))
    rem = r.findings[0].remediation or ""
    assert 'semanage port -a -t ssh_port_t -p tcp "$NEWPORT"' in rem
    assert "firewall-cmd --permanent --add-port" in rem
    assert "sudo systemctl restart sshd" in rem


def socket_stats(generator: bool = False) -> dict[str, StatRecord]:
    st_ = {
        "/etc/systemd/system/sockets.target.wants/ssh.socket": StatRecord(LINK, 0, 0, 32, 0),
        "/etc/systemd/system/ssh.service.requires/ssh.socket": StatRecord(LINK, 0, 0, 32, 0),
    }
    if generator:
        st_["/usr/lib/systemd/system-generators/sshd-socket-generator"] = StatRecord(0o100755, 0, 0, 9000, 0)
    return st_


def ubuntu_socket_files(port: str | None) -> dict[str, str]:
    files = distro_files("ubuntu-22.04")
    files["/usr/lib/systemd/system/ssh.socket"] = (SAMPLES / "ubuntu-24.04" / "ssh.socket").read_text()
    if port:
        files[f"{D}/port.conf"] = f"Port {port}\n"
    return files


def test_18_socket_activation_ignores_sshd_port_without_generator() -> None:
    # Ubuntu 22.10/23.04: ssh.socket decides, the Port line in sshd_config is not used.
    r = judge(ssh_port, bundle(ubuntu_socket_files("2222"), stats=socket_stats()))
    assert statuses(r) == ["fail"]
    assert r.summary == (
        "SSH listens on port 22 by ssh.socket (socket activation): 22 is the default port every scanner tries"
    )
    details = " ".join(e.detail for e in r.findings[0].evidence)
    assert "sshd's own Port/ListenAddress (2222) is not used" in details
    assert "sudo systemctl edit ssh.socket" in (r.findings[0].remediation or "")


def test_18_socket_activation_with_generator_offline_image() -> None:
    # Ubuntu 24.04 image: at boot sshd-socket-generator copies Port 2222 into the socket.
    r = judge(ssh_port, bundle(ubuntu_socket_files("2222"), stats=socket_stats(generator=True)))
    assert statuses(r) == ["pass"]
    assert r.summary.startswith("SSH listens on port 2222 by ssh.socket (socket activation)")


def test_18_socket_activation_generator_live_not_reloaded() -> None:
    # Live 24.04, Port changed but no daemon-reload: no generated drop-in, the socket still has 22.
    b = bundle(
        ubuntu_socket_files("2222"),
        live=True,
        stats=socket_stats(generator=True),
        commands={"sshd.T": CommandRecord("@@skipped not root\n")},
    )
    r = judge(ssh_port, b)
    assert r.status is Status.FAIL and "port 22 by ssh.socket" in r.summary
    rem = r.findings[0].remediation or ""
    assert "sudo systemctl daemon-reload && sudo systemctl restart ssh.socket" in rem
    # After daemon-reload the generated drop-in moves the socket.
    files = ubuntu_socket_files("2222")
    files["/run/systemd/generator/ssh.socket.d/addresses.conf"] = (
        "# Automatically generated by sshd-socket-generator\n\n"
        "[Socket]\nListenStream=\nListenStream=0.0.0.0:2222\n"
    )
    r = judge(
        ssh_port,
        bundle(
            files,
            live=True,
            stats=socket_stats(generator=True),
            commands={"sshd.T": CommandRecord("@@skipped not root\n")},
        ),
    )
    assert r.status is Status.PASS


def test_18_masked_socket_uses_sshd_ports() -> None:
    st_ = {**socket_stats(), "/etc/systemd/system/ssh.socket": StatRecord(LINK, 0, 0, 9, 0)}
    r = judge(ssh_port, bundle(ubuntu_socket_files("2222"), stats=st_))
    assert r.status is Status.PASS


def test_18_running_sshd_still_on_old_port() -> None:
    ss = (
        '#ss\ntcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)) uid:0 ino:1 sk:1 <->\n'
        'tcp LISTEN 0 128 127.0.0.1:25 0.0.0.0:* users:(("exim4",pid=90,fd=3)) uid:101 ino:2 sk:2 <->\n'
        "#bindv6only 0\n"
    )
    cmd = runtime(
        {
            "root": SSHD_T_BASE.format(pa="no")
            .replace("port 22\n", "port 2222\n")
            .replace("[::]:22", "[::]:2222")
            .replace("0.0.0.0:22", "0.0.0.0:2222")
        }
    )
    b = bundle({MAIN: "Port 2222\n"}, live=True, commands={"sshd.T": cmd, "sockets.ss": CommandRecord(ss)})
    r = judge(ssh_port, b)
    assert statuses(r) == ["fail"]
    assert r.summary == (
        "the running sshd still listens on port 22, which the configuration no longer names: "
        "restart it (sudo systemctl restart ssh): 22 is the default port every scanner tries "
        "(it also listens on 2222)"
    )


def test_18_not_installed() -> None:
    assert judge(ssh_port, bundle({}, installed=False)).status is Status.NOT_APPLICABLE


def test_public_fact_api() -> None:
    from nectar_audit.facts.ssh.sshd import sshd_config, sshd_listen_ports, sshd_uses_pam

    f = Facts(bundle(distro_files("ubuntu-24.04")))
    assert sshd_listen_ports(f) == [22]
    assert sshd_uses_pam(f) is True
    cfg = f.get(sshd_config)
    assert cfg.installed and cfg.match_blocks == []
    assert cfg.global_settings["passwordauthentication"].where == f"{D}/50-cloud-init.conf:1"
    assert (
        cfg.effective(user="ubuntu", groups=["sudo"], host="x", addr="192.0.2.1")["passwordauthentication"]
        == "yes"
    )


def test_01_many_login_accounts_are_grouped() -> None:
    import time

    passwd = PASSWD + "".join(f"u{i}:x:{2000 + i}:100::/home/u{i}:/bin/bash\n" for i in range(100000))
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMatch User u7\n"
        "  PasswordAuthentication yes\n"
    }
    t0 = time.perf_counter()
    r = judge(ssh_password_login, bundle(files, passwd=passwd))
    assert time.perf_counter() - t0 < 10
    assert (
        r.summary
        == f"Match User u7 ({MAIN}:3) turns on password login for u7: PasswordAuthentication yes in {MAIN}:4"
    )


def test_service_command_line_options_win() -> None:
    # ssh.service runs `sshd -D $SSHD_OPTS`: -o beats every file, -p replaces the Port lines.
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPort 22\n",
        "/etc/default/ssh": "# Default settings for openssh-server.\n"
        'SSHD_OPTS="-o PasswordAuthentication=yes -p 2222"\n',
    }
    r = judge(ssh_password_login, bundle(files))
    assert r.summary.startswith("password login is on: PasswordAuthentication yes in /etc/default/ssh:2")
    assert judge(ssh_port, bundle(files)).summary.startswith("SSH listens on port 2222, not 22")
    # sshd -T is not given the service's options: the command line still wins over its answer.
    cmd = runtime({u: SSHD_T_BASE.format(pa="no") for u in ("root", "nectar-new-user", "ubuntu", "alice")})
    r = judge(ssh_password_login, bundle(files, live=True, commands={"sshd.T": cmd}))
    assert r.summary.startswith("password login is on: PasswordAuthentication yes in /etc/default/ssh:2")
    assert judge(ssh_port, bundle(files, live=True, commands={"sshd.T": cmd})).status is Status.PASS


def test_service_started_with_other_config_file_warns() -> None:
    files = {
        MAIN: "PasswordAuthentication no\nKbdInteractiveAuthentication no\n",
        "/etc/sysconfig/sshd": "OPTIONS='-f /srv/sshd.conf'\n",
    }
    r = judge(ssh_password_login, bundle(files, os_release=ROCKY))
    assert statuses(r) == ["pass", "warn"]
    assert (
        r.summary
        == "sshd is started with -f /srv/sshd.conf: its configuration is that file, not /etc/ssh/sshd_config"
    )
