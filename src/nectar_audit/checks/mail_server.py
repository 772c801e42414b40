"""Check-Security-02: a mail server, if any, listens only on localhost."""

from __future__ import annotations

from nectar_audit.checks.base import Check, for_family, live_listeners
from nectar_audit.facts import Facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.network import PORTS, MailServer, mail_servers
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status

# SMTP, submission, SMTPS, POP3(S), IMAP(S), ManageSieve, LMTP over TCP.
MAIL_PORTS = frozenset(PORTS.values())

_FIX = {
    "postfix": {
        "debian": "postconf -e 'inet_interfaces = loopback-only' && systemctl restart postfix  (and remove "
        "any "
        "host:port service names other than 127.0.0.1/[::1] in /etc/postfix/master.cf)",
    },
    "exim": {
        "debian": "dpkg-reconfigure exim4-config and answer '127.0.0.1 ; ::1' to 'IP-addresses to listen on' "
        "(or set dc_local_interfaces='127.0.0.1 ; ::1' in /etc/exim4/update-exim4.conf.conf, then "
        "update-exim4.conf && systemctl restart exim4)",
        "rhel": "Set local_interfaces = <; 127.0.0.1 ; ::1 in /etc/exim/exim.conf, then systemctl restart "
        "exim",
    },
    "sendmail": {
        "debian": "In /etc/mail/sendmail.mc use DAEMON_OPTIONS(`Port=smtp,Addr=127.0.0.1, Name=MTA')dnl "
        "only, "
        "then: sendmailconfig (or make -C /etc/mail) && systemctl restart sendmail",
        "rhel": "In /etc/mail/sendmail.mc use DAEMON_OPTIONS(`Port=smtp,Addr=127.0.0.1, Name=MTA')dnl only, "
        "then: make -C /etc/mail && systemctl restart sendmail",
    },
    "opensmtpd": {
        "debian": "Use 'listen on localhost' (no other 'listen on' lines) in /etc/smtpd.conf, then systemctl "
        "restart opensmtpd",
        "rhel": "Use 'listen on localhost' in /etc/opensmtpd/smtpd.conf, then systemctl restart opensmtpd",
    },
    "dovecot": {
        "debian": "Set listen = 127.0.0.1, ::1 in /etc/dovecot/dovecot.conf (or remove dovecot-imapd/-pop3d "
        "if "
        "unused), then systemctl restart dovecot",
        "rhel": "Set listen = 127.0.0.1, ::1 in /etc/dovecot/dovecot.conf (or dnf remove dovecot if "
        "unused), then "
        "systemctl restart dovecot",
    },
}
_GENERIC_FIX = (
    "Stop the service that owns the port, bind it to 127.0.0.1, or (if this host must receive "
    "mail "
    "from others) waive this check with the reason."
)


def _fix(facts: Facts, kind: str | None) -> str | None:
    fixes = _FIX.get(kind or "", {})
    return for_family(facts, fixes) if fixes else _GENERIC_FIX


def _owner_kind(servers: list[MailServer], li: Listener) -> MailServer | None:
    for srv in servers:
        if li.process is not None and any(li.process == p or li.process == p[:15] for p in srv.processes):
            return srv
    return None


def _is_mail_listener(servers: list[MailServer], li: Listener) -> bool:
    if li.proto != "tcp":
        return False
    if _owner_kind(servers, li) is not None:
        return True
    return li.port in MAIL_PORTS


def run(facts: Facts) -> list[Finding]:
    servers = facts.get(mail_servers)
    lst, findings, src = live_listeners(facts)
    mail = [li for li in (lst or []) if _is_mail_listener(servers, li)]
    # Group live listeners by the server that owns them (by process, else by a configured port).
    groups: dict[str, list[Listener]] = {}
    kinds: dict[str, MailServer | None] = {}
    for li in mail:
        srv = _owner_kind(servers, li)
        if srv is None and li.process is None:
            srv = next((s for s in servers if any(svc.port == li.port for svc in s.services)), None)
        key = srv.kind if srv is not None else f"{li.process or '?'}:{li.pid or ''}"
        groups.setdefault(key, []).append(li)
        kinds[key] = srv
    for key, items in groups.items():
        srv = kinds[key]
        exposed = [li for li in items if not li.loopback]
        procs = ", ".join(sorted({li.owner for li in items}))
        name = f"{srv.name} ({procs})" if srv else procs
        ev = [Evidence(src, li.describe()) for li in items]
        if exposed:
            eps = ", ".join(sorted({li.endpoint for li in exposed}))
            findings.append(
                Finding(
                    Status.FAIL,
                    f"{name} listens on {eps}: reachable from other hosts, not only localhost",
                    ev + (list(srv.listen.evidence) if srv else []),
                    _fix(facts, srv.kind if srv else None),
                )
            )
        else:
            eps = ", ".join(sorted({li.endpoint for li in items}))
            short = srv.name if srv else procs
            findings.append(Finding(Status.PASS, f"{short} listens on localhost only ({eps})", ev))
    for srv in servers:
        if srv.kind in groups:
            continue
        state = (
            "is not running"
            if lst is not None
            else ("is installed" if facts.bundle.live else "is installed (offline image)")
        )
        plan = srv.listen
        ev = list(plan.evidence) or [Evidence(p, "present") for p in srv.installed]
        if plan.beyond_loopback is True:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{srv.name} {state}, but its configuration makes it listen beyond localhost "
                    "when "
                    f"started: {plan.text}",
                    ev,
                    _fix(facts, srv.kind),
                )
            )
        elif plan.beyond_loopback is None:
            why = "; ".join(srv.problems) or plan.text
            findings.append(
                Finding(
                    Status.WARN,
                    f"{srv.name} {state}; cannot tell from its configuration where it would listen ({why})",
                    ev,
                    _fix(facts, srv.kind),
                )
            )
        else:
            findings.append(
                Finding(Status.PASS, f"{srv.name} {state}; configured for localhost only ({plan.text})", ev)
            )
    if not findings:
        return [
            Finding(
                Status.NOT_APPLICABLE,
                "No mail server (Postfix, Exim, Sendmail, OpenSMTPD, "
                "Dovecot) is "
                "installed" + (" or listening on a mail port" if lst is not None else ""),
            )
        ]
    return findings


CHECK = Check(
    id="Check-Security-02",
    severity="high",
    run=run,
    needs=network_facts.NEEDS | system_facts.NEEDS,
    why="A mail server reachable from the Internet is probed constantly: an open relay or a weak login is "
    "abused for spam within hours, and the cloud's address gets blocklisted. A VM that only sends its "
    "own "
    "mail needs its MTA on 127.0.0.1 only.",
    how="Live: the listening TCP sockets of mail daemons (postfix master, exim, sendmail, smtpd, dovecot) "
    "and of "
    "any process on the SMTP/submission/SMTPS/POP3/IMAP ports; one on a non-loopback address fails, "
    "naming "
    "process, address and port. Installed but stopped, or an offline image: the configuration decides "
    "where it "
    "would listen (postfix inet_interfaces, default all, and master.cf; exim dc_local_interfaces / "
    "local_interfaces; sendmail DaemonPortOptions; OpenSMTPD listen on; dovecot listen): beyond loopback "
    "warns. No mail server installed: not applicable.",
    fix={
        "debian": "Postfix: postconf -e 'inet_interfaces = loopback-only'; Exim: dpkg-reconfigure "
        "exim4-config "
        "(listen on 127.0.0.1 ; ::1); then restart the service.",
        "rhel": "Postfix: postconf -e 'inet_interfaces = loopback-only' (RHEL's default is localhost); then "
        "systemctl restart postfix.",
        "fedora": "As for RHEL.",
    },
)
