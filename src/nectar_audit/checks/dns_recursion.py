"""Check-Security-05: if a DNS server runs, recursion is allowed only from trusted hosts."""

from __future__ import annotations

from nectar_audit.checks.base import Check, for_family, live_listeners
from nectar_audit.facts import Facts
from nectar_audit.facts import net as net_facts
from nectar_audit.facts import network as network_facts
from nectar_audit.facts import system as system_facts
from nectar_audit.facts.net import judge, local_networks
from nectar_audit.facts.network import DnsServer, Scope, firewall_reach, limit, match_process, merge_reach
from nectar_audit.facts.network import (
    dns_servers as dns_servers_fact,
)
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status

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
