#!/usr/bin/env python3
"""Benchmark: how `nectar-audit cloud` grows with the number of instances, against real Neutron.

Starts the test lab's real Keystone and Neutron (tests/lab/openstack_lab.py: SQLite, 127.0.0.1, Neutron
paging its listings by 100) and grows one project to each size in turn (default 50, 200, 400 instances).
Each instance has one port on a dual-stack network, in a stock Nectar-like ``default`` group (any protocol
from the group's members, IPv4 and IPv6); one in ten also has tcp/22 open to the world. Nova and Glance are
the tests' request-level fakes (tests/lab/cloud_fakes.py) in their own JSON shapes.

At each size, in fresh processes (so memory is what a user's run costs, imports included):
  1. the peer: openstacksdk alone making the same listing calls (servers, ports, security groups,
     floating IPs, key pairs, each distinct image) and nothing else: the API's own cost;
  2. `nectar-audit cloud --format json` (listing, one record per instance, every cloud check, the report).
Prints wall time and peak RSS of both, and the ratio nectar-audit / peer; the median of --runs runs.

Plain script, needs the lab's virtualenv (`python3 -m tests.lab build-openstack`):
`PYTHONPATH=src:. python3 benchmarks/cloud.py [--sizes 50,200,400] [--runs 3]`
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
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def child(state_file: str, mode: str) -> None:
    """One measured run in this fresh process; prints {"wall": s, "rss_mb": MB, "hosts": n}."""
    import resource

    from tests.lab.cloud_fakes import FakeNova
    from tests.lab.openstack_lab import OpenStackLab

    state = json.loads(Path(state_file).read_text())
    lab = OpenStackLab(Path(state["workdir"]), state["keystone_url"], state["neutron_url"], state["compute_url"],
                       state["image_url"], project_id=state["project_id"])
    nova = FakeNova(lab, servers=state["servers"], keypairs=state["keypairs"], images=state["images"])
    os.environ.update(lab.env())
    start = time.perf_counter()
    with nova.mocker():
        if mode == "peer":
            import openstack

            conn = openstack.connect()
            servers = list(conn.compute.servers(details=True))
            for call in (conn.network.ports, conn.network.security_groups, conn.network.ips, conn.compute.keypairs):
                list(call())
            for image_id in {s.image.id for s in servers if s.image and s.image.id}:
                conn.image.get_image(image_id)
            hosts = len(servers)
        else:
            from click.testing import CliRunner

            from nectar_audit.cli import main

            result = CliRunner().invoke(main, ["cloud", "--format", "json"], catch_exceptions=False)
            if result.exit_code not in (0, 1):
                raise SystemExit(f"nectar-audit cloud failed ({result.exit_code}): {result.output[-2000:]}")
            hosts = len(json.loads(result.stdout)["hosts"])
    wall = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mb": rss, "hosts": hosts}))


def measure(state_file: Path, mode: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    out = subprocess.run([sys.executable, __file__, "--child", str(state_file), mode], env=env, check=True,
                         capture_output=True, text=True, timeout=1800)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def grow(c: Any, nova: Any, net: Any, subnets: list[Any], groups: dict[str, Any], image: str, have: int,
         want: int) -> None:
    """Add instances have..want-1 (ports created in bulk, 50 a call)."""
    for lo in range(have, want, 50):
        batch = range(lo, min(lo + 50, want))
        sids = {i: str(uuid.uuid4()) for i in batch}
        ports = list(c.network.create_ports([
            {"network_id": net.id, "device_id": sids[i], "device_owner": "compute:nova",
             "fixed_ips": [{"subnet_id": s.id} for s in subnets],
             "security_groups": [groups["default"].id] + ([groups["ssh"].id] if i % 10 == 0 else [])}
            for i in batch]))
        by_device = {p.device_id: p for p in ports}
        for i in batch:
            nova.add_server(f"bench-{i:04d}", [by_device[sids[i]]], image_id=image, key_name="bench",
                            groups=["default"] + (["ssh-world"] if i % 10 == 0 else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="50,200,400")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("STATE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
    if args.child:
        child(*args.child)
        return
    from tests.lab.cloud_fakes import FakeNova
    from tests.lab.openstack_lab import openstack_lab

    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with openstack_lab(log=lambda m: print(m, file=sys.stderr)) as api, \
            tempfile.TemporaryDirectory(prefix="nectar-audit-bench-") as tmp:
        c = api.connect()
        net = c.network.create_network(name="bench")
        subnets = [c.network.create_subnet(network_id=net.id, cidr="10.80.0.0/20", ip_version=4),
                   c.network.create_subnet(network_id=net.id, cidr="fd00:80::/64", ip_version=6)]
        default = c.network.create_security_group(name="default-bench")
        for ethertype in ("IPv4", "IPv6"):
            c.network.create_security_group_rule(security_group_id=default.id, direction="ingress",
                                                 ethertype=ethertype, remote_group_id=default.id)
        ssh = c.network.create_security_group(name="ssh-world")
        c.network.create_security_group_rule(security_group_id=ssh.id, direction="ingress", ethertype="IPv4",
                                             protocol="tcp", port_range_min=22, port_range_max=22,
                                             remote_ip_prefix="0.0.0.0/0")
        nova = FakeNova(api)
        image = nova.add_image("NeCTAR Ubuntu 24.04 LTS (Noble) amd64")
        nova.add_keypair("bench", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl b")
        have = 0
        for size in sizes:
            t0 = time.perf_counter()
            grow(c, nova, net, subnets, {"default": default, "ssh": ssh}, image, have, size)
            have = size
            print(f"{size} instances built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            state = Path(tmp) / "state.json"
            state.write_text(json.dumps({
                "workdir": str(api.workdir), "keystone_url": api.keystone_url, "neutron_url": api.neutron_url,
                "compute_url": api.compute_url, "image_url": api.image_url, "project_id": api.project_id,
                "servers": nova.servers, "keypairs": nova.keypairs, "images": nova.images}))
            peer = [measure(state, "peer") for _ in range(args.runs)]
            ours = [measure(state, "audit") for _ in range(args.runs)]
            assert all(r["hosts"] == size for r in (*peer, *ours)), (peer, ours)
            row = {"instances": size,
                   "peer_s": statistics.median(r["wall"] for r in peer),
                   "peer_mb": statistics.median(r["rss_mb"] for r in peer),
                   "audit_s": statistics.median(r["wall"] for r in ours),
                   "audit_mb": statistics.median(r["rss_mb"] for r in ours)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(f"{'instances':>9} | {'openstacksdk listing':>20} | {'nectar-audit cloud':>18} | {'ratio':>5} | "
          f"{'peak RSS (sdk / ours)':>22} | {'ms per instance':>15}")
    for r in rows:
        print(f"{r['instances']:>9} | {r['peer_s']:>18.2f} s | {r['audit_s']:>16.2f} s | "
              f"{r['audit_s'] / r['peer_s']:>4.1f}x | {r['peer_mb']:>8.0f} MB / {r['audit_mb']:>5.0f} MB | "
              f"{1000 * r['audit_s'] / r['instances']:>15.1f}")


if __name__ == "__main__":
    main()
