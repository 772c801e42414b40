"""Fix plan for Check-Security-18: move sshd to the port named by ``fix --ssh-port``, in two phases.

Phase 1 opens the new port wherever it must be open (the active host firewall, SELinux's ``ssh_port_t``,
fail2ban's sshd jail) and makes sshd listen on both ports; the controller then proves a new key login on
the new port. Phase 2, planned again from a fresh audit, removes 22 from sshd, the firewall and the jail.
Both phases run under the dead-man timer: unconfirmed, the host puts every file back after N seconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from nectar_audit.checks.base import family as host_family
from nectar_audit.checks.sshd_fix import key_login_account, validate_and_reload
from nectar_audit.evidence import EvidenceError, Needs, merge
from nectar_audit.facts import Facts
from nectar_audit.facts import accounts as accounts_facts
from nectar_audit.facts import firewall as firewall_facts
from nectar_audit.facts.firewall import Firewall, firewall
from nectar_audit.facts.ssh import (
    DROPIN_DIR,
    MAIN_CONFIG,
    ListenInfo,
    SshdConfig,
    includes_dropins,
    sshd_config,
    sshd_listeners,
)
from nectar_audit.remedy import GUARD_KEY_LOGIN, TAG, FileChange, LineEdit, Remedy, Step, apply_line_edits, drop_in

CHECK = "Check-Security-18"
SSHD_DROPIN = f"{DROPIN_DIR}/00-nectar-audit-18.conf"
F2B_DROPIN = "/etc/fail2ban/jail.d/zz-nectar-audit-18.local"  # read last: its port wins
SOCKET_DROPIN = "/etc/systemd/system/{unit}.d/00-nectar-audit-18.conf"
NFT_CONF = "/etc/nftables.conf"
IPT_FILES = ("/etc/iptables/rules.v4", "/etc/iptables/rules.v6")
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"
NEEDS: Needs = merge([accounts_facts.NEEDS, firewall_facts.NEEDS,
                      Needs(files=(NFT_CONF, *IPT_FILES, "/etc/fail2ban/jail.conf", F2B_DROPIN,
                                   "/etc/ufw/user.rules", "/etc/ufw/user6.rules", SELINUX_ENFORCE,
                                   "/etc/systemd/system/ssh.socket.d/*.conf"))])

_NFT_22 = re.compile(r"\bdport\s+(?:22|ssh)\b")
_IPT_22 = re.compile(r"--dport\s+(?:22|ssh)\b")
# ufw's record of a rule in user*.rules: ACTION PROTO DPORT DST SPORT SRC [DAPP SAPP] in[_IFACE] [comment=HEX]
# (ufw/backend_iptables.py writes it; an application rule such as OpenSSH names its port and the app).
_UFW_TUPLE = re.compile(r"^### tuple ### (allow|limit) (tcp|any) (22|ssh) (\S+) any (\S+)(?: (\S+) (\S+))? "
                        r"in(?:_(\S+))?(?: comment=\S*)?$")


def _options(facts: Facts) -> dict[str, object]:
    got = facts.config.extra.get("fix", {})
    return got if isinstance(got, dict) else {}


def _text(facts: Facts, path: str) -> str | None:
    try:
        return facts.bundle.text(path)
    except EvidenceError:
        return None


def _comment(line: str) -> str:
    return f"# {line.strip()}  # disabled by {TAG} (18: SSH moved)"


# -- the host firewall ---------------------------------------------------------------------------
@dataclass(frozen=True)
class UfwRule:
    """One ufw rule that lets 22 in, as its tuple line records it."""

    action: str  # allow or limit
    proto: str  # tcp or any
    dst: str
    src: str
    app: str  # the application profile (OpenSSH), or ""
    iface: str  # the interface the rule is limited to, or ""


def ufw_ssh_rules(text: str) -> list[UfwRule]:
    """The rules of user.rules/user6.rules text that let TCP 22 in (allow or limit, any source port)."""
    out = []
    for line in text.splitlines():
        m = _UFW_TUPLE.match(line.strip())
        if m is None:
            continue
        action, proto, _, dst, src, dapp, _, iface = m.groups()
        out.append(UfwRule(action, proto, dst, src, "" if dapp in (None, "-") else dapp.replace("%20", " "),
                           iface or ""))
    return out


def _ufw_rule(rule: UfwRule, what: str) -> str:
    """ufw's command-line words for ``rule`` aimed at ``what`` (``port N proto P`` or ``app NAME``)."""

    def addr(a: str) -> str:
        return "any" if a in ("0.0.0.0/0", "::/0", "any") else _quote(a)

    on = f" in on {_quote(rule.iface)}" if rule.iface else ""
    return f"{rule.action}{on} from {addr(rule.src)} to {addr(rule.dst)} {what}"


def _firewall(facts: Facts, new: int, phase: int) -> tuple[list[FileChange], list[Step], list[Step], list[Step],
                                                           list[str], list[str]]:
    """(changes, commands, validate, activate, preconditions, manual) for the active host firewall."""
    try:
        fw: Firewall | None = facts.get(firewall)
    except EvidenceError as exc:
        return [], [], [], [], [], [f"the host firewall could not be read ({exc}): open TCP {new} in it by hand"]
    assert fw is not None
    changes: list[FileChange] = []
    commands: list[Step] = []
    validate: list[Step] = []
    activate: list[Step] = []
    pre: list[str] = []
    manual: list[str] = []
    q = _quote
    if fw.ufw is not None and fw.ufw.enabled:
        backs: tuple[str, ...] = ("/etc/ufw/user.rules", "/etc/ufw/user6.rules")
        rules = ufw_ssh_rules("\n".join(_text(facts, p) or "" for p in backs))
        if phase == 1:
            # Each rule that lets 22 in gets a twin for the new port: same action (limit stays limit),
            # interface, sources and destination. None readable: TCP new from anywhere, as 22 is.
            anyone = UfwRule("allow", "tcp", "any", "any", "", "")
            twins = [_ufw_rule(r, f"port {new} proto tcp") for r in rules or [anyone]]
            for twin in dict.fromkeys(twins):
                commands.append(Step(f"ufw {twin} >/dev/null", f"ufw: let TCP {new} in as 22 is", backs))
            pre.append(f"ufw is active: TCP {new} is let in like 22 (" + "; ".join(dict.fromkeys(twins)) + ")")
        else:
            # The rules exactly as ufw wrote them (one delete covers a rule's IPv4 and IPv6 halves).
            olds = [_ufw_rule(r, f"app {q(r.app)}" if r.app else "port 22" + ("" if r.proto == "any" else
                                                                                 f" proto {r.proto}"))
                    for r in rules]
            for old in dict.fromkeys(olds):
                commands.append(Step(f"ufw delete {old} >/dev/null", "ufw: 22 closed", backs))
        # ufw reads its files again: after an undo the kernel's rules are the restored files' again.
        activate.append(Step("if grep -qx ENABLED=yes /etc/ufw/ufw.conf; then ufw reload >/dev/null; fi",
                             "ufw loads its rules from its files"))
        return changes, commands, validate, activate, pre, manual
    if fw.firewalld is not None and any(m.name == "firewalld" and m.enabled for m in fw.boot):
        zone = fw.firewalld.default_zone
        backs = (f"/etc/firewalld/zones/{zone}.xml", "/etc/firewalld/zones/public.xml")
        if phase == 1:
            commands.append(Step(f"firewall-cmd --permanent --zone={q(zone)} --add-port={new}/tcp && "
                                 "firewall-cmd --reload", f"firewalld: TCP {new} open", backs))
        else:
            commands.append(Step(f"firewall-cmd --permanent --zone={q(zone)} --remove-service=ssh; "
                                 f"firewall-cmd --permanent --zone={q(zone)} --remove-port=22/tcp; "
                                 "firewall-cmd --reload", "firewalld: 22 closed", backs))
        activate.append(Step("firewall-cmd --reload >/dev/null 2>&1 || :", "firewalld reads its zones again"))
        return changes, commands, validate, activate, pre, manual
    nft = _text(facts, NFT_CONF)
    if nft is not None and _NFT_22.search(nft):
        change = _rule_lines(NFT_CONF, nft, _NFT_22, new, phase, nft_style=True)
        if change is not None:
            changes.append(change)
            validate.append(Step(f"nft -c -f {NFT_CONF}", "nft's own check of the ruleset"))
            if "flush ruleset" in nft:
                # Only a ruleset loaded now is loaded again (a file nobody loaded stays for the next boot).
                activate.append(Step(f"if nft list ruleset 2>/dev/null | grep -q .; then nft -f {NFT_CONF}; fi",
                                     "the kernel's rules from the file again"))
            else:
                manual.append(f"{NFT_CONF} does not start with `flush ruleset`: load it by hand (nft -f)")
        return changes, commands, validate, activate, pre, manual
    for path, tool in zip(IPT_FILES, ("iptables", "ip6tables")):
        text = _text(facts, path)
        if text is None or not _IPT_22.search(text):
            continue
        change = _rule_lines(path, text, _IPT_22, new, phase, nft_style=False)
        if change is not None:
            changes.append(change)
            validate.append(Step(f"{tool}-restore --test {path}", f"{tool}-restore's own check"))
            activate.append(Step(f"if {tool}-save 2>/dev/null | grep -q '^-A INPUT'; then {tool}-restore {path}; fi",
                                 "the kernel's rules from the file again"))
    if not changes and phase == 1:
        verdict = fw.evaluate("tcp", new, 4)
        if verdict.allowed is not True:
            manual.append(f"no rule of the host firewall opens 22 in a file we can edit: make sure TCP {new} "
                          f"is let in ({verdict.rule or 'default'})")
        else:
            pre.append(f"the host firewall lets TCP {new} in already")
    return changes, commands, validate, activate, pre, manual


def _quote(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _rule_lines(path: str, text: str, pattern: re.Pattern[str], new: int, phase: int,
                nft_style: bool) -> FileChange | None:
    """Phase 1: each rule line that accepts 22 gets a twin for ``new`` (same sources, same chain) after it.
    Phase 2: the lines that accept 22 are commented out. Anchored on their exact text."""
    edits: list[LineEdit] = []
    seen: dict[str, int] = {}
    new_lines: tuple[str, ...]
    for line in text.split("\n"):
        seen[line] = seen.get(line, 0) + 1
        if line.lstrip().startswith("#") or not pattern.search(line):
            continue
        if "accept" not in line.lower():
            continue
        port = re.sub(r"\b(dport\s+)(?:22|ssh)\b", rf"\g<1>{new}", line)
        twin = port + (f"  # {TAG} 18" if nft_style else "")
        if phase == 1:
            if twin in text:
                continue
            new_lines = (line, twin)
        else:
            new_lines = (_comment(line),) if nft_style else ()
        edits.append(LineEdit(line, new_lines, seen[line]))
    if not edits:
        return None
    after = apply_line_edits(text, edits)
    if after is None:
        return None
    why = f"18: let TCP {new} in like 22" if phase == 1 else "18: 22 no longer let in"
    return FileChange(path, text, after, tuple(edits), why=why)


# -- sshd ----------------------------------------------------------------------------------------
def _sshd(facts: Facts, cfg: SshdConfig, info: ListenInfo, new: int, phase: int
          ) -> tuple[list[FileChange], list[Step], list[str]]:
    changes: list[FileChange] = []
    activate: list[Step] = []
    manual: list[str] = []
    globals_ = [d for d in cfg.global_directives if d.keyword == "port" and d.path != SSHD_DROPIN]
    old = [d for d in globals_ if d.value.isdigit() and (int(d.value) == 22 or int(d.value) < 1024)]
    ports = [str(new)] if phase == 2 or globals_ else ["22", str(new)]
    lines = [f"Port {p}" for p in ports]
    if includes_dropins(cfg):
        before = _text(facts, SSHD_DROPIN)
        change = drop_in(SSHD_DROPIN, lines, before, "18: the SSH port (sshd adds every Port line)")
        if change.after != before:
            changes.append(change)
    elif phase == 1:
        main = _text(facts, MAIN_CONFIG)
        if main is None:
            manual.append(f"add `Port {new}` to {MAIN_CONFIG} (the file could not be read)")
        else:
            first = main.split("\n", 1)[0]
            new_lines = (*(f"{line}  # {TAG} 18" for line in lines), first)
            after = apply_line_edits(main, [LineEdit(first, new_lines, 1)])
            if after is not None:
                changes.append(FileChange(MAIN_CONFIG, main, after, (LineEdit(first, new_lines, 1),), why="18"))
    if phase == 2:
        by_path: dict[str, list[LineEdit]] = {}
        for d in old:
            text = _text(facts, d.path)
            if text is None:
                manual.append(f"remove `{d.text}` at {d.where} (the file could not be read)")
                continue
            raw = text.split("\n")[d.line - 1] if 0 < d.line <= len(text.split("\n")) else None
            if raw is None:
                continue
            occurrence = text.split("\n")[:d.line].count(raw)
            by_path.setdefault(d.path, []).append(LineEdit(raw, (_comment(raw),), occurrence))
        for path, edits in by_path.items():
            before_text = _text(facts, path) or ""
            after = apply_line_edits(before_text, edits)
            if after is not None:
                existing = next((c for c in changes if c.path == path), None)
                if existing is None:
                    changes.append(FileChange(path, before_text, after, tuple(edits), why="18: 22 removed"))
    if any(":" in d.value for d in cfg.global_directives if d.keyword == "listenaddress"):
        manual.append("a ListenAddress names its own port: change it to the new port by hand")
    socket = info.socket
    if socket is not None and not socket.generator:
        path = SOCKET_DROPIN.format(unit=socket.name)
        streams = ["ListenStream="] + [f"ListenStream={p}" for p in ports]
        before = _text(facts, path)
        change = drop_in(path, ["[Socket]", *streams], before, f"18: {socket.name} listens on the SSH port(s)")
        if change.after != before:
            changes.append(change)
        activate.append(Step(_socket_restart(socket.name), f"{socket.name} listens again"))
    elif socket is not None:
        activate.append(Step(_socket_restart(socket.name),
                             "Ubuntu's sshd-socket-generator copies the Port lines into the socket"))
    return changes, activate, manual


def _socket_restart(unit: str) -> str:
    """Restart the socket unit where systemd runs. Without systemd as PID 1 (a container, a chroot) no
    socket is held for sshd: the sshd started by hand or an init script listens on its own Port lines,
    which the sshd reload step makes it read, so a bare systemctl (which fails there) would only fail
    the run."""
    return f"if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl restart {_quote(unit)}; fi"


def _fail2ban(facts: Facts, new: int, phase: int) -> tuple[list[FileChange], list[Step], list[Step]]:
    if _text(facts, "/etc/fail2ban/jail.conf") is None:
        return [], [], []
    value = f"22,{new}" if phase == 1 else str(new)
    before = _text(facts, F2B_DROPIN)
    change = drop_in(F2B_DROPIN, ["[sshd]", f"port = {value}"], before, "18: fail2ban bans on the SSH port(s)")
    if change.after == before:
        return [], [], []
    validate = [Step("fail2ban-client -t >/dev/null", "fail2ban's own configuration test")]
    activate = [Step("if fail2ban-client ping >/dev/null 2>&1; then fail2ban-client reload; fi",
                     "fail2ban reads its jails again")]
    return [change], validate, activate


def _selinux(facts: Facts, new: int) -> list[Step]:
    enforce = _text(facts, SELINUX_ENFORCE)
    if enforce is None or enforce.strip() != "1":
        return []
    return [Step(f"semanage port -a -t ssh_port_t -p tcp {new} 2>/dev/null || "
                 f"semanage port -m -t ssh_port_t -p tcp {new}",
                 "SELinux lets sshd bind the port (kept on undo: harmless)")]


def plan(facts: Facts) -> Remedy | None:
    """Phase 1 (sshd on both ports, the new one open everywhere) or phase 2 (22 removed everywhere)."""
    cfg = facts.get(sshd_config)
    if not cfg.installed:
        return None
    info = facts.get(sshd_listeners)
    raw = _options(facts).get("ssh_port")
    summary = "move SSH to a port from 1024 to 65535"
    if raw is None:
        return Remedy(CHECK, summary, refused="name the new port: fix --checks 18 --ssh-port PORT (1024-65535)")
    new = int(str(raw))
    if not 1024 <= new <= 65535:
        return Remedy(CHECK, summary, refused=f"--ssh-port {new}: use a port from 1024 to 65535")
    configured = {p.port for p in info.ports}
    running = set(info.running or ())
    if new not in configured:
        phase = 1
    elif info.running is not None and new not in running:
        return Remedy(CHECK, summary, refused=f"sshd is configured for {new} but does not listen on it: "
                                              "restart sshd, then run fix again")
    else:
        phase = 2
    who, why = key_login_account(facts)
    if who is None:
        return Remedy(CHECK, summary, refused=f"{why}: nobody could prove a key login on the new port")
    family = host_family(facts)
    fw_changes, fw_cmds, fw_validate, fw_activate, fw_pre, fw_manual = _firewall(facts, new, phase)
    ssh_changes, ssh_activate, ssh_manual = _sshd(facts, cfg, info, new, phase)
    f2b_changes, f2b_validate, f2b_activate = _fail2ban(facts, new, phase)
    selinux = _selinux(facts, new) if phase == 1 else []
    sshd_validate, sshd_reload = validate_and_reload(facts)
    if phase == 1:
        summary = f"phase 1 of 2: SSH also on port {new} (22 stays until a login on {new} works)"
    else:
        summary = f"phase 2 of 2: port 22 closed (a key login on {new} worked)"
    notes: list[str] = []
    if phase == 2:
        notes.append(f"your ssh_config: Host {facts.bundle.target}\n    Port {new}")
    if family in ("rhel", "fedora") and not selinux:
        notes.append("SELinux is not enforcing: ssh_port_t left as it is")
    changes: Sequence[FileChange] = [*fw_changes, *f2b_changes, *ssh_changes]
    return Remedy(
        CHECK, summary,
        preconditions=(why, *fw_pre),
        changes=tuple(changes),
        commands=(*selinux, *fw_cmds),
        validate=(*fw_validate, *f2b_validate, *sshd_validate),
        activate=(*fw_activate, *f2b_activate, *ssh_activate, *sshd_reload),
        manual=(*fw_manual, *ssh_manual),
        guard=GUARD_KEY_LOGIN,
        explicit=True,  # a port change is made only when asked for by name
        notes=tuple(notes),
        deadman=True,
        confirm_port=new,
        next_phase=phase == 1,
    )
