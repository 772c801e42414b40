"""Check-Security-10 (keys in the image) on evidence bundles of live VMs and offline images."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import all_needs
from nectar_audit.checks import keys_in_image
from nectar_audit.evidence.bundle import Bundle, StatRecord
from nectar_audit.facts import Facts
from nectar_audit.facts.keys.cloudinit import cloudinit, parse_baked_keys, parse_cloud_settings
from nectar_audit.facts.keys.private import SEARCH_NAME, sanitize_private_key
from nectar_audit.model import Finding, Status, worst
from tests import SAMPLES

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)"
)

SAMPLES = SAMPLES / "keys"
META_KEY = (SAMPLES / "instance-data.json").read_text().split('"openssh-key": "')[1].split('"')[0]
META_FP = "SHA256:5NKpVRiSVfcgVgaJI1gyOyTEkyEnfwRPukjkPyPkLLk"
UBUNTU = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'
BOOT = 1_735_000_000  # the instance's first boot
IID = "8b1f0a9e-1234-4c2d-9e8f-0123456789ab"
PASSWD = b"root:x:0:0:root:/root:/bin/bash\nubuntu:x:1000:1000:Ubuntu:/home/ubuntu:/bin/bash\n"


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, str, str]]:
    """name -> (private key bytes, public key line, fingerprint)."""
    d = tmp_path_factory.mktemp("k10")
    out = {}
    for name, pw in (("plain", ""), ("locked", "pass phrase"), ("host", "")):
        p = d / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", pw, "-C", f"{name}@laptop", "-f", str(p)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        fp = subprocess.run(
            ["ssh-keygen", "-lf", f"{p}.pub"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[1]
        out[name] = (p.read_bytes(), Path(f"{p}.pub").read_text().strip(), fp)
    return out


def vm(
    gen: dict[str, tuple[bytes, str, str]],
    *,
    live: bool = True,
    uid: int = 0,
    files: Mapping[str, bytes] = {},
    stats: Mapping[str, int] = {},
    hostkey_time: int = BOOT + 20,
    instance_data: bool = True,
    hits: Iterable[str] = (),
) -> Bundle:
    b = Bundle(
        "t", "local" if live else "rootfs", live, uid=uid if live else None, sanitizers=all_needs().sanitize
    )
    b.add_file("/etc/os-release", UBUNTU.encode())
    b.add_file("/etc/passwd", PASSWD)
    b.add_file("/etc/cloud/cloud.cfg", b"disable_root: true\nssh_pwauth: false\n")
    if live:
        b.add_file("/var/lib/cloud/data/instance-id", f"{IID}\n".encode())
        if instance_data:
            b.add_file("/run/cloud-init/instance-data.json", (SAMPLES / "instance-data.json").read_bytes())
        b.stats[f"/var/lib/cloud/instances/{IID}"] = StatRecord(0o40755, 0, 0, 4096, BOOT + 600)
        for sem in ("config_ssh", "consume_data", "config_seed_random"):
            b.stats[f"/var/lib/cloud/instances/{IID}/sem/{sem}"] = StatRecord(0o100644, 0, 0, 20, BOOT + 5)
    _, pub, _ = gen["host"]
    for t in ("ed25519", "rsa"):
        b.stats[f"/etc/ssh/ssh_host_{t}_key"] = StatRecord(0o100600, 0, 0, 400, hostkey_time)
        b.stats[f"/etc/ssh/ssh_host_{t}_key.pub"] = StatRecord(0o100644, 0, 0, 100, hostkey_time)
    b.add_file("/etc/ssh/ssh_host_ed25519_key.pub", f"{pub}\n".encode())
    b.add_file("/etc/ssh/ssh_host_ed25519_key", gen["host"][0])
    for path, data in files.items():
        b.add_file(path, data)
    for path, t in stats.items():
        b.stats[path] = StatRecord(0o100600, 0, 0, 400, t)
    b.searches[SEARCH_NAME] = sorted({"/etc/ssh/ssh_host_ed25519_key", *hits})
    return b


def run(b: Bundle) -> tuple[Status, list[Finding]]:
    findings = keys_in_image.run(Facts(b))
    return worst([f.status for f in findings]), findings


def by_status(findings: list[Finding], status: Status) -> list[str]:
    return [f.message for f in findings if f.status is status]


def test_clean_cloud_vm_passes(gen: dict[str, tuple[bytes, str, str]]) -> None:
    ak = f'no-port-forwarding,command="echo nope;exit 142" {META_KEY}\n'.encode()
    b = vm(
        gen,
        files={
            "/home/ubuntu/.ssh/authorized_keys": f"{META_KEY}\n".encode(),
            "/root/.ssh/authorized_keys": ak,
        },
    )
    status, findings = run(b)
    assert status is Status.PASS, [f.message for f in findings]
    assert by_status(findings, Status.PASS) == [
        "no unprotected private keys, stored credentials or foreign authorized keys on this VM",
        "SSH host keys were generated at this instance's first boot",
        "all 2 authorized SSH keys came from the instance metadata",
    ]
    # The metadata keeps only fingerprints; vendor data never reaches the bundle.
    dumped = json.dumps(b.to_json())
    assert "VENDOR-SECRET-PASSWORD" not in dumped and META_FP in dumped


def test_foreign_authorized_key_warns(gen: dict[str, tuple[bytes, str, str]]) -> None:
    _, pub, fp = gen["plain"]
    b = vm(gen, files={"/home/ubuntu/.ssh/authorized_keys": f"{META_KEY}\n{pub}\n".encode()})
    status, findings = run(b)
    assert status is Status.WARN
    assert by_status(findings, Status.WARN) == [
        f"authorized key ssh-ed25519 {fp} (plain@laptop) of ubuntu in /home/ubuntu/.ssh/authorized_keys:2 "
        "did "
        "not come from the instance metadata"
    ]


def test_without_instance_data_keys_are_manual(gen: dict[str, tuple[bytes, str, str]]) -> None:
    b = vm(gen, instance_data=False, files={"/home/ubuntu/.ssh/authorized_keys": f"{META_KEY}\n".encode()})
    status, findings = run(b)
    assert status is Status.MANUAL
    assert by_status(findings, Status.MANUAL)[0].startswith(
        "cannot tell which of the 1 authorized SSH keys came from the instance metadata (no "
        "/run/cloud-init/instance-data.json)"
    )


def test_host_keys_older_than_first_boot_fail(gen: dict[str, tuple[bytes, str, str]]) -> None:
    status, findings = run(vm(gen, hostkey_time=BOOT - 30 * 86400))
    assert status is Status.FAIL
    (msg,) = by_status(findings, Status.FAIL)
    assert msg == (
        "SSH host key /etc/ssh/ssh_host_ed25519_key dates from 2024-11-24 00:26 UTC, before this "
        "instance's first boot (2024-12-24 00:26 UTC): it was baked into the image and is shared by "
        "every VM made from it (2 host keys)"
    )
    f = next(f for f in findings if f.status is Status.FAIL)
    assert f.evidence[-1].source.startswith(f"/var/lib/cloud/instances/{IID}/sem/")
    assert "ssh-keygen -A && systemctl restart ssh" in (f.remediation or "")


def test_ssh_deletekeys_false_fails(gen: dict[str, tuple[bytes, str, str]]) -> None:
    b = vm(gen, files={"/etc/cloud/cloud.cfg.d/99-keep-keys.cfg": b"# keep\nssh_deletekeys: False\n"})
    status, findings = run(b)
    assert status is Status.FAIL
    assert by_status(findings, Status.FAIL) == [
        "ssh_deletekeys: False in /etc/cloud/cloud.cfg.d/99-keep-keys.cfg:2: cloud-init keeps the image's "
        "SSH host "
        "keys on every new instance instead of generating fresh ones"
    ]
    assert Facts(b).get(cloudinit).ssh_pwauth == "false"


def test_private_keys_and_credentials(gen: dict[str, tuple[bytes, str, str]]) -> None:
    plain, _, plain_fp = gen["plain"]
    locked, _, locked_fp = gen["locked"]
    b = vm(
        gen,
        files={
            "/root/.ssh/id_ed25519": plain,
            "/home/ubuntu/.ssh/id_ed25519": locked,
            "/home/ubuntu/example-project-openrc.sh": (SAMPLES / "project-openrc.sh").read_bytes(),
            "/home/ubuntu/app-openrc.sh": (SAMPLES / "app-cred-openrc.sh").read_bytes(),
        },
        hits=("/root/.ssh/id_ed25519", "/home/ubuntu/.ssh/id_ed25519"),
    )
    status, findings = run(b)
    assert status is Status.FAIL
    assert by_status(findings, Status.FAIL) == [
        f"unencrypted private key /root/.ssh/id_ed25519 (ssh-ed25519 {plain_fp} (openssh-key-v1))",
        "OpenStack secret stored in /home/ubuntu/app-openrc.sh:9 (OS_APPLICATION_CREDENTIAL_SECRET)",
    ]
    assert by_status(findings, Status.PASS) == [
        "private key /home/ubuntu/.ssh/id_ed25519 is protected by a passphrase",
        "SSH host keys were generated at this instance's first boot",
    ]
    cred = next(f for f in findings if "OpenStack secret" in f.message)
    assert cred.evidence[0].detail == "OS_APPLICATION_CREDENTIAL_SECRET = <literal secret, not shown>"
    dumped = json.dumps(b.to_json())
    assert plain.decode().splitlines()[1] not in dumped
    assert locked_fp in dumped


def test_baked_service_key_fails(gen: dict[str, tuple[bytes, str, str]]) -> None:
    plain = gen["plain"][0]
    b = vm(
        gen,
        files={"/etc/ssl/private/ssl-cert-snakeoil.key": plain},
        stats={"/etc/ssl/private/ssl-cert-snakeoil.key": BOOT - 86400 * 10},
        hits=("/etc/ssl/private/ssl-cert-snakeoil.key",),
    )
    status, findings = run(b)
    assert status is Status.FAIL
    assert by_status(findings, Status.FAIL)[0].startswith(
        "service private key /etc/ssl/private/ssl-cert-snakeoil.key dates from 2024-12-14 00:26 UTC, "
        "before this "
        "instance's first boot"
    )
    fresh = vm(
        gen,
        files={"/etc/ssl/private/ssl-cert-snakeoil.key": plain},
        stats={"/etc/ssl/private/ssl-cert-snakeoil.key": BOOT + 60},
        hits=("/etc/ssl/private/ssl-cert-snakeoil.key",),
    )
    status, findings = run(fresh)
    assert status is Status.WARN
    assert by_status(findings, Status.WARN)[0].startswith("unencrypted service private key /etc/ssl/private/")


def test_image_must_not_ship_keys(gen: dict[str, tuple[bytes, str, str]]) -> None:
    plain, pub, fp = gen["plain"]
    b = vm(
        gen,
        live=False,
        files={
            "/root/.ssh/authorized_keys": f"{pub}\n".encode(),
            "/root/.ssh/id_ed25519": plain,
            "/etc/cloud/cloud.cfg.d/50-keys.cfg": f"ssh_authorized_keys:\n  - {pub}\n".encode(),
        },
        hits=("/root/.ssh/id_ed25519",),
    )
    status, findings = run(b)
    assert status is Status.FAIL
    assert by_status(findings, Status.FAIL) == [
        f"unencrypted private key /root/.ssh/id_ed25519 (ssh-ed25519 {fp} (openssh-key-v1)): images must "
        "not ship "
        "private keys",
        "the image ships SSH host keys (/etc/ssh/ssh_host_ed25519_key, /etc/ssh/ssh_host_rsa_key): every "
        "VM made "
        "from it would share them",
        f"cloud-init config /etc/cloud/cloud.cfg.d/50-keys.cfg:2 installs SSH key ssh-ed25519 {fp} "
        "plain@laptop on "
        "every VM made from this image",
        "the image ships /root/.ssh/authorized_keys with 1 key: every VM made from it lets these keys in",
    ]
    assert all("cloud-init clean" in (f.remediation or "") for f in findings if "image ships" in f.message)


def test_non_root_is_an_error_not_a_pass(gen: dict[str, tuple[bytes, str, str]]) -> None:
    status, findings = run(vm(gen, uid=1000))
    assert status is Status.ERROR
    assert by_status(findings, Status.ERROR) == [
        "needs root to search /root and other users' homes for private keys, credentials and authorized_keys"
    ]


def test_no_cloud_init_host_keys_manual(gen: dict[str, tuple[bytes, str, str]]) -> None:
    b = vm(gen)
    for p in [p for p in b.stats if p.startswith("/var/lib/cloud")]:
        del b.stats[p]
    del b.files["/etc/cloud/cloud.cfg"]
    status, findings = run(b)
    assert status is Status.MANUAL
    assert by_status(findings, Status.MANUAL)[0].startswith("cannot tell when this instance first booted")


def test_cloud_config_parsers() -> None:
    text = "ssh_deletekeys: 'false'  # keep\nssh_pwauth: unchanged\nusers:\n  - default\n"
    s = parse_cloud_settings(text, "/etc/cloud/cloud.cfg")
    assert s["ssh_deletekeys"].value == "false" and s["ssh_deletekeys"].source == "/etc/cloud/cloud.cfg:1"
    assert s["ssh_pwauth"].value == "unchanged" and "users" not in s
    keys = parse_baked_keys(f"users:\n  - name: bob\n    ssh_authorized_keys: ['{META_KEY}']\n", "/x.cfg")
    assert [(k.source, k.fingerprint) for k in keys] == [("/x.cfg:3", META_FP)]


def test_search_hit_anywhere_is_sanitized(gen: dict[str, tuple[bytes, str, str]]) -> None:
    from nectar_audit.evidence.needs import Needs, Search
    from nectar_audit.targets.rootfs import RootFsTarget

    root = Path(__import__("tempfile").mkdtemp())
    try:
        (root / "etc").mkdir()
        (root / "opt" / "app").mkdir(parents=True)
        (root / "opt" / "app" / "settings.conf").write_bytes(gen["plain"][0])
        needs = Needs(
            searches=(Search("keys.private", ("/opt",), "PRIVATE KEY-----", sanitizer=sanitize_private_key),),
            sanitize=all_needs().sanitize,
        )
        bundle = RootFsTarget(str(root)).gather(needs)
        assert "PRIVATE KEY-----" not in json.dumps(bundle.to_json())
    finally:
        shutil.rmtree(root)


def test_image_booted_before_capture_warns(gen: dict[str, tuple[bytes, str, str]]) -> None:
    b = vm(gen, live=False)
    for p in [p for p in b.stats if p.startswith("/etc/ssh/")]:
        del b.stats[p]
    for p in [p for p in b.files if p.startswith("/etc/ssh/")]:
        del b.files[p]
    b.stats[f"/var/lib/cloud/instances/{IID}"] = StatRecord(0o40755, 0, 0, 4096, BOOT)
    status, findings = run(b)
    assert status is Status.WARN
    assert by_status(findings, Status.WARN) == [
        "the image was booted before it was captured (/var/lib/cloud/instances/ holds an instance): "
        "cloud-init "
        "treats new VMs as that instance unless its data is cleaned"
    ]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400), st.text(max_size=300), st.text(max_size=200))
def test_garbage_evidence_never_crashes(key: bytes, ak: str, cfg: str) -> None:
    b = Bundle("t", "local", True, uid=0, sanitizers=all_needs().sanitize)
    b.add_file("/etc/passwd", PASSWD)
    b.add_file("/root/.ssh/id_rsa", b"-----BEGIN RSA PRIVATE KEY-----\n" + key)
    b.add_file("/run/cloud-init/instance-data.json", key)
    b.add_file("/home/ubuntu/.ssh/authorized_keys", ak.encode())
    b.add_file("/etc/cloud/cloud.cfg", cfg.encode())
    b.add_file("/home/ubuntu/x-openrc.sh", ak.encode())
    b.searches[SEARCH_NAME] = ["/root/.ssh/id_rsa"]
    findings = keys_in_image.run(Facts(b))
    assert findings and all(f.message for f in findings)
