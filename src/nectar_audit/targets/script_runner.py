"""Live targets: run the gather script through some transport and parse its framed stream as it comes."""

from __future__ import annotations

import contextlib
import queue
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from nectar_audit.evidence import Budget, Bundle, Needs, StreamParser, build_script, new_boundary
from nectar_audit.targets.base import TargetError

_CHUNK = 256 * 1024
# What a fix script's output may be: a few records per remedy; a host sending more is cut.
EXEC_OUTPUT_CAP = 1024 * 1024


@dataclass(frozen=True)
class Execution:
    """One script run on a host for ``fix``: exit status (None: killed or timed out), capped output."""

    status: int | None
    stdout: bytes
    stderr: str
    timed_out: bool = False


class ScriptTarget:
    """Runs the gatherer as ``argv`` with the script on stdin (``sh -s``, ``nsenter … sh -s``).

    Output is parsed as it streams in, within the host's budget and deadline: the process is killed when
    either is spent, so neither a flood nor a stall can hold this scan."""

    kind = "exec"

    def __init__(self, name: str, argv: Sequence[str], timeout: float = 120.0, budget: Budget | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.timeout = timeout
        self.budget = budget or Budget()
        self._early: _Early | None = None

    def prestart(self, script: str, boundary: str) -> None:
        """Start gathering with ``script`` now, before the checks that need it are imported (a full local
        scan: the host works while this process loads). ``gather`` uses this run only if its own script
        is the same text; otherwise, or on ``discard_early``, the run is killed."""
        self.discard_early()
        try:
            self._early = _Early(self.argv, script, boundary)
        except OSError:
            self._early = None  # gather starts it again, and reports why it cannot

    def discard_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.discard()

    def gather(self, needs: Needs) -> Bundle:
        early, self._early = self._early, None
        if early is not None and early.script != build_script(needs, early.boundary):
            early.discard()
            early = None
        boundary = early.boundary if early is not None else new_boundary()
        bundle = Bundle.for_needs(self.name, self.kind, True, needs)
        parser = StreamParser(boundary, bundle, self.budget)
        with early.err if early is not None else tempfile.TemporaryFile() as err:
            if early is not None:
                proc = early.proc
            else:
                try:
                    proc = _start(self.argv, build_script(needs, boundary).encode(), err)
                except OSError as exc:
                    raise TargetError(f"cannot run the gatherer: {exc}") from exc
            with _killed_after(proc, self.timeout) as expired:
                more = True
                while early is not None:  # what the early run read so far, then (past its cap) the pipe
                    got = early.chunks.get()
                    if got is None:
                        break
                    if not got or not parser.feed(got):
                        more = False
                        break
                assert proc.stdout is not None
                while more:
                    chunk = proc.stdout.read1(_CHUNK)  # type: ignore[attr-defined]
                    if not chunk or not parser.feed(chunk):
                        break
                if parser.stopped:
                    proc.kill()
                proc.wait()
            if expired.is_set():
                raise TargetError(f"the gatherer did not finish within {self.timeout:.0f} s")
            parser.finish()
            err.seek(0, 2)  # only the end: a gatherer's stderr may be as large as it likes
            err.seek(max(err.tell() - 500, 0))
            tail = err.read().decode("utf-8", "replace").strip()
        if proc.returncode != 0 and not parser.stopped:
            bundle.errors.append(f"gatherer exited with status {proc.returncode}: {tail}")
        return bundle

    def execute(self, script: bytes, timeout: float = 600.0,
                then: Callable[[Execution], bytes | None] | None = None) -> list[Execution]:
        """Run ``script`` (a fix or an undo) with this target's shell; then the follow-up script ``then``
        returns, if any (as SshTarget.execute)."""
        done = [self._execute(script, timeout)]
        follow = then(done[0]) if then is not None else None
        if follow is not None:
            done.append(self._execute(follow, timeout))
        return done

    def _execute(self, script: bytes, timeout: float) -> Execution:
        try:
            proc = _start(self.argv, script, subprocess.PIPE)
        except OSError as exc:
            raise TargetError(f"cannot run a shell on the host: {exc}") from exc
        err: list[bytes] = []
        reader = threading.Thread(target=_tail, args=(proc.stderr, err), daemon=True)
        reader.start()
        with _killed_after(proc, timeout) as expired:
            out = b""
            assert proc.stdout is not None
            while True:
                chunk = proc.stdout.read1(_CHUNK)  # type: ignore[attr-defined]
                if not chunk:
                    break
                if len(out) < EXEC_OUTPUT_CAP:
                    out += chunk[:EXEC_OUTPUT_CAP - len(out)]
            proc.wait()
        reader.join(5)
        status = None if expired.is_set() else proc.returncode
        return Execution(status, out, b"".join(err).decode("utf-8", "replace").strip(), expired.is_set())


# What an early run may hold in memory before gather adopts it; past this the pipe holds the rest.
EARLY_CAP = 16 * 1024 * 1024


class _Early:
    """A gatherer started before its Needs were known for sure, its output read into a queue (up to
    EARLY_CAP) until ``gather`` adopts it; None in the queue: the cap was reached."""

    def __init__(self, argv: Sequence[str], script: str, boundary: str) -> None:
        self.script = script
        self.boundary = boundary
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed by discard(), or by the gather adopting it
        try:
            self.proc = _start(argv, script.encode(), self.err)
        except OSError:
            self.err.close()
            raise
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        got = 0
        while got < EARLY_CAP:
            try:
                chunk = self.proc.stdout.read1(_CHUNK)  # type: ignore[attr-defined]
            except (OSError, ValueError):  # discarded: the pipe is closed under us
                chunk = b""
            self.chunks.put(chunk)
            if not chunk:
                return
            got += len(chunk)
        self.chunks.put(None)

    def discard(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.err.close()


@contextlib.contextmanager
def _killed_after(proc: subprocess.Popen[bytes], timeout: float) -> Iterator[threading.Event]:
    """``proc`` is killed once ``timeout`` s pass (the event then says so); when the block ends, it is gone."""
    expired = threading.Event()

    def deadline() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout, deadline)
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _tail(stream: object, into: list[bytes]) -> None:
    kept = b""
    while True:
        chunk = stream.read1(_CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            break
        kept = (kept + chunk)[-4096:]
    into.append(kept)


def _start(argv: Sequence[str], script: bytes, stderr: Any) -> subprocess.Popen[bytes]:
    """``argv`` started with ``script`` written to its stdin by a thread (a script larger than the pipe
    must not block the reader of its output)."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    threading.Thread(target=_write, args=(proc, script), daemon=True).start()
    return proc


def _write(proc: subprocess.Popen[bytes], script: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(script)
        proc.stdin.close()
    except OSError:  # the gatherer exited (or was killed) before reading it all
        pass
