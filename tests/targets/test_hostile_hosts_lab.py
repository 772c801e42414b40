"""The audited host is the adversary: real sshd hosts whose forced command answers the gather with hostile
streams, audited in one fleet with normal hosts. Every normal host's report is complete and the same as
in a run without the hostile ones; each hostile host gets its error (or its evidence marked incomplete,
naming what was cut); the run ends within its deadlines and its memory stays within the budget."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from nectar_audit.catalog import implemented
from nectar_audit.config import Config
from nectar_audit.fleet import run_fleet
from nectar_audit.targets.ssh import SshTarget
from nectar_audit.targets.ssh_options import HOST_KEYS_ACCEPT_NEW, SshOptions
from tests import REPO
from tests.lab import sshd_hosts as S

pytestmark = pytest.mark.lab

# The forced command: reads the gather script from stdin (so it knows the run's boundary, as any host
# does), then answers as MODE says.
HOSTILE = r'''
import os, sys, time
mode = sys.argv[1]
out = sys.stdout.buffer
script = sys.stdin.buffer.read() if mode != "flood" else b""
b = b""
for line in script.splitlines():
    if line.startswith(b"BOUNDARY="):
        b = line.split(b"=", 1)[1].strip(b"'")
def rec(kind, name, body, rc=0, named=True):
    head = (b"%d:" % len(name) + name) if named else name
    out.write(b"\n" + b + b" " + kind + b" " + head + b"\n" + body + b"\n" + b + b" E %d" % rc)
def ident():
    rec(b"C", b"__uid__", b"0", named=False)
if mode == "flood":
    chunk = b"y" * 65536
    while True:
        out.write(chunk)
elif mode == "stall":
    out.write(b"\n" + b + b" C __uid__\n0\n" + b + b" E 0")
    out.flush()
    time.sleep(3600)
elif mode == "records":
    ident()
    i = 0
    while True:
        rec(b"F", b"/etc/x\xff\x1b[2J\x1b]0;pwned\x07%d" % i, b"\x1b[32mALL CHECKS PASS")
        i += 1
elif mode == "huge":
    ident()
    rec(b"F", b"/etc/hostname", b"evil\n")
    out.write(b"\n" + b + b" F 11:/etc/passwd\n")
    chunk = b"root:x:0:0::/root:/bin/sh\n" * 4096
    while True:
        out.write(chunk)
elif mode == "sqlite":
    ident()
    rec(b"F", b"/etc/hostname", b"sqlite-host\n")
    rec(b"F", b"/var/lib/lastlog/lastlog2.db", open(sys.argv[2], "rb").read())
    for part in (b"files", b"stats", b"commands", b"user_files", b"searches"):
        rec(b"C", b"__done__", part, named=False)
    out.write(b"\n")
out.flush()
'''


def _evil_db(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE VIEW Lastlog2 AS WITH RECURSIVE r(Name, Time) AS "
                 "(SELECT 'a', 1 UNION ALL SELECT Name || 'x', Time + 1 FROM r) SELECT Name, Time FROM r")
    conn.commit()
    conn.close()


def _checks(result: Any) -> dict[str, Any]:
    return {c["id"]: (c["status"], c["summary"], c["findings"]) for c in result.to_json()["checks"]}


# The command timeout of these runs: what the stalling host costs each of them. Normal hosts need about a
# second; this leaves them room on a loaded machine.
STALL_S = 10


def test_hostile_hosts_cannot_blind_hang_or_exhaust_a_fleet(tmp_path: Path) -> None:
    S.require_ssh_lab()
    key, pub = S.client_key(tmp_path)
    script = tmp_path / "hostile.py"
    script.write_text(HOSTILE)
    db = tmp_path / "evil.db"
    _evil_db(db)
    modes = ["flood", "stall", "records", "huge", "sqlite"]
    known = tmp_path / "known_hosts"
    opts = SshOptions(identities=(str(key),), config_files=(), known_hosts=str(known), use_agent=False,
                      host_keys=HOST_KEYS_ACCEPT_NEW, connect_timeout=10, command_timeout=STALL_S)
    with contextlib.ExitStack() as stack:
        n1 = stack.enter_context(S.ssh_host(tmp_path / "n1", {"root": pub}, hostname="normal-one"))
        n2 = stack.enter_context(S.ssh_host(tmp_path / "n2", {"root": pub}, hostname="normal-two"))
        hostile_hosts = [
            stack.enter_context(S.ssh_host(tmp_path / mode, {"root": pub}, hostname=f"hostile-{mode}",
                                           sshd_extra=f"ForceCommand {sys.executable} -I {script} {mode} {db}"))
            for mode in modes
        ]
        normal = [SshTarget(h.addr, user="root", name=f"normal-{i}", options=opts) for i, h in enumerate((n1, n2))]
        hostile = [SshTarget(h.addr, user="root", name=f"hostile-{m}", options=opts)
                   for h, m in zip(hostile_hosts, modes)]
        alone = run_fleet(normal, implemented(), Config(), concurrency=8, jobs=0)
        t0 = time.monotonic()
        mixed = run_fleet([normal[0], *hostile, normal[1]], implemented(), Config(), concurrency=8, jobs=0)
        elapsed = time.monotonic() - t0
        cli = _cli_peak_rss(n1, hostile_hosts, key, known, tmp_path)
    by = {r.target: r for r in mixed.results}
    for r in alone.results:
        assert r.error is None and "evidence_incomplete" not in r.extra
        assert _checks(by[r.target]) == _checks(r), r.target
    assert "sent more than 64 MiB" in (by["hostile-flood"].error or "")
    assert f"did not finish within {STALL_S} s" in (by["hostile-stall"].error or "")
    records = by["hostile-records"]
    assert records.error is None and "50000 records" in records.extra["evidence_incomplete"]["reason"]
    huge = by["hostile-huge"]
    assert huge.error is None and "64 MiB" in huge.extra["evidence_incomplete"]["reason"]
    sq = by["hostile-sqlite"]
    assert sq.error is None and sq.hostname == "sqlite-host" and "evidence_incomplete" not in sq.extra
    # Within the deadline (the command timeout; a stall must not hold the others), and nothing the
    # hostile hosts sent reached a report raw.
    assert elapsed < STALL_S + 30
    dumped = json.dumps([r.to_json() for r in mixed.results])
    assert "\x1b" not in dumped and "ALL CHECKS PASS" not in dumped
    # Peak memory of a whole CLI run with these hosts: the budget (64 MiB a host) bounds it.
    assert cli < 600 * 1024, f"peak RSS {cli // 1024} MiB"


def _cli_peak_rss(n1: Any, hostile_hosts: list[Any], key: Path, known: Path, tmp_path: Path) -> int:
    """Peak RSS (KiB) of ``nectar-audit scan`` over one normal host and the hostile ones, judge workers
    included."""
    targets = [f"root@{n1.addr}", *(f"root@{h.addr}" for h in hostile_hosts)]
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=False, "
             "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "nectar_audit", "scan", *targets,
                          "-i", str(key), "-F", "none", "--known-hosts", str(known), "--accept-new-host-keys",
                          "--command-timeout", str(STALL_S), "--format", "json", "-o", str(tmp_path / "fleet.json")],
                         capture_output=True, text=True, timeout=300, check=True, cwd=REPO)
    report = json.loads((tmp_path / "fleet.json").read_text())
    assert len(report["hosts"]) == len(targets)
    return int(out.stdout.strip())
