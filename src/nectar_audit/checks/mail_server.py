"""Check-Security-02: a mail server, if any, listens only on localhost."""

from __future__ import annotations

import re

from nectar_audit.checks import net_fix
from nectar_audit.checks.base import Check, for_family, live_listeners
from nectar_audit.checks.base import family as host_family
from nectar_audit.facts import Facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.network import (
    DOVECOT_CONF,
    EXIM_CONFS,
    EXIM_DEBIAN,
    EXIM_LOCALMACROS,
    PORTS,
    POSTFIX_MAIN,
    MailServer,
    dovecot_settings,
    mail_servers,
    parse_main_cf,
    postfix_param,
)
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy, Step, drop_in

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


# ==================================================================================================
# The fix: each failing server bound to loopback where its setting takes effect, checked, restarted.
LOOPBACK_ONLY = ("127.0.0.1", "::1")
DOVECOT_DROPIN = "/etc/dovecot/conf.d/99-nectar-audit-02.conf"
_WHY = "Check-Security-02: a mail server listens on localhost only"


def _beyond(addr: str) -> bool:
    a = addr.strip().strip("[]").lower()
    return a not in ("loopback-only", "localhost", "127.0.0.1", "::1", "lo") and not a.startswith("127.")


def _plan_postfix(facts: Facts, srv: MailServer, ed: net_fix.Edits, out: dict[str, list[Step]]) -> None:
    params = parse_main_cf(ed.text(POSTFIX_MAIN) or "")
    ii = postfix_param(params, "inet_interfaces")
    if any(_beyond(a) for a in re.split(r"[\s,]+", ii) if a) or not ii.strip():
        # postconf is Postfix's own editor of main.cf: it replaces the one line, or adds it.
        out["commands"].append(Step("postconf -e 'inet_interfaces = loopback-only'",
                                    "Postfix accepts connections on loopback only", (POSTFIX_MAIN,)))
    for svc in srv.services:
        hosts = [a for a in svc.addresses if a != ii and _beyond(a) and a not in re.split(r"[\s,]+", ii)]
        if hosts:
            where = ", ".join(e.source for e in svc.evidence[:1])
            ed.manual.append(f"Postfix's master.cf binds port {svc.port} to {', '.join(hosts)} ({where}): "
                             "prefix that service with 127.0.0.1: or remove it")
    out["validate"].append(Step("postfix check", "Postfix's own configuration check"))
    # inet_interfaces is read only when the master starts: a reload is not enough.
    out["activate"].append(net_fix.restart("postfix", "/var/spool/postfix/pid/master.pid", "postfix start",
                                           "Postfix binds its listeners again"))


def _exim_main_setting(text: str, name: str) -> int | None:
    """The line of the last ``name = …`` of an Exim configuration's main section."""
    found = None
    for no, raw in enumerate(text.split("\n"), 1):
        if re.match(r"\s*begin\s+\w+", raw):
            break
        if re.match(rf"\s*{name}\s*=", raw):
            found = no
    return found


def _plan_exim(facts: Facts, ed: net_fix.Edits, out: dict[str, list[Step]]) -> None:
    debian = host_family(facts) == "debian" or ed.text(EXIM_DEBIAN) is not None
    binary = "exim4" if debian else "exim"
    conf = next((p for p in EXIM_CONFS if ed.text(p) is not None), None)
    if conf is not None:
        # A monolithic configuration (RHEL's exim.conf, or Debian's /etc/exim4/exim4.conf when present)
        # is read directly: its main section's local_interfaces decides.
        text = ed.text(conf) or ""
        line = _exim_main_setting(text, "local_interfaces")
        new = "local_interfaces = <; 127.0.0.1 ; ::1"
        if line is not None:
            ed.replace(conf, line, [new])
        else:
            ed.prepend(conf, [new])
        validate = f"{binary} -bV -C {net_fix.q(conf)} >/dev/null"
    else:
        macros = ed.text(EXIM_LOCALMACROS)
        mac = re.search(r"(?m)^\s*MAIN_LOCAL_INTERFACES\s*=.*$", macros or "")
        if macros is not None and mac is not None:
            ed.replace(EXIM_LOCALMACROS, macros[: mac.start()].count("\n") + 1,
                       ["MAIN_LOCAL_INTERFACES = <; 127.0.0.1 ; ::1"])
        else:
            debconf = ed.text(EXIM_DEBIAN)
            if debconf is None:
                ed.manual.append(f"{EXIM_DEBIAN} could not be read: run dpkg-reconfigure exim4-config")
                return
            new = "dc_local_interfaces='127.0.0.1 ; ::1'"
            lines = [no for no, raw in enumerate(debconf.split("\n"), 1)
                     if re.match(r"\s*dc_local_interfaces\s*=", raw)]
            if lines:
                ed.replace(EXIM_DEBIAN, lines[-1], [new])
            else:
                ed.prepend(EXIM_DEBIAN, [new])
        # Debian's exim reads the configuration update-exim4.conf generates from these files.
        out["commands"].append(Step("update-exim4.conf", "Debian's exim configuration is generated again",
                                    ("/var/lib/exim4/config.autogenerated",)))
        validate = f"{binary} -bV >/dev/null"
    out["validate"].append(Step(validate, "Exim's own configuration check"))
    pidfile = "/run/exim4/exim.pid" if debian else "/run/exim.pid"
    start = net_fix.start_command(binary, f"{binary} -bd -q30m")
    out["activate"].append(net_fix.restart(binary, pidfile, start, "Exim binds its listeners again"))


def _plan_dovecot(facts: Facts, ed: net_fix.Edits, out: dict[str, list[Step]]) -> None:
    settings = facts.get(dovecot_settings)
    listens = [s for s in settings if not s.path and s.key == "listen"]
    new = "listen = " + ", ".join(LOOPBACK_ONLY)
    if listens:
        last = listens[-1]
        if any(_beyond(a) for a in last.value.split(",") if a.strip()) or not last.value.strip():
            ed.replace(last.file, last.line, [new])  # the last top-level listen is the one Dovecot uses
    elif re.search(r"(?m)^\s*!include\s+conf\.d/\*\.conf\s*$", ed.text(DOVECOT_CONF) or ""):
        ed.whole(drop_in(DOVECOT_DROPIN, [new], ed.text(DOVECOT_DROPIN), _WHY))
    else:
        ed.prepend(DOVECOT_CONF, [new])
    for s in settings:
        if (len(s.path) == 2 and s.path[1].startswith("inet_listener") and s.key == "address"
                and any(_beyond(a) for a in s.value.split(",") if a.strip())):
            ed.disable(s.file, s.line)  # the listener then uses the global listen
    out["validate"].append(Step("doveconf -n >/dev/null", "Dovecot's own configuration check"))
    out["activate"].append(net_fix.restart("dovecot", "/run/dovecot/master.pid",
                                           net_fix.start_command("dovecot", "dovecot"),
                                           "Dovecot binds its listeners again"))


def plan(facts: Facts) -> Remedy | None:
    """Postfix (postconf -e), Exim (Debian's debconf file or the main section) and Dovecot (the listen that
    takes effect) bound to loopback; Sendmail and OpenSMTPD are left to a human."""
    servers = facts.get(mail_servers)
    failing = net_fix.failing_names(run, facts, [s.name for s in servers])
    todo = [s for s in servers if s.name in failing]
    if not todo:
        return None
    ed = net_fix.Edits(facts, _WHY)
    out: dict[str, list[Step]] = {"commands": [], "validate": [], "activate": []}
    done = []
    for srv in todo:
        if srv.kind == "postfix":
            _plan_postfix(facts, srv, ed, out)
        elif srv.kind == "exim":
            _plan_exim(facts, ed, out)
        elif srv.kind == "dovecot":
            _plan_dovecot(facts, ed, out)
        else:
            ed.manual.append(f"{srv.name}: {_fix(facts, srv.kind)}")
            continue
        done.append(srv.name)
    changes = ed.changes()
    summary = (f"make {', '.join(done)} listen on localhost only" if done
               else "no automatic fix for " + ", ".join(s.name for s in todo))
    return Remedy("Check-Security-02", summary, (), changes, tuple(out["commands"]), tuple(out["validate"]),
                  tuple(out["activate"]), tuple(ed.manual))


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
    plan=plan,
    fix={
        "debian": "Postfix: postconf -e 'inet_interfaces = loopback-only'; Exim: dpkg-reconfigure "
        "exim4-config "
        "(listen on 127.0.0.1 ; ::1); then restart the service.",
        "rhel": "Postfix: postconf -e 'inet_interfaces = loopback-only' (RHEL's default is localhost); then "
        "systemctl restart postfix.",
        "fedora": "As for RHEL.",
    },
)
