"""Fix plans for sshd settings (checks 01 and 17): where a keyword's value really takes effect.

sshd keeps the first value it reads for a keyword, and a Match block overrides the global one for the
connections it matches. So: a drop-in that sorts first where the main file includes
``sshd_config.d/*.conf`` before its own line for the keyword, else that line is replaced in place (or the
setting is put on the main file's first line); every Match-block line that sets the keyword otherwise is
commented out; cloud-init is told not to turn passwords back on.
"""

from __future__ import annotations

from collections.abc import Sequence

from nectar_audit.checks.base import family as host_family
from nectar_audit.evidence import EvidenceError, Needs, merge
from nectar_audit.facts import Facts
from nectar_audit.facts import accounts as accounts_facts
from nectar_audit.facts.accounts import accounts, sudo_rights
from nectar_audit.facts.ssh import DROPIN_DIR, MAIN_CONFIG, SshdConfig, dropin_read_before
from nectar_audit.remedy import GUARD_KEY_LOGIN, TAG, FileChange, LineEdit, Remedy, Step, apply_line_edits, drop_in

# What a plan needs beyond the check's own evidence: who could still log in afterwards.
NEEDS: Needs = merge([accounts_facts.NEEDS])
CLOUD_INIT_CFG = "/etc/cloud/cloud.cfg.d/99-nectar-audit-ssh.cfg"


def dropin_name(check: str) -> str:
    return f"00-nectar-audit-{check[-2:]}.conf"


def _raw_line(text: str, line: int) -> tuple[str, int] | None:
    """The exact text of 1-based ``line`` and which occurrence of that text it is."""
    lines = text.split("\n")
    if not 0 < line <= len(lines):
        return None
    raw = lines[line - 1]
    return raw, lines[:line].count(raw)


def validate_and_reload(facts: Facts) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """sshd's own check, then a reload that keeps open sessions (systemd, else the pid file, else service)."""
    family = host_family(facts)
    unit = "ssh" if family == "debian" else "sshd"
    reload = (f"if [ -d /run/systemd/system ]; then systemctl reload-or-restart {unit}; "
              "elif [ -s /run/sshd.pid ]; then kill -HUP \"$(cat /run/sshd.pid)\"; "
              f"else service {unit} reload; fi")
    return (Step("sshd -t", "sshd's own configuration check"),), (Step(reload, "sshd reads its configuration again"),)


def key_login_account(facts: Facts) -> tuple[str | None, str]:
    """A non-root account that can log in with a key and run every command as root, or why there is none."""
    try:
        accts = facts.get(accounts)
        rights = facts.get(sudo_rights)
    except EvidenceError as exc:
        return None, f"cannot tell who could still log in: {exc}"
    with_key = [a for a in accts.users if a.uid != 0 and a.authorized_keys and a.has_login_shell]
    admins = [a for a in with_key if rights.grant_for(a.name) is not None]
    if admins:
        return admins[0].name, (f"{admins[0].name} can log in with a key ({admins[0].authorized_keys[0]}) "
                                f"and run any command as root with sudo")
    if not with_key:
        return None, "no account other than root has an authorized SSH key"
    names = ", ".join(a.name for a in with_key[:5])
    return None, f"the accounts with an authorized SSH key ({names}) cannot run every command with sudo"


def keyword_remedy(facts: Facts, cfg: SshdConfig, check: str, summary: str,
                   settings: Sequence[tuple[str, str, str]], bad: dict[str, Sequence[str]] | None = None,
                   cloud_init: bool = False) -> Remedy:
    """A remedy making each (keyword, Name, value) of ``settings`` what sshd uses, everywhere.

    ``bad``: keyword -> values a Match block may not set (default: anything but ``value``)."""
    who, why = key_login_account(facts)
    refused = None if who else f"{why}: turning this off could lock everyone out (add a key for a sudo user first)"
    changes: list[FileChange] = []
    dropin_lines: list[str] = []
    main_edits: dict[str, list[LineEdit]] = {}
    texts: dict[str, str] = {}
    manual: list[str] = []

    def text_of(path: str) -> str | None:
        if path not in texts:
            got = facts.bundle.text(path)
            if got is None:
                return None
            texts[path] = got
        return texts[path]

    name = dropin_name(check)
    for keyword, display, value in settings:
        line = f"{display} {value}"
        firsts = [d for d in cfg.global_directives if d.keyword == keyword]
        if dropin_read_before(cfg, keyword, name):
            dropin_lines.append(line)
        elif firsts and firsts[0].value.lower() != value.lower():
            d = firsts[0]
            raw = _raw_line(text_of(d.path) or "", d.line)
            if raw is None:
                manual.append(f"set `{line}` at {d.where} (the file could not be read)")
                continue
            main_edits.setdefault(d.path, []).append(
                LineEdit(raw[0], (f"# {raw[0]}  # replaced by {TAG}", line), raw[1]))
        elif not firsts:
            main = text_of(MAIN_CONFIG)
            if main is None:
                manual.append(f"add `{line}` near the top of {MAIN_CONFIG} (the file could not be read)")
                continue
            first = main.split("\n", 1)[0]
            main_edits.setdefault(MAIN_CONFIG, []).append(LineEdit(first, (f"{line}  # {TAG}", first), 1))
        forbidden = (bad or {}).get(keyword)
        for d in cfg.directives:
            if d.keyword != keyword or d.block is None:
                continue
            if (d.value.lower() in forbidden) if forbidden is not None else d.value.lower() != value.lower():
                raw = _raw_line(text_of(d.path) or "", d.line)
                if raw is None:
                    manual.append(f"remove `{d.text}` at {d.where} (the file could not be read)")
                    continue
                main_edits.setdefault(d.path, []).append(
                    LineEdit(raw[0], (f"# {raw[0]}  # disabled by {TAG}",), raw[1]))
    if dropin_lines:
        path = f"{DROPIN_DIR}/{name}"
        before = text_of(path)
        change = drop_in(path, dropin_lines, before, f"{check}: {summary}")
        if before != change.after:
            changes.append(change)
    for path, edits in main_edits.items():
        before = texts[path]
        after = apply_line_edits(before, edits)
        if after is None:
            manual.append(f"{path}: the lines to change could not be located")
            continue
        changes.append(FileChange(path, before, after, tuple(edits), why=f"{check}: {summary}"))
    # cloud-init writes 50-cloud-init.conf from ssh_pwauth at every boot of a new instance.
    if cloud_init and text_of(f"{DROPIN_DIR}/50-cloud-init.conf") is not None:
        before = text_of(CLOUD_INIT_CFG)
        change = drop_in(CLOUD_INIT_CFG, ["ssh_pwauth: false"], before,
                         "cloud-init must not turn SSH passwords back on")
        if before != change.after:
            changes.append(change)
    validate, activate = validate_and_reload(facts)
    pre = (why,) if who else ()
    return Remedy(check, summary, pre, tuple(changes), (), validate, activate, tuple(manual), refused,
                  GUARD_KEY_LOGIN)
