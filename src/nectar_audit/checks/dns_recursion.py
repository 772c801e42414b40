"""Check-Security-05: if a DNS server runs, recursion is allowed only from trusted hosts."""

from __future__ import annotations

import re

from nectar_audit.checks import net_fix
from nectar_audit.checks.base import Check, for_family, live_listeners
from nectar_audit.facts import Facts
from nectar_audit.facts import net as net_facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.net import Net, judge, local_networks, subtract
from nectar_audit.facts.network import (
    DNSMASQ_CONF,
    DNSMASQ_DEFAULT,
    UNBOUND_CONF,
    DnsServer,
    Scope,
    bind_statements,
    firewall_reach,
    limit,
    match_process,
    merge_reach,
    parse_shell_vars,
)
from nectar_audit.facts.network import (
    dns_servers as dns_servers_fact,
)
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import TAG, Remedy, Step, drop_in

_FIX = {
    "bind": {
        "debian": "In /etc/bind/named.conf.options, inside options { }, set allow-recursion { localhost; "
        "<your trusted networks>; }; (or recursion no; if this server only answers for its own "
        "zones), "
        "then: named-checkconf && systemctl reload named",
        "rhel": "In /etc/named.conf, inside options { }, set allow-recursion { localhost; <your trusted "
        "networks>; }; (or recursion no;), then: named-checkconf && systemctl reload named",
    },
    "unbound": {
        "debian": "In a file under /etc/unbound/unbound.conf.d/, in server:, allow only trusted networks "
        "(access-control: 0.0.0.0/0 refuse, access-control: ::/0 refuse, access-control: "
        "<trusted network> allow) or listen on loopback only (interface: 127.0.0.1), then: "
        "unbound-checkconf && systemctl restart unbound",
        "rhel": "In /etc/unbound/unbound.conf (server:), allow only trusted networks (access-control: "
        "0.0.0.0/0 "
        "refuse, access-control: <trusted network> allow) or listen on loopback only (interface: "
        "127.0.0.1), then: unbound-checkconf && systemctl restart unbound",
    },
    "dnsmasq": {
        "debian": "Add listen-address=127.0.0.1 and bind-interfaces to /etc/dnsmasq.conf (or interface= for "
        "a "
        "trusted LAN only), then: systemctl restart dnsmasq",
        "rhel": "Add listen-address=127.0.0.1 and bind-interfaces to /etc/dnsmasq.conf (or interface= for a "
        "trusted LAN only), then: systemctl restart dnsmasq",
    },
    "pdns-recursor": {
        "debian": "In /etc/powerdns/recursor.conf set allow-from=127.0.0.0/8, ::1/128, <trusted networks> "
        "and "
        "local-address=127.0.0.1, then: systemctl restart pdns-recursor",
        "rhel": "In /etc/pdns-recursor/recursor.conf set allow-from=127.0.0.0/8, ::1/128, <trusted networks> "
        "and local-address=127.0.0.1, then: systemctl restart pdns-recursor",
    },
    "systemd-resolved": {
        "debian": "Remove non-loopback DNSStubListenerExtra= entries from /etc/systemd/resolved.conf(.d), "
        "then: "
        "systemctl restart systemd-resolved",
    },
}


def _fix(facts: Facts, kind: str) -> str | None:
    return for_family(facts, _FIX.get(kind, {}))


def _endpoints(items: list[Listener]) -> str:
    return ", ".join(sorted({li.endpoint for li in items}))


def _judge_scope(
    facts: Facts,
    srv: DnsServer,
    scope: Scope,
    running: bool | None,
    mine: list[Listener],
    listen_ev: list[Evidence],
) -> Finding:
    exposed = [li for li in mine if not li.loopback]
    who = srv.name + (f" (view {scope.name})" if scope.name else "")
    ev = list(scope.evidence) + listen_ev
    if not scope.recursion:
        return Finding(
            Status.PASS, f"{who}: recursion is disabled" + (f" ({scope.note})" if scope.note else ""), ev
        )
    reachable = bool(exposed) if running else srv.listen.beyond_loopback
    local = facts.get(local_networks)
    trusted = list(facts.config.trusted_networks)
    raw = judge(scope.grant, trusted, local)
    if reachable is False:
        if mine:
            where = f"listens on loopback only ({_endpoints(mine)})"
        elif running is False:
            where = f"is not running; configured to listen on loopback only ({srv.listen.text})"
        else:
            where = f"is configured to listen on loopback only ({srv.listen.text})"
        extra = (
            "" if raw.level in ("none", "local", "trusted") else f"; its access list would allow {raw.text}"
        )
        return Finding(Status.PASS, f"{who} {where}: other hosts cannot use it{extra}", ev)
    # DNS answers over UDP and TCP alike: a firewall that drops UDP/53 but accepts TCP/53 still lets
    # anyone recurse. Ask about every protocol the server listens on (both when not known) and merge.
    protos = sorted({li.proto for li in exposed}) if running and exposed else ["tcp", "udp"]
    per_proto = {p: firewall_reach(facts, p, 53) for p in protos}
    reach = merge_reach(list(per_proto.values()))
    grant = limit(scope.grant, reach)
    verdict = judge(grant, trusted, local)
    for r in per_proto.values():
        if r.text != "host firewall not evaluated":
            ev.append(Evidence("host firewall", r.text))
    proto_text = " or ".join(p.upper() for p in protos)
    listening = (
        f"listening on {_endpoints(exposed)}"
        if running and exposed
        else f"configured to listen on {srv.listen.text}"
    )
    state = "" if running else (" (not running now)" if running is False else "")
    if verdict.level in ("none", "local", "trusted"):
        if verdict.level != raw.level:
            whom = "no other host" if verdict.level in ("none", "local") else f"only {verdict.text}"
            return Finding(
                Status.PASS,
                f"{who}'s access list allows recursion to {raw.text}, but the host "
                f"firewall lets {whom} reach port 53 ({proto_text})",
                ev,
            )
        return Finding(Status.PASS, f"{who} allows recursion to {verdict.text}", ev)
    fix = _fix(facts, srv.kind)
    if verdict.level == "untrusted":
        status = Status.FAIL if running else Status.WARN
        wide = verdict.text.startswith("any host")
        whom = f"{verdict.text}," if wide else f"{verdict.text}, which is not a trusted network,"
        msg = (
            f"{who} allows recursion to {whom} {listening}{state}: "
            "an open resolver can be abused for DNS amplification attacks"
        )
        open_protos = [
            p for p, r in per_proto.items() if judge(limit(scope.grant, r), trusted, local).level == "untrusted"
        ]
        if len(per_proto) > 1 and len(open_protos) == 1:
            msg += f" (the host firewall admits it over {open_protos[0].upper()}/53 only)"
        if not wide:
            msg += (
                " (if these networks are yours, list them in [network] trusted_networks of the config file)"
            )
        return Finding(status, msg, ev, fix)
    if verdict.level == "localnets":
        public = "public" in verdict.text or local is None
        tail = (
            "on a cloud VM whose interface sits on a shared or public subnet these are other tenants' hosts"
            if public
            else "every host on that subnet can use it"
        )
        return Finding(
            Status.WARN,
            f"{who} allows recursion to {verdict.text}, {listening}{state}: {tail} "
            "(list the subnet in [network] trusted_networks if it is yours)",
            ev,
            fix,
        )
    return Finding(
        Status.WARN, f"{who}: cannot decide who may recurse ({verdict.text}), {listening}{state}", ev, fix
    )


def run(facts: Facts) -> list[Finding]:
    servers = facts.get(dns_servers_fact)
    lst, findings, src = live_listeners(facts)
    port53 = [li for li in (lst or []) if li.port == 53]
    claimed: set[Listener] = set()
    owners: dict[str, list[Listener]] = {}
    for srv in servers:
        mine = [li for li in port53 if match_process(srv.kind, li.process)]
        owners[srv.kind] = mine
        claimed.update(mine)
    unowned = [li for li in port53 if li not in claimed and li.process is None]
    candidates = [s for s in servers if s.kind != "systemd-resolved"]
    if unowned and len(candidates) == 1:
        owners[candidates[0].kind].extend(unowned)
        claimed.update(unowned)
    for srv in servers:
        mine = owners.get(srv.kind, [])
        running: bool | None = None if lst is None else bool(mine)
        exposed = [li for li in mine if not li.loopback]
        listen_ev = [Evidence(src, li.describe()) for li in mine] if mine else list(srv.listen.evidence)
        if srv.kind == "systemd-resolved" and not exposed and srv.listen.beyond_loopback is False:
            findings.append(
                Finding(Status.PASS, f"systemd-resolved: {srv.listen.text} (loopback only)", listen_ev)
            )
            continue
        if srv.kind == "systemd-resolved" and running is False and srv.listen.beyond_loopback:
            findings.append(
                Finding(
                    Status.WARN,
                    f"systemd-resolved is configured with {srv.listen.text} (not running now)",
                    list(srv.listen.evidence),
                    _fix(facts, srv.kind),
                )
            )
            continue
        for scope in srv.recursion:
            findings.append(_judge_scope(facts, srv, scope, running, mine, listen_ev))
        if not srv.recursion:
            findings.append(
                Finding(
                    Status.WARN,
                    f"{srv.name}: cannot evaluate its configuration: "
                    + "; ".join(srv.problems or ["no configuration found"]),
                    [Evidence(p, "present") for p in srv.installed],
                )
            )
            continue
        for problem in srv.problems:
            findings.append(Finding(Status.WARN, f"{srv.name}: {problem}"))
    stray = [li for li in port53 if li not in claimed and not li.loopback]
    for li in stray:
        findings.append(
            Finding(
                Status.WARN,
                f"something listens on {li.endpoint} ({li.owner}) that is not a "
                "known DNS server: check whether it answers recursive queries",
                [Evidence(src, li.describe())],
            )
        )
    if not findings:
        return [Finding(Status.NOT_APPLICABLE, "No DNS server is installed or listening")]
    return findings


# ==================================================================================================
# The fix: recursion for this host and [network] trusted_networks only, in each failing server.
_WHY = "Check-Security-05: recursion for localhost and trusted networks only"
_DROPIN = "nectar-audit-05.conf"


def _acl(trusted: list[Net]) -> str:
    return "{ " + " ".join(f"{n};" for n in ["localhost", *map(str, trusted)]) + " }"


def _bind_set(ed: net_fix.Edits, path: str, line: int, key: str, acl: str) -> None:
    """Replace a one-line ``key { … };`` statement in place (a statement over several lines: by hand)."""
    got = ed.raw(path, line)
    raw = got[0] if got else ""
    body = raw.strip()
    end = body.find("};")
    rest = body[end + 2:].strip() if end >= 0 else "?"
    if not body.startswith(key) or body.count("{") != 1 or (rest and not rest.startswith(("//", "#"))):
        ed.manual.append(f"{path}:{line}: set `{key} {acl};` (the statement is not alone on one line)")
        return
    indent = raw[: len(raw) - len(raw.lstrip())]
    ed.replace(path, line, [f"{indent}{key} {acl};  // {TAG}"], comment="//")


def _plan_bind(facts: Facts, srv: DnsServer, trusted: list[Net], ed: net_fix.Edits) -> tuple[Step, Step]:
    acl = _acl(trusted)
    stmts = bind_statements(facts.bundle)
    options = next((st for st in stmts if st.words[:1] == ["options"] and st.block is not None), None)
    local = facts.get(local_networks)
    bad_views = {sc.name for sc in srv.recursion
                 if sc.recursion and judge(sc.grant, trusted, local).level not in ("none", "local", "trusted")}
    keys = ("allow-recursion", "allow-query-cache")
    need_options = "" in bad_views
    for view in (st for st in stmts if st.words[:1] == ["view"] and st.block is not None):
        name = view.words[1] if len(view.words) > 1 else ""
        if name not in bad_views:
            continue
        own = [st for st in view.block or [] if st.words[:1] and st.words[0] in keys]
        for st in own:
            _bind_set(ed, st.path, st.line, st.words[0], acl)
        if not any(st.words[0] == "allow-recursion" for st in own):
            need_options = True  # the view inherits the options block's setting
    if need_options:
        if options is None:
            ed.manual.append(f"add `options {{ allow-recursion {acl}; }};` to named.conf")
        else:
            present = [st for st in options.block or [] if st.words[:1] and st.words[0] in keys]
            for st in present:
                _bind_set(ed, st.path, st.line, st.words[0], acl)
            if not any(st.words[0] == "allow-recursion" for st in present):
                got = ed.raw(options.path, options.line)
                if got is None or "{" not in got[0] or "}" in got[0]:
                    ed.manual.append(f"{options.where}: add `allow-recursion {acl};` inside options {{ }}")
                else:
                    # Options can come in any order inside the block: right after its opening line.
                    ed.insert_after(options.path, options.line, [f"\tallow-recursion {acl};  // {TAG}: {_WHY}"])
    validate = Step("named-checkconf", "BIND's own configuration check")
    activate = net_fix.reload("named", "/run/named/named.pid", 'rndc reconfig >/dev/null 2>&1 || kill -HUP "$na_pid"',
                              "named reads its configuration again")
    return validate, activate


def _plan_unbound(facts: Facts, srv: DnsServer, trusted: list[Net], ed: net_fix.Edits) -> tuple[Step, Step]:
    kept: list[Net] = []
    for scope in srv.recursion:
        for _text, where, nets in scope.grant.items:
            loc = net_fix.split_where(where)
            if loc is not None and net_fix.beyond(nets, trusted):
                ed.disable(*loc)  # unbound's default then refuses everyone but localhost
            else:
                kept.extend(nets)
    missing = [n for n in trusted if subtract([n], kept)]
    if missing:
        main = ed.text(UNBOUND_CONF) or ""
        folder = next((d for d in ("/etc/unbound/unbound.conf.d", "/etc/unbound/conf.d") if f"{d}/*.conf" in main),
                      None)
        lines = ["server:", *(f"    access-control: {n} allow" for n in missing)]
        if folder is None:
            ed.manual.append(f"add to the server: section of {UNBOUND_CONF}: "
                             + "; ".join(f"access-control: {n} allow" for n in missing))
        else:
            path = f"{folder}/{_DROPIN}"
            ed.whole(drop_in(path, lines, ed.text(path), _WHY))
    validate = Step("unbound-checkconf", "unbound's own configuration check")
    activate = net_fix.reload("unbound", "/run/unbound.pid", 'kill -HUP "$na_pid"',
                              "unbound reads its access list again")
    return validate, activate


def _dnsmasq_dirs(ed: net_fix.Edits) -> tuple[str | None, str | None]:
    """(the conf-dir argument dnsmasq is started with by Debian's init, the first conf-dir= of dnsmasq.conf)."""
    default = parse_shell_vars(ed.text(DNSMASQ_DEFAULT) or "").get("CONFIG_DIR")
    m = re.search(r"(?m)^\s*conf-dir\s*=\s*(\S+)", ed.text(DNSMASQ_CONF) or "")
    return (default[0] if default and default[0] else None), (m.group(1) if m else None)


def _plan_dnsmasq(facts: Facts, ed: net_fix.Edits) -> tuple[Step, Step]:
    cli_dir, conf_dir = _dnsmasq_dirs(ed)
    files = [DNSMASQ_CONF]
    for spec in (cli_dir, conf_dir):
        if spec:
            directory = spec.split(",", 1)[0].rstrip("/")
            files += [p for p in facts.bundle.glob(directory + "/*") if p.endswith(".conf")]
    for path in files:
        for no, raw in enumerate((ed.text(path) or "").split("\n"), 1):
            m = re.match(r"\s*(interface|listen-address)\s*=\s*(\S+)", raw)
            if m and m.group(2) not in ("lo", "127.0.0.1", "::1") and not m.group(2).startswith("127."):
                ed.disable(path, no)  # would add a listener beyond loopback to ours
    # interface=lo (dnsmasq adds the loopback interface anyway) binds 127.0.0.1 and ::1 where they exist.
    lines = ["interface=lo", "bind-interfaces"]
    spec = cli_dir or conf_dir
    if spec:
        path = spec.split(",", 1)[0].rstrip("/") + "/" + _DROPIN
        ed.whole(drop_in(path, lines, ed.text(path), _WHY))
    else:
        ed.prepend(DNSMASQ_CONF, [*lines])
    test = "dnsmasq --test" + (f" --conf-dir={net_fix.q(cli_dir)}" if cli_dir else "")
    validate = Step(test, "dnsmasq's own configuration check")
    activate = net_fix.restart("dnsmasq", "/run/dnsmasq/dnsmasq.pid", net_fix.start_command("dnsmasq", "dnsmasq"),
                               "dnsmasq binds its listeners again")
    return validate, activate


def plan(facts: Facts) -> Remedy | None:
    """BIND (allow-recursion where it takes effect), unbound (access-control) and dnsmasq (loopback only:
    it has no client access list) limited to this host and the trusted networks."""
    servers = facts.get(dns_servers_fact)
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
        if srv.kind == "bind":
            v, a = _plan_bind(facts, srv, trusted, ed)
        elif srv.kind == "unbound":
            v, a = _plan_unbound(facts, srv, trusted, ed)
        elif srv.kind == "dnsmasq":
            v, a = _plan_dnsmasq(facts, ed)
            if trusted:
                notes.append("dnsmasq has no client access list: it now answers this host only; to serve a trusted "
                             "network add interface=<its interface> by hand")
        else:
            ed.manual.append(f"{srv.name}: {_fix(facts, srv.kind)}")
            continue
        validate.append(v)
        activate.append(a)
        done.append(srv.name)
    who = "this host" + (" and " + ", ".join(map(str, trusted)) if trusted else "")
    summary = (f"allow recursion in {', '.join(done)} to {who} only" if done
               else "no automatic fix for " + ", ".join(s.name for s in todo))
    return Remedy("Check-Security-05", summary, (), ed.changes(), (), tuple(validate), tuple(activate),
                  tuple(ed.manual), notes=tuple(notes))


CHECK = Check(
    id="Check-Security-05",
    severity="high",
    run=run,
    needs=net_facts.NEEDS | network_facts.NEEDS | system_facts.NEEDS,
    why="An open recursive resolver answers anyone on the Internet: it is used to amplify denial-of-service "
    "attacks (small query, large answer, spoofed source) and leaks what it has cached.",
    how="Finds BIND, unbound, dnsmasq, PowerDNS Recursor and systemd-resolved (binaries and configuration), "
    "evaluates who may recurse (BIND's allow-recursion -> allow-query-cache -> allow-query -> "
    "localnets+localhost chain per view, with includes and ACLs; unbound access-control; dnsmasq "
    "interface/listen-address/local-service and Debian's defaults; recursor allow-from; resolved stub "
    "listeners) against [network] trusted_networks, and where it listens (the live sockets, else the "
    "configuration). Recursion to untrusted networks on a listening server fails; only configured "
    "(stopped, offline image) warns; localnets warns (on a public subnet it means other tenants).",
    plan=plan,
    fix={
        "debian": "Restrict recursion: BIND allow-recursion { localhost; <trusted>; }; unbound "
        "access-control; "
        "dnsmasq listen-address=127.0.0.1 + bind-interfaces; or listen on loopback only.",
        "rhel": "Restrict recursion: BIND allow-recursion { localhost; <trusted>; }; in /etc/named.conf; "
        "unbound "
        "access-control; dnsmasq listen-address=127.0.0.1 + bind-interfaces.",
        "fedora": "As for RHEL.",
    },
)
