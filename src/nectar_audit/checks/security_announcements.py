"""Check-Security-07: have you subscribed to security announcements (and applied security updates)?"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nectar_audit.checks.base import Check, for_family
from nectar_audit.checks.updates_fix import plan_07
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts import host as host_facts
from nectar_audit.facts import updates as updates_facts
from nectar_audit.facts.host import HostInfo, host
from nectar_audit.facts.updates import (
    ALIASES,
    LISTS,
    NO_SECURITY_LISTS,
    ROOT_FORWARD,
    SOURCE_LIST,
    NoPackageLists,
    apt_config,
    apt_sources,
    packages,
    pending_updates,
    root_mail,
)
from nectar_audit.model import Evidence, Finding, Status

STALE_LISTS_DAYS = 7


@dataclass(frozen=True)
class Feed:
    name: str
    lists: tuple[tuple[str, str], ...]  # (list or feed name, URL)


FEEDS: dict[str, Feed] = {
    "ubuntu": Feed(
        "Ubuntu",
        (
            ("Ubuntu Security Notices (USN)", "https://ubuntu.com/security/notices"),
            ("USN RSS feed", "https://ubuntu.com/security/notices/rss.xml"),
            (
                "ubuntu-security-announce mailing list",
                "https://lists.ubuntu.com/mailman/listinfo/ubuntu-security-announce",
            ),
        ),
    ),
    "debian": Feed(
        "Debian",
        (
            ("debian-security-announce mailing list", "https://lists.debian.org/debian-security-announce/"),
            ("Debian Security Advisories (DSA)", "https://www.debian.org/security/"),
            ("DSA RDF feed", "https://www.debian.org/security/dsa.rdf"),
        ),
    ),
    "rocky": Feed(
        "Rocky Linux",
        (
            (
                "rocky-announce mailing list",
                "https://lists.resf.org/mailman3/lists/rocky-announce.lists.resf.org/",
            ),
            ("Rocky Linux errata (RLSA)", "https://errata.rockylinux.org/"),
        ),
    ),
    "almalinux": Feed(
        "AlmaLinux",
        (
            (
                "AlmaLinux announce mailing list",
                "https://lists.almalinux.org/mailman3/lists/announce.lists.almalinux.org/",
            ),
            ("AlmaLinux errata (ALSA)", "https://errata.almalinux.org/"),
        ),
    ),
    "fedora": Feed(
        "Fedora",
        (
            (
                "package-announce mailing list",
                "https://lists.fedoraproject.org/archives/list/package-announce@lists.fedoraproject.org/",
            ),
            ("Bodhi security updates feed", "https://bodhi.fedoraproject.org/rss/updates/?type=security"),
        ),
    ),
    "centos": Feed(
        "CentOS",
        (
            (
                "centos-announce mailing list",
                "https://lists.centos.org/hyperkitty/list/centos-announce@lists.centos.org/",
            ),
            (
                "Red Hat security advisories (RHSA), which CentOS Stream follows",
                "https://access.redhat.com/security/security-updates/",
            ),
        ),
    ),
    "rhel": Feed(
        "Red Hat Enterprise Linux",
        (
            ("rhsa-announce mailing list", "https://listman.redhat.com/mailman/listinfo/rhsa-announce"),
            ("Red Hat security advisories (RHSA)", "https://access.redhat.com/security/security-updates/"),
        ),
    ),
}


def feed_for(info: HostInfo) -> Feed | None:
    for key in (info.os.id, *info.os.id_like):
        if key in FEEDS:
            return FEEDS[key]
    return None


def _announcements(info: HostInfo) -> Finding:
    feed = feed_for(info)
    name = info.os.pretty_name or info.os.id
    if feed is None:
        return Finding(
            Status.MANUAL,
            f"subscribe to the security announcements of {name} (no list is known to "
            "this tool for it); subscription cannot be seen from the host",
            [Evidence("/etc/os-release", f"ID={info.os.id}")],
        )
    lists = "; ".join(f"{label}: {url}" for label, url in feed.lists)
    return Finding(
        Status.MANUAL,
        f"subscribe to the {feed.name} security announcements ({feed.lists[0][0]}); a subscription cannot be "
        "seen from the host",
        [
            Evidence("/etc/os-release", f"ID={info.os.id} VERSION_ID={info.os.version_id}"),
            *(Evidence(label, url) for label, url in feed.lists),
        ],
        f"Subscribe a monitored address to: {lists}. Apply security updates as soon as an advisory affects "
        "this host.",
    )


def _now(facts: Facts) -> dt.datetime:
    try:
        now = dt.datetime.fromisoformat(facts.bundle.gathered_at)
    except ValueError:
        return dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _sources(facts: Facts) -> list[Finding]:
    """Does apt fetch from the security archive? Judged on the configured sources, not the lists."""
    try:
        src = facts.get(apt_sources)
    except EvidenceError as exc:
        return [Finding(Status.ERROR, f"apt's sources cannot be read: {exc}")]
    out: list[Finding] = []
    for err in src.errors:
        out.append(
            Finding(
                Status.FAIL,
                f"apt refuses to read its sources, so it fetches no update at all: {err}",
                [Evidence(err.split(" file ", 1)[-1].split(" (", 1)[0], err)],
                "Correct or remove that entry (see sources.list(5)); `apt-get update` must run without errors",
            )
        )
    active = src.active()
    listed = [Evidence(e.origin, e.describe()) for e in active]
    sec = src.security()
    if sec:
        usable = [e for e in sec if not src.keyring_missing(e)]
        for e in sec:
            for path in src.keyring_missing(e):
                out.append(
                    Finding(
                        Status.WARN if usable else Status.FAIL,
                        f"the security archive {e.uri} {e.suite} is signed by {path}, which does not exist: apt "
                        "cannot verify it and refuses its updates",
                        [Evidence(e.origin, e.describe()), Evidence(path, "absent")],
                        f"Install the archive's keyring package (debian-archive-keyring / ubuntu-keyring) or "
                        f"correct Signed-By in {e.origin.rsplit(':', 1)[0]}",
                    )
                )
        if usable:
            e = usable[0]
            alias = (
                f"; {e.suite} is an alias whose release changes over time (this host: {src.codename})"
                if src.this_release(e) is None and src.codename
                else ""
            )
            out.append(
                Finding(
                    Status.PASS,
                    f"apt's sources include the security archive: {e.uri} {e.suite} ({e.origin}){alias}",
                    [Evidence(x.origin, x.describe()) for x in usable],
                )
            )
        return out
    why: list[str] = []
    ev: list[Evidence] = []
    for e in src.entries:
        if e.security_release is None or e.kind != "deb":
            continue
        if e.commented:
            why.append(f"{e.origin} is commented out")
        elif not e.enabled:
            why.append(f"{e.origin} has Enabled: no")
        elif e not in active:
            archs = ",".join(e.architectures(src.architectures)) or "none"
            why.append(f"{e.origin} is for architecture {archs}, not {src.native}")
        else:
            why.append(f"{e.origin} is the security archive of {e.security_release}, not of {src.codename}")
        ev.append(Evidence(e.origin, ("# " if e.commented else "") + e.describe()))
    files = ", ".join(src.files) or "no sources file"
    out.append(
        Finding(
            Status.FAIL,
            f"apt has no security archive among its configured sources ({files}"
            + (f"; {'; '.join(why)}" if why else "")
            + "): security updates never arrive",
            ev + listed or [Evidence(SOURCE_LIST, "no entry")],
            for_family(
                facts,
                {
                    "debian": "Add the security archive to /etc/apt/sources.list (Debian: "
                    "deb http://security.debian.org/debian-security <codename>-security main; "
                    "Ubuntu: deb http://security.ubuntu.com/ubuntu <codename>-security main), "
                    "then apt-get update"
                },
            ),
        )
    )
    return out


def _pending(facts: Facts) -> list[Finding]:
    try:
        ups = facts.get(pending_updates)
    except NoPackageLists as exc:
        if facts.bundle.live:
            return [Finding(Status.ERROR, f"pending security updates cannot be listed: {exc}")]
        return [
            Finding(
                Status.NOT_APPLICABLE,
                "pending security updates cannot be known from this image: it holds no downloaded package "
                "lists (usually removed when an image is built); a host booted from it fetches them with its "
                "first apt update",
                [Evidence(LISTS, "no Packages list")],
            )
        ]
    except EvidenceError as exc:
        return [Finding(Status.ERROR, f"pending security updates cannot be listed: {exc}")]
    fix = for_family(
        facts,
        {
            "debian": "apt-get update && apt-get upgrade   (security updates: unattended-upgrade -v)",
            "rhel": "dnf upgrade --security",
        },
    )
    out: list[Finding] = []
    if NO_SECURITY_LISTS in ups.notes:
        # Whether the security archive is configured is _sources' business; here: updates are not seen.
        ev = [Evidence(LISTS, "no Release file with a security suite or label")]
        if facts.bundle.live:
            out.append(
                Finding(
                    Status.WARN,
                    "apt's downloaded lists hold no security archive: `apt update` has not run successfully "
                    "since its sources were set, so pending security updates are not seen",
                    ev,
                    "apt-get update (and read its errors)",
                )
            )
        else:
            out.append(
                Finding(
                    Status.NOT_APPLICABLE,
                    "pending security updates cannot be known from this image: its downloaded lists hold no "
                    "security archive (a host booted from it fetches them with its first apt update)",
                    ev,
                )
            )
    sec = ups.security
    if sec:
        names = ", ".join(u.name for u in sec[:8]) + (f" and {len(sec) - 8} more" if len(sec) > 8 else "")
        out.append(
            Finding(
                Status.FAIL,
                f"{len(sec)} security update{'s are' if len(sec) != 1 else ' is'} not installed: {names}",
                [
                    Evidence(ups.source if not u.origin else f"{ups.source} ({u.origin})", u.describe())
                    for u in sec
                ],
                fix,
            )
        )
    elif not out:
        when = f" (package metadata from {ups.refreshed:%Y-%m-%d})" if ups.refreshed else ""
        out.append(
            Finding(
                Status.PASS,
                f"no security update is pending{when}",
                [Evidence(ups.source, "no pending security update")],
            )
        )
    if ups.refreshed is not None and _now(facts) - ups.refreshed > dt.timedelta(days=STALE_LISTS_DAYS):
        out.append(
            Finding(
                Status.WARN,
                f"the package metadata was last refreshed on {ups.refreshed:%Y-%m-%d}: security updates "
                "published since then are not seen",
                [Evidence(ups.source, f"refreshed {ups.refreshed:%Y-%m-%d}")],
                for_family(
                    facts,
                    {
                        "debian": "apt-get update (and enable APT::Periodic::Update-Package-Lists)",
                        "rhel": "dnf makecache (dnf-automatic refreshes it daily)",
                    },
                ),
            )
        )
    return out


def _mail(facts: Facts) -> Finding:
    rm = facts.get(root_mail)
    fix = (
        f"Forward root's mail to an address someone reads: add `root: you@example.org` to {ALIASES} and run "
        "newaliases (and make sure an MTA can deliver it off the host)"
    )
    extra: list[Evidence] = []
    try:
        conf = facts.get(apt_config)
        mail = conf.setting("Unattended-Upgrade::Mail")
        if mail is not None:
            extra.append(
                Evidence(mail.origin or "apt configuration", f'Unattended-Upgrade::Mail "{mail.value}"')
            )
    except EvidenceError:
        pass
    if rm.mta is None:
        return Finding(
            Status.WARN,
            "no mail transfer agent is installed: update and security notices mailed to "
            "root (cron, unattended-upgrades, dnf-automatic) reach no one",
            [Evidence("/usr/sbin/sendmail", "absent"), *extra],
            "Install an MTA that relays off the host (e.g. postfix as a satellite, or msmtp-mta) and "
            f"alias root to a monitored address in {ALIASES}",
        )
    if rm.unknown is not None:
        return Finding(
            Status.MANUAL,
            f"where root's mail goes is unknown: {rm.unknown}",
            [Evidence(ROOT_FORWARD, rm.unknown), *extra],
            fix,
        )
    kinds = {k for _, k in rm.destinations}
    where = ", ".join(d for d, _ in rm.destinations)
    hops = [Evidence(h.split(": ", 1)[0], h.split(": ", 1)[1]) for h in rm.chain]
    ev = [*(hops or [Evidence(rm.source or "/var/mail/root", f"root: {where}")]), Evidence(rm.mta, "present"), *extra]
    if rm.loop is not None:
        return Finding(
            Status.WARN,
            f"root's mail aliases loop ({rm.loop}): the MTA bounces or drops what loops"
            + (f"; it reaches {where}" if where else ""),
            ev,
            f"Break the loop in {ALIASES} (a name may end in a mailbox with `\\name`), run newaliases, and "
            "forward root to an address someone reads",
        )
    if kinds <= {"discard"}:
        return Finding(Status.WARN, f"root's mail is thrown away ({rm.source}: {where})", ev, fix)
    if "remote" in kinds or "program" in kinds:
        return Finding(Status.PASS, f"root's mail is forwarded to {where}", ev)
    return Finding(
        Status.WARN,
        f"root's mail stays on this host ({where}): update and security notices are only "
        "read if someone logs in to read them",
        ev,
        fix,
    )


def run(facts: Facts) -> list[Finding]:
    info = facts.get(host)
    findings = [_announcements(info)]
    try:
        apt = facts.get(packages).manager == "dpkg"
    except EvidenceError:
        apt = info.family == "debian"
    if apt:
        findings.extend(_sources(facts))
    findings.extend(_pending(facts))
    findings.append(_mail(facts))
    return findings


CHECK = Check(
    id="Check-Security-07",
    severity="medium",
    run=run,
    needs=host_facts.NEEDS | updates_facts.NEEDS,
    plan=plan_07,
    why="Security problems are announced on the distribution's lists before most attacks; a host whose owner "
    "does not read them, or whose security updates wait uninstalled, stays exposed.",
    how="Subscription cannot be seen from the host: the check is manual and names the exact lists and feeds "
    "for the detected distribution. It verifies what it can: apt's configured sources include this release's "
    "security archive (sources.list and sources.list.d, one-line and deb822, as apt reads them: comments, "
    "Enabled: no, Types, architectures, Signed-By keyrings, malformed entries), pending security updates (apt: "
    "installed "
    "versions against the security archive's lists, or apt-get -s dist-upgrade; dnf: updateinfo list "
    "--security --cacheonly; never refreshing metadata), stale package metadata, and whether root's mail "
    "(where update notices go) reaches anyone (/etc/aliases, ~root/.forward, an MTA).",
    fix={
        "debian": "Subscribe to the distribution's security list; apt-get update && apt-get upgrade; "
        "alias root "
        "to a monitored address in /etc/aliases",
        "rhel": "Subscribe to the distribution's security list; dnf upgrade --security; alias root to a "
        "monitored address in /etc/aliases",
    },
)
