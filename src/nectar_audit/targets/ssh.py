"""Agentless remote hosts: the generated gather script over ONE SSH connection and ONE exec.

Nothing is installed on the far side and no Python is needed there: the script of
``evidence.script.build_script`` is written to ``sh -s`` (``sudo -n sh -s`` when the login user is not
root, or with ``--sudo``) and its framed output is parsed by ``parse_stream`` exactly like a local
audit, so the same host gives the same results whichever way it is reached.

SSH is asyncssh's: it reads the OpenSSH client config (HostName, User, Port, IdentityFile,
UserKnownHostsFile, HostKeyAlias, ProxyJump, ...), uses the ssh-agent and verifies host keys against
known_hosts. Jump hosts (ProxyJump) are opened here hop by hop, rather than by asyncssh's own
string tunnels, so that every hop gets the same host-key policy, identities and timeouts as the
final host (asyncssh applies the call's options to the final hop only).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from nectar_audit.evidence import Budget, Bundle, Needs, StreamParser, build_script, new_boundary
from nectar_audit.targets.base import TargetError
from nectar_audit.targets.script_runner import EXEC_OUTPUT_CAP, Execution
from nectar_audit.targets.ssh_options import HOST_KEYS_ACCEPT_NEW, HOST_KEYS_OFF, SshOptions

if TYPE_CHECKING:  # asyncssh is imported when a host is contacted: local scans stay fast
    import asyncssh

_MAX_JUMPS = 8
# How long the lock-out guard waits for a reloaded sshd to listen again.
_SETTLE_S = 15.0
# OpenSSH's default ciphers, AES-GCM first: one C call per packet (hardware AES) where asyncssh's
# chacha20-poly1305 needs three plus Python glue, which shows when a fleet streams megabytes per host.
_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
            "aes128-ctr", "aes192-ctr", "aes256-ctr")
_HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_USER_RE = re.compile(r"^[^\s@:/\[\]]+$")

KnownHostsArg = Union[None, Sequence[str], "asyncssh.SSHKnownHosts"]


# -- target specs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SshSpec:
    host: str
    user: str | None = None
    port: int | None = None


def looks_like_ssh(spec: str) -> bool:
    """True for every form parse_ssh_spec accepts (the caller has already ruled out local/root:/evidence:)."""
    if spec.startswith("ssh://") or "@" in spec or spec.startswith("["):
        return True
    try:
        parse_ssh_spec(spec)
    except TargetError:
        return False
    return True


def parse_ssh_spec(spec: str) -> SshSpec:
    """``ssh://[user@]host[:port]``, ``[user@]host[:port]``, ``[user@][v6addr][:port]``, bare v6, alias."""
    if spec.startswith("ssh://"):
        rest = spec[len("ssh://"):]
        rest = rest[:-1] if rest.endswith("/") else rest
        if not rest or any(c in rest for c in "/?#"):
            raise TargetError(f"{spec!r}: an ssh:// target is ssh://[user@]host[:port] with nothing after it")
        if "@" in rest:  # an ssh URI's user may carry ";fingerprint=..." parameters
            user_part, _, host_part = rest.rpartition("@")
            rest = f"{user_part.split(';', 1)[0]}@{host_part}"
        try:
            return parse_ssh_spec(rest)
        except TargetError as exc:
            raise TargetError(str(exc).replace(repr(rest), repr(spec), 1)) from None
    user: str | None = None
    rest = spec
    if "@" in spec:
        user, _, rest = spec.rpartition("@")
        if not user or not _USER_RE.match(user):
            raise TargetError(f"{spec!r}: bad user name {user!r}")
    if rest.startswith("["):
        addr, sep, tail = rest[1:].partition("]")
        if not sep:
            raise TargetError(f"{spec!r}: missing ']' after the IPv6 address")
        _check_v6(spec, addr)
        if tail and not tail.startswith(":"):
            raise TargetError(f"{spec!r}: unexpected {tail!r} after ']'")
        return SshSpec(host=addr, user=user, port=_port(spec, tail[1:]) if tail else None)
    if rest.count(":") >= 2:
        _check_v6(spec, rest)
        return SshSpec(host=rest, user=user)
    host, sep, port_text = rest.partition(":")
    _check_host(spec, host)
    return SshSpec(host=host, user=user, port=_port(spec, port_text) if sep else None)


def _check_host(spec: str, host: str) -> None:
    if not host or not _HOST_RE.match(host):
        raise TargetError(f"{spec!r} is not a host name, user@host[:port], ssh://user@host[:port], "
                          f"local, root:PATH or evidence:FILE.json")


def _check_v6(spec: str, addr: str) -> None:
    try:
        ipaddress.IPv6Address(addr.split("%", 1)[0])
    except ValueError:
        raise TargetError(f"{spec!r}: {addr!r} is not an IPv6 address") from None


def _port(spec: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise TargetError(f"{spec!r}: bad port {text!r}")
    return int(text)


def _hop(text: str) -> SshSpec:
    """One ProxyJump hop: ``[user@]host[:port]`` or ``ssh://[user@]host[:port]``."""
    return parse_ssh_spec(text.strip())


# -- the evidence stream --------------------------------------------------------------------------
_CHUNK = 256 * 1024
# SSH flow-control window per host: what a host may send before we have read it. It bounds the memory
# of a fleet (hosts x window) while one host is being parsed; 512 KiB still streams 5 MB/s at 100 ms RTT.
_WINDOW = 512 * 1024


# -- host keys ------------------------------------------------------------------------------------
@dataclass
class _HostKeyJudge:
    """Decides on a host key that known_hosts does not already trust (asyncssh asks only then)."""

    policy: str
    paths: list[str]  # the known_hosts files consulted
    write_to: Path  # where --accept-new-host-keys records new keys
    notices: list[str]
    problem: str | None = None

    def unknown_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        known = self._known(host, addr, port)
        fingerprint = key.get_fingerprint()
        where = _hostport(host, port)
        if known:
            self.problem = (
                f"HOST KEY CHANGED for {where}: it offered {key.get_algorithm()} {fingerprint}, which is not "
                f"the key recorded in {', '.join(self.paths)}. Someone may be intercepting the connection "
                f"(or the host was reinstalled). Refusing to connect, even with --accept-new-host-keys: "
                f"verify the new key, then remove the old entry (ssh-keygen -R {_pattern(host, port)})"
            )
            return False
        if self.policy != HOST_KEYS_ACCEPT_NEW:
            self.problem = (
                f"host key of {where} is unknown ({key.get_algorithm()} {fingerprint}, not in "
                f"{', '.join(self.paths) or 'any known_hosts file'}): verify it and add it to known_hosts, "
                f"or rerun with --accept-new-host-keys to trust it on first use"
            )
            return False
        line = f"{_pattern(host, port)} {key.export_public_key('openssh').decode('ascii').strip()}\n"
        try:
            self.write_to.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.write_to, "a", encoding="ascii") as fh:
                fh.write(line)
        except OSError as exc:
            self.problem = (f"cannot record the new host key of {where} in {self.write_to}: "
                            f"{exc.strerror or exc}")
            return False
        if str(self.write_to) not in self.paths:
            self.paths.append(str(self.write_to))
        self.notices.append(f"added the host key of {where} ({key.get_algorithm()} {fingerprint}) "
                            f"to {self.write_to}")
        return True

    def _known(self, host: str, addr: str, port: int) -> bool:
        import asyncssh

        if not self.paths:
            return False
        try:
            trusted, cas, *_ = asyncssh.match_known_hosts(
                list(self.paths), host, addr, None if port == 22 else port)
        except (OSError, ValueError):
            return True  # unreadable known_hosts: never treat the host as new
        return bool(trusted or cas)


_KNOWN_HOSTS_CACHE: dict[tuple[tuple[str, int, int], ...], asyncssh.SSHKnownHosts] = {}


def _read_known_hosts(paths: list[str]) -> asyncssh.SSHKnownHosts:
    """The parsed known_hosts files, parsed once per version of the files: a fleet of N hosts and a
    known_hosts of M lines would otherwise cost N x M line parses."""
    import asyncssh

    key: list[tuple[str, int, int]] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        key.append((p, st.st_mtime_ns, st.st_size))
    cache_key = tuple(key)
    parsed = _KNOWN_HOSTS_CACHE.get(cache_key)
    if parsed is None:
        # An empty set trusts nothing: every key then goes to the judge (unknown, or accept-new).
        try:
            parsed = asyncssh.read_known_hosts([p for p, _, _ in key]) if key else \
                asyncssh.import_known_hosts("")
        except (OSError, ValueError) as exc:
            raise TargetError(f"cannot read known_hosts ({', '.join(paths)}): {exc}") from None
        if len(_KNOWN_HOSTS_CACHE) > 32:
            _KNOWN_HOSTS_CACHE.clear()
        _KNOWN_HOSTS_CACHE[cache_key] = parsed
    return parsed


def _pattern(host: str, port: int) -> str:
    return host if port in (22, 0) else f"[{host}]:{port}"


def _hostport(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port in (None, 22) else f"{shown}:{port}"


@functools.lru_cache(maxsize=1)
def _client_class() -> Any:
    import asyncssh

    class _Client(asyncssh.SSHClient):
        def __init__(self, judge: _HostKeyJudge | None) -> None:
            self._judge = judge

        def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
            return self._judge is not None and self._judge.unknown_key(host, addr, port, key)

    return _Client


# -- the target -----------------------------------------------------------------------------------
@dataclass
class _Hop:
    label: str  # user@host:port as connected, for messages
    judge: _HostKeyJudge | None
    jump: bool  # a ProxyJump host on the way, not the audited host


@dataclass
class _State:
    phase: str = "connect"
    hops: list[_Hop] = field(default_factory=list)
    received: int = 0
    user: str | None = None


class SshTarget:
    """One host over SSH. ``gather`` is synchronous (one host); fleets await ``gather_async``."""

    kind = "ssh"

    def __init__(self, host: str, *, user: str | None = None, port: int | None = None,
                 name: str | None = None, identity: str | None = None,
                 options: SshOptions | None = None) -> None:
        self.host = host
        self.user = user
        self.port = port
        self.identity = identity  # a per-host key (inventory), tried before --identity
        self.options = options or SshOptions()
        self.name = name or _default_name(host, user, port)
        self.notices: list[str] = []  # things the user should know (keys added to known_hosts)

    @classmethod
    def from_spec(cls, spec: str, options: SshOptions | None = None) -> SshTarget:
        parsed = parse_ssh_spec(spec)
        return cls(parsed.host, user=parsed.user, port=parsed.port, name=spec, options=options)

    def __repr__(self) -> str:
        return f"SshTarget({self.name!r})"

    @property
    def budget(self) -> Budget:
        return Budget(total_bytes=int(self.options.max_evidence_mib * 1024 * 1024))

    def gather(self, needs: Needs) -> Bundle:
        return asyncio.run(self.gather_async(needs))

    async def gather_async(self, needs: Needs) -> Bundle:
        state = _State()
        # A last-resort bound: every phase has its own timeout, this catches anything in between.
        limit = self.options.connect_timeout * (_MAX_JUMPS + 1) + self.options.command_timeout + 10
        try:
            return await asyncio.wait_for(self._gather(needs, state), timeout=limit)
        except TargetError:
            raise
        except Exception as exc:  # every failure of one host becomes that host's error
            raise TargetError(self._explain(exc, state)) from exc

    async def _gather(self, needs: Needs, state: _State) -> Bundle:
        import asyncssh

        conns: list[asyncssh.SSHClientConnection] = []
        try:
            conn = await self._open(self.host, self.port, self.user, None, conns, state, 0, first=True)
            state.phase = "run"
            state.user = conn.get_extra_info("username")
            sudo = self.options.sudo if self.options.sudo is not None else state.user != "root"
            command = "sudo -n sh -s" if sudo else "sh -s"
            boundary = new_boundary()
            bundle = Bundle.for_needs(self.name, self.kind, True, needs)
            feeder = StreamParser(boundary, bundle, self.budget)
            script = build_script(needs, boundary).encode()
            status, signal_name, stderr = await asyncio.wait_for(
                self._run(conn, command, script, feeder), timeout=self.options.command_timeout)
            state.phase = "done"
        finally:
            for c in reversed(conns):
                c.close()
            for c in reversed(conns):
                with contextlib.suppress(asyncio.TimeoutError, OSError, asyncssh.Error):
                    await asyncio.wait_for(c.wait_closed(), timeout=5)
        state.received = feeder.received
        where = self._label(state)
        if signal_name is not None:
            raise TargetError(f"{where}: the gatherer was killed by SIG{signal_name} on the host after "
                              f"{feeder.received} bytes of evidence")
        if status is None:
            raise TargetError(f"{where}: the connection dropped mid-stream after {feeder.received} bytes of "
                              f"evidence (no exit status)")
        feeder.finish()
        if bundle.uid is None and feeder.stopped:
            raise TargetError(f"{where}: {bundle.cut}, and none of it was evidence")
        if bundle.uid is None:
            raise TargetError(self._no_evidence(state, command, status, feeder.head, stderr))
        if any(e.startswith("evidence stream ended early") for e in bundle.errors):
            raise TargetError(f"{where}: the evidence stream was cut off after {feeder.received} bytes "
                              f"(exit status {status}): {stderr[-300:] or 'no message'}")
        if status != 0:
            bundle.errors.append(f"gatherer exited with status {status}: {stderr[-500:]}")
        return bundle

    @staticmethod
    async def _run(conn: asyncssh.SSHClientConnection, command: str, script: bytes,
                   feeder: StreamParser) -> tuple[int | None, str | None, str]:
        """One exec: the script on stdin, stdout parsed as it streams in (so a host's raw output is never
        held whole), stderr kept to its last 64 KiB. Returns (exit status, exit signal, stderr).
        Parsing and sanitizing run in a worker thread, so a host's evidence never stalls the event loop
        that the other hosts of a fleet share; past the host's budget the rest is not read."""
        process = await conn.create_process(command, encoding=None, request_pty=False, window=_WINDOW)
        try:
            process.stdin.write(script)
            process.stdin.write_eof()

            async def tail_of_stderr() -> bytes:
                kept = b""
                while True:
                    chunk = await process.stderr.read(65536)
                    if not chunk:
                        return kept
                    kept = (kept + chunk)[-65536:]

            stderr_task = asyncio.ensure_future(tail_of_stderr())
            try:
                loop = asyncio.get_running_loop()
                while True:
                    chunk = await process.stdout.read(_CHUNK)
                    if not chunk or not await loop.run_in_executor(None, feeder.feed, chunk):
                        break
                if feeder.stopped:  # the budget is spent: the host's process is not waited for
                    process.close()
                    return 0, None, ""
                err = await stderr_task
            finally:
                stderr_task.cancel()
            await process.wait_closed()
        finally:
            process.close()
        signal_info = process.exit_signal
        return process.exit_status, signal_info[0] if signal_info else None, \
            err.decode("utf-8", "replace").strip()

    # -- fix: one script per host, and the lock-out guard's second login ----------------------------
    def execute(self, script: bytes, timeout: float = 600.0,
                then: Callable[[Execution], bytes | None] | None = None) -> list[Execution]:
        """Run ``script`` as root on the host (``sudo -n`` unless the login user is root); then, when
        ``then`` (called in a worker thread: it may open connections of its own) returns a follow-up
        script, run that too over the SAME connection, which stays open meanwhile: an undo still gets
        in after a change that locks new logins out."""
        return asyncio.run(self.execute_async(script, timeout, then))

    async def execute_async(self, script: bytes, timeout: float = 600.0,
                            then: Callable[[Execution], bytes | None] | None = None) -> list[Execution]:
        state = _State()
        limit = self.options.connect_timeout * (_MAX_JUMPS + 1) + 2 * timeout + self.options.command_timeout
        try:
            return await asyncio.wait_for(self._execute(script, state, timeout, then), timeout=limit)
        except TargetError:
            raise
        except Exception as exc:
            raise TargetError(self._explain(exc, state)) from exc

    async def _execute(self, script: bytes, state: _State, timeout: float,
                       then: Callable[[Execution], bytes | None] | None) -> list[Execution]:
        conns: list[asyncssh.SSHClientConnection] = []
        try:
            conn = await self._open(self.host, self.port, self.user, None, conns, state, 0, first=True)
            state.phase = "run"
            user = conn.get_extra_info("username")
            sudo = self.options.sudo if self.options.sudo is not None else user != "root"
            command = "sudo -n sh -s" if sudo else "sh -s"
            done = [await self._exec_one(conn, command, script, timeout)]
            if then is not None:
                follow = await asyncio.get_running_loop().run_in_executor(None, then, done[0])
                if follow is not None:
                    done.append(await self._exec_one(conn, command, follow, timeout))
            return done
        finally:
            for c in reversed(conns):
                c.close()

    @staticmethod
    async def _exec_one(conn: asyncssh.SSHClientConnection, command: str, script: bytes,
                        timeout: float) -> Execution:
        process = await conn.create_process(command, encoding=None, request_pty=False)
        process.stdin.write(script)
        process.stdin.write_eof()

        async def capped(stream: Any, cap: int, tail: bool) -> bytes:
            kept = b""
            while True:
                chunk = await stream.read(65536)
                if not chunk:
                    return kept
                kept = (kept + chunk)[-cap:] if tail else kept + chunk[:max(cap - len(kept), 0)]

        try:
            out, err = await asyncio.wait_for(asyncio.gather(
                capped(process.stdout, EXEC_OUTPUT_CAP, False), capped(process.stderr, 4096, True)),
                timeout=timeout)
            await asyncio.wait_for(process.wait_closed(), timeout=10)
        except asyncio.TimeoutError:
            return Execution(None, b"", "", timed_out=True)
        finally:
            process.close()
        return Execution(process.exit_status, out, err.decode("utf-8", "replace").strip())

    def confirm_login(self) -> str | None:
        return asyncio.run(self.confirm_login_async())

    async def confirm_login_async(self) -> str | None:
        """A new connection, public-key authentication only, then ``sudo -n true`` (``true`` as root):
        None when it works, else why not. What the lock-out guard asks after changing sshd."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SETTLE_S
        while True:
            try:
                [result] = await self.execute_async(b"exit 0\n", timeout=self.options.command_timeout)
                break
            except TargetError as exc:
                # sshd re-executes itself on a reload: for a moment nothing listens. A refusal of the
                # key is final; a refused connection is retried until sshd had time to come back.
                if not isinstance(exc.__cause__, (ConnectionRefusedError, ConnectionResetError)) or \
                        loop.time() > deadline:
                    return str(exc)
                await asyncio.sleep(0.3)
        if result.status != 0:
            why = result.stderr or f"exit status {result.status}"
            return f"logged in, but sudo -n did not work: {why}"
        return None

    # -- connecting --------------------------------------------------------------------------------
    async def _open(self, host: str, port: int | None, user: str | None,
                    tunnel: asyncssh.SSHClientConnection | None, conns: list[asyncssh.SSHClientConnection],
                    state: _State, depth: int, first: bool = False) -> asyncssh.SSHClientConnection:
        import asyncssh

        client_class = _client_class()
        if depth > _MAX_JUMPS:
            raise TargetError(f"{self.name}: more than {_MAX_JUMPS} ProxyJump hops "
                              f"(a loop in the ssh config?)")
        opts = self.options
        config: Any = () if opts.config_files is None else list(opts.config_files)
        # Resolve the ssh config for this hop (HostName, Port, User, IdentityFile, ProxyJump, ...).
        probe = await _client_options(
            config=config, host=host, port=port if port is not None else (),
            username=user if user is not None else (), client_keys=None, known_hosts=None,
        )
        jump = probe.tunnel if isinstance(probe.tunnel, str) else None
        if tunnel is None and jump and jump.strip().lower() != "none":
            for hop_text in jump.split(","):
                try:
                    hop = _hop(hop_text)
                except TargetError as exc:
                    raise TargetError(f"{self.name}: bad ProxyJump {jump!r} in the ssh config: "
                                      f"{exc}") from None
                tunnel = await self._open(hop.host, hop.port, hop.user, tunnel, conns, state, depth + 1)
        label = f"{probe.username}@{_hostport(probe.host, probe.port)}"
        judge = self._judge(probe)
        state.hops.append(_Hop(label, judge, jump=not first))
        conn = await asyncssh.connect(
            host, port if port is not None else (),
            username=user if user is not None else (),
            config=config,
            tunnel=tunnel,
            client_factory=lambda: client_class(judge),
            known_hosts=self._known_hosts_arg(judge),
            client_keys=self._client_keys(probe, first),
            ignore_encrypted=True,  # a key with a passphrase is used through the ssh-agent
            agent_path=() if opts.use_agent else None,
            connect_timeout=opts.connect_timeout,
            keepalive_interval=15, keepalive_count_max=3,
            encryption_algs=_CIPHERS,
            password_auth=False, kbdint_auth=False, gss_host=None,
        )
        conns.append(conn)
        return conn

    def _judge(self, probe: asyncssh.SSHClientConnectionOptions) -> _HostKeyJudge | None:
        opts = self.options
        if opts.host_keys == HOST_KEYS_OFF:
            return None
        home_kh = Path("~/.ssh/known_hosts").expanduser()
        if opts.known_hosts is not None:
            candidates = [opts.known_hosts]
            write_to = Path(opts.known_hosts).expanduser()
        else:
            cfg = probe.config
            user_files = _str_list(cfg.get("UserKnownHostsFile")) if cfg is not None else []
            global_files = _str_list(cfg.get("GlobalKnownHostsFile")) if cfg is not None else []
            user_files = user_files or [str(home_kh), str(home_kh) + "2"]
            global_files = global_files or ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
            candidates = user_files + global_files
            write_to = Path(user_files[0]).expanduser()
        paths = []
        for c in candidates:
            p = os.path.expanduser(c)
            if p.lower() != "none" and os.path.isfile(p) and p not in paths:
                paths.append(p)
        return _HostKeyJudge(opts.host_keys, paths, write_to, self.notices)

    @staticmethod
    def _known_hosts_arg(judge: _HostKeyJudge | None) -> KnownHostsArg:
        if judge is None:
            return None
        return _read_known_hosts(judge.paths)

    def _client_keys(self, probe: asyncssh.SSHClientConnectionOptions, first: bool) -> Any:
        explicit = ([self.identity] if self.identity and first else []) + list(self.options.identities)
        if not explicit:
            return ()  # asyncssh: the config's IdentityFile, else the default ~/.ssh/id_* keys
        cfg = probe.config
        from_config = _str_list(cfg.get("IdentityFile")) if cfg is not None else []
        keys: list[str] = []
        for k in [*explicit, *from_config]:
            p = os.path.expanduser(k)
            if p not in keys and (k in explicit or os.path.isfile(p)):
                keys.append(p)
        return keys

    # -- messages ----------------------------------------------------------------------------------
    def _label(self, state: _State) -> str:
        return state.hops[-1].label if state.hops else self.name

    def _explain(self, exc: BaseException, state: _State) -> str:
        import asyncssh

        hop = state.hops[-1] if state.hops else None
        where = self._label(state)
        if hop is not None and hop.jump:
            where = f"{self.name}: jump host {hop.label}"
        if isinstance(exc, asyncssh.HostKeyNotVerifiable):
            if hop is not None and hop.judge is not None and hop.judge.problem:
                return hop.judge.problem
            return f"{where}: host key not verifiable: {exc.reason}"
        if isinstance(exc, asyncssh.PermissionDenied):
            tried = ", ".join([*([self.identity] if self.identity else []), *self.options.identities]) or \
                "the ssh config's IdentityFile / default keys"
            agent = " and the ssh-agent" if self.options.use_agent and os.environ.get("SSH_AUTH_SOCK") else ""
            return (f"{where}: authentication refused (public keys tried: {tried}{agent}; keys with a "
                    f"passphrase are only used through the ssh-agent)")
        run_timeout = state.phase == "run" and isinstance(exc, asyncio.TimeoutError)
        if isinstance(exc, asyncssh.TimeoutError) or run_timeout:
            return (f"{where}: the gatherer did not finish within {self.options.command_timeout:g} s "
                    f"(command timeout)")
        if isinstance(exc, asyncio.TimeoutError):
            if state.phase == "connect":
                return (f"{where}: no SSH session within {self.options.connect_timeout:g} s (connect "
                        f"timeout: the host accepted or dropped the connection but never completed the SSH "
                        f"handshake)")
            return f"{where}: timed out"
        if isinstance(exc, (asyncssh.ConnectionLost, asyncssh.DisconnectError)):
            if state.phase == "run":
                return f"{where}: the connection dropped mid-stream: {exc.reason}"
            return f"{where}: the SSH connection was closed during login: {exc.reason}"
        if isinstance(exc, asyncssh.ChannelOpenError):
            return f"{where}: the host refused to open a session or a ProxyJump tunnel: {exc.reason}"
        if isinstance(exc, asyncssh.ConfigParseError):
            return f"{self.name}: cannot read the ssh config: {exc}"
        if isinstance(exc, (asyncssh.KeyImportError, asyncssh.KeyEncryptionError)):
            return f"{self.name}: cannot load an identity file: {exc}"
        if isinstance(exc, asyncssh.Error):
            return f"{where}: SSH error: {exc.reason}"
        if isinstance(exc, socket.gaierror):
            return f"{where}: cannot resolve the host name: {exc.strerror or exc}"
        if isinstance(exc, ConnectionRefusedError):
            return f"{where}: connection refused (no SSH server listening there)"
        if isinstance(exc, OSError):
            return f"{where}: cannot connect: {exc.strerror or exc}"
        if isinstance(exc, (ValueError, TypeError)):
            return f"{where}: {exc}"
        return f"{where}: {type(exc).__name__}: {exc}"

    def _no_evidence(self, state: _State, command: str, rc: int | None, stdout: bytes, stderr: str) -> str:
        where = self._label(state)
        user = state.user or "the login user"
        low = stderr.lower()
        if command.startswith("sudo"):
            if rc == 127 or "sudo: not found" in low or "sudo: command not found" in low:
                return (f"{where}: sudo is not installed on the host; log in as root, or use --no-sudo "
                        f"for an unprivileged audit")
            if "password is required" in low or "a terminal is required" in low:
                return (f"{where}: sudo -n refused: a password is required for {user} (give {user} "
                        f"passwordless sudo, log in as root, or use --no-sudo for an unprivileged audit)")
            if "must have a tty" in low:
                return (f"{where}: sudo refuses to run without a terminal (Defaults requiretty): allow "
                        f"{user} '!requiretty' in sudoers, or log in as root")
            if "sudoers" in low or "may not run sudo" in low or "not allowed to" in low:
                return (f"{where}: {user} may not use sudo here ({_first_line(stderr)}); log in as root or "
                        f"use --no-sudo")
        if not stdout and not stderr:
            return f"{where}: the host returned no evidence at all (exit status {rc})"
        shown = _first_line(stderr) or repr(stdout[:120])[2:-1]
        return (f"{where}: the host did not run the evidence gatherer (exit status {rc}): {shown} — a "
                f"ForceCommand, restricted shell or wrapper may be in the way")


async def _client_options(**kwargs: Any) -> asyncssh.SSHClientConnectionOptions:
    """Resolve options (reads the ssh config and key files) without blocking the event loop."""
    import asyncssh

    construct = getattr(asyncssh.SSHClientConnectionOptions, "construct", None)  # asyncssh >= 2.15
    if construct is not None:
        return await construct(**kwargs)  # type: ignore[no-any-return]
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(asyncssh.SSHClientConnectionOptions, **kwargs))


def _default_name(host: str, user: str | None, port: int | None) -> str:
    hp = _hostport(host, port)
    return f"{user}@{hp}" if user else hp


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []
