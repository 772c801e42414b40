"""The team store on a real PostgreSQL: schema only by `store init`, concurrent writers, least privilege,
the outbox when the store is down or not set up, migration from the unversioned schema."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from nectar_audit.cli import main
from nectar_audit.model import HostResult, Status
from nectar_audit.store import admin, history, writer
from nectar_audit.store.db import NotReady, StoreError, open_store
from nectar_audit.store.outbox import Outbox, store_run
from nectar_audit.store.schema import HEAD
from nectar_audit.store.writer import Sender, new_run
from tests.store import legacy
from tests.store.conftest import Postgres
from tests.store.samples import vm

WRITERS = 200


def _database(url: str) -> str:
    return sa.engine.make_url(url).database or ""


def _runs(url: str) -> list[tuple[int, uuid.UUID, int]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT seq, id, hosts FROM runs ORDER BY seq")).all()
    engine.dispose()
    return [(r.seq, r.id, r.hosts) for r in rows]


def _concurrently(count: int, job: object) -> list[object]:
    barrier = threading.Barrier(count)

    def one(i: int) -> object:
        barrier.wait()  # all at once, as a fleet's timers would at 03:00 without a random delay
        return job(i)  # type: ignore[operator]

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_200_concurrent_writers_on_an_initialised_store(postgres: Postgres, pg_url: str, tmp_path: Path) -> None:
    admin.init(pg_url, writer="vm_writer")
    writer_url = postgres.url(_database(pg_url), user="vm_writer")
    runs = [new_run([vm(f"vm{i}", {1: Status.FAIL if i % 7 == 0 else Status.PASS})], "test") for i in range(WRITERS)]
    # One outbox each, as on separate VMs. The server takes 100 connections: the rest are refused
    # ("too many clients") and retried with backoff.
    outcomes = _concurrently(WRITERS, lambda i: store_run(writer_url, runs[i], Outbox(tmp_path / f"vm{i}"), 120))
    assert [o.error for o in outcomes if o.error] == []  # type: ignore[attr-defined]
    stored = _runs(pg_url)
    assert len(stored) == WRITERS and {r[1] for r in stored} == {r.id for r in runs}
    assert sorted(o.seq for o in outcomes) == [r[0] for r in stored]  # type: ignore[attr-defined]
    assert not any(Outbox(tmp_path / f"vm{i}").names() for i in range(WRITERS))
    assert len(history.list_runs(pg_url)) == WRITERS


def test_200_writers_on_a_store_never_initialised(postgres: Postgres, pg_url: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    runs = [new_run([vm(f"vm{i}")], "test") for i in range(WRITERS)]
    # A full server ("too many clients") is retried: long enough that 200 writers on a busy machine all get in.
    outcomes = _concurrently(WRITERS, lambda i: store_run(pg_url, runs[i], None, 60))
    for outcome in outcomes:
        assert outcome.seq is None and outcome.queued is not None  # type: ignore[attr-defined]
        assert "is not initialised: an administrator runs `nectar-audit store init " in outcome.error  # type: ignore[attr-defined]
        assert "\n" not in outcome.error  # type: ignore[attr-defined]
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []  # no writer ran DDL
    engine.dispose()
    box = Outbox()
    assert len(box.names()) == WRITERS
    runner = CliRunner()
    result = runner.invoke(main, ["store", "flush"])
    assert result.exit_code == 2 and "200 run(s) still waiting" in result.output and "store init" in result.output
    result = runner.invoke(main, ["store", "init", pg_url])
    assert result.exit_code == 0 and f"schema version {HEAD} (was empty)" in result.output, result.output
    result = runner.invoke(main, ["store", "flush"])
    assert result.exit_code == 0 and "sent 200 run(s)" in result.output, result.output
    stored = _runs(pg_url)
    assert {r[1] for r in stored} == {r.id for r in runs} and len(stored) == WRITERS
    assert box.names() == []
    assert "sent 0 run(s)" in runner.invoke(main, ["store", "flush"]).output


def test_the_writer_role_can_only_insert(postgres: Postgres, pg_url: str) -> None:
    import psycopg

    admin.init(pg_url, writer="vm_writer", reader="audit_reader")
    db = _database(pg_url)
    writer_url, reader_url = postgres.url(db, "vm_writer"), postgres.url(db, "audit_reader")
    history.save_run(pg_url, [vm("other")], "admin's")
    assert history.save_run(writer_url, [vm("web1")], "test") == 2  # INSERT works
    forbidden = [
        "UPDATE runs SET tool_version = 'forged'",
        "UPDATE run_hosts SET failing = '{}'",
        "DELETE FROM run_hosts",
        "DELETE FROM runs",
        "TRUNCATE runs CASCADE",
        "TRUNCATE run_hosts",
        "DROP TABLE run_hosts",
        "DROP TABLE runs CASCADE",
        "ALTER TABLE runs ADD COLUMN x int",
        "SELECT * FROM run_hosts",
        "SELECT document FROM run_hosts",
        "SELECT hostname FROM run_hosts WHERE target = 'local'",
        "SELECT * FROM runs",
        "SELECT count(*) FROM runs",
        "UPDATE alembic_version SET version_num = '0001'",
        "DELETE FROM alembic_version",
        # the database's columns: a writer cannot back-date a run, pass as another role or pick a number
        "INSERT INTO runs (id, created, tool_version, hosts, failing_hosts, stored) "
        "VALUES (gen_random_uuid(), now(), 'x', 0, 0, now() - interval '1 year')",
        "INSERT INTO runs (id, created, tool_version, hosts, failing_hosts, submitted_by) "
        "VALUES (gen_random_uuid(), now(), 'x', 0, 0, 'postgres')",
        "INSERT INTO runs (seq, id, created, tool_version, hosts, failing_hosts) "
        "VALUES (1000000, gen_random_uuid(), now(), 'x', 0, 0)",
    ]
    conninfo = f"host={postgres.base} port={postgres.port} dbname={db} user=vm_writer"
    for statement in forbidden:
        with psycopg.connect(conninfo) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
    # a run re-sent with the id of one already stored changes nothing
    with psycopg.connect(conninfo) as conn:
        first = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        assert first == (HEAD,)
    assert [r[2] for r in _runs(pg_url)] == [1, 1]
    assert [r.submitted_by for r in _rows(pg_url, "SELECT submitted_by FROM runs ORDER BY seq")] == [
        "postgres", "vm_writer"]
    with pytest.raises(StoreError, match=r"permission denied.*read with the reader role"):
        history.list_runs(writer_url, "web1")
    with pytest.raises(StoreError, match="permission denied"):
        admin.prune(writer_url, dt.timedelta(seconds=1))
    # the reader reads, and only reads
    assert [r.hosts for r in history.list_runs(reader_url)] == [1, 1]
    with pytest.raises(StoreError, match="permission denied"):
        history.save_run(reader_url, [vm("web1")], "test")
    with psycopg.connect(conninfo.replace("vm_writer", "audit_reader")) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM run_hosts")


def _rows(url: str, query: str) -> list[sa.Row[object]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.text(query)))
    engine.dispose()
    return rows


def test_a_run_sent_twice_is_stored_once(pg_url: str) -> None:
    admin.init(pg_url)
    run = new_run([vm("web1")], "test")
    with Sender(pg_url) as sender:
        assert sender.send(run) == 1
        assert sender.send(run) is None  # e.g. the answer to the first send was lost
    assert len(_runs(pg_url)) == 1 and len(_rows(pg_url, "SELECT 1 FROM run_hosts")) == 1


def test_store_stopped_mid_run_keeps_the_run_and_sends_both_once(
        postgres: Postgres, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(writer, "RETRY_SECONDS", 1.0)
    admin.init(pg_url, writer="vm_writer")
    writer_url = postgres.url(_database(pg_url), "vm_writer")
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("vm1\n")
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    scan = ["scan", f"root:{root}", "--checks", "01", "--store", writer_url, "-o", str(tmp_path / "r.txt")]
    runner = CliRunner()
    postgres.stop()
    try:
        down = runner.invoke(main, scan)
    finally:
        postgres.start()
    assert down.exit_code == 2, down.output
    assert "the run waits in the outbox" in down.output and "(1 waiting)" in down.output
    box = Outbox()
    [queued] = box.names()
    assert oct(box.dir.stat().st_mode & 0o777) == "0o700" and oct(queued.stat().st_mode & 0o777) == "0o600"
    back = runner.invoke(main, scan)
    assert back.exit_code in (0, 1), back.output
    assert "sent 1 earlier run(s) from the outbox" in back.output and "stored as run 2" in back.output
    assert box.names() == []
    runs = _runs(pg_url)
    assert [r[0] for r in runs] == [1, 2]
    created = [r.created for r in _rows(pg_url, "SELECT created FROM runs ORDER BY seq")]
    assert created[0] <= created[1]  # in order: the run made while the store was down went first
    assert "sent 0 run(s)" in runner.invoke(main, ["store", "flush"]).output
    assert len(_runs(pg_url)) == 2
    # both runs are the same host (its machine id), whatever it was called
    [(key,)] = _rows(pg_url, "SELECT DISTINCT host_key FROM run_hosts")
    assert key.startswith("machine:")


def test_writers_refuse_a_schema_they_do_not_know(pg_url: str, tmp_path: Path) -> None:
    admin.init(pg_url)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(NotReady, match=r"schema version 0099, newer than this nectar-audit knows .*upgrade"):
        open_store(pg_url)
    outcome = store_run(pg_url, new_run([vm("web1")], "t"), Outbox(tmp_path / "box"), 1)
    assert outcome.queued is not None and "0099" in (outcome.error or "")
    result = CliRunner().invoke(main, ["store", "init", pg_url])
    assert result.exit_code == 2 and "newer than this nectar-audit knows" in result.output
    assert "Traceback" not in result.output


def test_schedule_warns_at_install_time_of_a_store_not_set_up(pg_url: str) -> None:
    from nectar_audit.schedule import check_store

    warning = check_store(pg_url)
    assert warning is not None and "is not initialised" in warning and "waits in the outbox" in warning
    admin.init(pg_url)
    assert check_store(pg_url) is None


def test_store_init_is_idempotent_and_concurrent(postgres: Postgres, pg_url: str) -> None:
    reports = _concurrently(8, lambda i: admin.init(pg_url, writer="vm_writer", reader="audit_reader"))
    assert sorted(str(r.before) for r in reports) == ["0002"] * 7 + ["None"]  # type: ignore[attr-defined]
    result = CliRunner().invoke(main, ["store", "init", pg_url, "--writer", "vm_writer"])
    assert result.exit_code == 0 and "up to date" in result.output and "INSERT only" in result.output
    bad = CliRunner().invoke(main, ["store", "init", pg_url, "--writer", "x; DROP TABLE runs"])
    assert bad.exit_code == 2 and "role name" in bad.output
    superuser = CliRunner().invoke(main, ["store", "init", pg_url, "--writer", "postgres"])
    assert superuser.exit_code == 2 and "superuser" in superuser.output
    postgres.sql("DO $$BEGIN CREATE ROLE store_owner LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    postgres.sql("ALTER TABLE runs OWNER TO store_owner", _database(pg_url))
    owner = CliRunner().invoke(main, ["store", "init", pg_url, "--reader", "store_owner"])
    assert owner.exit_code == 2 and "owns the store's tables" in owner.output


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_store_written_by_the_unversioned_code_is_migrated_with_every_run(
        backend: str, pg_url: str, tmp_path: Path) -> None:
    url = pg_url if backend == "postgresql" else f"sqlite:///{tmp_path / 'old.sqlite'}"
    day = dt.datetime(2026, 11, 1, 3, 0, tzinfo=dt.timezone.utc)
    waived = vm("web1", {1: Status.FAIL, 2: Status.PASS}, target="web1")
    from nectar_audit.model import Waiver

    waived.checks[0].waiver = Waiver("legacy", None)
    legacy.save_run(url, [vm("web1", {1: Status.FAIL, 2: Status.PASS}, target="web1"),
                          vm("db1", {1: Status.PASS}, target="db1"), vm("gone", {1: Status.FAIL}, target="gone")],
                    "0.1", day)
    legacy.save_run(url, [vm("web1", {1: Status.PASS, 2: Status.FAIL}, target="web1"),
                          vm("db1", {}, target="db1", error="connection refused")], "0.1", day + dt.timedelta(days=1))
    legacy.save_run(url, [waived], "0.1", day + dt.timedelta(days=2))
    if backend == "postgresql":
        with pytest.raises(NotReady, match=r"schema version legacy, this nectar-audit needs 0002.*store init"):
            history.list_runs(url)
        assert admin.init(url).before == "legacy"
    # (SQLite: the user's own file is upgraded on first use, no init step)
    runs = history.list_runs(url)
    assert [(r.id, r.hosts, r.failing_hosts) for r in runs] == [(1, 3, 2), (2, 2, 1), (3, 1, 0)]
    assert runs[0].created == "2026-11-01T03:00:00+00:00"
    diff = history.diff_runs(url, 1, 2)
    assert diff.newly_failing == [("web1", "Check-Security-02", "web1 check 2 fail")]
    assert diff.fixed == [("web1", "Check-Security-01", "web1 check 1 fail")] and diff.vanished_hosts == ["gone"]
    assert history.save_run(url, [vm("web1", target="web1")], "0.2") == 4  # numbering goes on
    from nectar_audit.store.fleet import latest_hosts

    hosts = {h.target: h for h in latest_hosts(url)}
    assert sorted(h.target for h in latest_hosts(url)) == ["db1", "gone", "web1"]  # web1 once: its identity
    assert hosts["web1"].extra["store"]["run"] == 4
    assert hosts["db1"].error == "connection refused"
    assert [(c.id, c.status, c.summary) for c in hosts["gone"].checks] == [
        ("Check-Security-01", Status.FAIL, "gone check 1 fail")]
    assert [r.id for r in history.list_runs(url, "web1")] == [1, 2, 3, 4]
    waiver = next(h for h in history_hosts(url, 3) if h.target == "web1").checks[0].waiver
    assert waiver is not None and "kept no reason" in waiver.reason


def history_hosts(url: str, seq: int) -> list[HostResult]:
    import json

    from nectar_audit.store.codec import from_document

    rows = _rows(url, f"SELECT document FROM run_hosts WHERE run_seq = {seq}")
    return [from_document(json.loads(r.document) if isinstance(r.document, str) else r.document) for r in rows]


def test_a_vm_logs_in_with_its_pgpass_or_a_service_file(postgres: Postgres, pg_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's set-up for VMs: the URL holds no password; libpq finds it in ~/.pgpass (here PGPASSFILE)
    or the whole connection in a service file (PGSERVICEFILE). Over TCP the server asks for a password."""
    admin.init(pg_url, writer="vm_writer")
    secret = "s3cret-" + uuid.uuid4().hex
    postgres.sql(f"ALTER ROLE vm_writer PASSWORD '{secret}'")
    db = _database(pg_url)
    url = f"postgresql+psycopg://vm_writer@127.0.0.1:{postgres.port}/{db}"
    box = Outbox(tmp_path / "box")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "absent"))
    refused = store_run(url, new_run([vm("web1")], "t"), box, 0.5)
    assert refused.queued is not None and "password" in (refused.error or "")
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{postgres.port}:{db}:vm_writer:{secret}\n")
    pgpass.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(pgpass))
    sent = store_run(url, new_run([vm("web1")], "t"), box, 5)
    assert sent.error is None and sent.flushed is not None and sent.flushed.sent == 1
    service = tmp_path / "pg_service.conf"
    service.write_text(f"[nectar-audit]\nhost=127.0.0.1\nport={postgres.port}\ndbname={db}\nuser=vm_writer\n")
    monkeypatch.setenv("PGSERVICEFILE", str(service))
    runner = CliRunner()
    root = tmp_path / "image"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("vm1\n")
    result = runner.invoke(main, ["scan", f"root:{root}", "--checks", "01", "--store",
                                  "postgresql+psycopg:///?service=nectar-audit", "-o", str(tmp_path / "r.txt")])
    assert result.exit_code in (0, 1) and "stored as run 3" in result.output, result.output
    assert secret not in result.output + (refused.error or "")
    from nectar_audit import schedule

    host = schedule.probe_host(None)
    assert schedule.resolve_store("postgresql+psycopg:///?service=nectar-audit", schedule.SYSTEM, host)
    with pytest.raises(schedule.ScheduleError, match="holds a password"):
        schedule.resolve_store(f"postgresql+psycopg://vm_writer:{secret}@127.0.0.1/{db}", schedule.SYSTEM, host)
