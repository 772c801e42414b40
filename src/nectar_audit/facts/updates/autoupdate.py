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

dnf5's automatic plugin reads its configuration differently by version (upstream automatic.cpp and
dnf5-automatic(8)): before 5.2 the first existing of ``/etc/dnf/dnf5-plugins/automatic.conf`` and
``/usr/share/dnf5/dnf5-plugins/automatic.conf``; from 5.2 (PR #1476) the ``/usr/share`` file for the
defaults, then ``/etc/dnf/dnf5-plugins/automatic.conf`` key by key; from 5.2.6 (commit 73ed42f) the
defaults, then ``/etc/dnf/automatic.conf`` key by key, the ``dnf5-plugins`` location deprecated (still
used, with a warning, when ``/etc/dnf/automatic.conf`` does not exist). The version is the installed
dnf5-plugin-automatic (or dnf5) package; without it the newest behaviour is assumed. The 5.2 and 5.2.6
boundaries are inferred from the upstream history (PR dates against release dates), not from tags.

Cron: yum-cron (``/etc/cron.daily/0yum-daily.cron``) and apt without systemd
(``/etc/cron.daily/apt-compat``) only run when a cron daemon is installed and starts at boot.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nectar_audit.evidence import EvidenceError, Needs
from nectar_audit.facts.host import host, parse_os_release
from nectar_audit.facts.system import services
from nectar_audit.facts.updates.apt_config import AptConfig, Setting, apt_config
from nectar_audit.facts.updates.packages import packages
from nectar_audit.facts.updates.pending import ReleaseInfo, apt_releases

if TYPE_CHECKING:
    from nectar_audit.evidence import Bundle
    from nectar_audit.facts import Facts

UU_LOG = "/var/log/unattended-upgrades/unattended-upgrades.log"
PERIODIC = "/var/lib/apt/periodic"
UPGRADE_STAMP = f"{PERIODIC}/upgrade-stamp"
APT_TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
APT_CRON = "/etc/cron.daily/apt-compat"
DNF4_CONF = "/etc/dnf/automatic.conf"
DNF5_DEFAULTS = "/usr/share/dnf5/dnf5-plugins/automatic.conf"
DNF5_PLUGIN_CONF = "/etc/dnf/dnf5-plugins/automatic.conf"  # host overrides before dnf5 5.2.6, then deprecated
DNF5_CONFS = (DNF5_PLUGIN_CONF, DNF5_DEFAULTS)
DNF5_LAYERED = (5, 2)  # /usr/share defaults + /etc/dnf/dnf5-plugins overrides (PR #1476)
DNF5_ETC = (5, 2, 6)  # /usr/share defaults + /etc/dnf/automatic.conf overrides (commit 73ed42f)
YUM_CRON_CONF = "/etc/yum/yum-cron.conf"
YUM_CRON_JOB = "/etc/cron.daily/0yum-daily.cron"
CRON_BINARIES = ("/usr/sbin/cron", "/usr/sbin/crond")
CRON_UNITS = ("cron.service", "crond.service", "cronie.service")
UNIT_DIRS = ("/lib/systemd/system", "/usr/lib/systemd/system", "/etc/systemd/system")

NEEDS = Needs(
    files=(UU_LOG, DNF4_CONF, DNF5_PLUGIN_CONF, DNF5_DEFAULTS, YUM_CRON_CONF),
    stats=(
        f"{PERIODIC}/*",
        *(f"{d}/apt-daily*.timer" for d in UNIT_DIRS[:2]),
        *(f"{d}/dnf*-automatic*.timer" for d in UNIT_DIRS[:2]),
        *(f"{d}/yum-cron.service" for d in UNIT_DIRS[:2]),
        APT_CRON,
        YUM_CRON_JOB,
        *CRON_BINARIES,
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
    present = any(f"{d}/{name}" in b.stats for d in UNIT_DIRS) or name in svc.enabled
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
    path: str | None  # where apply_updates comes from (None: the tool's built-in defaults)
    apply_updates: bool
    download_updates: bool
    upgrade_type: str
    apply_source: str  # "path:line" of apply_updates, or "default"
    error: str | None = None
    files: tuple[str, ...] = ()  # the files read, in order (later ones override key by key)
    edit: str | None = None  # the host file an administrator changes
    notes: tuple[str, ...] = ()


def layered_config(
    layers: list[tuple[str, str]],
    apply_key: str = "apply_updates",
    type_key: str = "upgrade_type",
    edit: str | None = None,
    notes: tuple[str, ...] = (),
) -> AutoConfig:
    """[commands] of several INI files merged key by key, later files winning (libdnf5's ConfigParser
    loaded in order); each value remembers its file and line."""
    commands: dict[str, tuple[str, str]] = {}
    for path, text in layers:
        for key, (value, line) in parse_ini(text).get("commands", {}).items():
            commands[key] = (value, f"{path}:{line}")
    files = tuple(p for p, _ in layers)
    if not layers:
        return AutoConfig(None, False, True, "default", "default (apply_updates = no)", edit=edit, notes=notes)
    apply_raw = commands.get(apply_key)
    download_raw = commands.get("download_updates")
    error = None
    apply = False
    if apply_raw is not None:
        parsed = parse_bool(apply_raw[0])
        if parsed is None:
            error = f"{apply_raw[1]}: {apply_key} = {apply_raw[0]} is not a boolean"
        apply = bool(parsed)
    download = True if download_raw is None else bool(parse_bool(download_raw[0]))
    utype = commands.get(type_key, ("default", ""))[0]
    if apply_raw is not None:
        src, path = apply_raw[1], apply_raw[1].rsplit(":", 1)[0]
    else:
        src, path = f"{' + '.join(files)} (apply_updates unset: no)", files[-1]
    return AutoConfig(path, apply, download, utype, src, error, files, edit or files[-1], notes)


def automatic_config(
    text: str | None, path: str, apply_key: str = "apply_updates", type_key: str = "upgrade_type"
) -> AutoConfig:
    return layered_config([] if text is None else [(path, text)], apply_key, type_key, edit=path)


def _version_tuple(version: str) -> tuple[int, ...]:
    upstream = version.split(":", 1)[-1].split("-", 1)[0]
    out = []
    for part in upstream.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        out.append(int(digits.group(0)))
    return tuple(out)


def dnf5_config(b: Bundle, version: str | None) -> AutoConfig:
    """The configuration dnf5 automatic runs with, as the installed dnf5 version reads it."""
    defaults = b.text(DNF5_DEFAULTS)
    plugin = b.text(DNF5_PLUGIN_CONF)
    etc = b.text(DNF4_CONF)
    v = _version_tuple(version) if version else None
    ver = f"dnf5 {version}" if version else "dnf5 (version unknown: the newest behaviour assumed)"
    layers: list[tuple[str, str]] = []
    notes: list[str] = []
    if v is not None and v < DNF5_LAYERED:
        # The first existing file only.
        for path, text in ((DNF5_PLUGIN_CONF, plugin), (DNF5_DEFAULTS, defaults)):
            if text is not None:
                layers.append((path, text))
                break
        if etc is not None:
            notes.append(f"{ver} does not read {DNF4_CONF} (only {DNF5_PLUGIN_CONF} or {DNF5_DEFAULTS})")
        return layered_config(layers, edit=DNF5_PLUGIN_CONF, notes=tuple(notes))
    if defaults is not None:
        layers.append((DNF5_DEFAULTS, defaults))
    if v is not None and v < DNF5_ETC:
        if plugin is not None:
            layers.append((DNF5_PLUGIN_CONF, plugin))
        if etc is not None:
            notes.append(f"{ver} does not read {DNF4_CONF}; its host overrides are in {DNF5_PLUGIN_CONF}")
        return layered_config(layers, edit=DNF5_PLUGIN_CONF, notes=tuple(notes))
    if etc is not None:
        layers.append((DNF4_CONF, etc))
        if plugin is not None:
            notes.append(f"{ver} ignores the deprecated {DNF5_PLUGIN_CONF} because {DNF4_CONF} exists")
    elif plugin is not None:
        layers.append((DNF5_PLUGIN_CONF, plugin))
        notes.append(f"{DNF5_PLUGIN_CONF} is deprecated: {ver} reads host overrides from {DNF4_CONF}")
    return layered_config(layers, edit=DNF4_CONF, notes=tuple(notes))


@dataclass(frozen=True)
class CronDaemon:
    binaries: tuple[str, ...]  # cron daemons on disk
    enabled: tuple[str, ...]  # their units (or SysV S-links) that start at boot
    masked: tuple[str, ...]
    init_known: bool  # systemd, or SysV rc links present: enablement can be judged

    @property
    def runs(self) -> bool | None:
        """True: installed and started at boot; False: cannot run; None: installed, enablement unknown."""
        if not self.binaries or (self.masked and not self.enabled):
            return False
        if self.enabled:
            return True
        return False if self.init_known else None

    def describe(self) -> str:
        if not self.binaries:
            return f"no cron daemon installed ({', '.join(CRON_BINARIES)} absent)"
        if self.masked and not self.enabled:
            return f"the cron daemon is masked ({', '.join(self.masked)})"
        if self.enabled:
            return f"{self.binaries[0]} installed, {', '.join(self.enabled)} enabled"
        if self.init_known:
            return f"{self.binaries[0]} is installed but its service ({'/'.join(CRON_UNITS)}) is not enabled"
        return f"{self.binaries[0]} installed (whether it starts at boot cannot be told here)"


def cron_daemon(facts: Facts) -> CronDaemon:
    b = facts.bundle
    svc = facts.get(services)
    binaries = tuple(p for p in CRON_BINARIES if p in b.stats)
    enabled = tuple(u for u in CRON_UNITS if svc.is_enabled(u))
    masked = tuple(u for u in CRON_UNITS if svc.is_masked(u))
    rc_links = any(p.startswith("/etc/rc") and ".d/S" in p for p in b.stats)
    return CronDaemon(binaries, enabled, masked, svc.systemd or rc_links)


@dataclass(frozen=True)
class DnfAutomatic:
    tool: str  # dnf-automatic | dnf5 automatic | yum-cron | none
    timers: tuple[TimerState, ...]
    configs: dict[str, AutoConfig]  # timer/service name -> the configuration it runs with
    systemd: bool
    notes: tuple[str, ...] = ()
    dnf5_version: str | None = None
    dnf4_installed: bool | None = None  # the dnf-automatic (dnf 4) package (None: cannot tell)
    cron: CronDaemon | None = None  # for yum-cron
    yum_cron_job: bool = False  # /etc/cron.daily/0yum-daily.cron exists


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
    notes: list[str] = []
    timers = tuple(_timer(facts, t) for t in RHEL_TIMERS)
    dnf5_version: str | None = None
    dnf4_installed: bool | None = None
    dnf5_installed: bool | None = None
    try:
        db = facts.get(packages)
    except EvidenceError as exc:
        notes.append(str(exc))
    else:
        for name in ("dnf5-plugin-automatic", "dnf5"):
            pkgs = db.get(name)
            if pkgs:
                dnf5_version = pkgs[0].version
                break
        dnf5_installed = db.is_installed("dnf5-plugin-automatic")
        dnf4_installed = db.is_installed("dnf-automatic")
    dnf4 = automatic_config(b.text(DNF4_CONF), DNF4_CONF)
    dnf5 = dnf5_config(b, dnf5_version)
    dnf5_files = b.text(DNF5_DEFAULTS) is not None or b.text(DNF5_PLUGIN_CONF) is not None
    is_dnf5 = bool(dnf5_installed) or (
        dnf5_installed is None
        and (any(t.present for t in timers if t.name.startswith("dnf5")) or dnf5_files)
    )
    configs = {"dnf-automatic.timer": dnf4, "dnf5-automatic.timer": dnf5}
    if is_dnf5 and not dnf4_installed:
        # dnf5-plugin-automatic's dnf5-automatic.timer carries Alias=dnf-automatic.timer: the old name
        # runs dnf5 automatic with dnf5's configuration.
        configs["dnf-automatic.timer"] = dnf5
    yum_text = b.text(YUM_CRON_CONF)
    yum_units = any(f"{d}/yum-cron.service" in b.stats for d in UNIT_DIRS[:2])
    tool = "none"
    cron = None
    if yum_text is not None or yum_units:
        tool = "yum-cron"
        configs["yum-cron"] = automatic_config(yum_text, YUM_CRON_CONF, type_key="update_cmd")
        cron = cron_daemon(facts)
        timers += (
            TimerState(
                "yum-cron.service",
                svc.is_enabled("yum-cron.service"),
                svc.is_masked("yum-cron.service"),
                yum_units,
            ),
        )
    if is_dnf5:
        tool = "dnf5 automatic"
    elif (
        dnf4_installed
        or any(t.present for t in timers if t.name.startswith("dnf-automatic"))
        or b.text(DNF4_CONF) is not None
    ):
        tool = "dnf-automatic"
    return DnfAutomatic(
        tool,
        timers,
        configs,
        svc.systemd,
        tuple(notes),
        dnf5_version,
        dnf4_installed,
        cron,
        YUM_CRON_JOB in b.stats,
    )
