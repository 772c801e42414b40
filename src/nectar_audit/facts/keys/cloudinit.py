"""cloud-init: its SSH settings, the instance's first boot, and the public keys the metadata provided.

Public API:

- ``parse_cloud_settings(text, path) -> dict[str, Setting]``: top-level scalar keys of one cloud.cfg file.
- ``parse_baked_keys(text, path) -> list[BakedKey]``: SSH public keys written into a cloud config file.
- ``parse_instance_data(text) -> InstanceData``: a sanitized (or raw) ``instance-data.json``.
- ``sanitize_instance_data(data) -> str``: what the ``instance_data`` sanitizer keeps (instance id, cloud,
  public key fingerprints; never vendor data or user data).
- ``cloudinit(facts) -> CloudInit``: ``installed``, ``settings`` (cloud.cfg then cloud.cfg.d/*.cfg, later
  files win), ``flag(name, default)``, ``ssh_deletekeys`` / ``ssh_pwauth`` / ``disable_root``,
  ``baked_keys``, ``instance_id``, ``first_boot`` (epoch s) with ``first_boot_source``,
  ``metadata_keys`` (None when unknown) with ``metadata_source``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nectar_audit.evidence import EvidenceError, Needs, fields_only
from nectar_audit.facts.keys.authorized import KEY_TYPES, parse_authorized_keys

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

CLOUD_CFG = "/etc/cloud/cloud.cfg"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d/*.cfg"
INSTANCE_DATA = "/run/cloud-init/instance-data.json"
INSTANCE_ID = "/var/lib/cloud/data/instance-id"
INSTANCES = "/var/lib/cloud/instances"
SANITIZED_MARK = "nectar-audit:instance-data"


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


# --------------------------------------------------------------------------------------------------
# Parsers (pure)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    value: str
    source: str  # path:line

    @property
    def as_bool(self) -> bool | None:
        v = self.value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        return None


def _scalar(raw: str) -> str:
    raw = raw.strip()
    if raw[:1] in "\"'" and len(raw) >= 2:
        end = raw.find(raw[0], 1)
        if end > 0:
            return raw[1:end]
    return re.split(r"\s+#", raw, maxsplit=1)[0].strip()


def parse_cloud_settings(text: str, path: str) -> dict[str, Setting]:
    """Top-level ``key: scalar`` lines of a cloud config (YAML subset cloud.cfg files use)."""
    out: dict[str, Setting] = {}
    for no, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^([A-Za-z_][\w-]*)\s*:(?:\s+(.*))?$", line.rstrip())
        if not m:
            continue
        value = _scalar(m.group(2) or "")
        if not value or value[0] in "[{|>&*":
            continue
        out[m.group(1)] = Setting(value, f"{path}:{no}")
    return out


@dataclass(frozen=True)
class BakedKey:
    source: str
    key_type: str
    fingerprint: str | None
    comment: str


def parse_baked_keys(text: str, path: str) -> list[BakedKey]:
    """Public keys written into a cloud config file (``ssh_authorized_keys:`` top level or per user)."""
    out: list[BakedKey] = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("#"):
            continue
        s = re.sub(r"^(?:-\s*)?(?:ssh_authorized_keys\s*:\s*)?", "", s).strip().strip("[]").strip()
        for part in s.split(","):
            part = _scalar(part)
            if not part.split(None, 1) or part.split(None, 1)[0] not in KEY_TYPES:
                continue
            for key in parse_authorized_keys(part):
                out.append(BakedKey(f"{path}:{no}", key.key_type, key.fingerprint, key.comment))
    return out


@dataclass(frozen=True)
class MetaKey:
    fingerprint: str
    key_type: str
    comment: str


@dataclass
class InstanceData:
    instance_id: str | None = None
    cloud_name: str | None = None
    platform: str | None = None
    public_keys: list[MetaKey] = field(default_factory=list)


def _walk_strings(node: Any, depth: int = 0) -> list[str]:
    if depth > 32:
        return []
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _walk_strings(v, depth + 1)]
    if isinstance(node, list):
        return [s for v in node for s in _walk_strings(v, depth + 1)]
    return []


def _extract(data: Any) -> InstanceData:
    out = InstanceData()
    if not isinstance(data, dict):
        return out
    v1 = data.get("v1") if isinstance(data.get("v1"), dict) else {}
    assert isinstance(v1, dict)
    for key, attr in (("instance_id", "instance_id"), ("cloud_name", "cloud_name"), ("platform", "platform")):
        value = v1.get(key, data.get(key))
        if isinstance(value, str):
            setattr(out, attr, value)
    seen: set[str] = set()
    for s in _walk_strings(data):
        if not any(t in s for t in ("ssh-", "ecdsa-", "sk-")):
            continue
        for ak in parse_authorized_keys(s):
            if ak.fingerprint and ak.fingerprint not in seen:
                seen.add(ak.fingerprint)
                out.public_keys.append(MetaKey(ak.fingerprint, ak.key_type, ak.comment))
    return out


@fields_only
def sanitize_instance_data(data: bytes) -> str:
    parsed = _extract(json.loads(data.decode("utf-8", "replace")))
    return json.dumps(
        {
            "sanitized": SANITIZED_MARK,
            "instance_id": parsed.instance_id,
            "cloud_name": parsed.cloud_name,
            "platform": parsed.platform,
            "public_keys": [
                {"fingerprint": k.fingerprint, "key_type": k.key_type, "comment": k.comment}
                for k in parsed.public_keys
            ],
        },
        sort_keys=True,
    )


def parse_instance_data(text: str) -> InstanceData:
    """The sanitized form (or, for evidence captured without the sanitizer, the raw file)."""
    data = json.loads(text)
    if isinstance(data, dict) and data.get("sanitized") == SANITIZED_MARK:
        out = InstanceData(
            instance_id=data.get("instance_id") if isinstance(data.get("instance_id"), str) else None,
            cloud_name=data.get("cloud_name") if isinstance(data.get("cloud_name"), str) else None,
            platform=data.get("platform") if isinstance(data.get("platform"), str) else None,
        )
        for k in data.get("public_keys") or []:
            if isinstance(k, dict) and isinstance(k.get("fingerprint"), str):
                out.public_keys.append(
                    MetaKey(k["fingerprint"], str(k.get("key_type", "")), str(k.get("comment", "")))
                )
        return out
    return _extract(data)


# --------------------------------------------------------------------------------------------------
# The fact
# --------------------------------------------------------------------------------------------------
@dataclass
class CloudInit:
    installed: bool = False
    settings: dict[str, Setting] = field(default_factory=dict)
    baked_keys: list[BakedKey] = field(default_factory=list)
    instance_id: str | None = None
    first_boot: int | None = None
    first_boot_source: str | None = None
    metadata_keys: list[MetaKey] | None = None
    metadata_source: str | None = None
    metadata_error: str | None = None
    errors: list[str] = field(default_factory=list)

    def flag(self, name: str, default: bool) -> bool:
        """cloud-init's get_cfg_option_bool: true only for true/yes/on/1; absent -> default."""
        s = self.settings.get(name)
        if s is None:
            return default
        return s.value.strip().lower() in _TRUE

    @property
    def ssh_deletekeys(self) -> bool:
        return self.flag("ssh_deletekeys", True)

    @property
    def ssh_pwauth(self) -> str | None:
        """ "true"/"false"/"unchanged" (as configured) or None when not set."""
        s = self.settings.get("ssh_pwauth")
        if s is None:
            return None
        b = s.as_bool
        return s.value.lower() if b is None else ("true" if b else "false")

    @property
    def disable_root(self) -> bool:
        return self.flag("disable_root", True)

    @property
    def metadata_fingerprints(self) -> set[str] | None:
        if self.metadata_keys is None:
            return None
        return {k.fingerprint for k in self.metadata_keys}


def _first_boot(facts: Facts, instance_id: str | None) -> tuple[int | None, str | None]:
    """Earliest per-instance semaphore of the current instance: written once, at its first boot."""
    b = facts.bundle
    ids = [instance_id] if instance_id else []
    if not ids:
        dirs = [p for p in b.stat_glob(f"{INSTANCES}/*") if p.count("/") == 5 and b.stats[p].is_dir]
        if len(dirs) == 1:
            ids = [dirs[0].rsplit("/", 1)[1]]
    for iid in ids:
        base = f"{INSTANCES}/{iid}"
        sems = [(b.stats[p].mtime, p) for p in b.stat_glob(f"{base}/sem/*")]
        if sems:
            t, p = min(sems)
            return t, p
        st = b.stats.get(base)
        if st is not None:
            return st.mtime, base
    return None, None


def cloudinit(facts: Facts) -> CloudInit:
    b = facts.bundle
    out = CloudInit()
    for path in [CLOUD_CFG, *b.glob(CLOUD_CFG_D)]:
        try:
            text = b.text(path)
        except EvidenceError as exc:
            out.errors.append(str(exc))
            continue
        if text is None:
            continue
        out.installed = out.installed or path == CLOUD_CFG
        out.settings.update(parse_cloud_settings(text, path))
        out.baked_keys.extend(parse_baked_keys(text, path))
    if b.glob(CLOUD_CFG_D):
        out.installed = True

    try:
        iid_text = b.text(INSTANCE_ID)
    except EvidenceError:
        iid_text = None
    if iid_text and iid_text.strip():
        out.instance_id = iid_text.strip().splitlines()[0]

    try:
        data_text = b.text(INSTANCE_DATA)
    except EvidenceError as exc:
        data_text = None
        out.metadata_error = str(exc)
    if data_text is not None:
        try:
            data = parse_instance_data(data_text)
        except ValueError:
            out.metadata_error = f"{INSTANCE_DATA} is not valid JSON"
        else:
            out.metadata_keys = data.public_keys
            out.metadata_source = INSTANCE_DATA
            out.instance_id = out.instance_id or data.instance_id
    out.first_boot, out.first_boot_source = _first_boot(facts, out.instance_id)
    return out


# The evidence this module reads (after the sanitizers it names).
NEEDS = Needs(
    files=(CLOUD_CFG, CLOUD_CFG_D, INSTANCE_DATA, INSTANCE_ID),
    stats=(
        "/var/lib/cloud/instance",
        "/var/lib/cloud/instance/boot-finished",
        INSTANCE_ID,
        f"{INSTANCES}/*",
        f"{INSTANCES}/*/sem/*",
        f"{INSTANCES}/*/boot-finished",
        INSTANCE_DATA,
    ),
    sanitize={
        INSTANCE_DATA: sanitize_instance_data,
        "/run/cloud-init/instance-data-sensitive.json": sanitize_instance_data,
    },
)
