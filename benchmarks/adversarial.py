"""Time and peak memory of every sanitizer and text parser on adversarial host text, beside a clean scan.

    python3 benchmarks/adversarial.py [--size-kib 1024] [--top 25]

Each function runs on each input of ``tests/evidence/adversarial.py`` (runs of spaces after a keyword,
unclosed quotes and braces, floods of lines, key markers, ...) at the given size, in a fresh process per
function so that peak memory is its own. The reference is a clean scan of this machine (``scan local``)
in the same run: an adversarial input should cost a fraction of it, and grow linearly with its size.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_ONE = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from tests.evidence.adversarial import ADVERSARIAL_INPUTS, text_functions
name, size = sys.argv[2], int(sys.argv[3])
fn = dict(text_functions())[name]
worst = (0.0, "")
for label, make in ADVERSARIAL_INPUTS.items():
    text = make(size)
    t = time.perf_counter()
    try:
        fn(text)
    except Exception:
        pass
    dt = time.perf_counter() - t
    worst = max(worst, (dt, label))
print(json.dumps({"s": worst[0], "input": worst[1],
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-kib", type=int, default=1024)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.evidence.adversarial import text_functions

    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nectar_audit", "scan", "--format", "json", "-o", "/dev/null"],
                   check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    clean_s = time.perf_counter() - t0
    clean_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    rows = []
    for name, _fn in text_functions():
        out = subprocess.run([sys.executable, "-c", _ONE, str(REPO), name, str(args.size_kib * 1024)],
                             capture_output=True, text=True, check=True)
        rows.append((name, json.loads(out.stdout)))
    rows.sort(key=lambda r: -r[1]["s"])
    print(f"clean scan of this machine: {clean_s:.2f} s, peak RSS {clean_rss // 1024} MiB")
    print(f"{len(rows)} functions x adversarial inputs of {args.size_kib} KiB; the slowest input of each:")
    for name, r in rows[: args.top]:
        print(f"  {r['s']:7.3f} s  {r['rss'] // 1024:4d} MiB  {name}  ({r['input']})")
    worst = rows[0][1]["s"]
    print(f"worst: {worst:.3f} s = {worst / clean_s:.2f}x the clean scan")


if __name__ == "__main__":
    main()
