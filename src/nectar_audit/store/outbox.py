"""The outbox: runs that could not be stored wait here (a 0700 directory in the user's data dir, one
0600 file per run) and are sent, oldest first, before the next run, or by ``nectar-audit store flush``.

Exactly once: a run keeps the id it was given when it was made, the store ignores an id it already has,
and a file is deleted only once its run is in the store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from nectar_audit.store.db import StoreError, data_dir, display
from nectar_audit.store.writer import Run, RunRejected, Sender

LOCK_WAIT_SECONDS = 300.0


@dataclass
class Entry:
    path: Path
    url: str
    run: Run


@dataclass
class FlushReport:
    sent: int = 0
    already: int = 0  # stored before (a send whose answer was lost): deleted, not stored twice
    waiting: dict[str, str] = field(default_factory=dict)  # URL -> why its runs still wait
    rejected: list[str] = field(default_factory=list)  # one line per run moved to rejected/


class Outbox:
    def __init__(self, directory: Path | None = None) -> None:
        self.dir = directory or data_dir() / "outbox"

    def _ensure(self) -> None:
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = self.dir.lstat()
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
                raise StoreError(f"outbox {self.dir} is not a directory of this user; not using it")
            if stat.S_IMODE(info.st_mode) != 0o700:
                os.chmod(self.dir, 0o700)
        except OSError as exc:
            raise StoreError(f"cannot use outbox {self.dir}: {exc.strerror or exc}") from exc

    def put(self, url: str, run: Run) -> Path:
        """Keep ``run`` for ``url``; durable (fsync) before this returns."""
        self._ensure()
        name = f"{run.created.strftime('%Y%m%dT%H%M%S%f')}-{time.time_ns():020d}-{run.id}.json"
        path = self.dir / name
        tmp = self.dir / f".{name}.tmp"
        data = json.dumps({"format": 1, "url": url, "run": run.to_json()}, ensure_ascii=False).encode()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise StoreError(f"cannot keep the run in outbox {self.dir}: {exc.strerror or exc}") from exc
        return path

    def names(self) -> list[Path]:
        try:
            return sorted(p for p in self.dir.glob("*.json") if p.is_file())
        except OSError:
            return []

    def _read(self, path: Path) -> Entry:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != 1 or not isinstance(data.get("url"), str):
            raise ValueError("not an outbox entry of this nectar-audit")
        return Entry(path, data["url"], Run.from_json(data.get("run")))

    def _reject(self, path: Path, why: str, report: FlushReport) -> None:
        (self.dir / "rejected").mkdir(mode=0o700, exist_ok=True)
        os.replace(path, self.dir / "rejected" / path.name)
        report.rejected.append(f"{path.name}: {why} (moved to {self.dir / 'rejected'})")

    def count(self, url: str | None = None) -> int:
        n = 0
        for path in self.names():
            try:
                n += url is None or self._read(path).url == url
            except (OSError, ValueError):
                n += url is None
        return n

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One sender at a time (a scheduled run and `store flush`): runs leave in their order."""
        self._ensure()
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            deadline = time.monotonic() + LOCK_WAIT_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(f"outbox {self.dir} is busy (another nectar-audit is sending)") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def flush(self, url: str | None = None, retry_seconds: float | None = None) -> FlushReport:
        """Send what waits (for ``url``, or for every store), oldest first; the caller holds ``locked()``.
        A store that fails keeps the rest of its runs waiting, in order."""
        report = FlushReport()
        senders: dict[str, Sender] = {}
        try:
            for path in self.names():
                try:
                    entry = self._read(path)
                except (OSError, ValueError, UnicodeDecodeError) as exc:
                    if url is None:
                        self._reject(path, f"unreadable: {exc}", report)
                    continue
                if (url is not None and entry.url != url) or entry.url in report.waiting:
                    continue
                sender = senders.setdefault(entry.url, Sender(entry.url, retry_seconds))
                try:
                    seq = sender.send(entry.run)
                except RunRejected as exc:
                    self._reject(path, str(exc), report)
                    continue
                except StoreError as exc:
                    report.waiting[entry.url] = str(exc)
                    continue
                path.unlink()
                if seq is None:
                    report.already += 1
                else:
                    report.sent += 1
        finally:
            for sender in senders.values():
                sender.close()
        return report


@dataclass
class Outcome:
    """What became of a run: stored as ``seq``, or kept in the outbox (``error`` says why)."""

    seq: int | None = None
    error: str | None = None
    queued: Path | None = None
    waiting: int = 0
    flushed: FlushReport | None = None


def store_run(url: str, run: Run, outbox: Outbox | None = None, retry_seconds: float | None = None) -> Outcome:
    """Send what waits in the outbox for ``url`` first, then ``run``; whatever cannot be stored is kept."""
    from nectar_audit.store.db import make_engine

    make_engine(url).dispose()  # a URL that can never work is the caller's error, not a run to keep
    box = outbox or Outbox()
    out = Outcome()
    try:
        if box.count(url):
            with box.locked():
                out.flushed = box.flush(url, retry_seconds)
                if url in out.flushed.waiting:
                    raise StoreError(out.flushed.waiting[url])
                with Sender(url, retry_seconds) as sender:
                    out.seq = sender.send(run)
        else:
            with Sender(url, retry_seconds) as sender:
                out.seq = sender.send(run)
        return out
    except StoreError as exc:
        out.error = str(exc)
    out.queued = box.put(url, run)  # may raise StoreError: then the caller must say the run is lost
    out.waiting = box.count(url)
    return out


__all__ = ["Entry", "FlushReport", "Outbox", "Outcome", "display", "store_run"]
