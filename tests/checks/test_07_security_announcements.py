"""Check-Security-07: the announcement lists per distribution, and whether root's mail reaches anyone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.facts.updates.pending import classify_destination, parse_aliases, root_mail
from nectar_audit.model import Status
from tests.patching_helpers import Host, messages, sample

SEC_REL = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_InRelease"
SEC_LIST = "/var/lib/apt/lists/deb.debian.org_debian-security_dists_bookworm-security_main_binary-amd64_Packages"


def quiet_debian() -> Host:
    """A Debian host with no pending update, an MTA and root forwarded off the host."""
    h = (
        Host()
        .dpkg()
        .file("/etc/apt/sources.list", sample("apt/sources/debian12-lab.list"))
        .stat("/usr/sbin/sendmail")
        .file("/etc/aliases", "postmaster: root\nroot: ops@example.org\n")
    )
    h.file(
        SEC_REL,
        "Origin: Debian\nLabel: Debian-Security\nSuite: oldstable-security\nDate: Mon, 30 Nov 2026 10:00:00 UTC\n",
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
        (
            "pass",
            "apt's sources include the security archive: http://deb.debian.org/debian-security bookworm-security "
            "(/etc/apt/sources.list:3)",
        ),
        ("pass", "no security update is pending (package metadata from 2026-11-30)"),
        ("pass", "root's mail is forwarded to ops@example.org"),
    ]


def test_no_mta_warns() -> None:
    h = quiet_debian()
    del h.stats["/usr/sbin/sendmail"]
    r = h.check(7)
    assert r.status is Status.WARN
    assert r.summary.startswith("no mail transfer agent is installed: update and security notices mailed to root")


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
    assert message == ("root's mail aliases loop (root → alice → bob → root): the MTA bounces or drops what loops")
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


# -- apt's configured sources -------------------------------------------------------------------------
BOOKWORM = "deb http://deb.debian.org/debian bookworm main\n"


def _sources(text: str, *, deb822: str | None = None, lists: bool = True) -> Host:
    h = quiet_debian().file("/etc/apt/sources.list", text)
    if deb822 is not None:
        h.file("/etc/apt/sources.list.d/extra.sources", deb822).stat("/etc/apt/sources.list.d/extra.sources")
    if not lists:
        for path in (SEC_REL, SEC_LIST):
            del h.files[path]
            del h.stats[path]
    return h


def _security_verdict(h: Host) -> tuple[str, str]:
    r = h.check(7)
    return next((f.status.value, f.message) for f in r.findings if "security archive" in f.message)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BOOKWORM, "/etc/apt/sources.list"),
        (
            BOOKWORM + "# deb http://deb.debian.org/debian-security bookworm-security main\n",
            "/etc/apt/sources.list; /etc/apt/sources.list:2 is commented out",
        ),
        (
            BOOKWORM + "deb [arch=arm64] http://deb.debian.org/debian-security bookworm-security main\n",
            "/etc/apt/sources.list; /etc/apt/sources.list:2 is for architecture arm64, not amd64",
        ),
        (
            BOOKWORM + "deb http://deb.debian.org/debian-security bullseye-security main\n",
            "/etc/apt/sources.list; /etc/apt/sources.list:2 is the security archive of bullseye, not of bookworm",
        ),
        (
            BOOKWORM + "deb-src http://deb.debian.org/debian-security bookworm-security main\n",
            "/etc/apt/sources.list",
        ),
    ],
    ids=["absent", "commented", "foreign-arch", "other-release", "source-only"],
)
def test_no_configured_security_archive_fails(text: str, why: str) -> None:
    # The downloaded lists still hold the security archive: they do not count, the sources do.
    assert _security_verdict(_sources(text)) == (
        "fail",
        f"apt has no security archive among its configured sources ({why}): security updates never arrive",
    )


def test_security_archive_configured_without_lists_passes() -> None:
    h = _sources(sample("apt/sources/debian12-lab.list"), lists=False)
    r = h.check(7)
    assert messages(r)[1:3] == [
        (
            "pass",
            "apt's sources include the security archive: http://deb.debian.org/debian-security bookworm-security "
            "(/etc/apt/sources.list:3)",
        ),
        (
            "not_applicable",
            "pending security updates cannot be known from this image: it holds no downloaded package lists "
            "(usually removed when an image is built); a host booted from it fetches them with its first apt "
            "update",
        ),
    ]


def test_deb822_sources() -> None:
    ubuntu = (
        Host("ubuntu2404")
        .dpkg()
        .file("/etc/apt/sources.list.d/ubuntu.sources", sample("apt/sources/ubuntu2404-cloud.sources"))
    )
    ubuntu.stat("/etc/apt/sources.list.d/ubuntu.sources").stat("/usr/share/keyrings/ubuntu-archive-keyring.gpg")
    assert _security_verdict(ubuntu) == (
        "pass",
        "apt's sources include the security archive: http://security.ubuntu.com/ubuntu/ noble-security "
        "(/etc/apt/sources.list.d/ubuntu.sources:52)",
    )
    disabled = sample("apt/sources/ubuntu2404-cloud.sources").replace(
        "Suites: noble-security\n", "Suites: noble-security\nEnabled: no\n"
    )
    h = Host("ubuntu2404").dpkg().file("/etc/apt/sources.list.d/ubuntu.sources", disabled)
    h.stat("/etc/apt/sources.list.d/ubuntu.sources")
    assert _security_verdict(h) == (
        "fail",
        "apt has no security archive among its configured sources (/etc/apt/sources.list.d/ubuntu.sources; "
        "/etc/apt/sources.list.d/ubuntu.sources:52 has Enabled: no): security updates never arrive",
    )
    # A keyring that is not there: apt cannot verify the archive.
    missing = (
        Host("ubuntu2404")
        .dpkg()
        .file("/etc/apt/sources.list.d/ubuntu.sources", sample("apt/sources/ubuntu2404-cloud.sources"))
    )
    missing.stat("/etc/apt/sources.list.d/ubuntu.sources")
    assert _security_verdict(missing)[0] == "fail"
    assert _security_verdict(missing)[1].startswith(
        "the security archive http://security.ubuntu.com/ubuntu/ noble-security is signed by "
        "/usr/share/keyrings/ubuntu-archive-keyring.gpg, which does not exist"
    )


def test_malformed_entry_and_ignored_files() -> None:
    h = _sources(sample("apt/sources/debian12-lab.list"))
    h.file("/etc/apt/sources.list.d/bad.list", "deb http://bad.example/\n").stat("/etc/apt/sources.list.d/bad.list")
    h.file("/etc/apt/sources.list.d/old.list.save", "deb http://deb.debian.org/debian-security x-security main\n")
    r = h.check(7)
    assert (
        "fail",
        "apt refuses to read its sources, so it fetches no update at all: Malformed entry 1 in list file "
        "/etc/apt/sources.list.d/bad.list (no URI and suite)",
    ) in messages(r)


def test_credentials_in_source_uris_are_blanked() -> None:
    from nectar_audit.facts.updates.sources import sanitize_sources

    text = "deb [signed-by=/k.gpg] https://bob:s3cret@repo.example/debian bookworm main\n"
    assert sanitize_sources(text.encode()) == (
        "deb [signed-by=/k.gpg] https://<redacted>@repo.example/debian bookworm main\n"
    )


@settings(max_examples=80, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_garbage_sources_never_crash(one_line: str, deb822: str) -> None:
    from nectar_audit.facts.updates.sources import parse_deb822, parse_one_line

    parse_one_line(one_line, "/etc/apt/sources.list")
    parse_deb822(deb822, "/etc/apt/sources.list.d/x.sources")
    r = _sources(one_line, deb822=deb822).check(7)
    assert r.status is not Status.ERROR, messages(r)
