"""Judge a host's OpenStack record (``bundle.cloud``) with the cloud checks, beside its host checks."""

from __future__ import annotations

import traceback
from collections.abc import Iterable

from nectar_audit.cloud.checks import CLOUD_CHECKS
from nectar_audit.cloud.checks.base import CloudView
from nectar_audit.evidence import EvidenceError
from nectar_audit.evidence.bundle import CLOUD_ONLY
from nectar_audit.facts import Facts
from nectar_audit.facts.openstack import Instance, openstack_instance
from nectar_audit.model import CheckResult, Finding, Status

CLOUD_TAG = "[cloud] "


def cloud_section(inst: Instance) -> dict[str, object]:
    """The ``cloud`` section of a host in the JSON report: ids, addresses, groups and rules."""
    return {
        "server_id": inst.id,
        "name": inst.name,
        "status": inst.status,
        "project_id": inst.project_id,
        "region": inst.region,
        "image": None if inst.image is None and inst.image_id is None else {
            "id": inst.image_id, "name": inst.image.name if inst.image else None,
            "owner": inst.image.owner if inst.image else None,
            "official_nectar": bool(inst.image and inst.image.official),
            "default_user": inst.image.default_user if inst.image else None,
            "visibility": inst.image.visibility if inst.image else None,
            "image_type": inst.image.image_type if inst.image else None,
            "snapshot_of": inst.image.snapshot_of if inst.image else None,
        },
        "boot": "volume" if inst.volume_backed else "image",
        "volumes": list(inst.volumes),
        "key_name": inst.key_name,
        "key_fingerprint": inst.keypair.fingerprint if inst.keypair else None,
        "ports": [{"id": p.id, "fixed_ips": list(p.fixed_ips), "floating_ips": list(p.floating_ips),
                   "port_security_enabled": p.port_security_enabled,
                   "security_group_ids": list(p.security_group_ids)} for p in inst.ports],
        "security_groups": [{"id": g.id, "name": g.name, "rules": [
            {"id": r.id, "direction": r.direction, "ethertype": f"IPv{r.family}", "protocol": r.protocol,
             "port_range_min": r.port_min, "port_range_max": r.port_max,
             "remote_ip_prefix": r.remote_ip_prefix, "remote_group_id": r.remote_group_id,
             "remote_address_group_id": r.remote_address_group_id,
             "world": r.world and r.direction == "ingress"} for r in g.rules]} for g in inst.groups],
        "address_groups": [{"id": a.id, "name": a.name, "addresses": list(a.addresses)}
                           for a in inst.address_groups],
        "remote_groups": [{"id": g.id, "name": g.name, "member_count": sum(m.count for m in g.members),
                           "members": [{"id": i, "name": n, "fixed_ips": list(ips),
                                        "open_to_world": bool(inst.member_exposure(m))}
                                       for m in g.members for i, n, ips in m.sample]}
                          for g in inst.remote_groups],
        "notes": list(inst.notes),
    }


def host_audit(view: CloudView) -> str:
    """How the host itself was seen: "ssh", "not requested", or "failed: reason"."""
    if view.host_failures:
        return "failed: " + "; ".join(view.host_failures)
    kind = view.facts.bundle.kind
    return "not requested" if kind == CLOUD_ONLY else kind


def judge_cloud(facts: Facts, ids: Iterable[str],
                debug: bool = False) -> tuple[dict[str, object] | None, list[CheckResult]]:
    """(the host's ``cloud`` JSON section, cloud findings for the selected check ids, tagged "[cloud]");
    (None, []) when the bundle holds no OpenStack record."""
    try:
        inst = facts.get(openstack_instance)
    except EvidenceError as exc:
        return None, [CheckResult("Check-Security-15", "", "", [Finding(Status.ERROR, str(exc))], str(exc))]
    if inst is None:
        return None, []
    section = cloud_section(inst)
    view = CloudView.of(inst, facts)
    section["host_audit"] = how = host_audit(view)
    out = []
    for cid in ids:
        check = CLOUD_CHECKS.get(cid)
        if check is None:
            continue
        try:
            findings = check(view)
        except Exception as exc:
            detail = traceback.format_exc() if debug else f"{type(exc).__name__}: {exc}"
            findings = [Finding(Status.ERROR, f"internal error in the cloud check: {detail}")]
        if cid == "Check-Security-08" and how.startswith("failed"):
            findings.append(Finding(Status.ERROR, f"the host could not be audited ({how}): only the cloud layer "
                                    "was judged"))
        for f in findings:
            f.message = CLOUD_TAG + f.message
        out.append(CheckResult(cid, "", "", findings, ""))
    return section, out
