"""Check-Security-01: is SSH password login disabled?

Judged per account sshd may let in (a session shell, or a usable password: sshd authenticates nologin and
SFTP-only accounts whatever their shell), and an account created later, and per connection situation that a
Match block or an Allow/DenyUsers entry singles out, from real ``sshd -T`` where it answered, else from
the configuration parsed with sshd's own rules. Password login means PasswordAuthentication, or
keyboard-interactive authentication through PAM (which asks for the same password).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nectar_audit.checks import sshd_fix
from nectar_audit.checks.base import Check, for_family
from nectar_audit.checks.base import family as host_family
from nectar_audit.checks.sshd_fix import keyword_remedy
from nectar_audit.facts import Facts
from nectar_audit.facts import host as host_facts
from nectar_audit.facts import net as net_facts
from nectar_audit.facts import ssh as ssh_facts
from nectar_audit.facts.net import Net
from nectar_audit.facts.ssh import (
    DROPIN_DIR,
    GENERIC_USER,
    Context,
    Setting,
    SshdConfig,
    access_denied,
    auth_chains,
    dropin_read_before,
    in_trusted,
    sshd_config,
)
from nectar_audit.model import Evidence, Finding, Status
from nectar_audit.remedy import Remedy

CLOUD_INIT_DROPIN = f"{DROPIN_DIR}/50-cloud-init.conf"
FIX_FILE = f"{DROPIN_DIR}/00-nectar-audit.conf"
PASSWORD_METHODS = ("password", "keyboard-interactive")


# --------------------------------------------------------------------------------------------------
# Shared with checks 17 and 18
# --------------------------------------------------------------------------------------------------
def ssh_unit(facts: Facts) -> str:
    """The systemd unit of the SSH server: ``ssh`` on Debian/Ubuntu, ``sshd`` elsewhere."""
    family = host_family(facts)
    return "ssh" if family == "debian" else "sshd"


def reload_fix(facts: Facts) -> str:
    return (
        for_family(
            facts,
            {
                "debian": "sudo sshd -t && sudo systemctl reload-or-restart ssh",
                "rhel": "sudo sshd -t && sudo systemctl reload-or-restart sshd",
            },
        )
        or "sudo sshd -t && sudo systemctl reload-or-restart sshd"
    )


def set_keyword_fix(cfg: SshdConfig, setting: Setting, line: str) -> str:
    """How to make ``line`` (e.g. "PasswordAuthentication no") the value sshd uses, given what sets it now."""
    keyword = setting.keyword
    d = setting.directive
    if setting.block is not None and d is not None:
        return (
            f"in the block `{setting.block.text}` ({setting.block.where}) change `{d.text}` at "
            f"{d.where} to `{line}` (or delete that line)"
        )
    if dropin_read_before(cfg, keyword):
        return f"printf '%s\\n' '{line}' | sudo tee {FIX_FILE}"
    if d is not None:
        return f"change `{d.text}` at {d.where} to `{line}` (sshd uses the first value it reads)"
    return f"add `{line}` near the top of /etc/ssh/sshd_config, before any Match line"


def user_list(users: Iterable[str], limit: int = 8) -> str:
    names = [("any account created later" if u == GENERIC_USER else u) for u in users]
    names = list(dict.fromkeys(names))
    if len(names) > limit:
        return ", ".join(names[:limit]) + f" and {len(names) - limit} more"
    return ", ".join(names)


def setting_evidence(setting: Setting) -> list[Evidence]:
    out: list[Evidence] = []
    if setting.block is not None:
        out.append(Evidence(setting.block.where, setting.block.text))
    for d in setting.sources:
        out.append(Evidence(d.where, d.text))
    if setting.is_default:
        out.append(Evidence("OpenSSH default", f"{setting.name} {setting.value} (not set in any file)"))
    if setting.command:
        out.append(Evidence(f"command: {setting.command}", f"{setting.keyword} {setting.value}"))
    return out


def note_evidence(cfg: SshdConfig) -> list[Evidence]:
    out: list[Evidence] = []
    if cfg.runtime:
        out.append(Evidence(f"command: {cfg.runtime_command('USER')}", f"USER = {user_list(cfg.runtime)}"))
    if cfg.runtime_note:
        out.append(Evidence("sshd -T", cfg.runtime_note))
    for path in cfg.not_captured:
        out.append(Evidence(path, "included by the configuration but not read by the audit"))
    return out


# --------------------------------------------------------------------------------------------------
# The judgement
# --------------------------------------------------------------------------------------------------
@dataclass
class Cause:
    kind: str  # password | kbd | empty
    setting: Setting
    extra: list[Setting] = field(default_factory=list)  # UsePAM for kbd
    users: list[str] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, repr=False)
    _where: dict[str, set[str]] = field(default_factory=dict, repr=False)  # first user of a group -> sources
    _group: dict[str, str] = field(default_factory=dict, repr=False)  # user -> first user of its group

    def add(self, users: Sequence[str], ctx: Context) -> None:
        for user in users:
            if user not in self._seen:
                self._seen.add(user)
                self.users.append(user)
                self._group[user] = users[0]
        self._where.setdefault(users[0], set()).add(ctx.describe_source())
        self.contexts.append(ctx)

    def who(self) -> str:
        """The affected accounts with the addresses each is affected from: "alice, root (from 10.0.0.1)"."""

        def sources(user: str) -> tuple[str, ...]:
            srcs = sorted(self._where.get(self._group.get(user, user), set()))
            return () if not srcs or "from any address" in srcs else tuple(srcs)

        def label(user: str) -> str:
            return "any account created later" if user == GENERIC_USER else user

        def text(srcs: tuple[str, ...]) -> str:
            return " (" + "; ".join(srcs[:3]) + (" …" if len(srcs) > 3 else "") + ")"

        common = {sources(u) for u in self.users}
        if len(common) == 1:
            (srcs,) = common
            return user_list(label(u) for u in self.users) + (text(srcs) if srcs else "")
        return user_list(label(u) + (text(sources(u)) if sources(u) else "") for u in self.users)

    def trusted_only(self, networks: Iterable[Net]) -> bool:
        nets = list(networks)
        return all(in_trusted(c.addr, nets) for c in self.contexts)


def password_alone(chains: list[list[str]]) -> tuple[bool, bool]:
    """(a password alone logs in, a password is asked only after another method) per AuthenticationMethods."""
    if not chains:
        return True, False
    alone = any(all(m.split(":")[0] in PASSWORD_METHODS for m in chain) for chain in chains)
    after = any(any(m.split(":")[0] in PASSWORD_METHODS for m in chain) for chain in chains)
    return alone, after and not alone


def password_paths(settings: Mapping[str, Setting], ctx: Context) -> list[tuple[str, Setting, list[Setting]]]:
    """The ways ``ctx.user`` can log in with a password in this situation: (kind, setting, extras)."""
    if access_denied(settings, ctx) is not None:
        return []
    if ctx.user == "root" and settings["permitrootlogin"].value != "yes":
        return []  # sshd refuses password and keyboard-interactive logins as root unless "yes"
    out: list[tuple[str, Setting, list[Setting]]] = []
    if settings["passwordauthentication"].value == "yes":
        out.append(("password", settings["passwordauthentication"], []))
    kbd = settings["kbdinteractiveauthentication"]
    pam = settings["usepam"]
    if kbd.value == "yes" and pam.value == "yes":
        out.append(("kbd", kbd, [pam]))
    return out


CauseKey = tuple[str, str, str, int]


def _key(kind: str, s: Setting) -> CauseKey:
    d = s.directive
    origin = d.where if d is not None else "default" if s.is_default else "sshd -T"
    return (kind, origin, s.value, s.block.index if s.block is not None else -1)


@dataclass
class Analysis:
    causes: dict[CauseKey, Cause]
    second_factor: dict[CauseKey, Cause]  # passwords asked only after a key (AuthenticationMethods)
    users: list[str]


def analyse(cfg: SshdConfig) -> Analysis:
    causes: dict[CauseKey, Cause] = {}
    second: dict[CauseKey, Cause] = {}
    users = list(dict.fromkeys([*cfg.login_users, GENERIC_USER]))
    # Accounts the configuration cannot tell apart get the same settings: evaluate one of each kind
    # (root, the probe account and those sshd -T answered for are always evaluated themselves).
    members: dict[str, list[str]] = {}
    by_signature: dict[tuple[bool, ...], str] = {}
    for user in users:
        if user in ("root", GENERIC_USER) or user in cfg.runtime:
            members[user] = [user]
            continue
        rep = by_signature.setdefault(cfg.user_signature(user), user)
        members.setdefault(rep, []).append(user)
    for rep, names in members.items():
        for ctx in cfg.contexts(rep):
            settings = cfg.effective_settings(ctx=ctx)
            alone, after = password_alone(auth_chains(settings))
            paths = password_paths(settings, ctx)
            for kind, setting, extra in paths:
                target = causes if alone else second if after else None
                if target is not None:
                    target.setdefault(_key(kind, setting), Cause(kind, setting, extra)).add(names, ctx)
            # sshd applies PermitEmptyPasswords only through password and keyboard-interactive
            # authentication (auth-passwd.c, auth2-none.c): with both off an empty password never logs in.
            empty = settings["permitemptypasswords"]
            if empty.value == "yes" and paths and alone:
                causes.setdefault(_key("empty", empty), Cause("empty", empty)).add(names, ctx)
    order = {u: i for i, u in enumerate(users)}
    for cause in [*causes.values(), *second.values()]:
        cause.users.sort(key=order.__getitem__)
    return Analysis(causes, second, users)


def _origin(setting: Setting) -> str:
    d = setting.directive
    if d is not None and d.path == CLOUD_INIT_DROPIN:
        return " (written by cloud-init from its ssh_pwauth setting)"
    return ""


def _message(cause: Cause) -> str:
    s = cause.setting
    who = cause.who()
    if cause.kind == "empty":
        return f"accounts with an empty password can log in over SSH: {s.describe()} (affects {who})"
    if cause.kind == "kbd":
        pam = cause.extra[0] if cause.extra else None
        subject = "keyboard-interactive login through PAM"
        detail = f"{s.describe()}" + (f" and {pam.describe()}" if pam is not None else "")
        what = f"{subject} asks for the account password: {detail}"
    else:
        subject = "password login"
        detail = f"{s.describe()}{_origin(s)}"
        what = f"password login is on: {detail}"
    if s.block is not None:
        return f"{s.block.text} ({s.block.where}) turns on {subject} for {who}: {detail}"
    return f"{what} (affects {who})"


def _no_shell_note(cfg: SshdConfig, cause: Cause) -> str:
    """What to say when every affected account lacks a login shell: sshd checks their passwords all the same."""
    if not cause.users or any(cfg.session_shell(u) for u in cause.users):
        return ""
    forced = set()
    for ctx in cause.contexts:
        fc = cfg.effective_settings(ctx=ctx).get("forcecommand")
        forced.add(fc.value.split()[0] if fc is not None and fc.value.split() else "none")
    if forced and all(v == "internal-sftp" or v.endswith("/sftp-server") for v in forced):
        return (" — the only affected accounts are SFTP-only (ForceCommand internal-sftp, no login shell): "
                "sshd still accepts their passwords, so they can be guessed and give access to their files")
    return (" — the only affected accounts have no login shell (nologin/false): sshd still checks their "
            "passwords, so they can be guessed")


def _remediation(facts: Facts, cfg: SshdConfig, cause: Cause) -> str:
    s = cause.setting
    if cause.kind == "empty":
        line = "PermitEmptyPasswords no"
    elif cause.kind == "kbd":
        line = "KbdInteractiveAuthentication no"
    else:
        line = "PasswordAuthentication no"
    steps = [f"First make sure you can log in with an SSH key. Then {set_keyword_fix(cfg, s, line)}"]
    if cause.kind == "password" and s.block is None:
        kbd = cfg.global_value("kbdinteractiveauthentication")
        if kbd.value == "yes" and dropin_read_before(cfg, "kbdinteractiveauthentication"):
            steps[0] = steps[0].replace(f"'{line}'", f"'{line}' 'KbdInteractiveAuthentication no'")
    d = s.directive
    if d is not None and d.path == CLOUD_INIT_DROPIN:
        steps.append(
            "stop cloud-init from writing it again: echo 'ssh_pwauth: false' | "
            "sudo tee /etc/cloud/cloud.cfg.d/99-nectar-audit-ssh.cfg"
        )
    steps.append(reload_fix(facts))
    return "; ".join(steps)


def analysis(facts: Facts) -> Analysis:
    """The analysis of the host's sshd configuration, computed once for the check and its plan."""
    return analyse(facts.get(sshd_config))


def run(facts: Facts) -> list[Finding]:
    cfg = facts.get(sshd_config)
    if not cfg.installed:
        return [Finding(Status.NOT_APPLICABLE, "no SSH server (sshd) is installed")]
    result = facts.get(analysis)
    nets = facts.config.trusted_networks
    findings: list[Finding] = []
    for cause in result.causes.values():
        status = Status.FAIL
        message = _message(cause) + _no_shell_note(cfg, cause)
        if cause.kind != "empty" and cause.trusted_only(nets):
            status = Status.WARN
            message += " — only from loopback or the trusted networks"
        evidence = [*setting_evidence(cause.setting), *(e for x in cause.extra for e in setting_evidence(x))]
        findings.append(Finding(status, message, evidence, _remediation(facts, cfg, cause)))
    findings.extend(config_warnings(facts, cfg))
    notes = note_evidence(cfg)
    if not result.causes:
        how = "sshd -T" if cfg.runtime else "the configuration files"
        eff = cfg.effective_settings(user=GENERIC_USER)
        ev = [
            *setting_evidence(eff["passwordauthentication"]),
            *setting_evidence(eff["kbdinteractiveauthentication"]),
            *setting_evidence(eff["usepam"]),
        ]
        text = (
            "password and keyboard-interactive login are off for every account "
            f"({user_list(result.users)}) from any address (per {how})"
        )
        if result.second_factor:
            first = next(iter(result.second_factor.values()))
            am = cfg.effective_settings(ctx=first.contexts[0])["authenticationmethods"]
            text += f"; a password is asked only after a key ({am.describe()})"
            ev.extend(setting_evidence(am))
        findings.insert(0, Finding(Status.PASS, text, [*ev, *notes]))
    elif findings:
        findings[0].evidence.extend(notes)
    return findings


def config_warnings(facts: Facts, cfg: SshdConfig) -> list[Finding]:
    """Configuration errors and gaps that make the judgement (or the next sshd restart) uncertain."""
    out: list[Finding] = []
    if not cfg.runtime:
        for p in cfg.fatal_problems:
            out.append(
                Finding(
                    Status.WARN,
                    f"sshd will refuse to start with this configuration: {p.where}: {p.message}",
                    [Evidence(p.where, p.message)],
                    f"fix the line until `sudo sshd -t` is silent; {reload_fix(facts)}",
                )
            )
    if cfg.runtime_error and _config_error(cfg.runtime_error):
        out.append(
            Finding(
                Status.WARN,
                f"sshd -T rejects the configuration: {cfg.runtime_error}",
                [Evidence("command: sshd -T", cfg.runtime_error)],
                f"fix the configuration until `sudo sshd -t` is silent; {reload_fix(facts)}",
            )
        )
    for w in cfg.warnings:
        out.append(Finding(Status.WARN, w.message, [Evidence(w.where, w.message)]))
    if not cfg.main_present:
        out.append(
            Finding(
                Status.WARN,
                "/etc/ssh/sshd_config is missing: sshd cannot start; judged with "
                "OpenSSH's compiled-in defaults",
                [Evidence("/etc/ssh/sshd_config", "absent")],
            )
        )
    if cfg.not_captured and not cfg.runtime:
        out.append(
            Finding(
                Status.WARN,
                f"the configuration includes {', '.join(cfg.not_captured[:3])}, which the audit did not "
                "read: the result may be incomplete",
                [Evidence(p, "included, not read") for p in cfg.not_captured],
            )
        )
    return out


def _config_error(text: str) -> bool:
    low = text.lower()
    return any(
        w in low
        for w in ("line ", "bad configuration", "terminating", "unsupported option", "not allowed within")
    )


def plan(facts: Facts) -> Remedy | None:
    """Password and keyboard-interactive login off wherever sshd would allow them."""
    cfg = facts.get(sshd_config)
    if not cfg.installed:
        return None
    causes = facts.get(analysis).causes.values()
    if not causes:
        return None
    kinds = {c.kind for c in causes}
    settings = [("passwordauthentication", "PasswordAuthentication", "no")]
    if "kbd" in kinds:
        settings.append(("kbdinteractiveauthentication", "KbdInteractiveAuthentication", "no"))
    if "empty" in kinds:
        settings.append(("permitemptypasswords", "PermitEmptyPasswords", "no"))
    return keyword_remedy(facts, cfg, "Check-Security-01", "SSH password login off", settings,
                          bad={k: ("yes",) for k, _n, _v in settings}, cloud_init=True)


CHECK = Check(
    id="Check-Security-01",
    severity="high",
    run=run,
    needs=host_facts.NEEDS | net_facts.NEEDS | ssh_facts.NEEDS,
    plan=plan,
    plan_needs=sshd_fix.NEEDS,
    why="Passwords can be guessed: every SSH server on the internet sees thousands of password guesses a "
    "week. With key-only login a guessed password is useless.",
    how="For root, every account with a login shell, every account without one (nologin, false: SFTP-only "
    "accounts) that has a usable password, and an account created later, and for every "
    "address, host name or port a Match block or AllowUsers entry singles out, the effective sshd "
    "settings are computed: live and as root with sshd -T -C user=…,host=…,addr=…, otherwise by "
    "parsing /etc/ssh/sshd_config and its Includes with sshd's rules (first value wins, Match "
    "blocks override, compiled-in default PasswordAuthentication yes). Password login is "
    "PasswordAuthentication yes, or KbdInteractiveAuthentication (ChallengeResponseAuthentication) "
    "yes with UsePAM yes. PermitEmptyPasswords yes fails too where one of those methods is on (sshd "
    "applies it only through them). A Match block that allows passwords only "
    "from loopback or the configured trusted networks warns.",
    fix={
        "debian": "printf 'PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n' | "
        f"sudo tee {FIX_FILE}; remove PasswordAuthentication yes from Match blocks; set "
        "ssh_pwauth: false for cloud-init; sudo sshd -t && sudo systemctl reload-or-restart ssh",
        "rhel": "printf 'PasswordAuthentication no\\nKbdInteractiveAuthentication no\\n' | "
        f"sudo tee {FIX_FILE} (RHEL 8: edit /etc/ssh/sshd_config); "
        "sudo sshd -t && sudo systemctl reload-or-restart sshd",
    },
)
