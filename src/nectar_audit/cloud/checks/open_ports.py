"""Check-Security-15 from the cloud side: security group rules that open more than is served.

Neutron's semantics decide what a rule lets in: a port with port security disabled is not filtered at
all; an address group stands for its addresses (of the rule's family); a remote group stands for the
fixed addresses of the other instances that carry it; ICMP has no ports to serve.
"""

from __future__ import annotations

from collections.abc import Sequence

from nectar_audit.cloud.checks.base import (
    API,
    CloudView,
    all_rules_evidence,
    cloud_fix,
    port_security_findings,
    rule_evidence,
    table,
)
from nectar_audit.facts.network import exposures
from nectar_audit.facts.openstack import Member, Rule
from nectar_audit.facts.system import Listener
from nectar_audit.model import Evidence, Finding, Status

ID = "Check-Security-15"
# A world-open range wider than this is judged from the API alone (warn), as the host side grades a range
# nobody serves; narrower ones are listed with the single ports (is a service bound to each?).
WIDE_RANGE = 16


def _fix(rules: Sequence[Rule]) -> str:
    return cloud_fix(rules)


def _merged(rules: Sequence[Rule]) -> dict[tuple[str, str, str], list[Rule]]:
    """Rules alike but for their family (Neutron's IPv4 + IPv6 pairs), merged: one finding for both."""
    out: dict[tuple[str, str, str], list[Rule]] = {}
    for r in rules:
        remote = r.remote_group_id or r.remote_address_group_id or (r.remote_label if not r.world else "world")
        out.setdefault((r.group_id, r.ports_label, remote), []).append(r)
    return out


def _families(rules: Sequence[Rule], quiet: bool = False) -> str:
    fams = sorted({r.family for r in rules})
    if quiet:  # said only when both families are meant
        return " (IPv4 and IPv6)" if len(fams) > 1 else ""
    return " and ".join(f"IPv{f}" for f in fams)


def run(view: CloudView) -> list[Finding]:
    inst = view.instance
    out = port_security_findings(view, Status.FAIL)
    rules = [r for r in inst.ingress_rules() if not r.unfiltered_port]
    for rs in _merged([r for r in rules if r.all_ports and not r.remote_group_id]).values():
        r = rs[0]
        what = "every protocol" if r.any_protocol else f"every {r.protocol} port"
        if any(x.remote_unknown for x in rs):
            out.append(Finding(Status.MANUAL, f"a security group rule lets {what} in from {r.remote_label}: "
                               "whom it admits is unknown", rule_evidence(rs)))
            continue
        world = [x for x in rs if x.world]
        status = Status.FAIL if world else Status.WARN
        whom = (world[0] if world else r).remote_label
        out.append(Finding(status, f"a security group rule lets {what} in from {whom}{_families(rs, True)}",
                           rule_evidence(rs), f"{_fix(rs)}\n# then add one rule per port the instance really serves"))
    out += members_findings(view, [r for r in rules if r.remote_group_id])
    unknown = [r for r in rules if r.remote_unknown and not r.all_ports]
    if unknown:
        out.append(Finding(Status.MANUAL, "rules admit address groups whose addresses could not be read: "
                           + ", ".join(sorted({f"{r.ports_label} from {r.remote_label}" for r in unknown})),
                           rule_evidence(unknown)))
    if not view.host:
        return out + _from_api_alone(view, rules, any(f.status is not Status.PASS for f in out))
    if view.listeners is None:
        out.append(Finding(Status.ERROR, "; ".join(view.host_errors) or "the host's listening sockets are unknown"))
        return out
    ok: list[str] = []
    ok_rules: list[Rule] = []
    for row in table(view):
        # Remote-group rules are judged by their members (above); address groups are networks.
        rules_here = [r for r in row.rules if not r.remote_group_id and not r.remote_unknown]
        if not rules_here:
            continue
        ev = [*rule_evidence(rules_here), Evidence("host", row.describe())]
        if not row.serving:
            # As the host-firewall side of 15 grades it: one port open to everyone is a plain failure; a
            # range, or a port open to chosen networks only, is a warning.
            to_all = any(r.world for r in rules_here)
            status = Status.FAIL if to_all and row.lo == row.hi else Status.WARN
            whom = "" if to_all else f" (to {', '.join(sorted({r.remote_label for r in rules_here}))})"
            out.append(Finding(status, f"{row.label} is open in the security groups{whom} but nothing listens "
                               "there: a port open with no service bound", ev, _fix(rules_here)))
        elif row.host is not None and row.host.allowed is False and not row.host.sources:
            out.append(Finding(Status.FAIL, f"{row.label} is open in the security groups and "
                               f"{row.serving[0].owner} listens, but the host firewall drops it: the rule "
                               "opens nothing but a way to probe", ev,
                               f"{_fix(rules_here)}\n# or, if the service is meant to be "
                               "reachable, allow it in the host firewall too"))
        else:
            ok.append(f"{row.label} → {row.serving[0].owner}")
            ok_rules += rules_here
    if ok:
        out.append(Finding(Status.PASS, f"every port the security groups open is served: {', '.join(ok)}",
                           rule_evidence(ok_rules)))
    elif not out:
        out.append(Finding(Status.PASS, "the security groups open no port", all_rules_evidence(view)))
    return out


def _from_api_alone(view: CloudView, rules: Sequence[Rule], judged: bool) -> list[Finding]:
    out: list[Finding] = []
    world = [r for r in rules if r.world and not r.all_ports and r.opens_ports]
    wide = [r for r in world if r.width > WIDE_RANGE]
    for rs in _merged(wide).values():
        r = rs[0]
        out.append(Finding(Status.WARN, f"{r.ports_label} ({r.width} ports) is open to the world "
                           f"({_families(rs)}): a range that wide opens ports no service listens on",
                           rule_evidence(rs), f"{_fix(rs)}\n# then open only the ports the instance serves"))
    narrow = [r for r in world if r.width <= WIDE_RANGE]
    if narrow:
        labels = ", ".join(sorted({r.ports_label for r in narrow}))
        out.append(Finding(Status.MANUAL, f"open to the world per the security groups: {labels}; whether a "
                           f"service is bound to each is unknown: {view.hint}", rule_evidence(narrow)))
    if not out and not judged:
        icmp = [r for r in rules if r.world and not r.opens_ports]
        tail = f" (ICMP only: {', '.join(sorted({r.ports_label for r in icmp}))})" if icmp else ""
        out.append(Finding(Status.PASS, f"no security group rule opens a port to the whole internet{tail}",
                           all_rules_evidence(view)))
    return out


# -- remote groups ------------------------------------------------------------------------------------
def _member_names(members: Sequence[Member]) -> str:
    return "; ".join(m.label() for m in members)


def _reachable_through(view: CloudView, rules: Sequence[Rule]) -> list[tuple[Listener, int]]:
    """Non-loopback listeners that ``rules`` let members reach and the world does not already reach
    (nor the host firewall drop)."""
    ids = {r.id for r in rules}
    out: list[tuple[Listener, int]] = []
    for s in view.listeners or ():
        if s.loopback:
            continue
        for fam in (4, 6):
            if not ((fam == 4 and s.covers_ipv4) or (fam == 6 and s.covers_ipv6)):
                continue
            allowing = view.instance.allowing(s.proto, s.port, fam)
            if any(r.world for r in allowing) or not any(r.id in ids for r in allowing):
                continue
            verdict = view.host_verdict(s.proto, s.port, fam)
            if verdict is not None and verdict.allowed is False and not verdict.sources:
                continue
            out.append((s, fam))
            break
    return out


def _plaintext(view: CloudView, reach: Sequence[tuple[Listener, int]]) -> list[tuple[Listener, str]]:
    try:
        items = view.facts.get(exposures)
    except Exception:  # what a listener speaks is the host checks' business; unknown here is no finding
        return []
    keys = {(s.proto, s.port, s.address) for s, _ in reach}
    return [(e.listener, e.protocol) for e in items if e.tls is False and not e.redirect_only
            and (e.listener.proto, e.listener.port, e.listener.address) in keys]


def _within(r: Rule, w: Rule) -> bool:
    """What ``r`` opens, ``w`` opens to the world as well."""
    if not w.world or w.family != r.family:
        return False
    if w.protocol is None:
        return True
    if w.protocol != r.protocol:
        return False
    if w.port_min is None or w.all_ports:
        return True
    if r.port_min is None:
        return False
    return w.port_min <= r.port_min and (r.port_max or r.port_min) <= (w.port_max or w.port_min)


def members_findings(view: CloudView, rules: Sequence[Rule]) -> list[Finding]:
    """One finding per remote-group rule (both families together): who the members are, and whether
    that membership exposes anything."""
    inst = view.instance
    out: list[Finding] = []
    for rs in _merged(rules).values():
        r = rs[0]
        assert r.remote_group_id is not None
        name = r.remote_group_name or r.remote_group_id
        rg = inst.remote_group(r.remote_group_id)
        fams = {x.family for x in rs}
        what = f"{r.ports_label} ({_families(rs)}) from members of group {name!r}"
        if rg is None:
            out.append(Finding(Status.MANUAL, f"{what}: who carries that group is not in the evidence",
                               rule_evidence(rs)))
            continue
        members = [m for m in rg.members if fams & set(m.families)]
        count = sum(m.count for m in members)
        ev = [*rule_evidence(rs), Evidence(API, f"members of group {name!r} (this instance excluded): "
                                           f"{_member_names(members) or 'none'}")]
        if not members:
            out.append(Finding(Status.PASS, f"{what}: no other instance carries that group with an address of "
                               "the rule's family, so it admits nobody", ev))
            continue
        world = [w for w in inst.ingress_rules() if w.world]
        if all(any(_within(x, w) for w in world) for x in rs):
            out.append(Finding(Status.PASS, f"{what}: the world reaches the same ports anyway (the rule adds "
                               "nothing)", ev + rule_evidence([w for w in world if any(_within(x, w) for x in rs)])))
            continue
        exposed = [(m, inst.member_exposure(m)) for m in members]
        exposed = [(m, why) for m, why in exposed if why]
        for m, why in exposed:
            ev.append(Evidence(API, f"member(s) {m.label()} open to the world: "
                                    + "; ".join(x.describe() for x in why[:4])))
        n_exposed = sum(m.count for m, _ in exposed)
        if view.host and view.listeners is not None:
            reach = _reachable_through(view, rs)
            ev += [Evidence("host", f"reachable only through this rule: {s.describe()}") for s, _ in reach]
            plain = _plaintext(view, reach)
            if plain:
                labels = ", ".join(f"{proto} on {s.proto}/{s.port} ({s.owner})" for s, proto in plain)
                out.append(Finding(Status.WARN, f"{labels} serves in plaintext to the {count} instance(s) "
                                   f"carrying group {name!r}: any of them can read or replay its traffic", ev,
                                   f"require TLS on the service, or narrow the rule to the instances that use it\n"
                                   f"{_fix(rs)}"))
            elif exposed and reach:
                labels = ", ".join(f"{s.proto}/{s.port} ({s.owner})" for s, _ in reach)
                out.append(Finding(Status.WARN, f"{labels} is reachable from members of group {name!r}, "
                                   f"{n_exposed} of which are open to the world: one compromised member reaches "
                                   "it", ev, f"{_fix(rs)}\n# then allow only the ports members use"))
            else:
                served = (f"they reach {', '.join(f'{s.proto}/{s.port}' for s, _ in reach)}" if reach
                          else "nothing here listens beyond what the world already reaches")
                state = "none of them open to the world" if not exposed else f"{n_exposed} open to the world"
                out.append(Finding(Status.PASS, f"{what}: {count} instance(s), {state}; {served}", ev))
            continue
        if exposed:
            out.append(Finding(Status.WARN, f"{what}: {count} instance(s), {n_exposed} of them open to the world "
                               f"({_member_names([m for m, _ in exposed])}): a compromise of one reaches what "
                               f"this rule opens here; {view.hint}", ev,
                               f"{_fix(rs)}\n# then allow only the ports members use"))
        else:
            out.append(Finding(Status.PASS, f"{what}: {count} instance(s), none of them open to the world", ev))
    return out
