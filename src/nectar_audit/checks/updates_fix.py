"""Fix plans for updates: automatic security updates (check 03) and pending security updates (check 07).

Debian/Ubuntu: apt merges ``apt.conf.d`` in byte order, then ``apt.conf``; for a plain value the last file
read wins, a list entry is appended. So the periodic values and the security origin go into a drop-in of
ours that sorts after the files that set them otherwise (``99nectar-audit``); a value set in a file read
after it (``apt.conf``, a later drop-in) is replaced on its own line. ``apt-config dump`` validates: apt
must parse everything and show the values we want. RHEL/Fedora: dnf-automatic's ``[commands]`` lines are
replaced in place (``apply_updates = yes``, ``upgrade_type = security``) and its timer enabled.
"""

from __future__ import annotations

import re
import shlex

from nectar_audit.checks.base import family as host_family
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts.host import host
from nectar_audit.facts.updates import (
    ALIASES,
    APT_MAIN_FILE,
    APT_PARTS_DIR,
    DNF4_CONF,
    AutoConfig,
    DnfAutomatic,
    Repo,
    UnattendedUpgrades,
    accepted_part,
    apt_sources,
    dnf_automatic,
    expand,
    packages,
    parse_ini,
    pattern_matches,
    pending_updates,
    periodic_enabled,
    root_mail,
    unattended_upgrades,
)
from nectar_audit.remedy import TAG, FileChange, LineEdit, Remedy, Step, apply_line_edits, drop_in

q = shlex.quote
APT_DROPIN_NAME = "99nectar-audit"
APT_DROPIN = f"{APT_PARTS_DIR}/{APT_DROPIN_NAME}"
APT_ENV = "DEBIAN_FRONTEND=noninteractive"
# Keep the administrator's changed conffiles (and take new defaults where nothing was changed).
DPKG_KEEP = "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
CHECK_03 = "Check-Security-03"
CHECK_07 = "Check-Security-07"
# A package whose upgrade is only complete after a reboot (the running kernel, libc, init).
REBOOT_PACKAGES = re.compile(r"linux-image-.*|linux-(?:generic|virtual|kvm|aws)|kernel(?:-core)?|libc6|glibc|"
                             r"systemd|dbus|openssl|libssl.*")



# -- 03, Debian/Ubuntu ------------------------------------------------------------------------------


def security_origin(uu: UnattendedUpgrades, os_id: str, version_id: str) -> tuple[str, str] | None:
    """(list key, entry) naming the host's security archive the way the distribution's own
    50unattended-upgrades does, if it matches the host's security archive; None when none is known."""
    major = version_id.split(".")[0]
    if os_id == "ubuntu" or uu.distro_id.lower() == "ubuntu":
        key, entry = "Unattended-Upgrade::Allowed-Origins", "${distro_id}:${distro_codename}-security"
        pattern = "o=${distro_id},a=${distro_codename}-security"
    elif major.isdigit() and int(major) <= 10:
        key = "Unattended-Upgrade::Origins-Pattern"
        entry = pattern = "origin=Debian,codename=${distro_codename},label=Debian-Security"
    else:
        key = "Unattended-Upgrade::Origins-Pattern"
        entry = pattern = "origin=Debian,codename=${distro_codename}-security,label=Debian-Security"
    try:
        expanded = expand(pattern, {"distro_id": uu.distro_id, "distro_codename": uu.codename})
    except ValueError:
        return None
    repos: tuple[Repo, ...] = uu.repos
    if not repos or not any(pattern_matches(expanded, r) for r in repos):
        return None
    return key, entry


def _origin_file(origin: str | None) -> str | None:
    if not origin or origin.startswith("command:"):
        return None
    return origin.rsplit(":", 1)[0]


def _read_after_dropin(path: str) -> bool:
    """Whether apt reads ``path`` after our drop-in (so its plain values win over ours)."""
    if path == APT_MAIN_FILE:
        return True
    if path.startswith(APT_PARTS_DIR + "/") and "/" not in path[len(APT_PARTS_DIR) + 1:]:
        name = path[len(APT_PARTS_DIR) + 1:]
        return accepted_part(name) and name.encode() > APT_DROPIN_NAME.encode()
    return False  # an #include'd file, read where the including file is


def _flat_line(text: str, line: int, key: str) -> str | None:
    """The exact text of ``line`` when it is one plain ``Key "value";`` statement for ``key``."""
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return None
    raw = lines[line - 1]
    m = re.fullmatch(r'\s*([A-Za-z0-9:_-]+)\s+"[^"]*"\s*;\s*(?://.*)?', raw)
    if m is None or m.group(1).lower() != key.lower():
        return None
    return raw


def _debian_03(facts: Facts) -> Remedy | None:
    uu = facts.get(unattended_upgrades)
    info = facts.get(host)
    summary = "unattended-upgrades installs security updates every day"
    if uu.config.errors:
        return Remedy(CHECK_03, summary, refused="apt refuses its configuration (" + uu.config.errors[0]
                      + "): correct it first (apt-config dump shows the error)")
    commands: list[Step] = []
    manual: list[str] = []
    notes: list[str] = []
    pre: list[str] = []
    if uu.installed is False:
        commands.append(Step(f"{APT_ENV} apt-get install -y {DPKG_KEEP} unattended-upgrades",
                             "the package that installs updates unattended (from the host's configured "
                             "archive)"))
        notes.append("undo restores the files, it does not remove the unattended-upgrades package")
    elif uu.installed is None:
        pre.append("whether unattended-upgrades is installed could not be read; it is assumed to be")
    wanted: list[tuple[str, str]] = []  # (key, value) of plain settings
    if uu.enable is not None and uu.enable.value.strip() == "0":
        wanted.append(("APT::Periodic::Enable", "1"))
    if not periodic_enabled(uu.update_lists.value if uu.update_lists else None):
        wanted.append(("APT::Periodic::Update-Package-Lists", "1"))
    if not periodic_enabled(uu.unattended.value if uu.unattended else None):
        wanted.append(("APT::Periodic::Unattended-Upgrade", "1"))
    origin: tuple[str, str] | None = None
    for rule in uu.rules:
        if rule.error:
            manual.append(f"correct the {rule.kind} entry \"{rule.raw}\" ({rule.origin}): {rule.error}; "
                          "unattended-upgrades stops at it")
    if uu.installed is not False and not uu.covers_security:
        origin = security_origin(uu, info.os.id, info.os.version_id)
        if origin is None:
            manual.append("add the security archive to Unattended-Upgrade::Origins-Pattern in "
                          f"{APT_PARTS_DIR}/50unattended-upgrades (its Release fields are not known here)")
    dropin_lines: list[str] = []
    edits: dict[str, list[LineEdit]] = {}
    texts: dict[str, str] = {}
    settings = {"APT::Periodic::Enable": uu.enable, "APT::Periodic::Update-Package-Lists": uu.update_lists,
                "APT::Periodic::Unattended-Upgrade": uu.unattended}
    for key, value in wanted:
        current = settings[key]
        path = _origin_file(current.origin if current else None)
        if current is not None and path is not None and _read_after_dropin(path):
            text = texts.get(path)
            if text is None:
                text = facts.bundle.text(path)
            line = current.origin.rsplit(":", 1)[-1] if current.origin else ""
            raw = _flat_line(text or "", int(line), key) if text is not None and line.isdigit() else None
            if text is None or raw is None:
                manual.append(f'set {key} "{value}"; at {current.origin} (apt reads it after {APT_DROPIN})')
                continue
            texts[path] = text
            nth = text.split("\n")[: int(line)].count(raw)
            edits.setdefault(path, []).append(
                LineEdit(raw, (f"// {raw.strip()}  // replaced by {TAG}", f'{key} "{value}";'), nth))
            continue
        dropin_lines.append(f'{key} "{value}";')
    if origin is not None:
        dropin_lines.append(f'{origin[0]} {{ "{origin[1]}"; }};')
    changes: list[FileChange] = []
    if dropin_lines:
        before = facts.bundle.text(APT_DROPIN)
        change = drop_in(APT_DROPIN, dropin_lines, before, f"{CHECK_03}: automatic security updates", "//")
        if change.after != before:
            changes.append(change)
    for path, path_edits in edits.items():
        after = apply_line_edits(texts[path], path_edits)
        if after is None:
            manual.append(f"{path}: the lines to change could not be located")
            continue
        changes.append(FileChange(path, texts[path], after, tuple(path_edits),
                                  why=f"{CHECK_03}: apt reads this file after {APT_DROPIN}"))
    # The daily job: apt-daily(.upgrade).timer with systemd; cron's apt-compat without it.
    masked = [t.name for t in uu.timers if t.masked]
    off = [t.name for t in uu.timers if not t.enabled and t.present and not t.masked]
    if uu.systemd and (masked or off):
        if masked:
            commands.append(Step("systemctl unmask " + " ".join(map(q, masked)), "the timers were masked"))
        commands.append(Step("systemctl enable --now " + " ".join(map(q, masked + off)),
                             "apt's daily update and upgrade jobs run from these timers"))
        notes.append("undo does not disable the timers again")
    elif not uu.systemd and not uu.cron_job and not uu.timers:
        manual.append("nothing schedules apt's daily job: reinstall apt (apt-get install --reinstall apt)")
    validate = [Step("apt-config dump >/dev/null", "apt parses its whole configuration")]
    for key, value in wanted:
        line = f'{key} "{value}";'
        validate.append(Step(f"apt-config dump | grep -Fqx {q(line)}", f"apt uses {key} {value}"))
    if origin is not None:
        line = f'{origin[0]}:: "{origin[1]}";'
        validate.append(Step(f"apt-config dump | grep -Fqx {q(line)}", "unattended-upgrades allows the "
                             "security archive"))
    if not changes and not commands:
        if not manual:
            return None
        return Remedy(CHECK_03, summary, tuple(pre), manual=tuple(manual), notes=tuple(notes))
    return Remedy(CHECK_03, summary, tuple(pre), tuple(changes), tuple(commands), tuple(validate), (),
                  tuple(manual), notes=tuple(notes))


# -- 03, RHEL family / Fedora ---------------------------------------------------------------------------


_CHECK_COMMANDS_AWK = (
    "awk -F= '/^[ \\t]*\\[/ { s = $0; gsub(/[][ \\t]/, \"\", s); next } "
    "s == \"commands\" { k = $1; v = $2; gsub(/[ \\t]/, \"\", k); gsub(/[ \\t]/, \"\", v); "
    "if (k == \"apply_updates\") a = v; if (k == \"upgrade_type\") u = v } "
    "END { exit (a == \"yes\" && u == \"security\") ? 0 : 1 }'"
)


def _ini_edits(path: str, text: str) -> tuple[list[LineEdit], list[str]]:
    """Line edits setting apply_updates = yes and upgrade_type = security in [commands]; what is left."""
    sections = parse_ini(text)
    commands = sections.get("commands")
    lines = text.split("\n")
    edits: list[LineEdit] = []
    missing: list[str] = []
    for key, value in (("apply_updates", "yes"), ("upgrade_type", "security")):
        got = (commands or {}).get(key)
        if got is not None and got[0].strip().lower() == value:
            continue
        if got is None:
            missing.append(f"{key} = {value}")
            continue
        raw = lines[got[1] - 1]
        nth = lines[: got[1]].count(raw)
        edits.append(LineEdit(raw, (f"# {raw}  # replaced by {TAG}", f"{key} = {value}"), nth))
    if missing:
        if commands is None:
            return edits, missing  # no [commands] section: the caller appends one
        header = next((ln for ln in lines if ln.strip().replace(" ", "") == "[commands]"), None)
        if header is None:
            return edits, missing
        # dnf's INI parser takes no comment after a value: the mark is a line of its own.
        edits.append(LineEdit(header, (header, f"# added by {TAG}:", *missing), 1))
        missing = []
    return edits, missing


def _rhel_03(facts: Facts) -> Remedy | None:
    da: DnfAutomatic = facts.get(dnf_automatic)
    family = host_family(facts)
    summary = "dnf-automatic installs security updates every day"
    if da.tool == "yum-cron":
        return Remedy(CHECK_03, summary, manual=(
            "yum-cron (EL7) is not changed automatically: set update_cmd = security and apply_updates = yes "
            "in /etc/yum/yum-cron.conf, then systemctl enable --now yum-cron",))
    commands: list[Step] = []
    notes: list[str] = []
    dnf5 = da.tool == "dnf5 automatic" or (da.tool == "none" and family == "fedora")
    package = "dnf5-plugin-automatic" if dnf5 else "dnf-automatic"
    timer = "dnf5-automatic.timer" if dnf5 else "dnf-automatic.timer"
    cfg: AutoConfig | None = da.configs.get(timer) or da.configs.get("dnf-automatic.timer")
    changes: list[FileChange] = []
    manual: list[str] = []
    if da.tool == "none":
        commands.append(Step(f"dnf install -y {package}", "the tool that installs updates on a timer"))
        notes.append(f"undo restores the files, it does not remove {package}")
        manual.append(f"after {package} is installed, run fix again to set upgrade_type = security in "
                      f"{DNF4_CONF} (its own file is only known once installed)")
    else:
        path = (cfg.edit if cfg is not None and cfg.edit else DNF4_CONF)
        text = facts.bundle.text(path)
        if text is None:
            change = drop_in(path, ["[commands]", "apply_updates = yes", "upgrade_type = security"], None,
                             f"{CHECK_03}: dnf automatic installs security updates")
            changes.append(change)
        else:
            edits, missing = _ini_edits(path, text)
            after = apply_line_edits(text, edits) if edits else text
            if missing:
                # No [commands] section at all: one appended after the last line.
                last = text.rstrip("\n").split("\n")[-1]
                nth = text.rstrip("\n").split("\n").count(last)
                edits.append(LineEdit(last, (last, "[commands]", f"# added by {TAG}:", *missing), nth))
                after = apply_line_edits(text, edits)
            if after is None:
                manual.append(f"set apply_updates = yes and upgrade_type = security in [commands] of {path}")
            elif edits:
                changes.append(FileChange(path, text, after, tuple(edits),
                                          why=f"{CHECK_03}: dnf automatic installs security updates"))
        timers = {t.name: t for t in da.timers}
        t = timers.get(timer)
        if t is None or not t.enabled or t.masked:
            if t is not None and t.masked:
                commands.append(Step(f"systemctl unmask {timer}", "the timer was masked"))
            commands.append(Step(f"systemctl enable --now {timer}", "runs dnf automatic every day"))
            notes.append("undo does not disable the timer again")
        for other in ("dnf-automatic-download.timer", "dnf-automatic-notifyonly.timer"):
            if other in timers and timers[other].enabled:
                manual.append(f"{other} only downloads or notifies: systemctl disable --now {other}")
    validate: list[Step] = []
    for change in changes:
        validate.append(Step(f"{_CHECK_COMMANDS_AWK} {q(change.path)}",
                             f"[commands] of {change.path} has apply_updates = yes and upgrade_type = security"))
    if not changes and not commands:
        return Remedy(CHECK_03, summary, manual=tuple(manual)) if manual else None
    return Remedy(CHECK_03, summary, (), tuple(changes), tuple(commands), tuple(validate), (), tuple(manual),
                  notes=tuple(notes))


def plan_03(facts: Facts) -> Remedy | None:
    """Automatic security updates on: unattended-upgrades (Debian/Ubuntu), dnf automatic (RHEL/Fedora)."""
    family = host_family(facts)
    if family == "debian":
        return _debian_03(facts)
    if family in ("rhel", "fedora"):
        return _rhel_03(facts)
    return None


# -- 07 -----------------------------------------------------------------------------------------


def plan_07(facts: Facts) -> Remedy | None:
    """Install the pending security updates (only with --checks 07); a needed reboot is only reported."""
    family = host_family(facts)
    manual: list[str] = []
    if family == "debian":
        try:
            src = facts.get(apt_sources)
            if not src.security():
                manual.append("add the security archive to apt's sources (Debian: deb "
                              "http://security.debian.org/debian-security CODENAME-security main; Ubuntu: "
                              "deb http://security.ubuntu.com/ubuntu CODENAME-security main), then apt-get update")
        except EvidenceError:
            pass
    manual.append("subscribe a monitored address to the distribution's security announcements "
                  "(nectar-audit explain Check-Security-07 lists them)")
    try:
        rm = facts.get(root_mail)
        if rm.mta is None or not {k for _d, k in rm.destinations} & {"remote", "program"}:
            manual.append(f"forward root's mail (update notices) to an address someone reads: add "
                          f"`root: you@example.org` to {ALIASES} and run newaliases, with an MTA that "
                          "delivers off the host")
    except EvidenceError:
        pass
    try:
        ups = facts.get(pending_updates)
    except EvidenceError:
        ups = None
    sec = ups.security if ups is not None else []
    summary = "install the pending security updates"
    if not sec:
        return Remedy(CHECK_07, summary, manual=tuple(manual), explicit=True)
    names: list[str] = []
    for u in sec:
        if u.name not in names:
            names.append(u.name)
    reboot = [n for n in names if REBOOT_PACKAGES.fullmatch(n)]
    notes = ["package upgrades are not undone by fix --undo (apt/dnf keep no previous version to restore)",
             "a reboot is never done by nectar-audit: "
             + (f"{', '.join(reboot)} only take{'s' if len(reboot) == 1 else ''} full effect after one; "
                if reboot else "")
             + ("reboot when /run/reboot-required exists (needrestart lists services to restart)"
                if family == "debian" else "reboot when `dnf needs-restarting -r` says so")]
    pre = [f"{len(sec)} pending security update(s) from {ups.source if ups else 'the package metadata'}: "
           + ", ".join(u.describe() for u in sec[:8]) + (" …" if len(sec) > 8 else "")]
    if family == "debian":
        installed = True
        try:
            db = facts.get(packages)
            installed = all(db.is_installed(n) is not False for n in names)
        except EvidenceError:
            pass
        commands = (Step(f"{APT_ENV} apt-get install -y --only-upgrade {DPKG_KEEP} "
                         + " ".join(q(n) for n in names),
                         "upgrades exactly these installed packages from the lists already on the host "
                         "(no apt-get update: the audit judged these lists)"),)
        if not installed:
            pre.append("some of these packages are not installed under that name; apt skips them")
        validate = (Step("apt-get check", "apt's package database is consistent after the upgrade"),)
    elif family in ("rhel", "fedora"):
        commands = (Step("dnf upgrade --security -y", "installs every update that fixes a security advisory"),)
        validate = (Step("dnf check", "the rpm database has no broken dependency after the upgrade"),)
    else:
        return Remedy(CHECK_07, summary, tuple(pre), manual=tuple(manual), explicit=True)
    return Remedy(CHECK_07, summary, tuple(pre), (), commands, validate, (), tuple(manual), explicit=True,
                  notes=tuple(notes))
