"""Check-Security-07: the announcement lists per distribution, and whether root's mail reaches anyone."""

from __future__ import annotations

import pytest

from nectar_audit.facts.updates.pending import classify_destination, parse_aliases, root_mail
from nectar_audit.model import Status
from tests.patching_helpers import Host, messages

SEC_REL = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"
SEC_LIST = (
    "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"
)


def quiet_debian() -> Host:
    """A Debian host with no pending update, an MTA and root forwarded off the host."""
    h = (
        Host()
        .dpkg()
        .stat("/usr/sbin/sendmail")
        .file("/etc/aliases", "postmaster: root\nroot: ops@example.org\n")
    )
    h.file(
        SEC_REL,
        "Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\n"
        "Date: Mon, 30 Nov 2026 10:00:00 UTC\n",
    ).stat(SEC_REL)
    h.file(SEC_LIST, "Package: libssl3\nVersion: 3.0.22-1~deb12u2\nArchitecture: amd64\n").stat(SEC_LIST)
    return h


@pytest.mark.parametrize(
    ("os", "name", "urls"),
    [
        (
            "debian12",
            "Debian",
            [
                "https://lists.debian.org/debian-security-announce/",
                "https://www.debian.org/security/",
                "https://www.debian.org/security/dsa.rdf",
            ],
        ),
        (
            "ubuntu2204",
            "Ubuntu",
            [
                "https://ubuntu.com/security/notices",
                "https://ubuntu.com/security/notices/rss.xml",
                "https://lists.ubuntu.com/mailman/listinfo/ubuntu-security-announce",
            ],
        ),
        (
            "rocky9",
            "Rocky Linux",
            [
                "https://lists.resf.org/mailman3/lists/rocky-announce.lists.resf.org/",
                "https://errata.rockylinux.org/",
            ],
        ),
        (
            "alma9",
            "AlmaLinux",
            [
                "https://lists.almalinux.org/mailman3/lists/announce.lists.almalinux.org/",
                "https://errata.almalinux.org/",
            ],
        ),
        (
            "fedora41",
            "Fedora",
            [
                "https://lists.fedoraproject.org/archives/list/package-announce@lists.fedoraproject.org/",
                "https://bodhi.fedoraproject.org/rss/updates/?type=security",
            ],
        ),
        (
            "centos9",
            "CentOS",
            [
                "https://lists.centos.org/hyperkitty/list/centos-announce@lists.centos.org/",
                "https://access.redhat.com/security/security-updates/",
            ],
        ),
    ],
)
def test_manual_with_the_exact_lists(os: str, name: str, urls: list[str]) -> None:
    r = Host(os).check(7)
    manual = r.findings[0]
    assert manual.status is Status.MANUAL
    assert manual.message.startswith(f"subscribe to the {name} security announcements (")
    assert manual.message.endswith("a subscription cannot be seen from the host")
    assert [e.detail for e in manual.evidence[1:]] == urls
    assert manual.remediation is not None and all(u in manual.remediation for u in urls)


def test_unknown_distribution() -> None:
    r = Host().file("/etc/os-release", 'ID=gentoo\nPRETTY_NAME="Gentoo Linux"\n').check(7)
    assert r.findings[0].status is Status.MANUAL
    assert "Gentoo Linux (no list is known to this tool for it)" in r.findings[0].message


def test_everything_verifiable_is_fine_so_manual() -> None:
    r = quiet_debian().check(7)
    assert r.status is Status.MANUAL, messages(r)
    assert messages(r)[1:] == [
        ("pass", "no security update is pending (package metadata from 2026-11-30)"),
        ("pass", "root's mail is forwarded to ops@example.org"),
    ]


def test_no_mta_warns() -> None:
    h = quiet_debian()
    del h.stats["/usr/sbin/sendmail"]
    r = h.check(7)
    assert r.status is Status.WARN
    assert r.summary.startswith(
        "no mail transfer agent is installed: update and security notices mailed to root"
    )


def test_root_mail_stays_local() -> None:
    h = quiet_debian().file("/etc/aliases", "postmaster: root\n")
    r = h.check(7)
    assert r.status is Status.WARN
    assert r.summary.startswith("root's mail stays on this host (/var/mail/root)")


def test_root_mail_to_local_user_or_dev_null() -> None:
    assert (
        quiet_debian()
        .file("/etc/aliases", "root: alice\n")
        .check(7)
        .summary.startswith("root's mail stays on this host (alice)")
    )
    assert (
        quiet_debian().file("/etc/aliases", "root: /dev/null\n").check(7).summary
        == "root's mail is thrown away (/etc/aliases:1: /dev/null)"
    )


def test_root_forward_file() -> None:
    h = quiet_debian().file("/etc/aliases", "postmaster: root\n").file("/root/.forward", "ops@example.org\n")
    r = h.check(7)
    assert ("pass", "root's mail is forwarded to ops@example.org") in messages(r)


def test_root_forward_unknown_without_root() -> None:
    h = Host("debian12", live=True, uid=1000).dpkg().stat("/usr/sbin/sendmail").file("/etc/aliases", "x: y\n")
    r = h.check(7)
    assert (
        "manual",
        "where root's mail goes is unknown: needs root to see whether /root/.forward exists",
    ) in messages(r)


def test_unattended_upgrades_mail_is_evidence() -> None:
    h = quiet_debian().file("/etc/apt/apt.conf.d/50unattended-upgrades", 'Unattended-Upgrade::Mail "root";\n')
    mail = h.check(7).findings[-1]  # the root mail finding comes last
    assert mail.message == "root's mail is forwarded to ops@example.org"
    assert any(e.detail == 'Unattended-Upgrade::Mail "root"' for e in mail.evidence)


def test_aliases_parser() -> None:
    text = "# comment\nroot:\talice,\n  bob@example.org,\n\t|/usr/bin/procmail\nMailer-Daemon: postmaster\n"
    aliases = parse_aliases(text)
    assert aliases["root"] == ("alice, bob@example.org, |/usr/bin/procmail", 2)
    assert aliases["mailer-daemon"] == ("postmaster", 5)
    assert [
        classify_destination(d)
        for d in ("alice", "bob@example.org", "|/x", "/var/log/m", "/dev/null", ":include:/etc/list")
    ] == ["local", "remote", "program", "file", "discard", "file"]
    rm = Host().file("/etc/aliases", text).stat("/usr/sbin/sendmail").facts().get(root_mail)
    assert rm.source == "/etc/aliases:2" and len(rm.destinations) == 3


def _mail(h: Host) -> tuple[str, str]:
    return messages(h.check(7))[-1]  # the root mail finding comes last


def test_root_alias_chain_passes() -> None:
    h = quiet_debian().file("/etc/aliases", "postmaster: root\nroot: alice\nalice: ops@example.org\n")
    assert _mail(h) == ("pass", "root's mail is forwarded to ops@example.org")
    r = h.check(7)
    assert [(e.source, e.detail) for e in r.findings[-1].evidence[:2]] == [
        ("/etc/aliases:2", "root: alice"),
        ("/etc/aliases:3", "alice: ops@example.org"),
    ]
    # Three levels, mixed case, and a continuation line.
    h.file("/etc/aliases", "Root: Admins\nadmins: bob,\n  \\carol\nbob: ops@example.org\n")
    rm = h.facts().get(root_mail)
    assert rm.destinations == (("ops@example.org", "remote"), ("carol", "local"))
    assert _mail(h) == ("pass", "root's mail is forwarded to ops@example.org, carol")


def test_root_alias_chain_through_a_users_forward() -> None:
    h = quiet_debian().file("/etc/aliases", "root: alice\n")
    h.file("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/srv/alice:/bin/bash\n")
    h.file("/srv/alice/.forward", "# alice reads mail elsewhere\n\\alice, alice@example.org\n")
    rm = h.facts().get(root_mail)
    assert rm.destinations == (("alice", "local"), ("alice@example.org", "remote"))
    assert rm.chain == ("/etc/aliases:1: root: alice", "/srv/alice/.forward: alice: \\alice, alice@example.org")
    assert _mail(h) == ("pass", "root's mail is forwarded to alice, alice@example.org")
    # Without the .forward in evidence (default home /home/alice) the mail stays local.
    h2 = quiet_debian().file("/etc/aliases", "root: alice\n")
    assert _mail(h2)[0] == "warn"


def test_root_alias_self_reference_is_a_mailbox() -> None:
    h = quiet_debian().file("/etc/aliases", "root: alice\nalice: alice, ops@example.org\n")
    assert _mail(h) == ("pass", "root's mail is forwarded to alice, ops@example.org")


def test_root_alias_loop_warns() -> None:
    h = quiet_debian().file("/etc/aliases", "root: alice\nalice: bob\nbob: root\n")
    status, message = _mail(h)
    assert status == "warn"
    assert message == (
        "root's mail aliases loop (root → alice → bob → root): the MTA bounces or drops what loops"
    )
    h.file("/etc/aliases", "root: alice, ops@example.org\nalice: root\n")
    assert _mail(h) == (
        "warn",
        "root's mail aliases loop (root → alice → root): the MTA bounces or drops what loops; it reaches "
        "ops@example.org",
    )


def test_root_alias_depth_limit() -> None:
    chain = "".join(f"u{i}: u{i + 1}\n" for i in range(20))
    h = quiet_debian().file("/etc/aliases", "root: u0\n" + chain)
    rm = h.facts().get(root_mail)
    assert rm.loop is not None and rm.loop.endswith("(deeper than 10)")
    assert _mail(h)[0] == "warn"
