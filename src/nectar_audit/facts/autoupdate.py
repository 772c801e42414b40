"""Automatic updates: unattended-upgrades on Debian/Ubuntu, dnf-automatic / dnf5 automatic / yum-cron on
the RHEL family and Fedora.

Debian/Ubuntu: apt's daily job (``apt-daily.timer`` → ``apt-get update``, ``apt-daily-upgrade.timer``
→ ``unattended-upgrade``; ``/etc/cron.daily/apt-compat`` without systemd) acts on
``APT::Periodic::*`` (``apt.systemd.daily``: a value other than ``0`` enables a step, ``always`` or a
number of days with an optional s/m/h/d suffix). unattended-upgrades installs what its origins allow:
``Unattended-Upgrade::Allowed-Origins`` (``origin:archive``) and ``Unattended-Upgrade::Origins-Pattern``
(``key=value`` lists matched with fnmatch), both with ``${distro_id}`` (``lsb_release -i``) and
``${distro_codename}`` expanded. Whether they cover the security archive is decided against the
security archive's own Release fields on the host (``/var/lib/apt/lists``), or the distribution's
known values when the lists are absent.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence.bundle import EvidenceError
from nectar_audit.evidence.needs import Needs
from nectar_audit.facts.apt_config import AptConfig, Setting, apt_config
from nectar_audit.facts.host import host, parse_os_release
from nectar_audit.facts.packages import packages
from nectar_audit.facts.services import services
from nectar_audit.facts.updates import ReleaseInfo, apt_releases

if TYPE_CHECKING:
    from nectar_audit.facts import Facts

UU_LOG = "/var/log/unattended-upgrades/unattended-upgrades.log"
PERIODIC = "/var/lib/apt/periodic"
UPGRADE_STAMP = f"{PERIODIC}/upgrade-stamp"
APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
APT_CRON = "/etc/cron.daily/apt-compat"
DNF4_CONF = "/etc/dnf/automatic.conf"
DNF5_CONFS = ("/etc/dnf/dnf5-plugins/automatic.conf", "/usr/share/dnf5/dnf5-plugins/automatic.conf")
YUM_CRON_CONF = "/etc/yum/yum-cron.conf"
_UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system")

NEEDS = Needs(
    files=(UU_LOG, DNF4_CONF, *DNF5_CONFS, YUM_CRON_CONF),
    stats=(
        f"{PERIODIC}/*",
        *(f"{d}/apt-daily*.timer" for d in _UNIT_DIRS[:2]),
        *(f"{d}/dnf*-automatic*.timer" for d in _UNIT_DIRS[:2]),
        *(f"{d}/yum-cron.service" for d in _UNIT_DIRS[:2]),
        APT_CRON,
        "/etc/cron.daily/0yum-daily.cron",
        "/usr/sbin/cron",
        "/usr/sbin/crond",
    ),
)

# -- periodic values -----------------------------------------------------------------------------


def periodic_enabled(value: str | None) -> bool:
    """apt.systemd.daily runs a step unless its interval is unset or exactly "0"."""
    return value is not None and value.strip() not in ("", "0")


# -- origins -------------------------------------------------------------------------------------

_KEYS = {
    "o": "origin",
    "origin": "origin",
    "l": "label",
    "label": "label",
    "a": "archive",
    "suite": "archive",
    "archive": "archive",
    "c": "component",
    "component": "component",
    "site": "site",
    "n": "codename",
    "codename": "codename",
}


@dataclass(frozen=True)
class Repo:
    """A security archive as unattended-upgrades sees it: each attribute's possible values."""

    attrs: dict[str, tuple[str, ...]]  # key -> values; a missing key matches anything
    source: str  # Release file, or "known values for Debian 12"


@dataclass(frozen=True)
class OriginRule:
    kind: str  # Allowed-Origins | Origins-Pattern
    raw: str
    expanded: str
    origin: str | None  # file:line
    covers_security: bool
    error: str | None = None  # unattended-upgrades would stop with this error


class PatternError(ValueError):
    pass


def expand(text: str, mapping: dict[str, str]) -> str:
    """string.Template.substitute as unattended-upgrades does it (unknown names are an error)."""
    from string import Template

    try:
        return Template(text).substitute(mapping)
    except KeyError as exc:
        raise PatternError(f"unknown variable ${{{exc.args[0]}}}") from None
    except ValueError as exc:
        raise PatternError(str(exc)) from None


def legacy_to_pattern(entry: str) -> str:
    """unattended-upgrades' conversion of an Allowed-Origins entry "origin:archive" to a pattern."""
    parts = re.split(r"(?<!\\):", entry) if re.search(r"(?<!\\):", entry) else entry.split()
    if len(parts) != 2:
        raise PatternError(f"cannot split {entry!r} into origin and archive")
    origin, archive = parts
    origin = re.sub(r"\\:", ":", origin)
    origin = re.sub(r"([^\\]),", r"\1\\,", origin)
    archive = re.sub(r"([^\\]),", r"\1\\,", archive)
    return f"o={origin},a={archive}"


def parse_pattern(pattern: str) -> list[tuple[str, str]]:
    """``key=value,key=value`` (``\\,`` escapes a comma) -> [(canonical key, value)]."""
    text = pattern.strip()
    if not text:
        raise PatternError("an empty pattern matches nothing")
    text = text.replace("\\,", "%2C")
    out = []
    for token in text.split(","):
        parts = [s.strip().replace("%2C", ",") for s in token.split("=")]
        if len(parts) != 2:
            raise PatternError(f"token {token!r} is not key=value")
        key = _KEYS.get(parts[0])
        if key is None:
            raise PatternError(f"unknown matcher {parts[0]!r}")
        out.append((key, parts[1]))
    return out


def pattern_matches(pattern: str, repo: Repo) -> bool:
    for key, value in parse_pattern(pattern):
        candidates = repo.attrs.get(key)
        if candidates is None:
            continue
        if not any(fnmatch.fnmatch(c, value) for c in candidates):
            return False
    return True


def security_repos(os_id: str, version_id: str, codename: str, releases: list[ReleaseInfo]) -> list[Repo]:
    """The host's security archives: from its Release files, else the distribution's known values."""
    out = []
    for rel in releases:
        if not rel.is_security:
            continue
        f = rel.fields
        site = rel.path.rsplit("/", 1)[-1].split("_", 1)[0]
        attrs: dict[str, tuple[str, ...]] = {
            "origin": (f.get("Origin", ""),),
            "label": (f.get("Label", ""),),
            "archive": (f.get("Suite", ""),),
            "codename": (f.get("Codename", ""),),
            "site": (site,),
        }
        out.append(Repo(attrs, rel.path))
    if out:
        return out
    major = int(version_id.split(".")[0]) if version_id.split(".")[0].isdigit() else None
    if os_id == "debian":
        suites = ("stable-security", "oldstable-security", "oldoldstable-security", f"{codename}-security")
        if major is not None and major <= 10:
            codenames: tuple[str, ...] = (codename,)
            suites = ("stable", "oldstable", "oldoldstable", f"{codename}/updates")
        elif major is not None:
            codenames = (f"{codename}-security",)
        else:
            codenames = (codename, f"{codename}-security")
        return [
            Repo(
                {
                    "origin": ("Debian",),
                    "label": ("Debian-Security",),
                    "archive": suites,
                    "codename": codenames,
                },
                f"known values for Debian {version_id or codename}",
            )
        ]
    if os_id == "ubuntu":
        return [
            Repo(
                {
                    "origin": ("Ubuntu",),
                    "label": ("Ubuntu",),
                    "archive": (f"{codename}-security",),
                    "codename": (codename,),
                },
                f"known values for Ubuntu {version_id}",
            )
        ]
    return []


# -- last run ------------------------------------------------------------------------------------

_UU_OK = ("All upgrades installed", "No packages found that can be upgraded unattended")
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)(?:,\d+)? (\w+) (.*)$")


@dataclass(frozen=True)
class LastRun:
    when: dt.datetime
    source: str
    detail: str


def last_success_in_log(text: str) -> tuple[dt.datetime, str] | None:
    best: tuple[dt.datetime, str] | None = None
    for line in text.splitlines():
        m = _LOG_LINE.match(line)
        if m is None or not m.group(3).startswith(_UU_OK):
            continue
        try:
            when = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            continue
        if best is None or when >= best[0]:
            best = (when, line.strip())
    return best


# -- the Debian fact -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimerState:
    name: str
    enabled: bool
    masked: bool
    present: bool  # a unit file exists


@dataclass(frozen=True)
class UnattendedUpgrades:
    installed: bool | None  # the unattended-upgrades package (None: cannot tell)
    config: AptConfig
    enable: Setting | None
    update_lists: Setting | None
    unattended: Setting | None
    download: Setting | None
    rules: tuple[OriginRule, ...]
    repos: tuple[Repo, ...]
    distro_id: str
    codename: str
    systemd: bool
    timers: tuple[TimerState, ...]
    cron_job: bool  # /etc/cron.daily/apt-compat exists (used when systemd is not the init)
    last_run: LastRun | None
    log_unreadable: str | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def covers_security(self) -> bool:
        return any(r.covers_security for r in self.rules)


def _distro_names(facts: Facts) -> tuple[str, str, str, str]:
    """(os id, version id, lsb distro id, codename)."""
    b = facts.bundle
    info = facts.get(host)
    rel = parse_os_release(b.text("/etc/os-release") or b.text("/usr/lib/os-release") or "")
    codename = rel.get("VERSION_CODENAME") or rel.get("UBUNTU_CODENAME") or ""
    if not codename:
        m = re.search(r"\((\w+)\)", rel.get("VERSION", ""))
        codename = m.group(1).lower() if m else ""
    name = rel.get("NAME", "")
    distro_id = name.split()[0] if name else info.os.id.capitalize()
    return info.os.id, info.os.version_id, distro_id, codename


def _timer(facts: Facts, name: str) -> TimerState:
    svc = facts.get(services)
    b = facts.bundle
    present = any(f"{d}/{name}" in b.stats for d in _UNIT_DIRS) or name in svc.enabled
    return TimerState(name, svc.is_enabled(name), svc.is_masked(name), present)


def unattended_upgrades(facts: Facts) -> UnattendedUpgrades:
    b = facts.bundle
    notes: list[str] = []
    try:
        db = facts.get(packages)
        installed: bool | None = db.is_installed("unattended-upgrades")
    except EvidenceError as exc:
        installed = None
        notes.append(str(exc))
    conf = facts.get(apt_config)
    os_id, version_id, distro_id, codename = _distro_names(facts)
    mapping = {"distro_id": distro_id, "distro_codename": codename}
    repos = security_repos(os_id, version_id, codename, apt_releases(facts))
    rules: list[OriginRule] = []
    for kind, key in (
        ("Allowed-Origins", "Unattended-Upgrade::Allowed-Origins"),
        ("Origins-Pattern", "Unattended-Upgrade::Origins-Pattern"),
    ):
        for item in conf.find_list(key):
            try:
                pattern = legacy_to_pattern(item.value) if kind == "Allowed-Origins" else item.value
                expanded = expand(pattern, mapping)
                covers = any(pattern_matches(expanded, r) for r in repos)
                rules.append(OriginRule(kind, item.value, expanded, item.origin, covers))
            except PatternError as exc:
                rules.append(OriginRule(kind, item.value, item.value, item.origin, False, str(exc)))

    svc = facts.get(services)
    timers = tuple(_timer(facts, t) for t in APT_TIMERS)

    last: LastRun | None = None
    st = b.stats.get(UPGRADE_STAMP)
    if st is not None:
        last = LastRun(
            dt.datetime.fromtimestamp(st.mtime, dt.timezone.utc),
            UPGRADE_STAMP,
            "modified when unattended-upgrade last finished successfully",
        )
    log_unreadable = None
    try:
        log = b.text(UU_LOG)
    except EvidenceError as exc:
        log, log_unreadable = None, str(exc)
    if log:
        hit = last_success_in_log(log)
        if hit is not None and (last is None or hit[0] > last.when):
            last = LastRun(hit[0], UU_LOG, hit[1])
    elif log is None and b.live and not b.is_root and log_unreadable is None:
        log_unreadable = f"needs root to read {UU_LOG} (its directory is not readable by other users)"

    return UnattendedUpgrades(
        installed=installed,
        config=conf,
        enable=conf.setting("APT::Periodic::Enable"),
        update_lists=conf.setting("APT::Periodic::Update-Package-Lists"),
        unattended=conf.setting("APT::Periodic::Unattended-Upgrade"),
        download=conf.setting("APT::Periodic::Download-Upgradeable-Packages"),
        rules=tuple(rules),
        repos=tuple(repos),
        distro_id=distro_id,
        codename=codename,
        systemd=svc.systemd,
        timers=timers,
        cron_job=APT_CRON in b.stats,
        last_run=last,
        log_unreadable=log_unreadable,
        notes=tuple(notes),
    )


# -- RHEL family / Fedora --------------------------------------------------------------------------


def parse_ini(text: str) -> dict[str, dict[str, tuple[str, int]]]:
    """section -> key -> (value, line) for dnf/yum style INI files (full-line # and ; comments)."""
    out: dict[str, dict[str, tuple[str, int]]] = {}
    section = ""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            out.setdefault(section, {})
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out.setdefault(section, {})[key.strip()] = (value, lineno)
    return out


def parse_bool(value: str) -> bool | None:
    low = value.strip().lower()
    if low in ("1", "yes", "true", "on"):
        return True
    if low in ("0", "no", "false", "off"):
        return False
    return None


@dataclass(frozen=True)
class AutoConfig:
    path: str | None  # None: the tool's built-in defaults
    apply_updates: bool
    download_updates: bool
    upgrade_type: str
    apply_source: str  # "path:line" of apply_updates, or "default"
    error: str | None = None


def automatic_config(
    text: str | None, path: str, apply_key: str = "apply_updates", type_key: str = "upgrade_type"
) -> AutoConfig:
    if text is None:
        return AutoConfig(None, False, True, "default", "default (apply_updates = no)")
    sections = parse_ini(text)
    commands = sections.get("commands", {})
    apply_raw = commands.get(apply_key)
    download_raw = commands.get("download_updates")
    error = None
    apply = False
    if apply_raw is not None:
        parsed = parse_bool(apply_raw[0])
        if parsed is None:
            error = f"{path}:{apply_raw[1]}: {apply_key} = {apply_raw[0]} is not a boolean"
        apply = bool(parsed)
    download = True if download_raw is None else bool(parse_bool(download_raw[0]))
    utype = commands.get(type_key, ("default", 0))[0]
    src = f"{path}:{apply_raw[1]}" if apply_raw else f"{path} (apply_updates unset: no)"
    return AutoConfig(path, apply, download, utype, src, error)


@dataclass(frozen=True)
class DnfAutomatic:
    tool: str  # dnf-automatic | dnf5 automatic | yum-cron | none
    timers: tuple[TimerState, ...]
    configs: dict[str, AutoConfig]  # timer/service name -> the configuration it runs with
    systemd: bool
    notes: tuple[str, ...] = ()


RHEL_TIMERS = (
    "dnf-automatic.timer",
    "dnf-automatic-install.timer",
    "dnf-automatic-download.timer",
    "dnf-automatic-notifyonly.timer",
    "dnf5-automatic.timer",
    "dnf5-automatic-install.timer",
)


def dnf_automatic(facts: Facts) -> DnfAutomatic:
    b = facts.bundle
    svc = facts.get(services)
    timers = tuple(_timer(facts, t) for t in RHEL_TIMERS)
    dnf5_text: str | None = None
    dnf5_path = DNF5_CONFS[-1]
    for path in DNF5_CONFS:
        text = b.text(path)
        if text is not None:
            dnf5_text, dnf5_path = text, path
            break
    dnf4 = automatic_config(b.text(DNF4_CONF), DNF4_CONF)
    dnf5 = automatic_config(dnf5_text, dnf5_path)
    configs = {"dnf-automatic.timer": dnf4, "dnf5-automatic.timer": dnf5}
    yum_text = b.text(YUM_CRON_CONF)
    yum_units = any(f"{d}/yum-cron.service" in b.stats for d in _UNIT_DIRS[:2])
    tool = "none"
    if yum_text is not None or yum_units:
        tool = "yum-cron"
        configs["yum-cron"] = automatic_config(yum_text, YUM_CRON_CONF, type_key="update_cmd")
        timers += (
            TimerState(
                "yum-cron.service",
                svc.is_enabled("yum-cron.service"),
                svc.is_masked("yum-cron.service"),
                yum_units,
            ),
        )
    if any(t.present for t in timers if t.name.startswith("dnf5")) or dnf5_text is not None:
        tool = "dnf5 automatic"
    elif (
        any(t.present for t in timers if t.name.startswith("dnf-automatic")) or b.text(DNF4_CONF) is not None
    ):
        tool = "dnf-automatic"
    return DnfAutomatic(tool, timers, configs, svc.systemd)
