"""Check-Security-10: are keys stored in the image?"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from nectar_audit.checks import manual_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.facts import Facts
from nectar_audit.facts import keys as keys_facts
from nectar_audit.facts.keys import (
    AuthorizedKey,
    CloudInit,
    HostKey,
    PrivateKey,
    cloudinit,
    collect_authorized_keys,
    credential_files,
    host_keys,
    private_keys,
)
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy

# Host keys written this long before the first per-instance semaphore still count as made at first boot
# (cloud-init's ssh module runs in the same boot, minutes at most; the clock may be stepped by NTP).
FIRST_BOOT_SLACK_S = 3600
SERVICE_KEY_DIRS = ("/etc/ssl/private/", "/etc/pki/tls/private/", "/etc/letsencrypt/")


def _day(t: int | None) -> str:
    if t is None:
        return "unknown"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _is_image(facts: Facts) -> bool:
    b = facts.bundle
    return b.kind == "rootfs" and not b.live


def _key_ev(k: PrivateKey) -> Evidence:
    return Evidence(k.source, k.describe())


def _ak_ev(k: AuthorizedKey) -> Evidence:
    comment = f" {k.comment}" if k.comment else ""
    opts = " (forced command)" if k.forced_command is not None else ""
    return Evidence(k.source, f"{k.key_type} {k.fingerprint}{comment}{opts}")


def _hostkey_fix(facts: Facts) -> str | None:
    return for_family(
        facts,
        {
            "debian": "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh   "
            "(then tell your users the new host key fingerprints: ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key)",
            "rhel": "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart sshd   "
            "(then tell your users the new host key fingerprints: ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key)",
        },
    )


IMAGE_CLEANUP = (
    "Before taking the snapshot: rm -f /etc/ssh/ssh_host_* /root/.ssh/authorized_keys "
    "/home/*/.ssh/authorized_keys and every private key, then `cloud-init clean --logs`; "
    "cloud-init recreates host keys and installs the launching user's key pair at first boot."
)


def _private_key_findings(facts: Facts, image: bool, ci: CloudInit) -> list[Finding]:
    out: list[Finding] = []
    pk = facts.get(private_keys)
    if not pk.searched:
        return [
            Finding(
                Status.ERROR,
                "the evidence holds no search for private keys (gathered by an older nectar-audit?)",
            )
        ]
    for k in pk.keys:
        if k.is_host_key:
            continue  # judged with the host keys below
        service = k.path.startswith(SERVICE_KEY_DIRS)
        if k.encrypted is False:
            if service and not image:
                baked = (
                    ci.first_boot is not None
                    and k.mtime is not None
                    and k.mtime < ci.first_boot - FIRST_BOOT_SLACK_S
                )
                if baked:
                    out.append(
                        Finding(
                            Status.FAIL,
                            f"service private key {k.path} dates from {_day(k.mtime)}, before this "
                            "instance's first "
                            f"boot ({_day(ci.first_boot)}): it came with the image and every VM made from "
                            "it has it",
                            [_key_ev(k)],
                            f"Generate a new key on this VM for the service that uses {k.path} (e.g. "
                            "make-ssl-cert generate-default-snakeoil --force-overwrite, or a new certificate "
                            "from your CA / Let's Encrypt) and remove the old one.",
                        )
                    )
                else:
                    out.append(
                        Finding(
                            Status.WARN,
                            f"unencrypted service private key {k.path} ({k.describe()}): make sure it was "
                            "created "
                            "on this VM and is readable by root and the service only",
                            [_key_ev(k)],
                        )
                    )
                continue
            out.append(
                Finding(
                    Status.FAIL,
                    f"unencrypted private key {k.path} ({k.describe()})"
                    + (": images must not ship private keys" if image else ""),
                    [_key_ev(k)],
                    IMAGE_CLEANUP
                    if image
                    else f"Remove it from the VM (shred -u {k.path}) and keep private keys on your own "
                    "computer "
                    "(use ssh -A agent forwarding when you need them here); if it must stay, give it a "
                    "passphrase: "
                    f"ssh-keygen -p -f {k.path}",
                )
            )
        elif k.encrypted is True:
            if image:
                out.append(
                    Finding(
                        Status.WARN,
                        f"the image ships an encrypted private key {k.path} ({k.describe()})",
                        [_key_ev(k)],
                        IMAGE_CLEANUP,
                    )
                )
            else:
                out.append(
                    Finding(Status.PASS, f"private key {k.path} is protected by a passphrase", [_key_ev(k)])
                )
        else:
            out.append(
                Finding(
                    Status.WARN,
                    f"private key {k.path} in an unrecognised format ({k.format}): check "
                    "whether it is protected",
                    [_key_ev(k)],
                )
            )
    for path, reason in sorted(pk.unreadable.items()):
        out.append(Finding(Status.ERROR, f"cannot inspect private key file {path}: {reason}"))
    return out


def _host_key_findings(facts: Facts, image: bool, ci: CloudInit) -> list[Finding]:
    keys = facts.get(host_keys)
    if not keys:
        return []
    if image:
        return [
            Finding(
                Status.FAIL,
                f"the image ships SSH host keys ({', '.join(k.path for k in keys)}): every VM made from it "
                "would "
                "share them",
                [
                    Evidence(
                        k.path,
                        f"{k.key_type or 'key'} {k.fingerprint or ''} modified {_day(k.oldest)}".strip(),
                    )
                    for k in keys
                ],
                IMAGE_CLEANUP,
            )
        ]
    if ci.first_boot is None:
        if not ci.installed:
            return [
                Finding(
                    Status.MANUAL,
                    "cannot tell when this instance first booted (no cloud-init data): check that the SSH "
                    "host "
                    "keys were generated on this VM and not copied from an image",
                    [_host_ev(k) for k in keys],
                )
            ]
        return [
            Finding(
                Status.MANUAL,
                "cloud-init has no record of this instance's first boot (/var/lib/cloud/instances/*/sem): "
                "cannot tell whether the SSH host keys were generated on this VM",
                [_host_ev(k) for k in keys],
            )
        ]
    baked: list[HostKey] = [
        k for k in keys if k.oldest is not None and k.oldest < ci.first_boot - FIRST_BOOT_SLACK_S
    ]
    boot_ev = Evidence(ci.first_boot_source or "cloud-init", f"instance first boot {_day(ci.first_boot)}")
    if baked:
        return [
            Finding(
                Status.FAIL,
                f"SSH host key {baked[0].path} dates from {_day(baked[0].oldest)}, before this instance's "
                "first "
                f"boot ({_day(ci.first_boot)}): it was baked into the image and is shared by every VM made "
                "from it" + (f" ({len(baked)} host keys)" if len(baked) > 1 else ""),
                [*(_host_ev(k) for k in baked), boot_ev],
                _hostkey_fix(facts),
            )
        ]
    return [
        Finding(
            Status.PASS,
            "SSH host keys were generated at this instance's first boot",
            [*(_host_ev(k) for k in keys), boot_ev],
        )
    ]


def _host_ev(k: HostKey) -> Evidence:
    return Evidence(
        k.path, f"{k.key_type or 'key'} {k.fingerprint or '(fingerprint unknown)'} modified {_day(k.oldest)}"
    )


def _cloud_findings(facts: Facts, image: bool, ci: CloudInit) -> list[Finding]:
    out: list[Finding] = []
    s = ci.settings.get("ssh_deletekeys")
    if s is not None and not ci.ssh_deletekeys:
        path = s.source.rsplit(":", 1)[0]
        out.append(
            Finding(
                Status.FAIL,
                f"ssh_deletekeys: {s.value} in {s.source}: cloud-init keeps the image's SSH host keys on "
                "every new "
                "instance instead of generating fresh ones",
                [Evidence(s.source, f"ssh_deletekeys: {s.value}")],
                f"Delete the ssh_deletekeys line from {path} (cloud-init's default, true, replaces the "
                "host keys at "
                "each instance's first boot).",
            )
        )
    for bk in ci.baked_keys:
        out.append(
            Finding(
                Status.FAIL if image else Status.WARN,
                f"cloud-init config {bk.source} installs SSH key {bk.key_type} {bk.fingerprint}"
                f"{' ' + bk.comment if bk.comment else ''} on every VM made from this image",
                [Evidence(bk.source, f"{bk.key_type} {bk.fingerprint} {bk.comment}".strip())],
                f"Remove the key from {bk.source.rsplit(':', 1)[0]}; choose key pairs at launch instead "
                "(Nectar "
                "dashboard → Key Pairs), which cloud-init installs from the instance metadata.",
            )
        )
    return out


def _authorized_key_findings(facts: Facts, image: bool, ci: CloudInit) -> list[Finding]:
    out: list[Finding] = []
    by_user, unreadable = collect_authorized_keys(facts)
    for path, reason in sorted(unreadable.items()):
        out.append(Finding(Status.ERROR, f"cannot read {path}: {reason}"))
    all_keys = [(u, k) for u, keys in sorted(by_user.items()) for k in keys]
    if image:
        files: dict[str, list[AuthorizedKey]] = {}
        for _u, k in all_keys:
            files.setdefault(k.path, []).append(k)
        for path, keys in sorted(files.items()):
            out.append(
                Finding(
                    Status.FAIL,
                    f"the image ships {path} with {len(keys)} key{'s' if len(keys) != 1 else ''}: every VM "
                    "made from it "
                    "lets these keys in",
                    [_ak_ev(k) for k in keys],
                    IMAGE_CLEANUP,
                )
            )
        return out
    if not all_keys:
        return out
    meta = ci.metadata_fingerprints
    if meta is None:
        reason = ci.metadata_error or (f"no {ci.metadata_source or '/run/cloud-init/instance-data.json'}")
        out.append(
            Finding(
                Status.MANUAL,
                f"cannot tell which of the {len(all_keys)} authorized SSH keys came from the instance "
                "metadata "
                f"({reason}): check that each belongs to someone who should log in",
                [_ak_ev(k) for _u, k in all_keys],
            )
        )
        return out
    foreign = [(u, k) for u, k in all_keys if k.fingerprint not in meta]
    for user, k in foreign:
        comment = f" ({k.comment})" if k.comment else ""
        out.append(
            Finding(
                Status.WARN,
                f"authorized key {k.key_type} {k.fingerprint}{comment} of {user} in {k.source} did not "
                "come from the "
                "instance metadata",
                [_ak_ev(k)],
                f"If nobody added it on purpose, delete line {k.line} of {k.path}; give people access with "
                "their own "
                "account and key, and launch instances with a Nectar key pair.",
            )
        )
    if not foreign:
        out.append(
            Finding(
                Status.PASS,
                f"all {len(all_keys)} authorized SSH keys came from the instance metadata",
                [_ak_ev(k) for _u, k in all_keys],
            )
        )
    return out


def _credential_findings(facts: Facts, image: bool) -> list[Finding]:
    out: list[Finding] = []
    creds = facts.get(credential_files)
    for path, reason in sorted(creds.unreadable.items()):
        out.append(Finding(Status.ERROR, f"cannot inspect credential file {path}: {reason}"))
    for f in creds.stored:
        what = _credential_kind(f.path, f.field)
        out.append(
            Finding(
                Status.FAIL,
                f"{what} stored in {f.source} ({f.field})"
                + (": images must not ship credentials" if image else ""),
                [Evidence(f.source, f"{f.field} = <literal secret, not shown>")],
                _credential_fix(f.path, f.field),
            )
        )
    return out


def _credential_kind(path: str, field: str) -> str:
    if re.search(r"openrc[^/]*\.sh$", path) or field.startswith("OS_"):
        return "OpenStack password" if "PASSWORD" in field else "OpenStack secret"
    if path.endswith(("clouds.yaml", "secure.yaml")):
        return "OpenStack secret"
    if "/.aws/" in path or field.lower().startswith("aws"):
        return "AWS secret key"
    if path.endswith(".git-credentials"):
        return "git password or token"
    if path.endswith(".netrc"):
        return "password"
    if "/.docker/" in path:
        return "container registry credential"
    return "secret"


def _credential_fix(path: str, field: str) -> str:
    if path.endswith(".sh"):
        return (
            f"Remove the literal {field} from {path}: use the openrc file the Nectar dashboard offers (API "
            "Access → Download OpenStack RC File), which asks for the password when sourced, or an "
            "application credential you can revoke."
        )
    if path.endswith(("clouds.yaml", "secure.yaml")):
        return (
            f"Remove {field} from {path}; prefer an application credential with a short expiry that you can "
            "revoke, and keep the file off images (chmod 600)."
        )
    if path.endswith(".git-credentials"):
        return (
            f"Delete {path} and use a credential helper with a timeout: "
            "git config --global credential.helper cache"
        )
    if "/.docker/" in path:
        return f"docker logout the registry (or use a credsStore helper) so {path} holds no auth token"
    return f"Remove the secret from {path} (or the file), rotate it, and keep secrets off images."


def run(facts: Facts) -> list[Finding]:
    b = facts.bundle
    image = _is_image(facts)
    ci = facts.get(cloudinit)
    findings: list[Finding] = []
    findings += _private_key_findings(facts, image, ci)
    findings += _host_key_findings(facts, image, ci)
    findings += _cloud_findings(facts, image, ci)
    findings += _authorized_key_findings(facts, image, ci)
    findings += _credential_findings(facts, image)
    if image and b.stat_glob("/var/lib/cloud/instances/*"):
        findings.append(
            Finding(
                Status.WARN,
                "the image was booted before it was captured (/var/lib/cloud/instances/ holds an instance): "
                "cloud-init treats new VMs as that instance unless its data is cleaned",
                [
                    Evidence(p, "cloud-init instance data")
                    for p in b.stat_glob("/var/lib/cloud/instances/*")[:3]
                ],
                IMAGE_CLEANUP,
            )
        )
    if b.live and not b.is_root:
        findings.append(
            Finding(
                Status.ERROR,
                "needs root to search /root and other users' homes for private keys, credentials and "
                "authorized_keys",
            )
        )
    if not any(f.status in (Status.FAIL, Status.WARN, Status.ERROR, Status.MANUAL) for f in findings):
        where = "in the image" if image else "on this VM"
        findings.insert(
            0,
            Finding(
                Status.PASS,
                f"no unprotected private keys, stored credentials or foreign authorized keys {where}",
            ),
        )
    return findings


def plan(facts: Facts) -> Remedy | None:
    """Never automatic: each private key to remove, move off the host or protect, and the other keys."""
    entries: list[str] = []
    handled: list[str] = []
    findings = facts.get(run)  # the verdict the scan already reached
    pk = facts.get(private_keys)
    for k in pk.keys:
        if k.is_host_key or k.encrypted is not False:
            continue
        path = manual_fix.q(k.path)
        for f in findings:
            if f.status in manual_fix.DECIDE and f.message.startswith(f"unencrypted private key {k.path} "):
                handled.append(f.message)
        entries.append(
            f"decide: unencrypted private key {k.path} ({k.describe()}) -- to act: copy it off the host if it is "
            f"still needed (scp), then remove it: shred -u {path}; or move it out of reach: mkdir -m 700 -p "
            f"/root/nectar-audit-keys && mv {path} /root/nectar-audit-keys/; or give it a passphrase: "
            f"ssh-keygen -p -f {path}")
    return manual_fix.remedy("Check-Security-10", "decide which keys belong on this host",
                             entries + manual_fix.decisions(findings, handled))


CHECK = Check(
    id="Check-Security-10",
    severity="high",
    run=run,
    needs=keys_facts.NEEDS,
    plan=plan,
    why=(
        "A key or password stored in an image is copied into every VM launched from it: one leaked image or "
        "one compromised VM exposes them all. SSH host keys baked into an image are shared by every VM made "
        "from it, so one VM's key lets an attacker impersonate all of them. The cloud's metadata service "
        "delivers each instance the keys chosen at launch, so nothing needs to be stored in the image."
    ),
    how=(
        "Searches /root, /home, /etc, /opt and /srv (4 levels deep, files up to 64 KiB) for private keys; "
        "each is reduced at collection to its format, encryption and public-key fingerprint (key material "
        "never leaves the host). Reads openrc files, clouds.yaml, ~/.aws/credentials, ~/.git-credentials, "
        "~/.netrc and ~/.docker/config.json reduced to which secret fields hold a literal value. Compares "
        "SSH host key times with the instance's first boot (cloud-init's per-instance semaphores), "
        "authorized_keys fingerprints with the public keys in cloud-init's instance-data.json, and reads "
        "ssh_deletekeys and ssh_authorized_keys in /etc/cloud/cloud.cfg(.d). Unencrypted private keys, "
        "stored secrets, host keys older than the first boot and ssh_deletekeys: false fail; authorized "
        "keys not from the metadata warn. Auditing an image (root:PATH), any host key, authorized_keys or "
        "unencrypted private key fails."
    ),
    fix={
        "debian": "Remove private keys and stored credentials; regenerate baked host keys with `rm -f "
        "/etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart ssh`; before snapshotting an "
        "image remove host keys and authorized_keys and run `cloud-init clean`.",
        "rhel": "Remove private keys and stored credentials; regenerate baked host keys with `rm -f "
        "/etc/ssh/ssh_host_* && ssh-keygen -A && systemctl restart sshd`; before snapshotting an image "
        "remove host keys and authorized_keys and run `cloud-init clean`.",
    },
)
