"""Fleets: bounded concurrency, per-host isolation, order, evidence saving, Ctrl-C, progress, summary, CLI."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from rich.console import Console

from nectar_audit.catalog import Entry
from nectar_audit.checks.base import Check
from nectar_audit.cli import main
from nectar_audit.config import Config
from nectar_audit.evidence.bundle import Bundle
from nectar_audit.evidence.needs import Needs
from nectar_audit.facts import Facts
from nectar_audit.fleet import INTERRUPTED, run_fleet
from nectar_audit.model import CheckResult, Finding, HostResult, Status, Waiver
from nectar_audit.reports import fleet_summary
from nectar_audit.targets.base import TargetError
from tests import REPO
from tests.lab.sshd_hosts import loopback_silent_server

NEEDS = Needs()


def _bundle(name: str, hostname: str) -> Bundle:
    b = Bundle(name, "test", True, uid=0)
    b.add_file("/proc/sys/kernel/hostname", f"{hostname}\n".encode())
    b.add_file("/etc/os-release", b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n')
    return b


class AsyncFake:
    """An async target (like SshTarget) with a chosen delay and outcome; tracks concurrency."""

    live = 0
    peak = 0

    def __init__(self, name: str, delay: float = 0.01, outcome: str = "ok") -> None:
        self.name = name
        self.delay = delay
        self.outcome = outcome
        self.notices: list[str] = []

    def gather(self, needs: Needs) -> Bundle:
        raise AssertionError("the fleet must use gather_async")

    async def gather_async(self, needs: Needs) -> Bundle:
        cls = type(self)
        cls.live += 1
        cls.peak = max(cls.peak, cls.live)
        try:
            await asyncio.sleep(self.delay)
            if self.outcome == "unreachable":
                raise TargetError(f"{self.name}: cannot connect: No route to host")
            if self.outcome == "bug":
                raise KeyError("oops")
            if self.outcome == "notice":
                self.notices.append(f"added the host key of {self.name}")
            return _bundle(self.name, f"h-{self.name}")
        finally:
            cls.live -= 1


class SyncFake:
    def __init__(self, name: str, fail: bool = False) -> None:
        self.name = name
        self.fail = fail

    def gather(self, needs: Needs) -> Bundle:
        time.sleep(0.02)
        if self.fail:
            raise TargetError("not a root filesystem")
        return _bundle(self.name, f"s-{self.name}")


def _check(cid: str, status_for: dict[str, Status]) -> Entry:
    def run(facts: Facts) -> list[Finding]:
        host = (facts.bundle.text("/proc/sys/kernel/hostname") or "").strip()
        if host == "h-boom":
            raise RuntimeError("check bug")
        return [Finding(status_for.get(host, Status.PASS), f"{cid} on {host}")]

    return Entry(cid, "question?", "mod", Check(cid, "high", run, needs=Needs(), why="w", how="h"))


ENTRIES = [_check("Check-Security-01", {"h-b": Status.FAIL, "h-c": Status.FAIL}),
           _check("Check-Security-17", {"h-c": Status.WARN})]


def test_isolation_order_and_concurrency_bound() -> None:
    AsyncFake.live = AsyncFake.peak = 0
    targets: list[Any] = [AsyncFake(n, delay=0.05) for n in "abcdefgh"]
    targets[2] = AsyncFake("c", outcome="unreachable")
    targets[4] = AsyncFake("e", outcome="bug")
    targets.append(SyncFake("root-ok"))
    targets.append(SyncFake("root-bad", fail=True))
    run = run_fleet(targets, ENTRIES, Config(), concurrency=3)
    assert [r.target for r in run.results] == [t.name for t in targets]
    assert AsyncFake.peak <= 3
    by = {r.target: r for r in run.results}
    assert by["c"].error == "c: cannot connect: No route to host"
    assert (by["e"].error or "").startswith("internal error while gathering evidence: KeyError")
    assert by["root-bad"].error == "not a root filesystem"
    assert by["a"].error is None and by["a"].hostname == "h-a"
    assert by["root-ok"].hostname == "s-root-ok"
    assert [c.status for c in by["b"].checks] == [Status.FAIL, Status.PASS]
    assert all(r.started for r in run.results) and all(r.duration_s > 0 for r in run.results)
    assert not run.interrupted


def test_judging_in_worker_processes_gives_the_same_results() -> None:
    from nectar_audit.catalog import implemented

    entries = implemented()
    targets: list[Any] = [AsyncFake(f"h{i}") for i in range(9)] + [AsyncFake("x", outcome="unreachable")]
    inline = run_fleet(targets, entries, Config(), jobs=0)
    pooled = run_fleet(targets, entries, Config(), jobs=2)
    strip = ("started", "duration_s")
    assert [{k: v for k, v in r.to_json().items() if k not in strip} for r in pooled.results] == \
        [{k: v for k, v in r.to_json().items() if k not in strip} for r in inline.results]
    assert pooled.results[-1].error == "x: cannot connect: No route to host"


def test_a_check_that_crashes_on_one_host_is_that_checks_error() -> None:
    run = run_fleet([AsyncFake("boom"), AsyncFake("a")], ENTRIES, Config())
    assert run.results[0].error is None
    assert run.results[0].checks[0].status is Status.ERROR
    assert "RuntimeError: check bug" in run.results[0].checks[0].summary
    assert run.results[1].checks[0].status is Status.PASS


def test_evidence_saved_per_host_and_notices(tmp_path: Path) -> None:
    seen: list[str] = []
    targets: list[Any] = [AsyncFake("u@10.0.0.1:22", outcome="notice"), AsyncFake("ssh://web2"),
                          AsyncFake("down", outcome="unreachable")]
    run = run_fleet(targets, ENTRIES, Config(), save_evidence=str(tmp_path / "ev"), on_notice=seen.append)
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["ssh_web2.json", "u@10.0.0.1_22.json"]
    saved = json.loads((tmp_path / "ev" / "u@10.0.0.1_22.json").read_text())
    assert saved["files"]["/proc/sys/kernel/hostname"]["content"] == "h-u@10.0.0.1:22\n"
    assert seen == run.notices == ["added the host key of u@10.0.0.1:22"]


def test_ctrl_c_stops_cleanly_and_keeps_what_finished() -> None:
    """The first SIGINT cancels hosts in flight; finished hosts keep their results."""
    targets: list[Any] = [AsyncFake("fast1", delay=0.01), AsyncFake("fast2", delay=0.01)] + \
        [AsyncFake(f"slow{i}", delay=30) for i in range(5)]
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    try:
        run = run_fleet(targets, ENTRIES, Config(), concurrency=4)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 10
    assert run.interrupted
    assert [r.error for r in run.results[:2]] == [None, None]
    assert all(r.error == INTERRUPTED for r in run.results[2:])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_progress_bar_shows_done_failed_remaining() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=150, color_system=None)
    targets: list[Any] = [AsyncFake("a"), AsyncFake("down", outcome="unreachable"), AsyncFake("b")]
    run_fleet(targets, ENTRIES, Config(), progress=True, console=console)
    out = buf.getvalue()
    assert "✗ down: down: cannot connect: No route to host" in out
    assert "3/3" in out and "✓ 2" in out and "✗ 1" in out and "0 left" in out


def _result(target: str, statuses: dict[str, Status], error: str | None = None,
            waived: tuple[str, ...] = ()) -> HostResult:
    r = HostResult(target=target, hostname=f"{target}.lab", error=error)
    for cid, st in statuses.items():
        r.checks.append(CheckResult(cid, "q", "high", [Finding(st, "m")], "m",
                                    Waiver("ok", None) if cid in waived else None))
    return r


def test_fleet_summary_matrix_and_failures_by_check() -> None:
    c1, c17 = "Check-Security-01", "Check-Security-17"
    hosts = [
        _result("web1", {c1: Status.FAIL, c17: Status.PASS}),
        _result("web2", {c1: Status.FAIL, c17: Status.ERROR}),
        _result("db1", {c1: Status.PASS, c17: Status.FAIL}, waived=(c17,)),
        _result("db2", {c1: Status.FAIL, c17: Status.WARN}),
        _result("gone", {}, error="gone: connection refused (no SSH server listening there)"),
    ]
    buf = io.StringIO()
    fleet_summary.render(hosts, Console(file=buf, width=160, color_system=None))
    out = buf.getvalue()
    assert "Fleet summary: 5 hosts · 4 audited · 3 with failures · 1 could not be audited" in out
    assert "Check-Security-01 fails on 3 hosts: web1 (web1.lab), web2 (web2.lab), db2 (db2.lab)" in out
    assert "Check-Security-17 fails" not in out  # its only failure is waived
    assert "Check-Security-17 could not be checked on 1 host: web2 (web2.lab)" in out
    assert "gone: gone: connection refused" in out
    header = next(line for line in out.splitlines() if line.startswith("Host"))
    assert "01" in header and "17" in header
    row = next(line for line in out.splitlines() if line.startswith("db1"))
    assert "waived" in row and "ok" in row


def test_fleet_summary_lists_many_hosts_compactly() -> None:
    hosts = [_result(f"vm{i:03d}", {"Check-Security-01": Status.FAIL}) for i in range(40)]
    buf = io.StringIO()
    fleet_summary.render(hosts, Console(file=buf, width=400, color_system=None))
    assert "fails on 40 hosts: vm000 (vm000.lab)," in buf.getvalue()
    assert "(+15 more)" in buf.getvalue()


def test_cli_scan_of_several_targets_ends_with_the_fleet_summary(tmp_path: Path) -> None:
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("imagehost\n")
    inventory = tmp_path / "hosts.txt"
    inventory.write_text(f"# two offline images\nroot:{root}\nroot:{tmp_path}/missing   # not there\n")
    result = CliRunner().invoke(main, ["scan", "--inventory", str(inventory), "-o", str(tmp_path / "r.txt")])
    assert result.exit_code == 2, result.output  # one host could not be audited
    text = (tmp_path / "r.txt").read_text()
    assert "Fleet summary: 2 hosts · 1 audited" in text
    assert f"root:{tmp_path}/missing" in text and "is not a directory" in text


def test_json_report_is_streamed_identically() -> None:
    from nectar_audit.cli import write_json
    from nectar_audit.reports import json_report

    hosts = [
        _result("web1", {"Check-Security-01": Status.FAIL, "Check-Security-17": Status.PASS}),
        _result("héllo ✓", {"Check-Security-01": Status.WARN}, waived=("Check-Security-01",)),
        _result("gone", {}, error="gone: connection refused\nsecond line"),
    ]
    for subset in (hosts, hosts[:1], []):
        buf = io.StringIO()
        write_json(subset, buf)
        assert buf.getvalue() == json_report.render(subset)


def test_cli_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["scan", "u@h", "--accept-new-host-keys", "--no-host-key-check"])
    assert r.exit_code == 2 and "contradict" in r.output
    r = runner.invoke(main, ["scan", "--limit", "web"])
    assert r.exit_code == 2 and "--limit selects hosts of an --inventory" in r.output
    r = runner.invoke(main, ["scan", "u@h:99999"])
    assert r.exit_code == 2 and "bad port" in r.output
    bad = tmp_path / "bad.txt"
    bad.write_text("ok-host\nu@h:0\n")
    r = runner.invoke(main, ["scan", "--inventory", str(bad)])
    assert r.exit_code == 2 and "line 2:" in r.output


def test_cli_no_host_key_check_is_loud(tmp_path: Path) -> None:
    with loopback_silent_server() as port:
        r = CliRunner().invoke(main, ["scan", f"root@127.0.0.1:{port}", "--no-host-key-check", "-F", "none",
                                      "--connect-timeout", "0.5", "--format", "json"])
    assert "WARNING: --no-host-key-check: SSH host keys are NOT verified" in r.output
    assert r.exit_code == 2


def test_cli_ctrl_c_writes_the_report_of_finished_hosts(tmp_path: Path) -> None:
    """A real process: `local` finishes, an SSH host that never answers is in flight; SIGINT -> exit 130."""
    out, evidence = tmp_path / "fleet.json", tmp_path / "ev"
    with loopback_silent_server() as port:
        proc = subprocess.Popen(
            [sys.executable, "-m", "nectar_audit", "scan", "local", f"root@127.0.0.1:{port}", "-F", "none",
             "--known-hosts", str(tmp_path / "kh"), "--connect-timeout", "120", "--format", "json",
             "-o", str(out), "--save-evidence", str(evidence)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)},
        )
        try:
            deadline = time.monotonic() + 60
            while not (evidence / "local.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert (evidence / "local.json").exists(), proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    report = json.loads(out.read_text())
    assert [h["target"] for h in report["hosts"]] == ["local", f"root@127.0.0.1:{port}"]
    assert report["hosts"][0]["error"] is None
    assert report["hosts"][1]["error"] == INTERRUPTED
    assert b"interrupted" in err


def test_cli_ctrl_c_on_a_single_target_writes_the_report(tmp_path: Path) -> None:
    """One non-SSH target runs without the fleet machinery; Ctrl-C there still writes the report (the
    host marked not audited) and exits 130. The evidence file is a FIFO nobody writes: the read hangs."""
    fifo, out = tmp_path / "bundle.json", tmp_path / "report.json"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nectar_audit", "scan", f"evidence:{fifo}", "--format", "json", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)},
    )
    writer = -1
    try:
        deadline = time.monotonic() + 60
        while writer < 0 and proc.poll() is None and time.monotonic() < deadline:
            try:  # succeeds only once the scan has the FIFO open for reading
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.02)
        assert writer >= 0, proc.communicate(timeout=10)[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if writer >= 0:
            os.close(writer)
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    report = json.loads(out.read_text())
    assert [h["error"] for h in report["hosts"]] == [INTERRUPTED]
    assert b"interrupted" in err and b"Traceback" not in err
