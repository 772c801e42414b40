"""History store: save runs, list them, diff two runs (SQLite with no set-up, PostgreSQL after `store init`);
CLI --store/history/diff."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from nectar_audit.cli import main
from nectar_audit.model import HostResult, Status
from nectar_audit.store import history
from tests.store.conftest import Postgres
from tests.store.samples import check

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


def test_history_on_a_real_postgresql(postgres: Postgres, pg_url: str) -> None:
    from nectar_audit.store.admin import init

    init(pg_url)
    history.save_run(pg_url, [_host("web1", {1: Status.FAIL})], "0.1")
    history.save_run(pg_url, [_host("web1", {1: Status.PASS}), _host("new1", {1: Status.PASS})], "0.1")
    assert [(r.id, r.failing_hosts) for r in history.list_runs(pg_url)] == [(1, 1), (2, 0)]
    diff = history.diff_runs(pg_url)
    assert diff.fixed == [("web1", "Check-Security-01", "web1 check 1 fail")] and diff.new_hosts == ["new1"]


def test_a_store_url_that_cannot_work_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    for url in ("not a url", "nosuchdb://host/x"):
        result = CliRunner().invoke(main, ["scan", f"root:{root}", "--checks", "01", "--store", url,
                                           "-o", str(tmp_path / "r.txt")])
        assert result.exit_code == 2 and "this run is not stored" in result.output, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "data" / "nectar-audit" / "outbox").exists()
