"""Subprocess helpers: every command has a timeout and is killed with its whole process group."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Callable, Union

DEFAULT_TIMEOUT = 60.0
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Prefix for long-running children: SIGKILL them if this (pytest) process dies. util-linux's setpriv
# sets PR_SET_PDEATHSIG and execs, so no preexec_fn (unsafe with threads) is needed.
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--")

# Debian package providing each binary the lab (or its tests) commonly need; used in error messages.
BINARY_PACKAGES: dict[str, str] = {
    "ip": "iproute2",
    "ss": "iproute2",
    "debootstrap": "debootstrap",
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "setpriv": "util-linux",
    "mount": "mount",
    "umount": "mount",
    "chroot": "coreutils",
    "hostname": "hostname",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "sshd": "openssh-server",
    "ping": "iputils-ping",
    "nft": "nftables",
    "iptables": "iptables",
    "ufw": "ufw",
    "fail2ban-server": "fail2ban",
    "rsyslogd": "rsyslog",
    "named": "bind9",
    "dig": "bind9-dnsutils",
    "unbound": "unbound",
    "dnsmasq": "dnsmasq",
    "ntpd": "ntpsec",
    "ntpdig": "ntpsec-ntpdig",
    "postfix": "postfix",
    "lynis": "lynis",
    "hyperfine": "hyperfine",
}

Argv = Sequence[Union[str, "os.PathLike[str]"]]
Output = Union[int, IO[Any], None]


class LabError(RuntimeError):
    """A lab prerequisite or lab operation failed (not a failure of the code under test)."""


class LabCommandError(subprocess.CalledProcessError):
    """A lab command exited non-zero; str() includes the command line and its output tail."""

    def __str__(self) -> str:
        parts = [f"command failed (exit {self.returncode}): {shlex.join(str(a) for a in self.cmd)}"]
        for label, data in (("stdout", self.output), ("stderr", self.stderr)):
            text = _tail(data)
            if text:
                parts.append(f"--- {label} (tail) ---\n{text}")
        return "\n".join(parts)


def _tail(data: Any, lines: int = 30) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return "\n".join(str(data).rstrip().splitlines()[-lines:])


def which(name: str) -> str | None:
    """Find a binary on PATH or in the sbin directories (pytest may run with a user's PATH)."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=f"{path}:{SYSTEM_PATH}" if path else SYSTEM_PATH)


def missing_binary_message(name: str) -> str:
    pkg = BINARY_PACKAGES.get(Path(name).name)
    hint = f" (Debian package {pkg}: apt-get install {pkg})" if pkg else ""
    return f"binary {name!r} not found on PATH or in {SYSTEM_PATH}{hint}"


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group led by pid (processes are started with start_new_session=True)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_process(proc: subprocess.Popen[Any], grace: float = 3.0) -> None:
    """SIGTERM a process group, SIGKILL it after `grace` seconds, and reap the leader."""
    if proc.poll() is None:
        kill_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # Kill the rest of the group even if the leader already exited.
    kill_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def run(
    argv: Argv,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    input: bytes | str | None = None,
    text: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    stdout: Output = subprocess.PIPE,
    stderr: Output = subprocess.PIPE,
) -> subprocess.CompletedProcess[Any]:
    """Run argv with a hard timeout; on timeout the whole process group is SIGKILLed.

    Raises LabError if the binary does not exist, subprocess.TimeoutExpired (with the output
    collected so far) on timeout, LabCommandError on a non-zero exit when check is true.
    """
    args = [os.fspath(a) for a in argv]
    if isinstance(input, str):
        input = input.encode()
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise LabError(missing_binary_message(args[0])) from exc
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a daemonised grandchild holds our pipes
            out, err = None, None
            stop_process(proc, grace=0)
        raise subprocess.TimeoutExpired(args, timeout, output=out, stderr=err) from None
    res_out: Any = out
    res_err: Any = err
    if text:
        res_out = out.decode("utf-8", "replace") if out is not None else None
        res_err = err.decode("utf-8", "replace") if err is not None else None
    result: subprocess.CompletedProcess[Any] = subprocess.CompletedProcess(args, proc.returncode, res_out,
                                                                           res_err)
    if check and proc.returncode != 0:
        raise LabCommandError(proc.returncode, args, res_out, res_err)
    return result


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll predicate until it is true; raise LabError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            raise LabError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
