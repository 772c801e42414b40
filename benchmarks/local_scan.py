#!/usr/bin/env python3
"""Benchmark: a full local `nectar-audit scan --format json` against `lynis audit system --quick`.

Prints median wall time and peak RSS over repeated runs of each, on this machine, and the ratio.
Plain script: `sudo python3 benchmarks/local_scan.py [--runs 20] [--lynis-runs 1] [--no-lynis]`.
Lynis comes from Debian's packages (`apt-get install lynis`).

`--peer SRC` (the src directory of another checkout, e.g. a git worktree of an earlier commit) times this
checkout's code and the peer's in turn, run for run, and prints the median of the ratios pair by pair
(wall and CPU): a ratio measured so holds while the machine's speed drifts, which seconds do not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time


def paired(argv: list[str], src: str, peer: str, runs: int) -> None:
    """``argv`` with this checkout's src and with the peer's, in turn (each first in every other pair); the
    ratios this/peer pair by pair."""
    envs = [{**os.environ, "PYTHONPATH": path} for path in (src, peer)]
    for env in envs:  # warm the page cache and write the .pyc files
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    walls: list[list[float]] = [[], []]
    cpus: list[list[float]] = [[], []]
    for i in range(runs):
        # Which side goes first alternates: a machine's drift or a first run's advantage falls on both alike.
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            env = envs[k]
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            _, _, usage = os.wait4(proc.pid, 0)
            walls[k].append(time.perf_counter() - t0)
            cpus[k].append(usage.ru_utime + usage.ru_stime)  # the scan and the gatherer it waited for
    med = statistics.median
    print(f"this checkout: median {med(walls[0]):.3f} s wall, {med(cpus[0]):.3f} s CPU; peer {peer}: "
          f"{med(walls[1]):.3f} s wall, {med(cpus[1]):.3f} s CPU ({runs} pairs)")
    print(f"ratio this/peer, median of the pairs: wall {med([a / b for a, b in zip(*walls)]):.3f}, "
          f"CPU {med([a / b for a, b in zip(*cpus)]):.3f}")


def measure(argv: list[str], runs: int) -> tuple[list[float], list[int], int]:
    walls, rss = [], []
    rc = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - t0)
        rss.append(usage.ru_maxrss)  # KiB on Linux; the largest process of the run
        rc = os.waitstatus_to_exitcode(status)
    return walls, rss, rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--lynis-runs", type=int, default=1)
    ap.add_argument("--no-lynis", action="store_true")
    ap.add_argument("--peer", metavar="SRC", help="time this checkout's code against another checkout's src, "
                                                  "run for run (no lynis)")
    args = ap.parse_args()

    tool = [sys.executable, "-m", "nectar_audit", "scan", "--format", "json"]
    # pip byte-compiles an installed package; an environment that forbids writing .pyc files (some CI
    # sandboxes set PYTHONDONTWRITEBYTECODE) would otherwise time the compiler on every run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    if args.peer:
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "src")
        paired(tool, os.path.normpath(src), args.peer, args.runs)
        return 0
    measure(tool, 2)  # warm the page cache and write the .pyc files
    rows = []
    walls, rss, rc = measure(tool, args.runs)
    rows.append(("nectar-audit scan --format json", args.runs, statistics.median(walls), max(rss), rc))
    if not args.no_lynis:
        lynis = shutil.which("lynis")
        if lynis is None:
            print("lynis is not installed: apt-get install lynis (or pass --no-lynis)", file=sys.stderr)
            return 2
        lw, lr, lrc = measure([lynis, "audit", "system", "--quick", "--no-colors", "--no-log"], args.lynis_runs)
        rows.append(("lynis audit system --quick", args.lynis_runs, statistics.median(lw), max(lr), lrc))

    print(f"{'command':<34} {'runs':>5} {'median wall (s)':>16} {'peak RSS (MB)':>14} {'exit':>5}")
    for name, n, wall, kib, code in rows:
        print(f"{name:<34} {n:>5} {wall:>16.3f} {kib / 1024:>14.1f} {code:>5}")
    if len(rows) == 2:
        print(f"\nnectar-audit is {rows[1][2] / rows[0][2]:.0f}x faster than lynis on this machine "
              f"({os.cpu_count()} cores, uid {os.geteuid()}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
