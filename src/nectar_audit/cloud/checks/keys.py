"""Check-Security-10 from the cloud side: the key pair Nova injected against the host's authorized_keys."""

from __future__ import annotations

from nectar_audit.cloud.checks.base import API, CloudView
from nectar_audit.facts.keys import cloudinit, collect_authorized_keys
from nectar_audit.model import Evidence, Finding, Status

ID = "Check-Security-10"


def image_origin(view: CloudView) -> tuple[str, list[Evidence]] | None:
    """Where the disk came from when it is not an official image (None when it is): a snapshot or
    another image may carry the keys of the instance it was taken from."""
    inst = view.instance
    img = inst.image
    if img is not None and img.official:
        return None
    if inst.volume_backed:
        vols = ", ".join(inst.volumes) or "no volume listed"
        return ("booted from a volume: the image it was made from is unknown to Nova",
                [Evidence(API, f"server {inst.id}: image is empty; attached volumes: {vols}")])
    if img is None:
        why = next((n for n in inst.notes if n.startswith(f"image {inst.image_id}:")), "it is not visible")
        return (f"booted from image {inst.image_id}, which cannot be read ({why})",
                [Evidence(API, f"server {inst.id}: image {inst.image_id}")])
    return (f"booted from {img.kind} {img.name or img.id!r} (owner {img.owner or '?'}), not an official Nectar "
            "image", [Evidence(API, img.describe())])


def run(view: CloudView) -> list[Finding]:
    keys = _keys(view)
    origin = image_origin(view)
    if origin is None:
        return keys
    what, ev = origin
    if not view.host:
        return [Finding(Status.MANUAL, f"{what}: it may carry the authorised keys of the instance it was taken "
                        f"from; {view.hint} and compare its authorized_keys", ev), *keys]
    compared = view.instance.keypair is not None and bool(view.instance.keypair.fingerprint)
    if compared and not any(f.status is Status.WARN for f in keys):
        # Settled by the host: every authorised key came from the metadata service.
        return [*keys, Finding(Status.PASS, f"{what}; every key authorised on the host came from the metadata "
                               "service", ev)]
    return keys


def _image_evidence(view: CloudView) -> list[Evidence]:
    img = view.instance.image
    return [Evidence(API, img.describe())] if img is not None and not img.official else []


def _keys(view: CloudView) -> list[Finding]:
    inst = view.instance
    if not inst.key_name:
        return [Finding(Status.WARN, "the instance was booted without a key pair: its SSH keys came from the "
                        "image or from user data, not from the metadata service",
                        [Evidence(API, f"server {inst.id}: key_name is empty")],
                        "boot instances with --key-name (openstack server create --key-name KEY ...) and keep "
                        "keys out of images")]
    kp = inst.keypair
    if kp is None or not kp.fingerprint:
        why = next((n for n in inst.notes if "key pair" in n), "its public key is not visible")
        return [Finding(Status.MANUAL, f"booted with key pair {inst.key_name!r}, whose fingerprint is unknown: {why}",
                        [Evidence(API, f"server {inst.id}: key_name = {inst.key_name}")])]
    injected = Evidence(API, f"server {inst.id}: key pair {kp.name!r} {kp.fingerprint}")
    if not view.host:
        return [Finding(Status.PASS, f"key pair {kp.name!r} ({kp.fingerprint}) is injected by the metadata "
                        f"service; {view.hint} and compare its authorized_keys", [injected])]
    keys, errors = collect_authorized_keys(view.facts)
    out: list[Finding] = [Finding(Status.ERROR, f"cannot read {path}: {why}") for path, why in errors.items()]
    try:
        meta = view.facts.get(cloudinit).metadata_fingerprints or set()
    except Exception:
        meta = set()
    holders = sorted(user for user, ks in keys.items() if any(k.fingerprint == kp.fingerprint for k in ks))
    if holders:
        out.append(Finding(Status.PASS, f"key pair {kp.name!r} injected by Nova is authorised for "
                           f"{', '.join(holders)}", [injected]))
    else:
        out.append(Finding(Status.WARN, f"key pair {kp.name!r} injected by Nova is in no authorized_keys file: "
                           "the keys in use were put there another way", [injected]))
    foreign = [(user, k) for user, ks in sorted(keys.items()) for k in ks
               if k.fingerprint and k.fingerprint != kp.fingerprint and k.fingerprint not in meta
               and not k.is_cloud_init_refusal]
    if foreign:
        out.append(Finding(
            Status.WARN,
            f"{len(foreign)} authorised key(s) did not come from the metadata service (added by hand or baked "
            "into the image): " + ", ".join(f"{u}: {k.fingerprint}" for u, k in foreign[:8])
            + (" …" if len(foreign) > 8 else ""),
            [injected, *_image_evidence(view)]
            + [Evidence(k.source, f"{k.key_type} {k.fingerprint} {k.comment}".rstrip()) for _, k in foreign],
            "remove keys nobody needs from ~/.ssh/authorized_keys; give people access with their own key pair "
            "(openstack keypair create) at boot"))
    return out
