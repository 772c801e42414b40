"""The OpenSSH server: its effective configuration per user and connection, its ports, PAM.

Public API (other fact modules and checks rely on it):

- ``sshd_config(facts) -> SshdConfig``: ``.installed``, ``.global_settings`` (keyword -> Setting, as
  written outside Match blocks), ``.match_blocks`` (``MatchBlock`` with ``.where`` "file:line", ``.text``,
  ``.criteria``, ``.directives``), ``.effective(user=, groups=, host=, addr=, laddr=, lport=) -> dict``
  (keyword -> value string, sshd -T style: lower-case keywords, ``yes``/``no``, multi-valued keywords
  space-joined) and ``.effective_settings(...)`` (keyword -> ``Setting`` with provenance),
  ``.login_users`` (accounts sshd may let in: a session shell, or none but a usable password; root
  first), ``.contexts(user)`` (every distinct connection
  situation worth evaluating for that user), ``.runtime`` (what real ``sshd -T`` said per user),
  ``.problems`` (errors that make sshd refuse to start).
- ``sshd_listen_ports(facts) -> list[int]``: every TCP port sshd really listens on (sshd -T or the
  parser, ``ssh.socket`` when socket activation decides, and the running sshd's sockets when seen).
- ``sshd_listeners(facts) -> ListenInfo``: the same with provenance.
- ``sshd_uses_pam(facts) -> bool``.
- Pure parsers: ``parse_sshd_config(files, ...)``, ``parse_sshd_T(stdout)``, ``accounts.parse_accounts(passwd,
  group)``, ``parse_unit_listen_streams(...)``, ``match_pattern_list``, ``addr_match_list``.

Semantics follow sshd_config(5) and servconf.c: keywords are case-insensitive, the first value obtained
wins (Port, ListenAddress, HostKey, AcceptEnv and Allow/Deny Users/Groups accumulate; AuthorizedKeysFile
and AuthenticationMethods take the first line's list), Include takes globs and paths relative to
/etc/ssh and may sit inside a Match block (a Match inside an included file ends with that file), and a
keyword set in a Match block that applies overrides the global value, the first matching block winning.
Compiled-in defaults apply when nothing sets a keyword. Live and as root, real ``sshd -T -C
user=U,host=H,addr=A`` for every such account is authoritative for that connection; the parser
covers other addresses and everything offline or without root.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import TYPE_CHECKING

from nectar_audit.evidence import Bundle, EvidenceError, Needs

if TYPE_CHECKING:
    from nectar_audit.facts import Facts
from nectar_audit.facts.accounts import accounts, parse_accounts, sh_no_session_case
from nectar_audit.facts.ssh.files import (
    CMDLINE_FILES,
    CRYPTO_POLICY,
    DROPIN_DIR,
    ENABLE_LINKS,
    GENERATORS,
    MAIN_CONFIG,
    MAX_RUNTIME_USERS,
    SOCKET_UNITS,
    SSHD_BINARIES,
    SSHDIR,
    T_COMMAND,
    UNIT_DIRS,
)
from nectar_audit.facts.ssh.keywords import canonical
from nectar_audit.facts.ssh.model import Directive, Problem, SshdConfig, runtime_values
from nectar_audit.facts.ssh.parser import QuoteError, argv_split, parse_sshd_config, parse_sshd_T, split_line
from nectar_audit.facts.ssh.units import (
    ListenInfo,
    ListenPort,
    SocketUnit,
    listen_stream_port,
    parse_unit_listen_streams,
)
from nectar_audit.facts.system import listeners, services, sockets_source

# One sh process loop: real sshd -T for root, every account with a session shell and every account
# without one (nologin, false: SFTP-only accounts) that has a usable password, asked about a connection
# from a non-local address. Root only: sshd -T needs the host keys.
# sshd -T costs ~10 ms of CPU a run (it loads every host key); -C only matters to Match blocks, so when
# neither /etc/ssh nor any file an Include there names has a Match line, root's answer is every
# account's answer ("@@same root"), and hosts with many accounts are not slowed down by them. awk joins
# passwd with shadow (whether an account without a session shell has a usable password). One grep
# finds both the Match and the Include lines of /etc/ssh (which holds the 570 kB moduli file).
_T_SNIPPET = r"""s=$(command -v sshd 2>/dev/null) || exit 127
[ "${NA_UID:-$(id -u)}" = 0 ] || { echo '@@skipped not root'; exit 0; }
a=198.51.100.7
m=0 inc=
while read -r w v; do
  case $w in [Mm][Aa][Tt][Cc][Hh]) m=1; break;; esac
  inc="$inc $v"
done <<NA_EOF
$(grep -rhsiE '^[[:space:]]*(match|include)[[:space:]]' /etc/ssh)
NA_EOF
if [ "$m" = 0 ]; then
  for p in $inc; do
    case "$p" in /etc/ssh/*|[!/]*) ;; *) grep -qsiE '^[[:space:]]*match[[:space:]]' $p && m=1;; esac
  done
fi
set -- /etc/passwd
[ -r /etc/shadow ] && set -- /etc/shadow "$@"
{ echo root; echo nectar-new-user
  awk -F: 'FILENAME == "/etc/shadow" { if ($2 !~ /^[!*]/ && $2 != "x" && $2 != "NP" && $2 != "LK") ok[$1] = 1; next }
    { print $1 ":" ($2 == "x" ? ($1 in ok) : ($2 !~ /^[!*]/)) ":" $7 }' "$@" |
  while IFS=: read -r u pw sh || [ -n "$u" ]; do
    case "$u" in ''|root|nectar-new-user|[+-]*|*[!A-Za-z0-9._@-]*) continue;; esac
    case "$u:$sh" in NO_SESSION) [ "$pw" = 1 ] || continue;; esac
    echo "$u"
  done
} | { n=0; r=1
  while read -r u; do
    n=$((n+1)); if [ "$n" -gt MAX_ASKED ]; then echo '@@truncated'; break; fi
    echo "@@user $u"
    if [ "$n" -gt 1 ] && [ "$m" = 0 ] && [ "$r" = 0 ]; then echo '@@same root'; echo '@@rc 0'; continue; fi
    with_timeout 5 "$s" -T -C "user=$u,host=$a,addr=$a"
    r=$?; echo "@@rc $r"
  done; }""".replace("NO_SESSION", sh_no_session_case()).replace("MAX_ASKED", str(MAX_RUNTIME_USERS + 2))

NEEDS = Needs(
    files=(
        MAIN_CONFIG,
        f"{DROPIN_DIR}/*",
        f"{DROPIN_DIR}/*/*",
        f"{SSHDIR}/*.conf",
        f"{SSHDIR}/*/*.conf",
        f"{SSHDIR}/*/*/*.conf",
        CRYPTO_POLICY,
        *CMDLINE_FILES,
        "/etc/passwd",
        "/etc/group",
        "/root/.ssh/authorized_keys",
        "/root/.ssh/authorized_keys2",
        "/etc/ssh/authorized_keys/root",  # AuthorizedKeysFile /etc/ssh/authorized_keys/%u
        *(f"{d}/{u}" for d in UNIT_DIRS for u in SOCKET_UNITS),
        *(f"{d}/{u}.d/*.conf" for d in UNIT_DIRS for u in SOCKET_UNITS),
    ),
    stats=(
        *SSHD_BINARIES,
        f"{SSHDIR}/*",
        f"{SSHDIR}/*/*",
        f"{SSHDIR}/*/*/*",
        *GENERATORS,
        *(p for links in ENABLE_LINKS.values() for p in links),
        *(f"/etc/systemd/system/{u}" for u in SOCKET_UNITS),
    ),
    commands={T_COMMAND: _T_SNIPPET},
)


# --------------------------------------------------------------------------------------------------
# Facts
# --------------------------------------------------------------------------------------------------
def _read_map(bundle: Bundle, patterns: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    texts: dict[str, str] = {}
    errors: dict[str, str] = {}
    for pattern in patterns:
        for path in bundle.glob(pattern):
            rec = bundle.file(path)
            if rec is None:
                continue
            if rec.error is not None:
                errors[path] = bundle.unreadable_reason(path, rec.error)
            elif rec.content is not None:
                texts[path] = rec.content
    return texts, errors


def sshd_installed(bundle: Bundle) -> bool:
    if any(p in bundle.stats for p in SSHD_BINARIES):
        return True
    rec = bundle.command(T_COMMAND)
    if rec is not None and not rec.missing and "@@user" in rec.stdout:
        return True
    if rec is not None and rec.missing:
        return False
    # A bundle without file metadata at all (old or hand-made): a config file is the best sign left.
    return not bundle.stats and bundle.file(MAIN_CONFIG) is not None


def sshd_config(facts: Facts) -> SshdConfig:
    """The parsed configuration, the accounts it is evaluated for, and (live, root) sshd -T answers.

    Raises EvidenceError when the configuration cannot be read and sshd -T did not answer either.
    """
    b = facts.bundle
    installed = sshd_installed(b)
    # Every captured file: an Include may name any path (sshd reads whatever it names).
    texts, errors = _read_map(b, ["*"])
    known = [p for p, st in b.stats.items() if not st.is_dir]
    cfg = parse_sshd_config(texts, unreadable=errors, known_paths=known)
    cfg.installed = installed
    for path, variable in CMDLINE_FILES.items():
        options = texts.get(path)
        if options:
            apply_command_line(cfg, path, options, variable)
    passwd = _text_or_empty(b, "/etc/passwd")
    group = _text_or_empty(b, "/etc/group")
    cfg.accounts = parse_accounts(passwd, group)
    cfg.password_accounts = _password_accounts(facts, cfg)

    rec = b.command(T_COMMAND) if b.live else None
    if rec is not None and not rec.missing:
        rt = parse_sshd_T(rec.stdout)
        cfg.runtime = rt.users
        if rt.skipped:
            cfg.runtime_note = f"sshd -T not run ({rt.skipped}); judged from the configuration files"
        elif rt.failed and not rt.users:
            err = rec.stderr.strip().splitlines()
            cfg.runtime_error = err[0][:300] if err else f"exit status {next(iter(rt.failed.values()))}"
            cfg.runtime_note = f"sshd -T failed ({cfg.runtime_error}); judged from the configuration files"
        elif rt.truncated:
            cfg.runtime_note = (
                f"sshd -T was run for the first {MAX_RUNTIME_USERS + 2} accounts only; "
                "the others are judged from the configuration files"
            )
    elif not b.live:
        cfg.runtime_note = "offline image: judged from the configuration files (no sshd -T)"

    if installed and not cfg.runtime:
        if MAIN_CONFIG in errors:
            raise EvidenceError(errors[MAIN_CONFIG])
        if cfg.unreadable:
            _path, reason = next(iter(cfg.unreadable.items()))
            raise EvidenceError(reason)
    return cfg


def _password_accounts(facts: Facts, cfg: SshdConfig) -> frozenset[str]:
    """Accounts without a session shell whose password sshd would check: not locked, not expired,
    with a usable or empty password (unknown when shadow cannot be read: then none are added)."""
    try:
        accts = facts.get(accounts)
    except EvidenceError:
        return frozenset()
    return frozenset(
        a.name for a in accts.users
        if a.name in cfg.accounts and not cfg.accounts[a.name].has_session_shell and a.password_usable
        and not a.expired()
    )


def parse_service_options(text: str, variable: str) -> list[tuple[int, list[str]]]:
    """``VAR="..."`` assignments of a systemd EnvironmentFile: (line, the words ``$VAR`` expands to)."""
    out: list[tuple[int, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        name, eq, value = line.partition("=")
        if not eq or name.strip() != variable:
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError:
            continue
        out.append((lineno, " ".join(words).split()))
    return out


def apply_command_line(cfg: SshdConfig, path: str, text: str, variable: str) -> None:
    """-o Keyword=value (ahead of every file: the first value wins), -p port, -f other-config."""
    order = -1000
    for lineno, args in parse_service_options(text, variable):
        i = 0
        while i < len(args):
            arg = args[i]
            flag, value = arg[:2], arg[2:]
            if flag in ("-o", "-p", "-f") and not value and i + 1 < len(args):
                i += 1
                value = args[i]
            i += 1
            if flag == "-o" and value:
                keyword, rest = split_line(value)
                try:
                    words = tuple(argv_split(rest))
                except QuoteError:
                    continue
                if keyword and words:
                    d = Directive(canonical(keyword), keyword, words, path, lineno, order)
                    order += 1
                    cfg.directives.insert(len([x for x in cfg.directives if x.order < 0]), d)
            elif flag == "-p" and value.isdigit() and 0 < int(value) < 65536:
                cfg.cmdline_ports.append(
                    ListenPort(int(value), f"{path}:{lineno}", f"{variable}: -p {value}")
                )
            elif flag == "-f" and value:
                cfg.warnings.append(
                    Problem(
                        f"{path}:{lineno}",
                        f"sshd is started with -f {value}: its "
                        "configuration is that file, not /etc/ssh/sshd_config",
                        False,
                    )
                )


def _text_or_empty(b: Bundle, path: str) -> str:
    try:
        return b.text(path) or ""
    except EvidenceError:
        return ""


def _stat_exists(b: Bundle, path: str) -> bool:
    return path in b.stats or b.file(path) is not None


def _socket_unit(facts: Facts, cfg: SshdConfig, name: str) -> SocketUnit | None:
    b = facts.bundle
    links = [p for p in ENABLE_LINKS[name] if _stat_exists(b, p)]
    enabled = bool(links)
    source = links[0] if links else ""
    masked = False
    st = b.stats.get(f"/etc/systemd/system/{name}")
    if st is not None and st.is_link and b.file(f"/etc/systemd/system/{name}") is None:
        masked = True
    try:
        svc = facts.get(services)
        if svc.enabled_source.startswith("command:"):
            enabled = name in svc.enabled
            source = svc.enabled_source
        masked = masked or name in svc.masked
    except Exception:  # the services fact is optional here: the links above decide
        pass
    unit_path = next(
        (
            f"{d}/{name}"
            for d in (
                "/etc/systemd/system",
                "/run/systemd/system",
                "/usr/lib/systemd/system",
                "/lib/systemd/system",
            )
            if b.file(f"{d}/{name}") is not None
        ),
        None,
    )
    if unit_path is None:
        return None
    dropins: dict[str, str] = {}
    for d in UNIT_DIRS:
        for path in b.glob(f"{d}/{name}.d/*.conf"):
            dropins.setdefault(path.rsplit("/", 1)[1], path)
    generator = any(p in b.stats for p in GENERATORS) and name == "ssh.socket"
    units: list[tuple[str, str]] = [(unit_path, _text_or_empty(b, unit_path))]
    texts = {path: _text_or_empty(b, path) for path in dropins.values()}
    synthesized = False
    generated = any(p.startswith("/run/systemd/generator/") for p in dropins.values())
    if generator and not b.live and not generated:
        # An image never has /run: at boot the generator turns sshd's Port/ListenAddress into a drop-in.
        streams = _generator_streams(cfg)
        if streams is not None and "addresses.conf" not in dropins:
            synthesized = True
            dropins["addresses.conf"] = GENERATED_DROPIN
            texts[GENERATED_DROPIN] = streams
    for base in sorted(dropins):
        units.append((dropins[base], texts[dropins[base]]))
    ports: list[ListenPort] = []
    for value, where, text in parse_unit_listen_streams(units):
        port = listen_stream_port(value)
        if port is not None and port not in [p.port for p in ports]:
            ports.append(ListenPort(port, where, text))
    return SocketUnit(name, enabled and not masked, masked, source, tuple(ports), generator, synthesized)


GENERATED_DROPIN = (
    "/run/systemd/generator/ssh.socket.d/addresses.conf (written by sshd-socket-generator at boot)"
)


def _generator_streams(cfg: SshdConfig) -> str | None:
    """What Ubuntu's sshd-socket-generator writes for this config: nothing when it is the default."""
    ports = cfg.config_listen_ports()
    listens = [d for d in cfg.global_directives if d.keyword == "listenaddress"]
    if [p.port for p in ports] == [22] and not listens:
        return None
    lines = ["[Socket]", "ListenStream="] + [f"ListenStream={p.port}" for p in ports]
    return "\n".join(lines) + "\n"


def sshd_listeners(facts: Facts) -> ListenInfo:
    cfg = facts.get(sshd_config)
    config_ports = tuple(cfg.config_listen_ports())
    notes: list[str] = []
    socket: SocketUnit | None = None
    for name in SOCKET_UNITS:
        unit = _socket_unit(facts, cfg, name)
        if unit is not None and unit.enabled and unit.ports:
            socket = unit
            break
    ports = socket.ports if socket is not None else config_ports
    if socket is not None:
        ignored = sorted({p.port for p in config_ports} - {p.port for p in socket.ports})
        if ignored and not socket.synthesized:
            notes.append(
                f"{socket.name} is enabled (socket activation): systemd listens on "
                f"{', '.join(str(p.port) for p in socket.ports)} and sshd's own Port/ListenAddress "
                f"({', '.join(str(p) for p in ignored)}) is not used"
            )
    running: tuple[int, ...] | None = None
    running_source = ""
    if facts.bundle.live:
        try:
            items = facts.get(listeners)
            socket_ports = {p.port for p in ports} if socket is not None else set()
            held = sorted(
                {
                    i.port
                    for i in items
                    if i.proto == "tcp"
                    and (
                        i.process in ("sshd", "sshd-session")
                        or (i.process == "systemd" and i.port in socket_ports)
                    )
                }
            )
            if any(i.process is not None for i in items):
                running = tuple(held)
                running_source = sockets_source(facts)
        except Exception:  # listeners are optional: unknown without ss or root
            running = None
    return ListenInfo(tuple(ports), socket, config_ports, running, running_source, tuple(notes))


def sshd_listen_ports(facts: Facts) -> list[int]:
    """Every TCP port sshd really listens on (configuration, socket activation, running sockets)."""
    return facts.get(sshd_listeners).all_ports


def sshd_uses_pam(facts: Facts) -> bool:
    cfg = facts.get(sshd_config)
    for lines in cfg.runtime.values():
        if "usepam" in lines:
            return runtime_values(lines)["usepam"] == "yes"
    return cfg.global_value("usepam").value == "yes"
