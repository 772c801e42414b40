"""Check-Security-06: an NTP server, if any, serves only trusted hosts and has monlist off."""

from __future__ import annotations

import ipaddress

from nectar_audit.checks import net_fix
from nectar_audit.checks.base import Check, for_family, live_listeners
from nectar_audit.checks.base import family as host_family
from nectar_audit.facts import Facts
from nectar_audit.facts import net as net_facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.net import ANY4, ANY6, Grant, ListenPlan, Net, Verdict, intersect, judge, local_networks
from nectar_audit.facts.network import (
    MONLIST_FIXED,
    NtpServer,
    chrony_subnet,
    firewall_reach,
    limit,
    ntp_servers,
    parse_chrony_conf,
)
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy, Step

_FIXED = "{}.{}.{}p{}".format(*MONLIST_FIXED)


def _fix(facts: Facts, srv: NtpServer, what: str) -> str | None:
    if srv.kind in ("ntpd", "ntpsec"):
        conf = srv.config or ("/etc/ntpsec/ntp.conf" if srv.kind == "ntpsec" else "/etc/ntp.conf")
        unit = "ntpsec" if srv.kind == "ntpsec" else "ntp"
        if what == "monlist":
            return (
                f"Upgrade ntp to {_FIXED} or later (every supported release has it), and add 'disable "
                "monitor' "
                f"and 'noquery' to the 'restrict default' lines of {conf}; then systemctl restart {unit}"
            )
        if what == "query":
            return f"Add noquery to the 'restrict default' lines of {conf}; then systemctl restart {unit}"
        return (
            f"If this host only keeps its own clock: add noserve to the 'restrict default' lines of "
            f"{conf} "
            "(or use chrony/systemd-timesyncd, which serve no one by default). To serve a subnet: keep "
            "noserve on default and add 'restrict <network> mask <mask> nomodify nopeer noquery'. Then "
            f"systemctl restart {unit}; or block UDP 123 in the host firewall."
        )
    if srv.kind == "chrony":
        fixes = {
            "debian": (
                "In /etc/chrony/chrony.conf (and /etc/chrony/conf.d/) replace a bare 'allow' (everyone) by "
                "'allow <trusted network>' lines, or remove them for a client-only host; cmdallow likewise; "
                "then systemctl restart chrony"
            ),
            "rhel": (
                "In /etc/chrony.conf replace a bare 'allow' (everyone) by 'allow <trusted network>' lines, "
                "or remove them for a client-only host; cmdallow likewise; then systemctl restart chronyd"
            ),
        }
        return for_family(facts, fixes)
    if srv.kind == "openntpd":
        return (
            "Remove 'listen on *' from the OpenNTPD ntpd.conf (or 'listen on 127.0.0.1'), then restart "
            "openntpd"
        )
    return None


def _exposed(lst: list[Listener] | None, srv: NtpServer, port: int) -> tuple[bool | None, list[Listener]]:
    if lst is None:
        return None, []
    mine = [
        li
        for li in lst
        if li.proto == "udp"
        and li.port == port
        and (li.process is None or any(li.process == p or li.process == p[:15] for p in srv.processes))
    ]
    return bool(mine), mine


def _serving(
    facts: Facts,
    srv: NtpServer,
    grant: Grant,
    plan: ListenPlan,
    running: bool | None,
    mine: list[Listener],
    port: int,
) -> tuple[bool | None, Verdict, Verdict, list[Evidence]]:
    """(reachable, verdict before / after the host firewall, evidence)."""
    trusted = list(facts.config.trusted_networks)
    local = facts.get(local_networks)
    exposed = [li for li in mine if not li.loopback]
    reachable = bool(exposed) if running else plan.beyond_loopback
    raw = judge(grant, trusted, local)
    # NTP (modes 3, 6 and 7) and chronyd's command port are UDP only: unlike DNS there is no TCP
    # transport to ask the firewall about (NTS-KE on TCP 4460 hands out keys, it serves no time).
    reach = firewall_reach(facts, "udp", port)
    verdict = judge(limit(grant, reach), trusted, local)
    ev: list[Evidence] = []
    if reach.text != "host firewall not evaluated":
        ev.append(Evidence("host firewall", reach.text))
    return reachable, raw, verdict, ev


def _untrusted(verdict: Verdict) -> str:
    if verdict.text.startswith("any host"):
        return verdict.text
    return f"{verdict.text} (not a trusted network)"


def _where(running: bool | None, mine: list[Listener], plan: ListenPlan) -> str:
    exposed = sorted({li.endpoint for li in mine if not li.loopback})
    if running and exposed:
        return f"listening on {', '.join(exposed)}"
    state = " (not running now)" if running is False else ""
    return f"configured to listen on {plan.text}{state}"


def _judge_server(facts: Facts, srv: NtpServer, lst: list[Listener] | None, src: str) -> list[Finding]:
    out: list[Finding] = []
    running, mine = _exposed(lst, srv, 123)
    live_ev = [Evidence(src, li.describe()) for li in mine]
    base_ev = list(srv.evidence) + list(srv.listen.evidence) + live_ev
    if srv.kind == "timesyncd":
        return [
            Finding(
                Status.PASS,
                "systemd-timesyncd is an NTP client only: it serves time to no one",
                [Evidence(p, "present") for p in srv.installed],
            )
        ]
    exposed = [li for li in mine if not li.loopback]
    if srv.client_only and not exposed:
        out.append(Finding(Status.PASS, f"{srv.name} is a client only: {srv.listen.text}", base_ev))
    else:
        reachable, raw, verdict, fw_ev = _serving(facts, srv, srv.serve, srv.listen, running, mine, 123)
        ev = base_ev + fw_ev
        if reachable is False:
            out.append(
                Finding(Status.PASS, f"{srv.name} serves time on loopback only ({srv.listen.text})", ev)
            )
        elif verdict.level in ("none", "local", "trusted"):
            if verdict.level != raw.level:
                out.append(
                    Finding(
                        Status.PASS,
                        f"{srv.name} would serve time to {raw.text}, but the host firewall lets "
                        + ("no other host" if verdict.level in ("none", "local") else f"only {verdict.text}")
                        + " reach UDP port 123",
                        ev,
                    )
                )
            else:
                out.append(Finding(Status.PASS, f"{srv.name} serves time to {verdict.text}", ev))
        elif verdict.level == "untrusted":
            status = Status.FAIL if running else Status.WARN
            out.append(
                Finding(
                    status,
                    f"{srv.name} serves time to {_untrusted(verdict)}, "
                    f"{_where(running, mine, srv.listen)}: access to the NTP server is not limited",
                    ev,
                    _fix(facts, srv, "serve"),
                )
            )
        else:
            out.append(
                Finding(
                    Status.WARN,
                    f"{srv.name}: cannot decide whom it serves ({verdict.text}), "
                    f"{_where(running, mine, srv.listen)}",
                    ev,
                    _fix(facts, srv, "serve"),
                )
            )
    out.extend(_queries(facts, srv, lst, src, running, mine))
    for problem in srv.problems:
        out.append(Finding(Status.WARN, f"{srv.name}: {problem}"))
    return out


def _queries(
    facts: Facts,
    srv: NtpServer,
    lst: list[Listener] | None,
    src: str,
    running: bool | None,
    mine: list[Listener],
) -> list[Finding]:
    out: list[Finding] = []
    if srv.kind in ("ntpd", "ntpsec"):
        reachable, _raw, verdict, fw_ev = _serving(facts, srv, srv.query, srv.listen, running, mine, 123)
        ev = list(srv.evidence) + fw_ev
        open_queries = reachable is not False and verdict.level in ("untrusted", "unknown", "localnets")
        ver = f"{srv.version} ({srv.version_source})" if srv.version else "unknown version"
        if srv.monlist is True and open_queries:
            status = Status.FAIL if running else Status.WARN
            out.append(
                Finding(
                    status,
                    f"{srv.name} {srv.version} answers mode 7 'monlist' queries from "
                    f"{verdict.text}: before {_FIXED} with monitoring on (no 'disable monitor') "
                    "it is a "
                    "DDoS amplifier",
                    [*ev, Evidence(srv.version_source or "version", ver)],
                    _fix(facts, srv, "monlist"),
                )
            )
        elif srv.monlist is True:
            out.append(
                Finding(
                    Status.WARN,
                    f"{srv.name} {srv.version} supports 'monlist' (before {_FIXED}) "
                    "with "
                    f"monitoring on; queries are limited to {verdict.text}, but upgrade or add "
                    "'disable monitor'",
                    ev,
                    _fix(facts, srv, "monlist"),
                )
            )
        elif srv.monlist is None:
            out.append(
                Finding(
                    Status.WARN,
                    f"{srv.name}: version unknown and monitoring on: cannot tell "
                    "whether it "
                    f"answers 'monlist' (removed in {_FIXED}); queries allowed to {verdict.text}",
                    ev,
                    _fix(facts, srv, "monlist"),
                )
            )
        else:
            why = (
                "NTPsec has no mode 7 at all"
                if srv.kind == "ntpsec"
                else "monitoring is disabled"
                if srv.monitor is False
                else f"version {srv.version} is {_FIXED} or later"
            )
            out.append(
                Finding(
                    Status.PASS,
                    f"{srv.name}: monlist is not available ({why})",
                    [Evidence(srv.version_source or (srv.config or ""), ver)],
                )
            )
        if open_queries and srv.monlist is not True and verdict.level == "untrusted":
            out.append(
                Finding(
                    Status.WARN,
                    f"{srv.name} answers ntpq (mode 6) queries from {verdict.text}: "
                    "add noquery to 'restrict default'",
                    ev,
                    _fix(facts, srv, "query"),
                )
            )
    elif srv.kind == "chrony":
        running_c, mine_c = _exposed(lst, srv, 323)
        reachable, _raw, verdict, fw_ev = _serving(
            facts, srv, srv.query, srv.query_listen, running_c, mine_c, 323
        )
        if reachable and verdict.level in ("untrusted", "unknown", "localnets"):
            status = Status.FAIL if running_c and verdict.level == "untrusted" else Status.WARN
            out.append(
                Finding(
                    status,
                    f"chronyd accepts monitoring commands (cmdallow) from {verdict.text}, "
                    f"{_where(running_c, mine_c, srv.query_listen)}",
                    list(srv.query_listen.evidence) + fw_ev,
                    _fix(facts, srv, "cmd"),
                )
            )
    return out


def run(facts: Facts) -> list[Finding]:
    servers = facts.get(ntp_servers)
    lst, findings, src = live_listeners(facts)
    for srv in servers:
        findings.extend(_judge_server(facts, srv, lst, src))
    known = {p for s in servers for p in s.processes}
    for li in lst or []:
        if (
            li.proto == "udp"
            and li.port == 123
            and not li.loopback
            and li.process is not None
            and li.process not in known
        ):
            findings.append(
                Finding(
                    Status.WARN,
                    f"{li.owner} listens on {li.endpoint}, the NTP port, and "
                    "is not "
                    "a known NTP server: check what it answers",
                    [Evidence(src, li.describe())],
                )
            )
    if not findings:
        return [
            Finding(
                Status.NOT_APPLICABLE,
                "No NTP software (ntpd, NTPsec, chrony, OpenNTPD, systemd-timesyncd) is installed",
            )
        ]
    return findings


# ==================================================================================================
# The fix: time served to trusted networks only (else to no one), queries and monlist closed.
_WHY = "Check-Security-06: NTP served to trusted networks only, queries closed"


def _restrict_files(ed: net_fix.Edits, conf: str) -> list[str]:
    files: list[str] = []
    queue = [conf]
    while queue and len(files) < 50:
        path = queue.pop(0)
        if path in files:
            continue
        files.append(path)
        for raw in (ed.text(path) or "").split("\n"):
            words = raw.split("#", 1)[0].split()
            if words[:1] == ["includefile"] and len(words) > 1:
                target = words[1]
                queue.extend(ed.facts.bundle.glob(target) if any(c in target for c in "*?[") else [target])
    return files


def _restrict_line(net: Net, flags: str) -> str:
    if isinstance(net, ipaddress.IPv6Network):
        return f"restrict -6 {net.network_address} mask {net.netmask} {flags}"
    return f"restrict {net.network_address} mask {net.netmask} {flags}"


def _plan_ntpd(facts: Facts, srv: NtpServer, trusted: list[Net], ed: net_fix.Edits) -> tuple[list[Step], Step]:
    conf = srv.config or ""
    add: dict[tuple[str, int], set[str]] = {}
    default_missing = False
    for grant, flag in ((srv.serve, "noserve"), (srv.query, "noquery")):
        for _text, where, nets in grant.items:
            if not net_fix.beyond(nets, trusted):
                continue
            loc = net_fix.split_where(where)
            if loc is None:
                default_missing = True  # no 'restrict default': ntpd serves and answers everyone
            else:
                add.setdefault(loc, set()).add(flag)
    # Classic ntpd before 4.2.7p26 answers monlist from its monitoring list: off, and kod/limited (which
    # turn it back on) removed.
    drop = {"kod", "limited"} if srv.kind == "ntpd" and srv.monlist is True else set()
    defaults: list[tuple[str, int]] = []
    for path in _restrict_files(ed, conf):
        for no, raw in enumerate((ed.text(path) or "").split("\n"), 1):
            words = raw.split("#", 1)[0].split()
            if words[:1] != ["restrict"]:
                continue
            if "default" in words[1:3]:
                defaults.append((path, no))
            if drop & set(words):
                add.setdefault((path, no), set())
    served = [n for n in trusted if intersect([n], srv.serve.networks)]
    keep = [_restrict_line(n, "nomodify nopeer noquery" + ("" if drop else " kod limited")) for n in served]
    top: list[str] = ["disable monitor"] if drop else []
    after: dict[tuple[str, int], list[str]] = {}
    if default_missing or not defaults:
        top.append("restrict default nomodify nopeer noquery noserve" + ("" if drop else " kod limited"))
        text = "\n".join(ed.text(p) or "" for p in _restrict_files(ed, conf))
        top += [f"restrict {a}" for a in ("127.0.0.1", "::1") if f"restrict {a}" not in text]
        top += keep
    elif keep:
        after[defaults[-1]] = keep  # served before: the trusted networks keep their time
    for loc in sorted(set(add) | set(after)):
        raw = (ed.raw(*loc) or ("", 0))[0]
        if loc in add:
            words = [w for w in raw.split("#", 1)[0].split() if w not in drop]
            words += [f for f in sorted(add[loc]) if f not in words]
            ed.replace(*loc, [" ".join(words), *after.get(loc, [])])
        else:
            ed.insert_after(*loc, after[loc])
    if top:
        ed.prepend(conf, top)
    debian = host_family(facts) == "debian"
    unit = ("ntpsec" if debian else "ntpd") if srv.kind == "ntpsec" else ("ntp" if debian else "ntpd")
    # ntpd has no configuration checker (NTPsec has no --configtest, nor --saveconfigquit): an ntpd that
    # cannot start fails the restart, which restores the file.
    activate = net_fix.restart(unit, "/run/ntpd.pid", net_fix.start_command(unit, "ntpd -g"),
                               "ntpd reads its access list again (it has no reload)")
    return [], activate


def _plan_chrony(facts: Facts, srv: NtpServer, trusted: list[Net], ed: net_fix.Edits) -> tuple[list[Step], Step]:
    conf = srv.config or ""
    files = [conf, *(p for pat in ("/etc/chrony/conf.d/*.conf", "/etc/chrony.d/*.conf")
                     for p in facts.bundle.glob(pat))]
    first_allow: tuple[str, int] | None = None
    for path in files:
        for ln in parse_chrony_conf(ed.text(path) or "", path):
            key, args = ln.words[0], [w for w in ln.words[1:] if w.lower() != "all"]
            if key in ("allow", "cmdallow"):
                nets = [ANY4, ANY6] if not args else [n for n in (chrony_subnet(args[0]),) if n is not None]
                if not nets:
                    ed.manual.append(f"{ln.where}: `{ln.text}`: an address chrony takes that this tool cannot judge")
                elif net_fix.beyond(nets, trusted):
                    if key == "allow" and first_allow is None:
                        first_allow = (path, ln.line)
                    else:
                        ed.disable(path, ln.line)
            elif key == "bindcmdaddress" and args and not args[0].startswith("/") and net_fix.beyond(
                    [n for n in (chrony_subnet(args[0]),) if n is not None] or [ANY4], []):
                ed.disable(path, ln.line)
    if first_allow is not None:
        # Served before: the trusted networks keep their time (nothing when none are configured).
        served = [n for n in trusted if intersect([n], srv.serve.networks)]
        ed.replace(*first_allow, [f"allow {n}" for n in served])
    rhel = ed.text("/etc/chrony/chrony.conf") is None and conf == "/etc/chrony.conf"
    unit = "chronyd" if rhel else "chrony"
    validate = [Step(f"chronyd -p -f {net_fix.q(conf)} >/dev/null", "chronyd's own parse of its configuration")]
    activate = net_fix.restart(unit, "/run/chrony/chronyd.pid", net_fix.start_command(unit, "chronyd"),
                               "chronyd reads its access lists again (it has no reload)")
    return validate, activate


def plan(facts: Facts) -> Remedy | None:
    """ntpd/NTPsec (noserve and noquery on the restrict lines that reach untrusted hosts, trusted networks
    served explicitly, monitoring off where monlist exists) and chrony (allow/cmdallow beyond the trusted
    networks disabled); OpenNTPD is left to a human."""
    servers = facts.get(ntp_servers)
    failing = net_fix.failing_names(run, facts, [s.name for s in servers])
    todo = [s for s in servers if s.name in failing]
    if not todo:
        return None
    trusted = list(facts.config.trusted_networks)
    ed = net_fix.Edits(facts, _WHY)
    validate: list[Step] = []
    activate: list[Step] = []
    done: list[str] = []
    notes: list[str] = []
    for srv in todo:
        if srv.kind in ("ntpd", "ntpsec") and srv.config:
            v, a = _plan_ntpd(facts, srv, trusted, ed)
            notes.append("ntpd has no configuration checker: a restart that fails restores the file")
        elif srv.kind == "chrony" and srv.config:
            v, a = _plan_chrony(facts, srv, trusted, ed)
        else:
            ed.manual.append(f"{srv.name}: " + (_fix(facts, srv, "serve") or "restrict whom it serves"))
            continue
        validate.extend(v)
        activate.append(a)
        done.append(srv.name)
    who = f"to {', '.join(map(str, trusted))} only" if trusted else "to no other host"
    summary = (f"{', '.join(done)}: serve time {who}, answer queries from this host only" if done
               else "no automatic fix for " + ", ".join(s.name for s in todo))
    changes = ed.changes()
    if not changes and done:
        ed.manual.append("nothing to edit was found in the configuration")
    return Remedy("Check-Security-06", summary, (), changes, (), tuple(validate),
                  tuple(activate), tuple(ed.manual), notes=tuple(notes))


CHECK = Check(
    id="Check-Security-06",
    severity="medium",
    run=run,
    needs=net_facts.NEEDS | network_facts.NEEDS | system_facts.NEEDS,
    why="An NTP server open to everyone is found by scanners within hours; old ntpd's 'monlist' query "
    "returns up "
    "to 600 addresses for one small packet and was used for some of the largest amplification attacks. "
    "Most "
    "VMs only need to keep their own clock: a client that serves no one.",
    how="Finds ntpd (classic and NTPsec), chrony, OpenNTPD and systemd-timesyncd. Evaluates whom each serves "
    "(ntpd 'restrict' most-specific-match with ignore/noserve; chrony allow/deny incl. 'allow' alone = "
    "everyone, bindaddress, port 0; OpenNTPD 'listen on') against [network] trusted_networks, where it "
    "listens (live UDP 123 sockets, else the configuration) and the host firewall when known. Classic "
    "ntpd "
    f"before {_FIXED} with monitoring on (no 'disable monitor') answering queries (no 'noquery') fails; "
    "the "
    "version comes from 'ntpd --version' or the package database. A client-only setup passes.",
    plan=plan,
    fix={
        "debian": "Client only: chrony without 'allow' or systemd-timesyncd; ntpsec: add noserve/noquery to "
        "'restrict default'. Serving: allow only trusted networks.",
        "rhel": "chronyd without 'allow' is client-only; to serve, use 'allow <trusted network>' in "
        "/etc/chrony.conf.",
        "fedora": "As for RHEL.",
    },
)
