#!/usr/bin/env python3
"""Benchmark: a local `nectar-audit scan` of this machine as a login node with N user accounts.

Each run happens in a private mount namespace (nothing on the machine changes): /home becomes a tmpfs with
N homes, each holding `.ssh/authorized_keys` and a private key `.ssh/id_ed25519` (what the key search of
check 10 finds on such hosts), and /etc/passwd a copy of this machine's with the N accounts added. Prints
the median wall time of the scan with 0 users and with N, and how many accounts and keys the report saw.

Plain script, needs root (unshare): `sudo python3 benchmarks/login_node.py [--users 3000] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Inside the namespace: /home on a tmpfs filled with the homes, the passwd copy bound over /etc/passwd,
# then the scan. "$1" users, "$2" the passwd copy, the rest the scan's argv.
SETUP = r"""
set -e
n=$1 passwd=$2; shift 2
mount --make-rprivate /
mount -t tmpfs -o size=512m nabench-home /home
i=0
while [ "$i" -lt "$n" ]; do
  d=/home/u$i/.ssh
  mkdir -p "$d"
  echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchmarkKeyNotRealxxxxxxxxxxxxxxxxxxxxxx u$i" > "$d/authorized_keys"
  k='OPENSSH PRIVATE KEY-----'
  printf -- '-----BEGIN %s\nbenchmark-not-a-key-%s\n-----END %s\n' "$k" "$i" "$k" > "$d/id_ed25519"
  i=$((i+1))
done
mount --bind "$passwd" /etc/passwd
exec "$@"
"""


def run_once(users: int, passwd: Path, report: Path) -> float:
    src = str(Path(__file__).resolve().parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    scan = [sys.executable, "-m", "nectar_audit", "scan", "-q", "--format", "json", "-o", str(report)]
    t0 = time.perf_counter()
    proc = subprocess.run(["unshare", "-m", "sh", "-c", SETUP, "setup", str(users), str(passwd), "sh", "-c",
                           'start=$(date +%s%N); "$@"; rc=$?; echo $(( $(date +%s%N) - start )) >&2; exit $rc',
                           "scan", *scan],
                          capture_output=True, text=True, env=env, timeout=1800, check=False)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"scan failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    lines = proc.stderr.strip().splitlines()
    return int(lines[-1]) / 1e9 if lines and lines[-1].isdigit() else time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (a private mount namespace)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="nectar-login-bench-") as tmp:
        work = Path(tmp)
        base = Path("/etc/passwd").read_text()
        for users in (0, args.users):
            passwd = work / f"passwd-{users}"
            passwd.write_text(base + "".join(f"u{i}:x:{20000 + i}:{20000 + i}::/home/u{i}:/bin/bash\n"
                                             for i in range(users)))
            passwd.chmod(0o644)
            report = work / f"report-{users}.json"
            walls = [run_once(users, passwd, report) for _ in range(args.runs)]
            (host,) = json.loads(report.read_text())["hosts"]
            checks = {c["id"][-2:]: c for c in host["checks"]}
            print(f"{users:5d} users: median {statistics.median(walls):.2f} s (runs: "
                  f"{', '.join(f'{w:.2f}' for w in walls)}); check 10: {checks['10']['summary'][:100]}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
