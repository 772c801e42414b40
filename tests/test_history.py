"""History store (SQLite via SQLAlchemy): save runs, list them, diff two runs; CLI --store/history/diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nectar_audit import history
from nectar_audit.cli import main
from nectar_audit.model import HostResult, Status
from tests.reports.samples import check

pytest.importorskip("sqlalchemy")


def _host(name: str, statuses: dict[int, Status], error: str | None = None) -> HostResult:
    return HostResult(target=name, hostname=name, error=error,
                      checks=[check(n, s, f"{name} check {n} {s.value}") for n, s in statuses.items()])


def test_save_list_and_diff(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'h.sqlite'}"
    first = history.save_run(url, [
        _host("web1", {1: Status.FAIL, 2: Status.PASS}),
        _host("db1", {1: Status.PASS}),
        _host("gone", {1: Status.FAIL}),
        _host("flaky", {1: Status.FAIL}),
    ], "0.1")
    second = history.save_run(url, [
        _host("web1", {1: Status.PASS, 2: Status.FAIL}),
        _host("db1", {1: Status.PASS}),
        _host("new1", {1: Status.FAIL}),
        _host("flaky", {}, error="connection refused"),
    ], "0.1")
    assert (first, second) == (1, 2)
    runs = history.list_runs(url)
    assert [(r.id, r.hosts, r.failing_hosts) for r in runs] == [(1, 4, 3), (2, 4, 2)]
    assert [r.id for r in history.list_runs(url, "gone")] == [1]
    diff = history.diff_runs(url)
    assert (diff.run_a, diff.run_b) == (1, 2)
    assert diff.newly_failing == [("web1", "Check-Security-02", "web1 check 2 fail")]
    assert diff.fixed == [("web1", "Check-Security-01", "web1 check 1 fail")]
    assert diff.new_hosts == ["new1"] and diff.vanished_hosts == ["gone"]
    same = history.diff_runs(url, 2, 2)
    assert not same.newly_failing and not same.fixed
    with pytest.raises(history.HistoryError, match="no run 7"):
        history.diff_runs(url, 7, 1)


def test_diff_needs_two_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    history.save_run(url, [], "0.1")
    with pytest.raises(history.HistoryError, match="need two runs"):
        history.diff_runs(url)


def test_cli_store_history_and_diff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("imagehost\n")
    runner = CliRunner()
    for _ in range(2):
        result = runner.invoke(main, ["scan", f"root:{root}", "--checks", "01", "--store",
                                      "-o", str(tmp_path / "r.txt")])
        assert result.exit_code in (0, 1), result.output
    assert (tmp_path / "data" / "nectar-audit" / "history.sqlite").exists()
    result = runner.invoke(main, ["history"])
    assert result.exit_code == 0 and "run 1 " in result.output and "run 2 " in result.output
    result = runner.invoke(main, ["diff"])
    assert result.exit_code == 0, result.output
    assert "run 1 -> run 2" in result.output and "newly failing: 0" in result.output
    url = f"sqlite:///{tmp_path / 'other.sqlite'}"
    result = runner.invoke(main, ["scan", f"root:{root}", "--checks", "01", "--store", url,
                                  "-o", str(tmp_path / "r.txt")])
    assert "stored as run 1" in result.output
    assert "run 1 " in runner.invoke(main, ["history", "--store", url, "imagehost"]).output
    result = runner.invoke(main, ["diff", "--store", url])
    assert result.exit_code == 2 and "need two runs" in result.output
    quiet = runner.invoke(main, ["scan", f"root:{root}", "--checks", "01", "--store", url, "-q",
                                 "-o", str(tmp_path / "r.txt")])
    assert quiet.exit_code in (0, 1) and quiet.output == "", quiet.output  # for cron: nothing to mail
    assert "run 2 " in runner.invoke(main, ["history", "--store", url]).output


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent if found else None


def test_history_on_a_real_postgresql(tmp_path: Path) -> None:
    """A throwaway PostgreSQL cluster (Debian's postgresql) on a unix socket in tmp_path."""
    import os
    import pwd
    import shutil
    import subprocess

    from tests.lab.require import require

    bindir = _postgres_bin()
    require(bindir is not None, "apt-get install postgresql")
    require(os.geteuid() == 0, "the PostgreSQL test needs root (runs the server as user postgres)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "pip install 'psycopg[binary]'")
    assert bindir is not None
    pw = pwd.getpwnam("postgres")
    import tempfile

    # Not under tmp_path: pytest's base temp dir is 0700 root, the server runs as postgres.
    tempfile_dir = tempfile.mkdtemp(prefix="nectar-audit-pg-")
    base = Path(tempfile_dir)
    as_pg = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    try:
        os.chown(base, pw.pw_uid, pw.pw_gid)
        data, sock = base / "data", base
        subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120, cwd=base)
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(base / "log"),
                        "-o", f"-k {sock} -c listen_addresses='' -p 54329", "start"],
                       check=True, capture_output=True, timeout=90, cwd=base)
        url = f"postgresql+psycopg://postgres@/postgres?host={sock}&port=54329"
        history.save_run(url, [_host("web1", {1: Status.FAIL})], "0.1")
        history.save_run(url, [_host("web1", {1: Status.PASS}), _host("new1", {1: Status.PASS})], "0.1")
        assert [(r.id, r.failing_hosts) for r in history.list_runs(url)] == [(1, 1), (2, 0)]
        diff = history.diff_runs(url)
        assert diff.fixed == [("web1", "Check-Security-01", "web1 check 1 fail")] and diff.new_hosts == ["new1"]
    finally:
        if (base / "data" / "postmaster.pid").exists():
            subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(base / "data"), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=60, cwd=base)
        shutil.rmtree(tempfile_dir, ignore_errors=True)
