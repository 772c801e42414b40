"""Check-Security-08 from the cloud side: the security groups and the host firewall, side by side."""

from __future__ import annotations

from nectar_audit.cloud.checks.base import CloudView, all_rules_evidence, port_security_findings, rule_evidence, table
from nectar_audit.model import Evidence, Finding, Status

ID = "Check-Security-08"

HOST_FW_FIX = {
    "debian": "ufw default deny incoming && ufw allow <each served port> && ufw enable",
    "rhel": "systemctl enable --now firewalld && firewall-cmd --permanent --add-service=<each served service> "
            "&& firewall-cmd --reload",
}


def run(view: CloudView) -> list[Finding]:
    out = port_security_findings(view, Status.FAIL)
    if not view.host:
        rules = [r for r in view.instance.ingress_rules() if not r.unfiltered_port]
        out.append(Finding(
            Status.MANUAL,
            f"cloud layer: {len(rules)} ingress rule(s) in {len(view.instance.groups)} security group(s); "
            f"the host layer is unknown: {view.hint}", all_rules_evidence(view)))
        return out
    if view.firewall is None or view.listeners is None:
        out.append(Finding(Status.ERROR, "; ".join(view.host_errors) or "the host's side is unknown"))
        return out
    rows = table(view)
    evidence = [Evidence("cloud | host", row.describe()) for row in rows] or [
        Evidence("cloud | host", "no security group rule and no non-loopback listener")]
    evidence += rule_evidence([r for row in rows for r in row.rules]) or all_rules_evidence(view)
    # Listeners that only the security groups keep from the world: one rule added by mistake (or a
    # port with port security turned off) and they are exposed.
    one_layer = [r for r in rows if r.serving and not r.rules and r.host is not None and r.host.allowed]
    if one_layer:
        names = ", ".join(f"{r.label} ({r.serving[0].owner})" for r in one_layer)
        out.append(Finding(Status.WARN, f"only the security groups protect {names}: the host firewall lets "
                           "them in from anywhere", evidence,
                           "\n".join(f"[{fam}] {fix}" for fam, fix in HOST_FW_FIX.items())))
    else:
        out.append(Finding(Status.PASS, f"both layers filter: {len(rows)} port(s) compared (cloud allows | host "
                           "firewall | listening)", evidence))
    return out
