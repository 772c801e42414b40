"""Probing several hosts: they are probed at once, and Ctrl-C stops the probes cleanly — the report is still
written, each host not finished says so, and no further port is tried."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

from tests import REPO, lab

ROOT = REPO
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
PORTS = list(range(1001, 1013))


def _drop_with_counters(host: lab.NetnsHost) -> None:
    rules = "".join(f"    tcp dport {p} counter drop\n" for p in PORTS)
    ruleset = f"table inet na_probe {{\n  chain input {{\n    type filter hook input priority 0;\n{rules}  }}\n}}\n"
    r = host.run(["nft", "-f", "-"], input=ruleset, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 0, r.stderr


def _probed_ports(host: lab.NetnsHost) -> list[int]:
    r = host.run(["nft", "list", "chain", "inet", "na_probe", "input"], text=True, stdout=subprocess.PIPE)
    return [int(p) for p, n in re.findall(r"tcp dport (\d+) counter packets (\d+)", r.stdout) if int(n) > 0]


def test_hosts_are_probed_at_once_and_ctrl_c_writes_the_report() -> None:
    lab.require_netns()
    lab.require_binary("nft")
    with lab.netns_host() as a, lab.netns_host() as b:
        _drop_with_counters(a)
        _drop_with_counters(b)
        # Every port filtered: 3 s each, 36 s per host one after the other.
        proc = subprocess.Popen(
            [sys.executable, "-m", "nectar_audit", "probe", a.addr, b.addr, "--ports", ",".join(map(str, PORTS)),
             "--timeout", "3", "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        try:
            # Both hosts are being probed well before the first could have finished on its own.
            lab.wait_until(lambda: bool(_probed_ports(a)) and bool(_probed_ports(b)), 15,
                           "both hosts probed at once")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        time.sleep(0.5)  # a SYN retransmission already queued would still be counted
        probed = {h.addr: _probed_ports(h) for h in (a, b)}
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    hosts = json.loads(out)["hosts"]
    assert [h["target"] for h in hosts] == [f"probe:{a.addr}", f"probe:{b.addr}"]
    for h in hosts:
        assert h["error"] is None
        (c15,) = [c for c in h["checks"] if c["id"] == "Check-Security-15"]
        assert c15["status"] == "manual"
        assert c15["summary"].startswith("active probe interrupted (Ctrl-C) before it finished")
    # Stopped at the port being probed: the rest of the list was never tried.
    assert all(0 < len(ports) < len(PORTS) for ports in probed.values()), probed
