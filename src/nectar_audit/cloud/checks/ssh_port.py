"""Check-Security-18 from the cloud side: the port sshd uses against what the security groups allow."""

from __future__ import annotations

from nectar_audit.cloud.checks.base import API, CloudView, all_rules_evidence
from nectar_audit.facts.ssh import sshd_listen_ports
from nectar_audit.model import Evidence, Finding, Status

ID = "Check-Security-18"


def _allowed(view: CloudView, port: int) -> list[str]:
    seen: dict[str, str] = {}
    for fam in (4, 6):
        for r in view.instance.allowing("tcp", port, fam):
            seen.setdefault(r.id, r.describe())
    return list(seen.values())


def run(view: CloudView) -> list[Finding]:
    if not view.host:
        rules = _allowed(view, 22)
        unfiltered = [p.id for p in view.instance.ports if not p.port_security_enabled]
        if unfiltered:
            return [Finding(Status.WARN, f"port security is disabled on port {', '.join(unfiltered)}: SSH's default "
                            f"port 22 is reachable from anywhere; {view.hint}", [Evidence(API, r) for r in rules])]
        if rules:
            return [Finding(Status.WARN, f"the security groups allow SSH's default port 22; {view.hint}",
                            [Evidence(API, r) for r in rules])]
        return [Finding(Status.MANUAL, f"the security groups do not open port 22; which port sshd uses is "
                        f"unknown: {view.hint}", all_rules_evidence(view, "none covers tcp/22"))]
    try:
        ports = view.facts.get(sshd_listen_ports)
    except Exception as exc:
        return [Finding(Status.ERROR, f"cannot tell which port sshd uses: {exc}")]
    if not ports:
        return [Finding(Status.NOT_APPLICABLE, "sshd does not listen on this instance")]
    out: list[Finding] = []
    reachable = {p: _allowed(view, p) for p in ports}
    ev = [Evidence("host", f"sshd listens on tcp/{', '.join(map(str, ports))}")]
    if not any(reachable.values()):
        out.append(Finding(
            Status.FAIL,
            f"sshd listens on tcp/{'/'.join(map(str, ports))} but no security group rule allows it: SSH is "
            "unreachable from outside the project (locked out)", ev + all_rules_evidence(view),
            f"openstack security group rule create --ingress --protocol tcp --dst-port {ports[0]} "
            "--remote-ip YOUR_NETWORK/PREFIX SG"))
    else:
        for port, rules in reachable.items():
            if rules:
                how = ("reachable (port security disabled)" if any("port_security_enabled = false" in r for r in rules)
                       else "allowed by the security groups")
                out.append(Finding(Status.PASS, f"sshd's port tcp/{port} is {how}",
                                   ev + [Evidence(API, r) for r in rules]))
    if 22 not in ports:
        stale = [r for r in _allowed(view, 22) if "port_security_enabled = false" not in r]
        served = [s for fam in (4, 6) for s in view.serving("tcp", 22, fam)]
        if stale and not served:
            out.append(Finding(Status.FAIL, "sshd moved off port 22 but the security groups still open tcp/22, "
                               "where nothing listens", ev + [Evidence(API, r) for r in stale],
                               "openstack security group rule delete RULE_ID   # the tcp/22 rule(s) above"))
    return out
