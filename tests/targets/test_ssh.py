"""SSH targets without the lab: target specs, and the transport against a real SSH server on loopback.

The server is asyncssh's own server in a background thread on 127.0.0.1 (no root needed). Its login user
chooses how it behaves: ``root``/``alice`` run the real gather script with the machine's ``sh -s`` (alice
through ``sudo -n``: the server checks the command is exactly that, then runs it without sudo), the
others misbehave (garbage, a dropped connection, a killed gatherer, a hang, sudo refusing...). The lab
tests (test_ssh_lab.py) do the same against real OpenSSH servers in network namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nectar_audit.evidence import StreamParser, build_script, new_boundary, parse_stream
from nectar_audit.evidence.bundle import Bundle
from nectar_audit.evidence.needs import Needs
from nectar_audit.targets import LocalTarget, RootFsTarget, SavedTarget, TargetError, parse_target
from nectar_audit.targets.ssh import (
    HOST_KEYS_ACCEPT_NEW,
    HOST_KEYS_OFF,
    SshOptions,
    SshSpec,
    SshTarget,
    parse_ssh_spec,
)
from tests.lab.sshd_hosts import loopback_silent_server

SMALL = Needs(files=("/etc/hostname", "/etc/os-release"), commands={"t.echo": "echo hello"})


# -- target specs ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("spec", "expected"), [
    ("ubuntu@203.0.113.5", SshSpec("203.0.113.5", "ubuntu", None)),
    ("ubuntu@203.0.113.5:2222", SshSpec("203.0.113.5", "ubuntu", 2222)),
    ("ssh://rocky@vm2:2222", SshSpec("vm2", "rocky", 2222)),
    ("ssh://rocky@vm2:2222/", SshSpec("vm2", "rocky", 2222)),
    ("ssh://vm2", SshSpec("vm2", None, None)),
    ("ssh://alice;fingerprint=SHA256-abc@vm2", SshSpec("vm2", "alice", None)),
    ("myvm-alias", SshSpec("myvm-alias", None, None)),
    ("web_1.example.org", SshSpec("web_1.example.org", None, None)),
    ("vm2:2200", SshSpec("vm2", None, 2200)),
    ("[2001:db8::1]:2222", SshSpec("2001:db8::1", None, 2222)),
    ("[2001:db8::1]", SshSpec("2001:db8::1", None, None)),
    ("root@[::1]:22", SshSpec("::1", "root", 22)),
    ("ssh://admin@[fe80::1%eth0]:2222", SshSpec("fe80::1%eth0", "admin", 2222)),
    ("2001:db8::5", SshSpec("2001:db8::5", None, None)),
    ("u@2001:db8::5", SshSpec("2001:db8::5", "u", None)),
])
def test_ssh_target_forms(spec: str, expected: SshSpec) -> None:
    assert parse_ssh_spec(spec) == expected
    target = parse_target(spec)
    assert isinstance(target, SshTarget)
    assert (target.host, target.user, target.port) == (expected.host, expected.user, expected.port)
    assert target.name == spec


@pytest.mark.parametrize("spec", [
    "u@h:0", "u@h:65536", "u@h:22x", "@h", "h:", "[2001:db8::1", "[nothex]:22", "[::1]x", "a b",
    "ssh://", "ssh://h/path", "ssh://h?x=1", "ssh://u@h:99999", "u@/etc", "-oProxyCommand=x",
])
def test_bad_ssh_specs_are_refused(spec: str) -> None:
    with pytest.raises(TargetError):
        parse_target(spec)


def test_offline_and_local_forms_win_over_ssh(tmp_path: Path) -> None:
    assert isinstance(parse_target("local"), LocalTarget)
    assert isinstance(parse_target("localhost"), LocalTarget)
    assert isinstance(parse_target(f"root:{tmp_path}"), RootFsTarget)
    assert isinstance(parse_target("evidence:x.json"), SavedTarget)
    assert isinstance(parse_target("ssh://localhost"), SshTarget)
    assert isinstance(parse_target("root@localhost"), SshTarget)


def test_a_bare_word_naming_a_local_path_is_ambiguous(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "image").mkdir()
    (tmp_path / "web1.json").write_text("{}")
    with pytest.raises(TargetError, match=r"root:image .* ssh://image"):
        parse_target("image")
    with pytest.raises(TargetError, match=r"evidence:web1.json"):
        parse_target("web1.json")
    assert isinstance(parse_target("ssh://image"), SshTarget)
    assert isinstance(parse_target("web2"), SshTarget)


# -- a real SSH server on loopback ----------------------------------------------------------------
class FakeSshd:
    """asyncssh server in a thread; behaviour chosen by the login user name."""

    def __init__(self, tmp: Path) -> None:
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_file = tmp / "id_ed25519"
        self.client_key.write_private_key(str(self.key_file))
        self.key_file.chmod(0o600)
        self.commands: list[tuple[str, str]] = []  # (user, command)
        self.logins = 0
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._server: Any = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def known_hosts_line(self, key: asyncssh.SSHKey | None = None) -> str:
        k = key or self.host_key
        return f"[127.0.0.1]:{self.port} {k.export_public_key().decode().strip()}\n"

    def start(self) -> None:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        fut.result(timeout=30)

    async def _listen(self) -> None:
        fake = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                fake.logins += 1

        self._server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[self.host_key], process_factory=self._handle,
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()),
            encoding=None, server_factory=Server,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        user = process.get_extra_info("username")
        command = process.command or ""
        self.commands.append((user, command))
        script = await process.stdin.read()
        if user == "hang":
            await asyncio.sleep(3600)
        if user == "garbage":
            process.stdout.write(b"Welcome to the HAL 9000 restricted shell\n" * 20)
            process.exit(0)
            return
        if user == "sudopw":
            process.stderr.write(b"sudo: a password is required\n")
            process.exit(1)
            return
        if user == "nosudo":
            process.stderr.write(b"sh: 1: sudo: not found\n")
            process.exit(127)
            return
        if user == "flood":
            process.stdout.write(b"y" * 300_000)
            process.exit(0)
            return
        if user == "notsudoer":
            process.stderr.write(b"notsudoer is not in the sudoers file.\n")
            process.exit(1)
            return
        expected = "sh -s" if user == "root" else "sudo -n sh -s"
        if user == "alice-nosudo":
            expected = "sh -s"
        if command != expected:
            process.stderr.write(f"unexpected command {command!r}\n".encode())
            process.exit(99)
            return
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-s", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate(script)
        if user in ("drop", "cut", "killed"):
            process.stdout.write(out[: len(out) // 2])
            await process.stdout.drain()
            await asyncio.sleep(0.1)
            if user == "drop":
                process.channel.get_connection().abort()
            elif user == "cut":
                process.channel.close()
            else:
                process.exit_with_signal("KILL")
            return
        process.stdout.write(out)
        process.stderr.write(err)
        process.exit(proc.returncode or 0)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[FakeSshd]:
    server = FakeSshd(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _opts(sshd: FakeSshd, tmp_path: Path, **kw: Any) -> SshOptions:
    kh = tmp_path / "known_hosts"
    if not kh.exists():
        kh.write_text(sshd.known_hosts_line())
    base: dict[str, Any] = {
        "identities": (str(sshd.key_file),), "config_files": (), "known_hosts": str(kh), "use_agent": False,
        "connect_timeout": 10, "command_timeout": 20,
    }
    base.update(kw)
    return SshOptions(**base)


def _target(sshd: FakeSshd, user: str, opts: SshOptions) -> SshTarget:
    return SshTarget("127.0.0.1", user=user, port=sshd.port, options=opts)


def test_root_login_runs_the_gatherer_in_one_exec(sshd: FakeSshd, tmp_path: Path) -> None:
    bundle = _target(sshd, "root", _opts(sshd, tmp_path)).gather(SMALL)
    assert sshd.commands == [("root", "sh -s")]
    assert sshd.logins == 1
    assert bundle.kind == "ssh" and bundle.live
    assert bundle.command("t.echo") is not None and bundle.command("t.echo").stdout == "hello\n"  # type: ignore
    assert bundle.text("/etc/os-release") == Path("/etc/os-release").read_text()
    assert bundle.errors == []


def test_non_root_login_uses_sudo_n(sshd: FakeSshd, tmp_path: Path) -> None:
    _target(sshd, "alice", _opts(sshd, tmp_path)).gather(SMALL)
    _target(sshd, "alice-nosudo", _opts(sshd, tmp_path, sudo=False)).gather(SMALL)
    assert sshd.commands == [("alice", "sudo -n sh -s"), ("alice-nosudo", "sh -s")]


def test_remote_evidence_equals_local_evidence(sshd: FakeSshd, tmp_path: Path) -> None:
    """The fake server runs the script with this machine's sh: the same files arrive either way.

    Only /etc is compared: the rest of this shared machine (processes, logs, /proc) changes between
    two gathers. The full-JSON equality of a remote and a local audit is tested on an isolated lab host
    (test_ssh_lab.py::test_remote_json_equals_local_json_as_root_and_via_sudo).
    """
    from nectar_audit.catalog import all_needs

    remote = _target(sshd, "root", _opts(sshd, tmp_path)).gather(all_needs())
    local = LocalTarget().gather(all_needs())
    assert remote.uid == local.uid
    assert sorted(remote.commands) == sorted(local.commands)
    etc_remote = {p: r for p, r in remote.files.items() if p.startswith("/etc/")}
    etc_local = {p: r for p, r in local.files.items() if p.startswith("/etc/")}
    assert etc_remote == etc_local and etc_remote
    assert {p: s for p, s in remote.stats.items() if p.startswith("/etc/")} == \
        {p: s for p, s in local.stats.items() if p.startswith("/etc/")}


@pytest.mark.parametrize(("user", "message"), [
    ("garbage", r"did not run the evidence gatherer .*Welcome to the HAL 9000"),
    ("drop", r"connection dropped mid-stream"),
    ("cut", r"dropped mid-stream after \d+ bytes of evidence \(no exit status\)"),
    ("killed", r"killed by SIGKILL on the host after \d+ bytes"),
    ("sudopw", r"sudo -n refused: a password is required for sudopw"),
    ("nosudo", r"sudo is not installed on the host"),
    ("notsudoer", r"notsudoer may not use sudo here"),
])
def test_misbehaving_hosts_become_clear_errors(sshd: FakeSshd, tmp_path: Path, user: str,
                                               message: str) -> None:
    with pytest.raises(TargetError, match=message):
        _target(sshd, user, _opts(sshd, tmp_path)).gather(SMALL)


def test_a_flood_without_record_boundaries_is_cut_short(sshd: FakeSshd, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"sent more than 0.1 MiB of evidence .*none of it was evidence"):
        _target(sshd, "flood", _opts(sshd, tmp_path, max_evidence_mib=0.1)).gather(SMALL)


def _local_stream(needs: Needs) -> tuple[bytes, str]:
    boundary = new_boundary()
    out = subprocess.run(["/bin/sh", "-s"], input=build_script(needs, boundary).encode(), capture_output=True,
                         timeout=60, check=False).stdout
    return out, boundary


STREAM_NEEDS = Needs(files=("/etc/hostname", "/etc/os-release", "/etc/passwd"), stats=("/etc/*",),
                     commands={"t.err": "echo out; echo err >&2; exit 4", "t.none": "no-such-program-na"})
_STREAM = _local_stream(STREAM_NEEDS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=60))
def test_streamed_parsing_equals_whole_parsing(cuts: list[int]) -> None:
    data, boundary = _STREAM
    whole = Bundle("t", "ssh", True)
    parse_stream(data, boundary, whole)
    streamed = Bundle("t", "ssh", True)
    feeder = StreamParser(boundary, streamed)
    pos = 0
    for size in cuts:
        feeder.feed(data[pos:pos + size])
        pos += size
    feeder.feed(data[pos:])
    feeder.finish()
    streamed.gathered_at = whole.gathered_at
    assert streamed.to_json() == whole.to_json()
    assert streamed.commands["t.err"].stderr == "err\n" and streamed.commands["t.err"].rc == 4
    assert feeder.received == len(data)


def test_command_timeout(sshd: FakeSshd, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(TargetError, match=r"did not finish within 1 s \(command timeout\)"):
        _target(sshd, "hang", _opts(sshd, tmp_path, command_timeout=1)).gather(SMALL)
    assert time.monotonic() - t0 < 10


def test_server_that_never_sends_a_banner_times_out(tmp_path: Path) -> None:
    with loopback_silent_server() as port:
        t0 = time.monotonic()
        target = SshTarget("127.0.0.1", user="root", port=port,
                           options=SshOptions(config_files=(), known_hosts=str(tmp_path / "kh"),
                                              use_agent=False, connect_timeout=1.5))
        with pytest.raises(TargetError, match=r"no SSH session within 1.5 s \(connect timeout"):
            target.gather(SMALL)
        assert time.monotonic() - t0 < 10


def test_nothing_listening_is_connection_refused(tmp_path: Path) -> None:
    with loopback_silent_server() as port:
        pass  # the port is closed again: nothing listens there now
    target = SshTarget("127.0.0.1", user="root", port=port,
                       options=SshOptions(config_files=(), known_hosts=str(tmp_path / "kh"), use_agent=False))
    with pytest.raises(TargetError, match="connection refused"):
        target.gather(SMALL)


def test_wrong_key_is_refused(sshd: FakeSshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    with pytest.raises(TargetError, match=rf"authentication refused \(public keys tried: {other};"):
        _target(sshd, "root", _opts(sshd, tmp_path, identities=(str(other),))).gather(SMALL)


def test_unknown_host_key_refused_then_accepted_new(sshd: FakeSshd, tmp_path: Path) -> None:
    kh = tmp_path / "kh_new"
    kh.write_text("# empty\n")
    with pytest.raises(TargetError, match=r"host key of 127.0.0.1:\d+ is unknown .*--accept-new-host-keys"):
        _target(sshd, "root", _opts(sshd, tmp_path, known_hosts=str(kh))).gather(SMALL)
    assert sshd.commands == []
    target = _target(sshd, "root", _opts(sshd, tmp_path, known_hosts=str(kh), host_keys=HOST_KEYS_ACCEPT_NEW))
    target.gather(SMALL)
    assert sshd.known_hosts_line() in kh.read_text()
    assert any("added the host key" in n for n in target.notices)
    _target(sshd, "root", _opts(sshd, tmp_path, known_hosts=str(kh))).gather(SMALL)  # now known: strict ok


def test_missing_known_hosts_file_is_created_by_accept_new(sshd: FakeSshd, tmp_path: Path) -> None:
    kh = tmp_path / "new-dir" / "known_hosts"
    opts = _opts(sshd, tmp_path, known_hosts=str(kh), host_keys=HOST_KEYS_ACCEPT_NEW)
    _target(sshd, "root", opts).gather(SMALL)
    assert kh.read_text() == sshd.known_hosts_line()


def test_changed_host_key_is_refused_even_with_accept_new(sshd: FakeSshd, tmp_path: Path) -> None:
    kh = tmp_path / "kh_changed"
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    kh.write_text(sshd.known_hosts_line(impostor))
    for policy in ("strict", HOST_KEYS_ACCEPT_NEW):
        with pytest.raises(TargetError, match=r"HOST KEY CHANGED for 127.0.0.1:\d+.*Refusing"):
            _target(sshd, "root", _opts(sshd, tmp_path, known_hosts=str(kh), host_keys=policy)).gather(SMALL)
    assert kh.read_text() == sshd.known_hosts_line(impostor)  # nothing was added
    assert sshd.commands == []


def test_no_host_key_check_connects_anyway(sshd: FakeSshd, tmp_path: Path) -> None:
    kh = tmp_path / "kh_other"
    kh.write_text(sshd.known_hosts_line(asyncssh.generate_private_key("ssh-ed25519")))
    _target(sshd, "root", _opts(sshd, tmp_path, known_hosts=str(kh), host_keys=HOST_KEYS_OFF)).gather(SMALL)
    assert sshd.commands == [("root", "sh -s")]


def test_ssh_config_alias_hostname_port_user_identity(sshd: FakeSshd, tmp_path: Path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(f"Host myvm\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User alice\n"
                      f"  IdentityFile {sshd.key_file}\n")
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_hosts_line())
    opts = SshOptions(config_files=(str(config),), known_hosts=str(kh), use_agent=False)
    target = parse_target("myvm", opts)
    bundle = target.gather(SMALL)
    assert bundle.target == "myvm"
    assert sshd.commands == [("alice", "sudo -n sh -s")]


@pytest.mark.skipif(shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None,
                    reason="needs ssh-agent and ssh-add (openssh-client)")
def test_key_from_the_ssh_agent(sshd: FakeSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No -i and no IdentityFile: the key comes from a real ssh-agent (SSH_AUTH_SOCK)."""
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(sshd.key_file)], env=env, check=True, timeout=30,
                       capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        monkeypatch.setenv("HOME", str(tmp_path))  # no default ~/.ssh/id_* keys to fall back on
        opts = _opts(sshd, tmp_path, identities=(), use_agent=True)
        assert _target(sshd, "root", opts).gather(SMALL).uid is not None
        with pytest.raises(TargetError, match="authentication refused"):
            _target(sshd, "root", _opts(sshd, tmp_path, identities=(), use_agent=False)).gather(SMALL)
    finally:
        agent.kill()
        agent.wait(timeout=10)


def test_user_known_hosts_file_of_the_ssh_config_is_used(sshd: FakeSshd, tmp_path: Path) -> None:
    kh = tmp_path / "cfg_known_hosts"
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n  UserKnownHostsFile {kh}\n")
    opts = SshOptions(identities=(str(sshd.key_file),), config_files=(str(config),), use_agent=False,
                      host_keys=HOST_KEYS_ACCEPT_NEW)
    _target(sshd, "root", opts).gather(SMALL)
    assert kh.read_text() == sshd.known_hosts_line()


def test_gather_async_runs_many_hosts_on_one_loop(sshd: FakeSshd, tmp_path: Path) -> None:
    opts = _opts(sshd, tmp_path)

    async def many() -> list[Any]:
        return await asyncio.gather(*[_target(sshd, "root", opts).gather_async(SMALL) for _ in range(6)],
                                    return_exceptions=True)

    bundles = asyncio.run(many())
    assert all(not isinstance(b, BaseException) and b.uid is not None for b in bundles)
    assert len(sshd.commands) == 6
