"""Keys and credentials kept on the host: private keys, SSH host keys, cloud and service credentials.

Secrets never enter the evidence: files that may hold them are reduced at ingestion by the
``private_key`` / ``credentials`` / ``secret_scan`` sanitizers (``evidence/sanitize.py``, which call
``describe_secret_file`` here) to a JSON description: per private key its format, whether it is
encrypted, and the fingerprint of its public half; per credential which secret field is present and
whether it holds a literal value (never the value).

Public API:

- ``describe_secret_file(data) -> dict`` (pure; what the sanitizers store), ``describe_private_keys(text)``,
  ``describe_credentials(text)``
- ``private_keys(facts) -> PrivateKeys`` (every private key found under /root, /home, /etc, /opt, /srv)
- ``credential_files(facts) -> CredentialFiles`` (openrc, clouds.yaml, ~/.aws/credentials, ~/.git-credentials,
  ~/.netrc, ~/.docker/config.json)
- ``host_keys(facts) -> list[HostKey]`` (/etc/ssh/ssh_host_*_key with mtime and public fingerprint)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nectar_audit.evidence import EvidenceError, Needs, Search, fields_only
from nectar_audit.facts.keys.authorized import blob_type, fingerprint, fingerprint_raw, parse_authorized_keys

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

SANITIZED_MARK = "nectar-audit:secret-file"
SEARCH_NAME = "keys.private"
SEARCH_ROOTS = ("/root", "/home", "/etc", "/opt", "/srv")
HOST_KEY_GLOB = "/etc/ssh/ssh_host_*_key"

# Credential files, by where the tools that write them put them.
CREDENTIAL_GLOBS = (
    "/root/*-openrc.sh",
    "/home/*/*-openrc.sh",
    "/root/*openrc*.sh",
    "/home/*/*openrc*.sh",
    "/root/.config/openstack/clouds.yaml",
    "/home/*/.config/openstack/clouds.yaml",
    "/root/.config/openstack/secure.yaml",
    "/home/*/.config/openstack/secure.yaml",
    "/root/clouds.yaml",
    "/home/*/clouds.yaml",
    "/etc/openstack/clouds.yaml",
    "/etc/openstack/secure.yaml",
    "/root/.aws/credentials",
    "/home/*/.aws/credentials",
    "/root/.git-credentials",
    "/home/*/.git-credentials",
    "/root/.netrc",
    "/home/*/.netrc",
    "/root/.docker/config.json",
    "/home/*/.docker/config.json",
)
_CREDENTIAL_PATTERNS = (
    "*openrc*.sh",
    "*/clouds.yaml",
    "*/secure.yaml",
    "*/.aws/credentials",
    "*/.git-credentials",
    "*/.netrc",
    "*/.docker/config.json",
)
# Names private keys are found under elsewhere (kept when they hold no key or secret).
_SCAN_PATTERNS = (
    "*/.ssh/*",
    "/etc/letsencrypt/*",
    "*.pem",
    "*.key",
    "*.p8",
    "*.pk8",
    "*.ppk",
    "*_rsa",
    "*_dsa",
    "*_ecdsa",
    "*_ed25519",
)
# Where key files are kept outside the homes; their content is only ever stored described.
_KEY_PATTERNS = (
    HOST_KEY_GLOB,
    "/etc/ssh/*_key",
    "/etc/ssl/private/*",
    "/etc/pki/tls/private/*",
    "*/.ssh/id_*",
)



# --------------------------------------------------------------------------------------------------
# Private keys (pure)
# --------------------------------------------------------------------------------------------------
_PEM_RE = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----(.*?)(?:-----END \1PRIVATE KEY-----|\Z)", re.S
)
_PUTTY_RE = re.compile(r"^PuTTY-User-Key-File-(\d+):\s*(\S+)", re.M)


def _sshstr(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def string(self) -> bytes:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated")
        (n,) = struct.unpack(">I", self.data[self.pos : self.pos + 4])
        start = self.pos + 4
        if start + n > len(self.data):
            raise ValueError("truncated")
        self.pos = start + n
        return self.data[start : start + n]

    def uint32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated")
        (n,) = struct.unpack(">I", self.data[self.pos : self.pos + 4])
        self.pos += 4
        return int(n)


def _der(buf: bytes, i: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``i``."""
    if i + 2 > len(buf):
        raise ValueError("truncated DER")
    tag, first = buf[i], buf[i + 1]
    i += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or i + n > len(buf):
            raise ValueError("bad DER length")
        length = int.from_bytes(buf[i : i + n], "big")
        i += n
    if i + length > len(buf):
        raise ValueError("truncated DER")
    return tag, i, i + length


def _der_children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    i = start
    while i < end:
        tag, s, e = _der(buf, i)
        out.append((tag, s, e))
        i = e
    return out


def _der_seq(buf: bytes) -> list[tuple[int, int, int]]:
    tag, s, e = _der(buf, 0)
    if tag != 0x30:
        raise ValueError("not a DER SEQUENCE")
    return _der_children(buf, s, e)


_OID_RSA = bytes.fromhex("2a864886f70d010101")
_OID_EC = bytes.fromhex("2a8648ce3d0201")
_OID_DSA = bytes.fromhex("2a8648ce380401")
_OID_ED25519 = bytes.fromhex("2b6570")
_CURVES = {
    bytes.fromhex("2a8648ce3d030107"): "nistp256",
    bytes.fromhex("2b81040022"): "nistp384",
    bytes.fromhex("2b81040023"): "nistp521",
}


def _rsa_blob(der: bytes) -> bytes:
    kids = _der_seq(der)
    if len(kids) < 3 or any(k[0] != 0x02 for k in kids[:3]):
        raise ValueError("not an RSAPrivateKey")
    n = der[kids[1][1] : kids[1][2]]
    e = der[kids[2][1] : kids[2][2]]
    return _sshstr(b"ssh-rsa") + _sshstr(e) + _sshstr(n)


def _ec_blob(der: bytes, curve_oid: bytes | None = None) -> bytes | None:
    kids = _der_seq(der)
    point: bytes | None = None
    for tag, s, _e in kids:
        if tag == 0xA0:
            t, os_, oe = _der(der, s)
            if t == 0x06:
                curve_oid = der[os_:oe]
        elif tag == 0xA1:
            t, bs, be = _der(der, s)
            if t == 0x03 and be > bs:
                point = der[bs + 1 : be]
    curve = _CURVES.get(curve_oid or b"")
    if curve is None or point is None:
        return None
    name = f"ecdsa-sha2-{curve}".encode()
    return _sshstr(name) + _sshstr(curve.encode()) + _sshstr(point)


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _sshstr(raw)


def _dsa_blob(der: bytes) -> bytes:
    kids = _der_seq(der)
    if len(kids) < 5:
        raise ValueError("not a DSAPrivateKey")
    ints = [der[s:e] for _, s, e in kids[1:5]]
    return _sshstr(b"ssh-dss") + b"".join(_sshstr(i) for i in ints)


def _pkcs8_blob(der: bytes) -> tuple[str | None, bytes | None]:
    kids = _der_seq(der)
    if len(kids) < 3 or kids[1][0] != 0x30 or kids[2][0] != 0x04:
        raise ValueError("not a PrivateKeyInfo")
    alg = _der_children(der, kids[1][1], kids[1][2])
    if not alg or alg[0][0] != 0x06:
        raise ValueError("no algorithm")
    oid = der[alg[0][1] : alg[0][2]]
    inner = der[kids[2][1] : kids[2][2]]
    if oid == _OID_RSA:
        return "ssh-rsa", _rsa_blob(inner)
    if oid == _OID_EC:
        params = der[alg[1][1] : alg[1][2]] if len(alg) > 1 and alg[1][0] == 0x06 else None
        blob = _ec_blob(inner, params)
        return (blob_type(blob) if blob else "ecdsa"), blob
    if oid == _OID_DSA:
        if len(alg) < 2 or alg[1][0] != 0x30:
            return "ssh-dss", None
        pqg = _der_children(der, alg[1][1], alg[1][2])
        if len(pqg) < 3:
            return "ssh-dss", None
        p, q, g = (int.from_bytes(der[s:e], "big") for _, s, e in pqg[:3])
        _t, s, e = _der(inner, 0)
        x = int.from_bytes(inner[s:e], "big")
        y = pow(g, x, p)
        blob = _sshstr(b"ssh-dss") + _mpint(p) + _mpint(q) + _mpint(g) + _mpint(y)
        return "ssh-dss", blob
    if oid == _OID_ED25519:
        for tag, s, e in kids[3:]:
            if tag == 0x81 and e - s == 33:  # OneAsymmetricKey [1] publicKey (IMPLICIT BIT STRING)
                return "ssh-ed25519", _sshstr(b"ssh-ed25519") + _sshstr(der[s + 1 : e])
        return "ssh-ed25519", None
    return None, None


def _pem_body(body: str) -> tuple[dict[str, str], bytes]:
    headers: dict[str, str] = {}
    lines = body.strip().splitlines()
    b64: list[str] = []
    for line in lines:
        line = line.strip()
        if ":" in line and not b64 and re.match(r"^[A-Za-z-]+:", line):
            k, _, v = line.partition(":")
            headers[k.strip()] = v.strip()
        elif line:
            b64.append(line)
    joined = re.sub(r"[^A-Za-z0-9+/=]", "", "".join(b64))
    try:
        raw = base64.b64decode(joined, validate=False) if joined else b""
    except (binascii.Error, ValueError):
        # A truncated file still yields its leading part (for openssh-key-v1, the public key).
        joined = joined.rstrip("=")
        raw = base64.b64decode(joined[: len(joined) // 4 * 4], validate=False)
    return headers, raw


def _describe_openssh(raw: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": "openssh-key-v1",
        "key_type": None,
        "encrypted": None,
        "cipher": None,
        "fingerprint": None,
    }
    magic = b"openssh-key-v1\0"
    if not raw.startswith(magic):
        out["error"] = "bad magic"
        return out
    r = _Reader(raw[len(magic) :])
    cipher = r.string().decode("ascii", "replace")
    r.string()  # kdfname
    r.string()  # kdfoptions
    nkeys = r.uint32()
    out["cipher"] = cipher
    out["encrypted"] = cipher != "none"
    if 1 <= nkeys <= 16:
        pub = r.string()
        out["key_type"] = blob_type(pub)
        out["fingerprint"] = fingerprint_raw(pub)
    return out


def _describe_pem(label: str, body: str) -> dict[str, Any]:
    label = label.strip()
    kind = {
        "OPENSSH": "openssh-key-v1",
        "RSA": "pem-rsa",
        "EC": "pem-ec",
        "DSA": "pem-dsa",
        "": "pkcs8",
        "ENCRYPTED": "pkcs8-encrypted",
        "SSH2 ENCRYPTED": "ssh.com",
    }.get(label, "pem-" + label.lower().replace(" ", "-"))
    out: dict[str, Any] = {
        "format": kind,
        "key_type": None,
        "encrypted": None,
        "cipher": None,
        "fingerprint": None,
    }
    try:
        headers, raw = _pem_body(body)
    except (binascii.Error, ValueError):
        out["error"] = "undecodable"
        return out
    if kind == "openssh-key-v1":
        try:
            return _describe_openssh(raw)
        except ValueError:
            out["error"] = "truncated"
            return out
    if kind == "pkcs8-encrypted":
        out["encrypted"] = True
        return out
    if kind == "ssh.com":
        return out
    proc = headers.get("Proc-Type", "")
    if "ENCRYPTED" in proc.upper():
        out["encrypted"] = True
        out["cipher"] = headers.get("DEK-Info", "").split(",")[0] or None
        out["key_type"] = {"pem-rsa": "ssh-rsa", "pem-dsa": "ssh-dss", "pem-ec": "ecdsa"}.get(kind)
        return out
    out["encrypted"] = False
    out["cipher"] = "none"
    try:
        blob: bytes | None
        key_type: str | None
        if kind == "pem-rsa":
            key_type, blob = "ssh-rsa", _rsa_blob(raw)
        elif kind == "pem-ec":
            blob = _ec_blob(raw)
            key_type = blob_type(blob) if blob else "ecdsa"
        elif kind == "pem-dsa":
            key_type, blob = "ssh-dss", _dsa_blob(raw)
        elif kind == "pkcs8":
            key_type, blob = _pkcs8_blob(raw)
        else:
            key_type, blob = None, None
    except (ValueError, IndexError):
        out["error"] = "undecodable"
        return out
    out["key_type"] = key_type
    out["fingerprint"] = fingerprint_raw(blob) if blob else None
    return out


def _describe_putty(text: str, start: int, version: str, key_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": f"putty-v{version}",
        "key_type": key_type,
        "encrypted": None,
        "cipher": None,
        "fingerprint": None,
    }
    rest = text[start : start + 65536]
    m = re.search(r"^Encryption:\s*(\S+)", rest, re.M)
    if m:
        out["cipher"] = m.group(1)
        out["encrypted"] = m.group(1) != "none"
    m = re.search(r"^Public-Lines:\s*(\d+)\s*\n", rest, re.M)
    if m:
        n = min(int(m.group(1)), 64)
        lines = rest[m.end() :].splitlines()[:n]
        out["fingerprint"] = fingerprint("".join(s.strip() for s in lines))
    return out


def describe_private_keys(text: str) -> list[dict[str, Any]]:
    """Every private key block in ``text``: format, key type, encrypted, cipher, public fingerprint."""
    out: list[dict[str, Any]] = []
    for m in _PEM_RE.finditer(text):
        try:
            desc = _describe_pem(m.group(1), m.group(2))
        except Exception:  # a malformed key must still be reported, never crash the sanitizer
            desc = {
                "format": "unknown",
                "key_type": None,
                "encrypted": None,
                "cipher": None,
                "fingerprint": None,
                "error": "undecodable",
            }
        desc["line"] = text.count("\n", 0, m.start()) + 1
        out.append(desc)
    for m in _PUTTY_RE.finditer(text):
        desc = _describe_putty(text, m.end(), m.group(1), m.group(2))
        desc["line"] = text.count("\n", 0, m.start()) + 1
        out.append(desc)
    return out


# --------------------------------------------------------------------------------------------------
# Credentials (pure)
# --------------------------------------------------------------------------------------------------
_SHELL_SECRETS = (
    "OS_PASSWORD",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_TOKEN",
    "OS_AUTH_TOKEN",
    "OS_CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
_SHELL_RE = re.compile(r"^\s*(?:export\s+)?(" + "|".join(_SHELL_SECRETS) + r")=(.*)$")
_YAML_SECRETS = ("password", "application_credential_secret", "token", "auth_token", "secret")
_YAML_RE = re.compile(r"^\s*(?:-\s+)?(" + "|".join(_YAML_SECRETS) + r")\s*:\s*(.*?)\s*$")
_INI_RE = re.compile(r"^\s*(aws_secret_access_key|aws_session_token)\s*=\s*(.*?)\s*$", re.I)
_URL_CRED_RE = re.compile(r"^\s*[A-Za-z][\w+.-]*://[^/\s:@]*:([^@\s]+)@")


def _shell_value(value: str) -> str:
    value = value.strip()
    if value.startswith("#"):
        return "empty"
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    value = value.split(" #", 1)[0].strip()
    if not value:
        return "empty"
    if value.startswith("$") or value.startswith("`"):
        return "reference"
    return "literal"


def _yaml_value(value: str) -> str:
    value = value.split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    if not value or value in ("~", "null"):
        return "empty"
    return "literal"


def describe_credentials(text: str) -> list[dict[str, Any]]:
    """Secret fields found in credential-file shapes: ``{"kind", "field", "line", "value"}``.

    ``value`` is ``literal`` (a secret is stored), ``reference`` (taken from a variable or prompt at run
    time, as Nectar's openrc does with ``read -sr OS_PASSWORD_INPUT``), ``empty`` or ``helper``.
    """
    out: list[dict[str, Any]] = []
    stripped = text.lstrip()
    if stripped.startswith("{"):
        out.extend(_docker_config(text))
    for no, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        m = _SHELL_RE.match(line)
        if m:
            out.append(
                {"kind": "environment", "field": m.group(1), "line": no, "value": _shell_value(m.group(2))}
            )
            continue
        m = _INI_RE.match(line)
        if m:
            out.append(
                {
                    "kind": "aws",
                    "field": m.group(1).lower(),
                    "line": no,
                    "value": "literal" if m.group(2) else "empty",
                }
            )
            continue
        m = _YAML_RE.match(line)
        if m:
            out.append({"kind": "yaml", "field": m.group(1), "line": no, "value": _yaml_value(m.group(2))})
            continue
        m = _URL_CRED_RE.match(line)
        if m:
            out.append({"kind": "url", "field": "password in URL", "line": no, "value": "literal"})
            continue
        words = line.split()
        for i, word in enumerate(words[:-1]):
            if word in ("password", "passwd") and (
                "machine" in words or "default" in words or "login" in words or i == 0
            ):
                out.append({"kind": "netrc", "field": "password", "line": no, "value": "literal"})
                break
    return out


def _docker_config(text: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except ValueError:
        return []
    out: list[dict[str, Any]] = []
    if not isinstance(data, dict):
        return out
    auths = data.get("auths")
    if isinstance(auths, dict):
        for registry, entry in sorted(auths.items()):
            if isinstance(entry, dict):
                for key in ("auth", "password", "identitytoken", "registrytoken"):
                    if entry.get(key):
                        out.append(
                            {
                                "kind": "docker",
                                "field": f"auths.{registry}.{key}",
                                "line": 0,
                                "value": "literal",
                            }
                        )
    for key in ("credsStore", "credHelpers"):
        if data.get(key):
            out.append({"kind": "docker", "field": key, "line": 0, "value": "helper"})
    return out


def describe_secret_file(data: bytes) -> dict[str, Any]:
    """What the sanitizers keep of a secret-bearing file: shapes of keys and secrets, no values."""
    text = data.decode("utf-8", "replace")
    return {
        "sanitized": SANITIZED_MARK,
        "size": len(data),
        "private_keys": describe_private_keys(text),
        "secrets": describe_credentials(text),
    }


def has_secret_marker(data: bytes) -> bool:
    """Whether raw bytes may hold key material (then they must never be kept as they are)."""
    return (
        b"PRIVATE KEY" in data
        or b"PuTTY-User-Key-File" in data
        or b"BEGIN SSH2 " in data
        or b"openssh-key-v1" in data
        or b"b3BlbnNzaC1rZXktdjE" in data
    )


def sanitize_secret_scan(data: bytes) -> str:
    """Keep a file as it is unless it holds a key or a stored secret; then keep only its description."""
    if has_secret_marker(data):
        return json.dumps(describe_secret_file(data), sort_keys=True)
    text = data.decode("utf-8", "replace")
    secrets = describe_credentials(text)
    if any(s["value"] == "literal" for s in secrets):
        return json.dumps(describe_secret_file(data), sort_keys=True)
    return text


def sanitize_described(data: bytes) -> str:
    return json.dumps(describe_secret_file(data), sort_keys=True)


def parse_sanitized(text: str) -> dict[str, Any] | None:
    """A sanitized description back; None when ``text`` is not one (e.g. a kept public file)."""
    if not text.startswith("{") or SANITIZED_MARK not in text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("sanitized") != SANITIZED_MARK:
        return None
    return data


# --------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrivateKey:
    path: str
    line: int
    format: str
    key_type: str | None
    encrypted: bool | None
    cipher: str | None
    fingerprint: str | None
    mtime: int | None = None

    @property
    def is_host_key(self) -> bool:
        return bool(re.fullmatch(r"/etc/ssh/ssh_host_[A-Za-z0-9]+_key", self.path))

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}" if self.line > 1 else self.path

    def describe(self) -> str:
        kind = self.key_type or self.format
        fp = self.fingerprint or "fingerprint unknown"
        return f"{kind} {fp} ({self.format}{', encrypted' if self.encrypted else ''})"


@dataclass
class PrivateKeys:
    keys: list[PrivateKey] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file the search found
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> reason
    searched: bool = False  # the search ran (False: evidence from a gatherer that did not search)
    complete: bool = True  # False when the search could not see everything (not root on a live host)


def _pub_fingerprint(facts: Facts, path: str) -> str | None:
    try:
        text = facts.bundle.text(path + ".pub")
    except EvidenceError:
        return None
    if not text:
        return None
    keys = parse_authorized_keys(text)
    return keys[0].fingerprint if keys else None


def _description(text: str) -> dict[str, Any]:
    parsed = parse_sanitized(text)
    if parsed is not None:
        return parsed
    # Evidence gathered without the sanitizer (should not happen): describe it now, keep nothing else.
    return describe_secret_file(text.encode("utf-8", "replace"))


def private_keys(facts: Facts) -> PrivateKeys:
    b = facts.bundle
    hits = b.hits(SEARCH_NAME)
    out = PrivateKeys(searched=hits is not None)
    if hits is None:
        return out
    out.complete = not b.live or b.is_root
    for path in sorted(set(hits)):
        rec = b.file(path)
        if rec is None:
            continue
        out.files.append(path)
        if rec.error is not None:
            out.unreadable[path] = b.unreadable_reason(path, rec.error)
            continue
        desc = _description(rec.content or "")
        st = b.stats.get(path)
        for k in desc.get("private_keys", []):
            if not isinstance(k, dict):
                continue
            fp = k.get("fingerprint") if isinstance(k.get("fingerprint"), str) else None
            if fp is None:
                fp = _pub_fingerprint(facts, path)
            out.keys.append(
                PrivateKey(
                    path=path,
                    line=int(k.get("line") or 1),
                    format=str(k.get("format") or "unknown"),
                    key_type=k.get("key_type") if isinstance(k.get("key_type"), str) else None,
                    encrypted=k.get("encrypted") if isinstance(k.get("encrypted"), bool) else None,
                    cipher=k.get("cipher") if isinstance(k.get("cipher"), str) else None,
                    fingerprint=fp,
                    mtime=st.mtime if st else None,
                )
            )
    return out


@dataclass(frozen=True)
class SecretField:
    path: str
    kind: str
    field: str
    line: int
    value: str  # literal | reference | empty | helper

    @property
    def stored(self) -> bool:
        return self.value == "literal"

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass
class CredentialFiles:
    fields: list[SecretField] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def stored(self) -> list[SecretField]:
        return [f for f in self.fields if f.stored]


def credential_files(facts: Facts) -> CredentialFiles:
    b = facts.bundle
    out = CredentialFiles()
    paths: dict[str, None] = {}
    for pattern in CREDENTIAL_GLOBS:
        paths.update(dict.fromkeys(b.glob(pattern)))
    for path in paths:
        rec = b.file(path)
        if rec is None:
            continue
        out.files.append(path)
        if rec.error is not None:
            out.unreadable[path] = b.unreadable_reason(path, rec.error)
            continue
        desc = _description(rec.content or "")
        for s in desc.get("secrets", []):
            if isinstance(s, dict):
                out.fields.append(
                    SecretField(
                        path,
                        str(s.get("kind", "")),
                        str(s.get("field", "")),
                        int(s.get("line") or 0),
                        str(s.get("value", "")),
                    )
                )
    return out


@dataclass(frozen=True)
class HostKey:
    path: str  # the private key path
    mtime: int | None
    pub_mtime: int | None
    fingerprint: str | None
    key_type: str | None

    @property
    def oldest(self) -> int | None:
        times = [t for t in (self.mtime, self.pub_mtime) if t is not None]
        return min(times) if times else None


def host_keys(facts: Facts) -> list[HostKey]:
    b = facts.bundle
    names: dict[str, None] = {}
    for path in b.stat_glob("/etc/ssh/ssh_host_*"):
        base = path[:-4] if path.endswith(".pub") else path
        if re.fullmatch(r"/etc/ssh/ssh_host_[A-Za-z0-9]+_key", base):
            names[base] = None
    for path in b.glob("/etc/ssh/ssh_host_*_key.pub"):
        names[path[:-4]] = None
    out = []
    for path in sorted(names):
        st, pst = b.stats.get(path), b.stats.get(path + ".pub")
        fp = key_type = None
        try:
            pub = b.text(path + ".pub")
        except EvidenceError:
            pub = None
        if pub:
            words = pub.split()
            if len(words) >= 2:
                key_type, fp = words[0], fingerprint(words[1])
        out.append(HostKey(path, st.mtime if st else None, pst.mtime if pst else None, fp, key_type))
    return out


@fields_only
def sanitize_private_key(data: bytes) -> str:
    """Private key files -> JSON per key: format, encrypted or not, public fingerprint; no key material."""
    return sanitize_described(data)


@fields_only
def sanitize_credentials(data: bytes) -> str:
    """openrc, clouds.yaml, .aws/credentials, .git-credentials, .netrc, docker config -> secret names only."""
    return sanitize_described(data)


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(*CREDENTIAL_GLOBS, "/etc/ssh/ssh_host_*_key.pub", "/root/.ssh/*.pub", "/home/*/.ssh/*.pub"),
    stats=(
        "/etc/ssh/ssh_host_*",
        "/etc/ssl/private/*",
        "/etc/pki/tls/private/*",
        "/root/.ssh/*",
        "/home/*/.ssh/*",
        "/root",
        "/home/*",
    ),
    searches=(
        Search(name=SEARCH_NAME, roots=SEARCH_ROOTS, contains="PRIVATE KEY-----", sanitizer=sanitize_private_key),
    ),
    sanitize={
        # Public keys stay as they are unless they hold key material (first matching pattern wins).
        "*.pub": sanitize_secret_scan,
        **dict.fromkeys(_CREDENTIAL_PATTERNS, sanitize_credentials),
        **dict.fromkeys(_KEY_PATTERNS, sanitize_private_key),
        # Where the private-key search finds keys under other names: described when they hold a key or a
        # secret, kept as they are otherwise (certificates, configs). Narrow on purpose: a broad "/home/*"
        # would shadow other modules' sanitizers. Search hits elsewhere rely on Search.sanitizer.
        **dict.fromkeys(_SCAN_PATTERNS, sanitize_secret_scan),
    },
)
