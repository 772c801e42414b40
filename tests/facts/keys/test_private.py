"""Private keys and credential files: described at ingestion, never kept (keys from real ssh-keygen)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nectar_audit.catalog import all_needs
from nectar_audit.evidence.bundle import Bundle
from nectar_audit.evidence.sanitize import sanitize
from nectar_audit.facts import Facts
from nectar_audit.facts.keys.private import (
    SEARCH_NAME,
    credential_files,
    describe_credentials,
    describe_private_keys,
    private_keys,
    sanitize_credentials,
    sanitize_private_key,
    sanitize_secret_scan,
)
from tests import SAMPLES

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (openssh-client)"
)
SAMPLES = SAMPLES / "keys"

# (name, ssh-keygen type args, format args, passphrase)
VARIANTS = [
    ("ed25519", ["-t", "ed25519"], [], ""),
    ("ed25519-enc", ["-t", "ed25519"], [], "secret pass"),
    ("rsa", ["-t", "rsa", "-b", "2048"], [], ""),
    ("rsa-pem", ["-t", "rsa", "-b", "2048"], ["-m", "PEM"], ""),
    ("rsa-pem-enc", ["-t", "rsa", "-b", "2048"], ["-m", "PEM"], "secret pass"),
    ("rsa-pkcs8", ["-t", "rsa", "-b", "2048"], ["-m", "PKCS8"], ""),
    ("rsa-pkcs8-enc", ["-t", "rsa", "-b", "2048"], ["-m", "PKCS8"], "secret pass"),
    ("ecdsa256-pem", ["-t", "ecdsa", "-b", "256"], ["-m", "PEM"], ""),
    ("ecdsa384-pkcs8", ["-t", "ecdsa", "-b", "384"], ["-m", "PKCS8"], ""),
    ("ecdsa521", ["-t", "ecdsa", "-b", "521"], [], "p"),
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """name -> (private key file, fingerprint per ssh-keygen -lf of the .pub)."""
    d = tmp_path_factory.mktemp("keys")
    out: dict[str, tuple[Path, str]] = {}
    for name, targs, fargs, pw in VARIANTS:
        path = d / name
        subprocess.run(
            ["ssh-keygen", "-q", *targs, *fargs, "-N", pw, "-C", f"{name}@test", "-f", str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        fp = subprocess.run(
            ["ssh-keygen", "-lf", f"{path}.pub"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()[1]
        out[name] = (path, fp)
    return out


def _body_lines(path: Path) -> list[str]:
    """The base64 lines of a PEM file: what must never reach a bundle."""
    return [
        line
        for line in path.read_text().splitlines()
        if line and not line.startswith("-----") and ":" not in line
    ]


EXPECT = {
    # name: (format, encrypted, key_type, fingerprint known)
    "ed25519": ("openssh-key-v1", False, "ssh-ed25519", True),
    "ed25519-enc": ("openssh-key-v1", True, "ssh-ed25519", True),
    "rsa": ("openssh-key-v1", False, "ssh-rsa", True),
    "rsa-pem": ("pem-rsa", False, "ssh-rsa", True),
    "rsa-pem-enc": ("pem-rsa", True, "ssh-rsa", False),
    "rsa-pkcs8": ("pkcs8", False, "ssh-rsa", True),
    "rsa-pkcs8-enc": ("pkcs8-encrypted", True, None, False),
    "ecdsa256-pem": ("pem-ec", False, "ecdsa-sha2-nistp256", True),
    "ecdsa384-pkcs8": ("pkcs8", False, "ecdsa-sha2-nistp384", True),
    "ecdsa521": ("openssh-key-v1", True, "ecdsa-sha2-nistp521", True),
}


@pytest.mark.parametrize("name", list(EXPECT))
def test_describe_matches_ssh_keygen(keys: dict[str, tuple[Path, str]], name: str) -> None:
    path, fp = keys[name]
    fmt, enc, ktype, fp_known = EXPECT[name]
    (desc,) = describe_private_keys(path.read_text())
    assert desc["format"] == fmt
    assert desc["encrypted"] is enc
    assert desc["key_type"] == ktype
    assert desc["fingerprint"] == (fp if fp_known else None)


def test_sanitized_bundle_holds_no_key_material(keys: dict[str, tuple[Path, str]]) -> None:
    needs = all_needs()
    b = Bundle("t", "local", True, uid=0, sanitizers=needs.sanitize)
    places = {
        "ed25519": "/home/alice/.ssh/id_ed25519",
        "rsa-pem": "/root/deploy.pem",  # anywhere under /root
        "rsa-pkcs8": "/etc/ssl/private/site.key",
        "ecdsa256-pem": "/opt/app/conf/tls.key",
        "rsa-pem-enc": "/srv/backup/id_rsa",
        "ed25519-enc": "/etc/ssh/ssh_host_ed25519_key",
    }
    for name, where in places.items():
        b.add_file(where, keys[name][0].read_bytes())
    b.searches[SEARCH_NAME] = sorted(places.values())
    dumped = json.dumps(b.to_json())
    for name in places:
        for line in _body_lines(keys[name][0]):
            assert line not in dumped, f"key material of {name} leaked"
    assert "PRIVATE KEY-----" not in dumped
    pk = Facts(b).get(private_keys)
    got = {k.path: (k.fingerprint, k.encrypted) for k in pk.keys}
    assert got["/home/alice/.ssh/id_ed25519"] == (keys["ed25519"][1], False)
    assert got["/etc/ssl/private/site.key"] == (keys["rsa-pkcs8"][1], False)
    assert got["/srv/backup/id_rsa"] == (None, True)
    host = [k for k in pk.keys if k.is_host_key]
    assert [k.path for k in host] == ["/etc/ssh/ssh_host_ed25519_key"]


def test_pub_file_gives_fingerprint_of_encrypted_pem(keys: dict[str, tuple[Path, str]]) -> None:
    b = Bundle("t", "local", True, uid=0, sanitizers=all_needs().sanitize)
    path, fp = keys["rsa-pem-enc"]
    b.add_file("/home/bob/.ssh/id_rsa", path.read_bytes())
    b.add_file("/home/bob/.ssh/id_rsa.pub", Path(f"{path}.pub").read_bytes())
    b.searches[SEARCH_NAME] = ["/home/bob/.ssh/id_rsa"]
    # The public key stays as it is.
    assert b.files["/home/bob/.ssh/id_rsa.pub"].content == Path(f"{path}.pub").read_text()
    (k,) = Facts(b).get(private_keys).keys
    assert (k.fingerprint, k.encrypted, k.format) == (fp, True, "pem-rsa")


def test_truncated_and_garbage_keys_are_described_not_kept(keys: dict[str, tuple[Path, str]]) -> None:
    data = keys["rsa"][0].read_bytes()
    half = data[: len(data) // 2]
    out = sanitize(sanitize_private_key, half)
    assert "BEGIN" not in out and half.decode().splitlines()[1] not in out
    (desc,) = json.loads(out)["private_keys"]
    assert desc["format"] == "openssh-key-v1" and desc["fingerprint"] is not None  # public part comes first
    junk = b"-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n"
    assert json.loads(sanitize(sanitize_secret_scan, junk))["private_keys"][0]["format"] == "pem-rsa"


def test_secret_scan_keeps_ordinary_files() -> None:
    text = b"export PATH=$PATH:/opt/bin\nalias ll='ls -l'\n"
    assert sanitize_secret_scan(text) == text.decode()
    leaked = b"export OS_PASSWORD=hunter2hunter2\n"
    out = sanitize_secret_scan(leaked)
    assert "hunter2" not in out and json.loads(out)["secrets"][0]["field"] == "OS_PASSWORD"


def test_credentials_described_without_values() -> None:
    prompt = describe_credentials((SAMPLES / "project-openrc.sh").read_text())
    assert prompt == [{"kind": "environment", "field": "OS_PASSWORD", "line": 31, "value": "reference"}]
    app = describe_credentials((SAMPLES / "app-cred-openrc.sh").read_text())
    assert app == [
        {"kind": "environment", "field": "OS_APPLICATION_CREDENTIAL_SECRET", "line": 9, "value": "literal"}
    ]
    clouds = describe_credentials((SAMPLES / "clouds.yaml").read_text())
    assert clouds == [
        {"kind": "yaml", "field": "application_credential_secret", "line": 14, "value": "literal"}
    ]
    aws = describe_credentials(
        "[default]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = abc/def\n"
    )
    assert [(c["field"], c["value"]) for c in aws] == [("aws_secret_access_key", "literal")]
    git = describe_credentials("https://alice:ghp_token123@github.com\nhttps://github.com\n")
    assert [(c["field"], c["line"]) for c in git] == [("password in URL", 1)]
    netrc = describe_credentials("machine example.org login alice password s3cr3t\n")
    assert [(c["kind"], c["value"]) for c in netrc] == [("netrc", "literal")]
    docker = describe_credentials(
        '{"auths": {"catalog.example.org": {"auth": "YWxpY2U6cHc="}}, "credsStore": "pass"}'
    )
    assert [(c["field"], c["value"]) for c in docker] == [
        ("auths.catalog.example.org.auth", "literal"),
        ("credsStore", "helper"),
    ]


def test_credential_fact_and_bundle() -> None:
    b = Bundle("t", "local", True, uid=0, sanitizers=all_needs().sanitize)
    b.add_file("/home/alice/example-project-openrc.sh", (SAMPLES / "project-openrc.sh").read_bytes())
    b.add_file("/home/alice/app-openrc.sh", (SAMPLES / "app-cred-openrc.sh").read_bytes())
    b.add_file("/root/.config/openstack/clouds.yaml", (SAMPLES / "clouds.yaml").read_bytes())
    b.add_file("/home/alice/.git-credentials", b"https://alice:ghp_token123@github.com\n")
    dumped = json.dumps(b.to_json())
    for secret in ("Zm9vYmFyU2VjcmV0VmFsdWVOb3RSZWFsMTIz", "ghp_token123"):
        assert secret not in dumped
    creds = Facts(b).get(credential_files)
    assert sorted((f.path, f.field) for f in creds.stored) == [
        ("/home/alice/.git-credentials", "password in URL"),
        ("/home/alice/app-openrc.sh", "OS_APPLICATION_CREDENTIAL_SECRET"),
        ("/root/.config/openstack/clouds.yaml", "application_credential_secret"),
    ]


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_sanitizer_never_keeps_key_bodies(noise: bytes) -> None:
    body = base64.b64encode(b"openssh-key-v1\x00" + noise).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    data = (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END OPENSSH PRIVATE KEY-----\n"
    ).encode()
    for fn in (sanitize_private_key, sanitize_secret_scan, sanitize_credentials):
        out = sanitize(fn, data)
        assert not out.startswith("<withheld"), out
        assert all(line not in out for line in lines if len(line) > 12)
        assert not re.search(r"[A-Za-z0-9+/]{60,}", out)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_describers_never_crash(text: str) -> None:
    describe_private_keys(text)
    describe_credentials(text)
    sanitize_secret_scan(text.encode())
