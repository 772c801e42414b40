#!/usr/bin/env python3
"""Benchmark: the team store at fleet scale, in a real PostgreSQL (Debian's package, a throwaway cluster).

Loads H hosts x D daily runs (default 10,000 x 30 = 300,000 host records), each a whole host document as a
real scan writes it (this machine's own `nectar-audit scan --format json`, ~43 kB for 18 checks, its
statuses varied per host and day; 2 % of the hosts stop reporting 5 days before the end, 1 % appear in
the last 3 days). Then, each as a user runs it (a fresh `nectar-audit` process, median of --repeat runs):
  - `report --format json|prometheus|html` (the latest run of every host),
  - `history HOST`, `diff --since 2d` (the whole fleet), `diff` (the last two runs),
the same again with the store's secondary indexes dropped (the peer: what the indexes buy), and the insert
throughput of W concurrent writer processes through the insert-only writer role, next to one writer.

Plain script, needs root (the server runs as user postgres): `sudo python3 benchmarks/store.py [--hosts
10000] [--days 30] [--writers 50] [--writer-runs 2000] [--repeat 3] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import json
import os
import pwd
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

# name -> definition: the store's secondary indexes, dropped for the peer measurement
INDEXES = {
    "ix_run_hosts_host_key_run_seq": "run_hosts (host_key, run_seq)",
    "ix_run_hosts_run_seq": "run_hosts (run_seq)",
    "ix_run_hosts_stored": "run_hosts (stored)",
    "ix_run_hosts_hostname": "run_hosts (hostname)",
    "ix_run_hosts_target": "run_hosts (target)",
}


class Server:
    def __init__(self, base: Path) -> None:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
        if not found:
            raise SystemExit("apt-get install postgresql")
        self.bindir = found[-1].parent
        self.base = base
        pw = pwd.getpwnam("postgres")
        os.chown(base, pw.pw_uid, pw.pw_gid)
        self.as_pg = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]

    def start(self) -> bool:
        """Start the cluster in ``base`` (made first if there is none): True if it was made now."""
        data = self.base / "data"
        fresh = not data.exists()
        if fresh:
            subprocess.run([*self.as_pg, str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
                            "postgres"], check=True, capture_output=True, cwd=self.base)
        # Stock settings but for the number of connections the writers need: figures as a default install.
        subprocess.run([*self.as_pg, str(self.bindir / "pg_ctl"), "-D", str(data), "-w", "-l", str(self.base / "log"),
                        "-o", f"-k {self.base} -c listen_addresses='' -p {self.port} -c max_connections=300",
                        "start"], check=True, capture_output=True, cwd=self.base)
        return fresh

    def stop(self) -> None:
        subprocess.run([*self.as_pg, str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w",
                        "stop"], capture_output=True, cwd=self.base)

    def url(self, user: str = "postgres", db: str = "audit") -> str:
        return f"postgresql+psycopg://{user}@/{db}?host={self.base}&port={self.port}"

    def conninfo(self, db: str = "audit") -> str:
        return f"host={self.base} port={self.port} user=postgres dbname={db}"


def template() -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "nectar_audit", "scan", "--format", "json"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    return dict(json.loads(out.stdout)["hosts"][0])


def variants(doc: dict[str, Any], count: int) -> list[tuple[str, dict[str, str]]]:
    """``count`` serialised check lists (statuses varied) with their failing maps."""
    rng = random.Random(7)
    out = []
    for _ in range(count):
        checks = json.loads(json.dumps(doc["checks"]))
        failing = {}
        for check in checks:
            if rng.random() < 0.08:
                check["status"] = "fail"
            elif check["status"] == "fail" and rng.random() < 0.5:
                check["status"] = "pass"
            if check["status"] == "fail" and not check.get("waiver"):
                failing[check["id"]] = check["summary"]
        out.append((json.dumps(checks), failing))
    return out


def load(server: Server, hosts: int, days: int, doc: dict[str, Any]) -> float:
    import psycopg

    head = {k: v for k, v in doc.items() if k != "checks"}
    kinds = variants(doc, 64)
    end = dt.datetime.now(dt.timezone.utc).replace(hour=3, minute=0, second=0, microsecond=0)
    quiet_from = {h for h in range(hosts) if h % 50 == 7}  # 2 %: stop reporting 5 days before the end
    late = {h for h in range(hosts) if h % 100 == 11}  # 1 %: first seen in the last 3 days
    t0 = time.perf_counter()
    seq = 0
    with psycopg.connect(server.conninfo()) as conn:
        for day in range(days):
            when = end - dt.timedelta(days=days - 1 - day)
            rows_runs, rows_hosts = [], []
            for h in range(hosts):
                if (h in quiet_from and day >= days - 5) or (h in late and day < days - 3):
                    continue
                seq += 1
                name = f"vm{h:05d}.example.org"
                mid = hashlib.sha256(name.encode()).hexdigest()[:32]
                checks, failing = kinds[(h * 31 + day * 7) % len(kinds)]
                started = (when + dt.timedelta(seconds=h % 1800)).isoformat(timespec="seconds")
                meta = {**head, "hostname": name, "started": started, "identity": {"machine_id": mid}}
                text = json.dumps(meta)[:-1] + ', "checks": ' + checks + "}"
                rid = uuid.uuid4()
                rows_runs.append((seq, rid, started, started, "vm_writer", "bench", 1, 1 if failing else 0))
                rows_hosts.append((rid, 0, seq, f"machine:{mid}", "local", name, mid, started, started,
                                   json.dumps(failing), text))
            with conn.cursor() as cur:
                with cur.copy("COPY runs (seq, id, created, stored, submitted_by, tool_version, hosts, failing_hosts)"
                              " FROM STDIN") as copy:
                    for row in rows_runs:
                        copy.write_row(row)
                with cur.copy("COPY run_hosts (run_id, idx, run_seq, host_key, target, hostname, machine_id, "
                              "started, stored, failing, document) FROM STDIN") as copy:
                    for row in rows_hosts:
                        copy.write_row(row)
            conn.commit()
            print(f"  day {day + 1}/{days}: {seq} host records, {time.perf_counter() - t0:.0f} s", flush=True)
        conn.execute("SELECT setval(pg_get_serial_sequence('runs', 'seq'), %s)", (seq,))
        conn.commit()
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - t0


PEAK_MB: dict[str, float] = {}


def timed(argv: list[str], repeat: int) -> tuple[float, str]:
    """Median wall time of ``nectar-audit ARGV`` (a fresh process each time); its peak RSS in PEAK_MB."""
    times, out = [], ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr, \
                tempfile.NamedTemporaryFile() as rss:
            # GNU time reports the peak RSS of its own child: one forked from this (large) process would
            # count this process's memory as its own.
            proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss.name), sys.executable, "-m",
                                   "nectar_audit", *argv], stdout=stdout, stderr=stderr, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO / "src")})
            times.append(time.perf_counter() - t0)
            stdout.seek(0)
            stderr.seek(0)
            out, err = stdout.read(), stderr.read()
            kib = Path(rss.name).read_text().split()[-1]
        if proc.returncode not in (0, 1, 2) or "Traceback" in err:
            raise SystemExit(f"{argv}: exit {proc.returncode}\n{err[-2000:]}")
        PEAK_MB[" ".join(argv[:1] + [a for a in argv if a in ("json", "prometheus", "html")])] = int(kib) / 1024
    return statistics.median(times), out


def queries(server: Server, repeat: int, tmp: Path, host: str, days: int) -> dict[str, float]:
    url = server.url("audit_reader")
    out = {}
    for fmt in ("json", "prometheus", "html"):
        out[f"report --format {fmt}"], _ = timed(["report", "--store", url, "--format", fmt, "-o",
                                                  str(tmp / f"fleet.{fmt}")], repeat)
    out["history HOST"], text = timed(["history", "--store", url, host], repeat)
    assert text.count("run ") == days, text
    out["diff --since 2d"], _ = timed(["diff", "--store", url, "--since", "2d"], repeat)
    out["diff (last two runs)"], _ = timed(["diff", "--store", url], repeat)
    out["nectar-audit --version (start-up)"], _ = timed(["--version"], repeat)
    return out


def sql_times(server: Server, host: str, repeat: int = 5) -> dict[str, float]:
    """Server-side execution time (EXPLAIN ANALYZE, median ms) of the statements the commands run."""
    seq = "(SELECT max(run_seq) FROM run_hosts)"
    statements = {
        "latest run of every host": "SELECT r.host_key, r.document FROM run_hosts r JOIN (SELECT host_key, "
        "max(run_seq) AS seq FROM run_hosts GROUP BY host_key) l ON r.host_key = l.host_key AND r.run_seq = l.seq",
        "history HOST": f"SELECT run_seq, started, failing FROM run_hosts WHERE host_key IN (SELECT DISTINCT "
        f"host_key FROM run_hosts WHERE target = '{host}' OR hostname = '{host}' OR host_key IN ('{host}', "
        f"'machine:{host}', 'instance:{host}')) ORDER BY run_seq",
        "diff --since 2d (the part since)": "SELECT r.host_key, r.failing FROM run_hosts r JOIN (SELECT host_key, "
        "max(run_seq) AS seq FROM run_hosts WHERE stored > now() - interval '2 days' GROUP BY host_key) l "
        "ON r.host_key = l.host_key AND r.run_seq = l.seq",
        "diff (one run's hosts)": f"SELECT host_key, failing FROM run_hosts WHERE run_seq = {seq}",
    }
    import psycopg

    out = {}
    with psycopg.connect(server.conninfo()) as conn:
        for name, statement in statements.items():
            times = []
            for _ in range(repeat):
                plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement).fetchone()
                times.append(plan[0][0]["Execution Time"] if plan else 0.0)
            out[name] = statistics.median(times)
    return out


def _writer(args: tuple[str, int, str]) -> int:
    url, count, doc = args
    from nectar_audit.store.writer import Run, Sender

    data = json.loads(doc)
    with Sender(url, 120) as sender:
        for _ in range(count):
            run = Run(uuid.uuid4(), dt.datetime.now(dt.timezone.utc), "bench", [data])
            sender.send(run)
    return count


def writers(server: Server, doc: dict[str, Any], workers: int, runs: int) -> float:
    url = server.url("vm_writer")
    text = json.dumps(doc)
    t0 = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(workers) as pool:
        share = [runs // workers + (1 if i < runs % workers else 0) for i in range(workers)]
        done = sum(pool.map(_writer, [(url, n, text) for n in share]))
    return done / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--writers", type=int, default=50)
    ap.add_argument("--writer-runs", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="Leave the cluster in DIR (stopped) instead of deleting it; "
                    "a later run with the same DIR reuses its data (and skips loading).")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (the server runs as user postgres)", file=sys.stderr)
        return 2
    base = Path(args.keep or tempfile.mkdtemp(prefix="nectar-audit-store-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    server = Server(base)
    fresh = server.start()
    result: dict[str, Any] = {"hosts": args.hosts, "days": args.days}
    try:
        from nectar_audit.store.admin import init

        doc = template()
        print(f"template host document: {len(json.dumps(doc))} bytes, {len(doc['checks'])} checks", flush=True)
        if fresh:
            subprocess.run([str(server.bindir / "createdb"), "-h", str(base), "-p", str(server.port), "-U",
                            "postgres", "audit"], check=True)
            init(server.url(), writer="vm_writer", reader="audit_reader")
            result["load_s"] = load(server, args.hosts, args.days, doc)
        import psycopg

        with psycopg.connect(server.conninfo()) as conn:
            size = conn.execute("SELECT pg_database_size('audit')").fetchone()
            records = conn.execute("SELECT count(*) FROM run_hosts").fetchone()
        result["records"] = records[0] if records else 0
        result["database_mb"] = round((size[0] if size else 0) / 2**20)
        print(f"loaded {result['records']} host records in {result['load_s']:.0f} s; database "
              f"{result['database_mb']} MB", flush=True)
        tmp = base / "out"
        tmp.mkdir(exist_ok=True)
        result["with_indexes"] = queries(server, args.repeat, tmp, f"vm{args.hosts // 2:05d}.example.org", args.days)
        for name, seconds in result["with_indexes"].items():
            print(f"  {name}: {seconds:.2f} s", flush=True)
        result["peak_rss_mb"] = dict(PEAK_MB)
        print("  peak RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in PEAK_MB.items()), flush=True)
        result["html_mb"] = round((tmp / "fleet.html").stat().st_size / 2**20, 1)
        host = f"vm{args.hosts // 2:05d}.example.org"
        result["sql_ms_with_indexes"] = sql_times(server, host)
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            for index in INDEXES:
                conn.execute(f"DROP INDEX {index}")
            conn.execute("ANALYZE run_hosts")
        result["sql_ms_without_indexes"] = sql_times(server, host)
        print("server-side time of the statements (EXPLAIN ANALYZE, median of 5):")
        for name, ms in result["sql_ms_with_indexes"].items():
            without = result["sql_ms_without_indexes"][name]
            print(f"  {name}: {ms:.1f} ms with the indexes, {without:.1f} ms without ({without / ms:.1f}x)")
        result["without_indexes"] = queries(server, args.repeat, tmp, host, args.days)
        print("without the secondary indexes:")
        for name, seconds in result["without_indexes"].items():
            print(f"  {name}: {seconds:.2f} s ({seconds / result['with_indexes'][name]:.1f}x)", flush=True)
        with psycopg.connect(server.conninfo(), autocommit=True) as conn:
            for index, definition in INDEXES.items():
                conn.execute(f"CREATE INDEX {index} ON {definition}")
            conn.execute("ANALYZE run_hosts")
        result["one_writer_runs_per_s"] = writers(server, doc, 1, max(50, args.writer_runs // 20))
        result["writers_runs_per_s"] = writers(server, doc, args.writers, args.writer_runs)
        print(f"insert throughput (writer role, {len(json.dumps(doc)) // 1024} kB host documents): 1 writer "
              f"{result['one_writer_runs_per_s']:.0f} runs/s; {args.writers} concurrent writer processes "
              f"{result['writers_runs_per_s']:.0f} runs/s", flush=True)
        print(json.dumps(result))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
