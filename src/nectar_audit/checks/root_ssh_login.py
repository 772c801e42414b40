"""Check-Security-17: is root access disabled from SSH?

Root's effective PermitRootLogin is computed for every connection situation a Match block or an
Allow/DenyUsers entry singles out (sshd -T for the plain case when live and root). DenyUsers,
AllowUsers, DenyGroups, AllowGroups and RefuseConnection that keep root out count as root login
disabled. With prohibit-password / forced-commands-only, root's authorized_keys decide: keys all
forced to cloud-init's refusal command only print "Please login as the user …".
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from nectar_audit.checks import sshd_fix
from nectar_audit.checks.base import Check
from nectar_audit.checks.ssh_password_login import (
    password_alone,
    password_paths,
    reload_fix,
    set_keyword_fix,
    setting_evidence,
)
from nectar_audit.checks.sshd_fix import keyword_remedy
from nectar_audit.evidence import EvidenceError
from nectar_audit.facts import Facts
from nectar_audit.facts import host as host_facts
from nectar_audit.facts import keys as keys_facts
from nectar_audit.facts import net as net_facts
from nectar_audit.facts import ssh as ssh_facts
from nectar_audit.facts.keys import parse_authorized_keys
from nectar_audit.facts.ssh import (
    Context,
    Setting,
    SshdConfig,
    access_denied,
    auth_chains,
    authorized_keys_paths,
    is_cloud_init_refusal,
    sshd_config,
)
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy

KEY_MODES = ("prohibit-password", "forced-commands-only")


@dataclass
class RootKey:
    where: str  # path:line
    key_type: str
    fingerprint: str
    comment: str
    command: str | None

    @property
    def refusal(self) -> bool:
        return is_cloud_init_refusal(self.command)

    def describe(self) -> str:
        bits = [self.key_type, self.fingerprint]
        if self.comment:
            bits.append(self.comment)
        if self.refusal:
            bits.append("forced to cloud-init's refusal message")
        elif self.command is not None:
            bits.append(f'forced command="{self.command[:80]}"')
        return " ".join(bits)


@dataclass
class RootKeys:
    keys: list[RootKey] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # files looked at
    unknown: str | None = None  # why root's keys cannot be known


def _parse_keys(text: str, path: str) -> list[RootKey]:
    out = []
    for k in parse_authorized_keys(text):
        out.append(RootKey(f"{path}:{k.line}", k.key_type, k.fingerprint or "?", k.comment, k.forced_command))
    return out


def root_keys(facts: Facts, cfg: SshdConfig, settings: dict[str, Setting]) -> RootKeys:
    b = facts.bundle
    out = RootKeys()
    akc = settings.get("authorizedkeyscommand")
    if akc is not None and akc.value.lower() != "none":
        out.unknown = f"keys may also come from AuthorizedKeysCommand {akc.value} ({akc.where})"
    acct = cfg.accounts.get("root")
    home = cfg.home_of("root")
    uid = acct.uid if acct is not None else 0
    for path in authorized_keys_paths(settings, "root", home, uid):
        out.files.append(path)
        try:
            text = b.text(path)
        except EvidenceError as exc:
            out.unknown = out.unknown or str(exc)
            continue
        if text is None:
            if b.live and not b.is_root:
                out.unknown = out.unknown or f"needs root to read {path}"
            elif not _gathered(path):
                out.unknown = out.unknown or f"{path} (set by AuthorizedKeysFile) was not read by the audit"
            continue
        out.keys.extend(_parse_keys(text, path))
    return out


def _gathered(path: str) -> bool:
    """Whether a scan of this check reads ``path`` (else its absence proves nothing)."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in CHECK.needs.files)


@dataclass
class Outcome:
    ctx: Context
    mode: str  # denied | no | keys | yes
    setting: Setting  # PermitRootLogin, or the access rule that keeps root out
    password: bool = False  # password login works for root here too


def outcomes(cfg: SshdConfig) -> list[Outcome]:
    out: list[Outcome] = []
    for ctx in cfg.contexts("root"):
        settings = cfg.effective_settings(ctx=ctx)
        denied = access_denied(settings, ctx)
        if denied is not None:
            out.append(Outcome(ctx, "denied", denied))
            continue
        prl = settings["permitrootlogin"]
        if prl.value == "yes":
            alone, _ = password_alone(auth_chains(settings))
            out.append(Outcome(ctx, "yes", prl, bool(password_paths(settings, ctx)) and alone))
        elif prl.value in KEY_MODES:
            out.append(Outcome(ctx, "keys", prl))
        else:
            out.append(Outcome(ctx, "no", prl))
    return out


def _ctx_text(items: list[Outcome]) -> str:
    srcs = sorted({o.ctx.describe_source() for o in items})
    if "from any address" in srcs:
        return ""
    return " (" + "; ".join(srcs[:4]) + (" …" if len(srcs) > 4 else "") + ")"


def _group(items: list[Outcome]) -> dict[tuple[str, str], list[Outcome]]:
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in items:
        s = o.setting
        key = (s.where, s.value)
        groups.setdefault(key, []).append(o)
    return groups


def _fix(facts: Facts, cfg: SshdConfig, setting: Setting) -> str:
    if setting.keyword != "permitrootlogin":
        return reload_fix(facts)
    return (
        f"Make sure another account with sudo can log in first. Then "
        f"{set_keyword_fix(cfg, setting, 'PermitRootLogin no')}; {reload_fix(facts)}"
    )


def run(facts: Facts) -> list[Finding]:
    cfg = facts.get(sshd_config)
    if not cfg.installed:
        return [Finding(Status.NOT_APPLICABLE, "no SSH server (sshd) is installed")]
    results = outcomes(cfg)
    findings: list[Finding] = []

    for (_, _), items in _group([o for o in results if o.mode == "yes"]).items():
        s = items[0].setting
        how = (
            "with a password or a key"
            if any(o.password for o in items)
            else "with a key (and with a password as soon as password login is on)"
        )
        where = f"{s.block.text} ({s.block.where}) allows " if s.block is not None else ""
        findings.append(
            Finding(
                Status.FAIL,
                f"root can log in over SSH {how}{_ctx_text(items)}: {where}{s.describe()}",
                setting_evidence(s),
                _fix(facts, cfg, s),
            )
        )

    key_items = [o for o in results if o.mode == "keys"]
    if key_items:
        findings.extend(_key_findings(facts, cfg, key_items))

    if not findings:
        closed = [o for o in results if o.mode in ("no", "denied")]
        parts = []
        for (_, _), items in _group(closed).items():
            s = items[0].setting
            if items[0].mode == "denied":
                parts.append(f"root is kept out by {s.describe()}")
            else:
                parts.append(s.describe())
        ev = [e for items in _group(closed).values() for e in setting_evidence(items[0].setting)]
        findings.append(Finding(Status.PASS, "root cannot log in over SSH: " + "; ".join(parts), ev))
    return findings


def _key_findings(facts: Facts, cfg: SshdConfig, items: list[Outcome]) -> list[Finding]:
    out: list[Finding] = []
    for (_, _), group in _group(items).items():
        s = group[0].setting
        ctx = group[0].ctx
        settings = cfg.effective_settings(ctx=ctx)
        keys = root_keys(facts, cfg, settings)
        mode = "forced-commands-only" if s.value == "forced-commands-only" else "prohibit-password"
        where = f"{s.block.text} ({s.block.where}): " if s.block is not None else ""
        ev = [*setting_evidence(s)]
        ev.extend(Evidence(k.where, k.describe()) for k in keys.keys)
        if keys.unknown is not None:
            out.append(
                Finding(
                    Status.WARN,
                    f"root can log in over SSH with a key{_ctx_text(group)} ({where}{s.describe()}); root's "
                    f"keys could not be checked: {keys.unknown}",
                    [*ev, Evidence(", ".join(keys.files) or "authorized_keys", keys.unknown)],
                    _fix(facts, cfg, s),
                )
            )
            continue
        usable = [k for k in keys.keys if not k.refusal]
        if mode == "forced-commands-only":
            usable = [k for k in usable if k.command is not None]
        if keys.keys and not [k for k in keys.keys if not k.refusal]:
            files = ", ".join(sorted({k.where.rsplit(":", 1)[0] for k in keys.keys}))
            count = f"{len(keys.keys)} key{'s' if len(keys.keys) != 1 else ''}"
            out.append(
                Finding(
                    Status.PASS,
                    f"root's SSH login is refused by cloud-init: every key in {files} ({count}) is forced to "
                    f'print "Please login as the user …" and exit; {where}{s.describe()}',
                    ev,
                )
            )
            continue
        if not keys.keys:
            msg = (
                f"root can log in over SSH with a key{_ctx_text(group)} ({where}{s.describe()}); root has "
                f"no authorized key now, but any key added to {' or '.join(keys.files)} would work"
            )
        elif usable:
            shown = "; ".join(f"{k.where} {k.describe()}" for k in usable[:3])
            more = f" and {len(usable) - 3} more" if len(usable) > 3 else ""
            what = "run its forced command" if mode == "forced-commands-only" else "log in"
            msg = (
                f"root can {what} over SSH with {len(usable)} key{'s' if len(usable) != 1 else ''}"
                f"{_ctx_text(group)} ({where}{s.describe()}): {shown}{more}"
            )
        else:
            msg = (
                f"root can log in over SSH with a key that has a forced command{_ctx_text(group)} "
                f"({where}{s.describe()}); root's current keys have none, so none of them works now"
            )
        out.append(Finding(Status.WARN, msg, ev, _fix(facts, cfg, s)))
    return out


def plan(facts: Facts) -> Remedy | None:
    """PermitRootLogin no for every connection (root logs in as a named user and uses sudo)."""
    cfg = facts.get(sshd_config)  # asked only when the check fails or warns
    if not cfg.installed:
        return None
    return keyword_remedy(facts, cfg, "Check-Security-17", "SSH root login off",
                          [("permitrootlogin", "PermitRootLogin", "no")])


CHECK = Check(
    id="Check-Security-17",
    severity="high",
    run=run,
    needs=host_facts.NEEDS | keys_facts.NEEDS | net_facts.NEEDS | ssh_facts.NEEDS,
    plan=plan,
    plan_needs=sshd_fix.NEEDS,
    why="root is the one account every attacker knows exists, and a root login leaves no trace of who "
    "it was. Log in as a named user and use sudo for administration.",
    how="Root's effective PermitRootLogin is computed for every connection situation a Match block or "
    "Allow/DenyUsers entry singles out (sshd -T -C user=root,… live as root, else the configuration "
    "parsed with sshd's rules; OpenSSH's default is prohibit-password). no, or DenyUsers/AllowUsers/"
    "DenyGroups/AllowGroups keeping root out, passes; yes fails; prohibit-password (without-password) "
    "and forced-commands-only warn because key login as root stays possible, unless every key in "
    "root's authorized_keys is forced to cloud-init's refusal command (\"Please login as the user …\"; "
    "exit 142), which passes and is reported as such.",
    fix={
        "debian": "printf 'PermitRootLogin no\\n' | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit.conf; "
        "remove PermitRootLogin yes from Match blocks; sudo sshd -t && sudo systemctl "
        "reload-or-restart ssh",
        "rhel": "printf 'PermitRootLogin no\\n' | sudo tee /etc/ssh/sshd_config.d/00-nectar-audit.conf "
        "(RHEL 8: set PermitRootLogin no in /etc/ssh/sshd_config); sudo sshd -t && "
        "sudo systemctl reload-or-restart sshd",
    },
)
