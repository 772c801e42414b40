"""A real PostgreSQL server (Debian's postgresql package) for the store tests, started once per session.

The cluster lives in a fresh directory outside pytest's tmp dir (that one is 0700 root; the server runs as
the ``postgres`` user). Its unix socket trusts local users (the tests' administrator and roles connect by
name); on 127.0.0.1 it asks for a password (scram-sha-256), as a team's server would ask its VMs. Each test
gets its own database (``pg.new_database()``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab.require import require


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


@dataclass
class Postgres:
    bindir: Path
    base: Path
    as_pg: list[str]
    port: int

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql+psycopg://{user}@/{database}?host={self.base}&port={self.port}"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_pg, str(self.bindir / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=90, cwd=self.base)

    def start(self) -> None:
        self.pg_ctl("-w", "-t", "60", "-l", str(self.base / "log"), "-o",
                    f"-k {self.base} -c listen_addresses=127.0.0.1 -p {self.port} -c fsync=off -c max_connections=100",
                    "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def sql(self, statement: str, database: str = "postgres", user: str = "postgres") -> str:
        """Run one statement with psql; its output (unaligned, tuples only)."""
        proc = subprocess.run(
            [str(self.bindir / "psql"), "-h", str(self.base), "-p", str(self.port), "-U", user, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", statement], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())
        return proc.stdout

    def new_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {name}")
        return name


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    bindir = _postgres_bin()
    require(bindir is not None, "apt-get install postgresql")
    require(os.geteuid() == 0, "the PostgreSQL tests need root (the server runs as user postgres)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require(False, "pip install 'psycopg[binary]'")
    assert bindir is not None
    pw = pwd.getpwnam("postgres")
    base = Path(tempfile.mkdtemp(prefix="nectar-audit-pg-"))
    os.chown(base, pw.pw_uid, pw.pw_gid)
    as_pg = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--"]
    server = Postgres(bindir, base, as_pg, _free_port())
    try:
        subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(server.data), "--auth-local=trust",
                        "--auth-host=scram-sha-256", "-U", "postgres"],
                       check=True, capture_output=True, timeout=120, cwd=base)
        server.start()
        yield server
    finally:
        if server.running():
            subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(server.data), "-m", "immediate", "-w",
                            "stop"], capture_output=True, timeout=60, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture()
def pg_url(postgres: Postgres) -> str:
    """The administrator's URL of a new, empty database."""
    return postgres.url(postgres.new_database())
