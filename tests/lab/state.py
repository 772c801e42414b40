"""Cross-process lab state: owner tokens, file locks, and records of resources that must be swept.

Everything lives under STATE_DIR (default /run/nectar-audit-lab, override with
NECTAR_AUDIT_LAB_STATE). A resource record names its owner as "pid:starttime", so a record whose
process is gone (even if the pid was reused) is recognised as stale and cleaned by the next sweep.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from ._proc import LabError

STATE_DIR = Path(os.environ.get("NECTAR_AUDIT_LAB_STATE", "/run/nectar-audit-lab"))


def process_start_time(pid: int) -> str | None:
    """Start time (clock ticks since boot) of pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{process_start_time(pid)}"


def owner_alive(token: str) -> bool:
    pid_s, _, start = token.partition(":")
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    return process_start_time(pid) == start


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path


@contextlib.contextmanager
def file_lock(path: Path, timeout: float, what: str, on_wait: Callable[[str], None] | None = None
              ) -> Iterator[None]:
    """Exclusive fcntl lock on path (created if needed), waiting at most timeout seconds.

    on_wait(message) is called once if the lock is busy.
    """
    ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            if on_wait is not None:
                on_wait(f"waiting for the lock on {path} ({what}), held by {holder or 'unknown'}")
                on_wait = None
            if time.monotonic() >= deadline:
                raise LabError(f"timed out after {timeout:g}s waiting for the lock on {path} ({what}); "
                               f"held by {holder or 'unknown'}")
            time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{owner_token()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def build_once(dest: Path, timeout: float, what: str, build: Callable[[], None]) -> Path:
    """Fill the cached directory ``dest`` with ``build()`` unless an earlier build completed (its
    ``.complete`` marker), one process at a time; a partial directory, or a failed build's, is removed."""
    done = dest / ".complete"
    if done.exists():
        return dest
    ensure_dir(dest.parent)
    with file_lock(dest.parent / f".{dest.name}.lock", timeout, what):
        if done.exists():
            return dest
        try:
            if dest.exists():
                shutil.rmtree(dest)
            build()
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        done.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    return dest


def write_record(kind: str, data: dict[str, Any]) -> Path:
    """Record a resource owned by this process under STATE_DIR/<kind>/ (atomic write)."""
    directory = ensure_dir(STATE_DIR / kind)
    path = directory / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"owner": owner_token(), **data}))
    os.replace(tmp, path)
    return path


def read_records(kind: str) -> list[tuple[Path, dict[str, Any]]]:
    directory = STATE_DIR / kind
    out: list[tuple[Path, dict[str, Any]]] = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.json")):
        try:
            out.append((path, json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return out


def remove_record(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
