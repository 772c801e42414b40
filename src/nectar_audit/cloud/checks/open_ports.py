"""Check-Security-15 from the cloud side: security group rules that open more than is served."""

from __future__ import annotations

from nectar_audit.cloud.checks.base import API, SG_FIX, CloudView, port_security_findings, table
from nectar_audit.model import Evidence, Finding, Status

ID = "Check-Security-15"


def _fix(rule_ids: list[str]) -> str:
    return "\n".join(f"openstack security group rule delete {rid}" for rid in rule_ids) or SG_FIX


def run(view: CloudView) -> list[Finding]:
    inst = view.instance
    out = port_security_findings(view, Status.FAIL)
    for r in inst.ingress_rules():
        if not r.all_ports:
            continue
        status = Status.FAIL if r.world else Status.WARN
        what = "every protocol" if r.any_protocol else f"every {r.protocol} port"
        out.append(Finding(status, f"a security group rule lets {what} in from {r.remote_label}",
                           [Evidence(API, r.describe())],
                           f"{_fix([r.id])}\n# then add one rule per port the instance really serves"))
    if not view.host:
        world = [r for r in inst.ingress_rules() if r.world and not r.all_ports]
        if world:
            labels = ", ".join(sorted({r.ports_label for r in world}))
            out.append(Finding(Status.MANUAL, f"open to the world per the security groups: {labels}; whether a "
                               f"service is bound to each is unknown: {view.hint}",
                               [Evidence(API, r.describe()) for r in world]))
        elif not out:
            out.append(Finding(Status.PASS, "no security group rule opens a port to the whole internet",
                               [Evidence(API, f"{len(inst.ingress_rules())} ingress rule(s) on "
                                              f"{len(inst.ports)} port(s)")]))
        return out
    if view.listeners is None:
        out.append(Finding(Status.ERROR, "; ".join(view.host_errors) or "the host's listening sockets are unknown"))
        return out
    ok: list[str] = []
    for row in table(view):
        rules = [r for r in row.rules if not (r.remote_group_id or r.remote_address_group_id)]
        if not rules:
            continue
        ev = [Evidence(API, r.describe()) for r in rules] + [Evidence("host", row.describe())]
        if not row.serving:
            # As the host-firewall side of 15 grades it: one port open to everyone is a plain failure; a
            # range, or a port open to chosen networks only, is a warning.
            to_all = any(r.world for r in rules)
            status = Status.FAIL if to_all and row.lo == row.hi else Status.WARN
            whom = "" if to_all else f" (to {', '.join(sorted({r.remote_label for r in rules}))})"
            out.append(Finding(status, f"{row.label} is open in the security groups{whom} but nothing listens "
                               "there: a port open with no service bound", ev, _fix([r.id for r in rules])))
        elif row.host is not None and row.host.allowed is False and not row.host.sources:
            out.append(Finding(Status.FAIL, f"{row.label} is open in the security groups and "
                               f"{row.serving[0].owner} listens, but the host firewall drops it: the rule "
                               "opens nothing but a way to probe", ev,
                               f"{_fix([r.id for r in rules])}\n# or, if the service is meant to be "
                               "reachable, allow it in the host firewall too"))
        else:
            ok.append(f"{row.label} → {row.serving[0].owner}")
    if ok:
        out.append(Finding(Status.PASS, f"every port the security groups open is served: {', '.join(ok)}",
                           [Evidence(API, "rules and listeners: see Check-Security-08's table")]))
    elif not out:
        out.append(Finding(Status.PASS, "the security groups open no port", [Evidence(API, "no ingress rule")]))
    return out
