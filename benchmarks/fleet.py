#!/usr/bin/env python3
"""Benchmark: audit a fleet of N real SSH hosts with nectar-audit, and gather Ansible facts on the same hosts.

Brings up N hosts (default 50; --hosts 200 supported): each is a network namespace on one bridge, with
a real OpenSSH sshd, its own host key, hostname and sshd_config (through /etc/netns/<ns>/). Then, on the
same hosts, in the same run:
  1. `nectar-audit scan --inventory HOSTS --concurrency C --format json` (as a user runs it: a fresh
     process, strict host-key checking against a known_hosts file, root logins with a key);
  2. `ansible all -m setup --forks C` (ansible-core from pip; the targets' Python is this machine's
     /usr/bin/python3, since namespaces share the filesystem).
Prints wall time, hosts/s, peak RSS and CPU of nectar-audit, Ansible's wall time and the ratio; then
tears everything down (also on Ctrl-C).

Plain script, needs root: `sudo python3 benchmarks/fleet.py [--hosts 200] [--concurrency 50] [--runs 5]
[--no-ansible]` (--runs: nectar-audit runs on the same hosts; the median one is compared with Ansible).
Traffic stays on the bridge `nabench0` (10.201.0.0/16, no default route, no NAT). Login records of the
benchmark sshds go to private copies of wtmp/btmp/lastlog, never to the machine's. Each host's /root is its
own stock home (Debian's base-files dotfiles), as on a fresh VM: this machine's /root holds developer
tools (pyenv's .bashrc alone costs ~0.09 s of CPU for every command an SSH session runs). Likewise each
host's /opt is empty, as on a fresh VM: this machine's holds its package mirrors (1,200 small files that
the key search would read on every host). A host sees only its own /etc/netns files (as its /etc), not the
other hosts' keys.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BRIDGE = "nabench0"
NET = ipaddress.ip_network("10.201.0.0/16")
NS_PREFIX = "nabench-"
SSHD = "/usr/sbin/sshd"
ETC_NETNS = Path("/etc/netns")
SSHD_CONFIG = """\
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile /etc/ssh/authorized_keys/%u
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication {password}
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
PrintLastLog no
PidFile none
MaxStartups 100:30:200
"""
# PID 1 of each host's own PID namespace (so a host sees its own processes, as a VM does): hostname,
# private login records (the machine's wtmp/btmp/lastlog are never written), apt lists, root's home,
# an empty /opt, /etc/netns hidden (every host's own files are already bound over /etc by `ip netns exec`; the others'
# would be N private host keys in each host's /etc), then sshd.
HOST_INIT = """
hostname "$0"
for f in /var/log/wtmp /var/log/btmp /var/log/lastlog; do
  [ -e "$f" ] && mount --bind "$NA_LOGS/$(basename "$f")" "$f"
done
[ -z "$NA_LISTS" ] || mount --bind "$NA_LISTS" /var/lib/apt/lists
mount --bind "$NA_HOME" /root
mount -t tmpfs -o size=1m,mode=755 nabench-opt /opt
mount -t tmpfs -o size=1m,mode=755 nabench-hide /etc/netns
"$@" &
child=$!
trap 'kill "$child" 2>/dev/null' TERM INT
wait "$child"
"""
APT_LISTS = Path("/var/lib/apt/lists")
BASE_FILES = Path("/usr/share/base-files")


def uncompressed_lists(dest: Path) -> Path:
    """This machine's apt lists as a stock Debian/Ubuntu VM keeps them: uncompressed (Docker-derived
    images, like this lab machine, set Acquire::GzipIndexes and keep them lz4/gz-compressed)."""
    dest.mkdir(parents=True)
    (dest / "partial").mkdir()
    for src in sorted(APT_LISTS.iterdir()):
        if not src.is_file() or src.name == "lock":
            continue
        name = src.name
        for suffix in (".lz4", ".gz", ".xz", ".bz2", ".zst"):
            if name.endswith(suffix):
                with open(dest / name[: -len(suffix)], "wb") as out:
                    subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", str(src)], stdout=out, check=True,
                                   timeout=300)
                break
        else:
            shutil.copy2(src, dest / name)
    return dest


def sh(argv: list[str], timeout: float = 60, check: bool = True,
       **kw: Any) -> subprocess.CompletedProcess[Any]:
    return subprocess.run(argv, timeout=timeout, check=check, capture_output=True, text=True, **kw)


def addr(i: int) -> str:
    return str(NET.network_address + 256 + i)  # 10.201.1.0 + i: clear of the bridge's 10.201.0.1


class Fleet:
    def __init__(self, n: int, work: Path, lists: Path | None) -> None:
        self.n = n
        self.work = work
        self.lists = lists
        self.procs: list[subprocess.Popen[Any]] = []
        self.names = [f"{NS_PREFIX}{i}" for i in range(n)]
        self.host_keys: list[str] = []
        self.created = False
        self.sshd_pids: list[int] = []

    # -- bring-up ------------------------------------------------------------------------------
    def up(self, client_pub: str) -> None:
        deadline = time.monotonic() + 10  # a bridge just deleted may keep its route for a moment
        while True:
            try:
                self._check_free()
                break
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        sh(["ip", "link", "add", BRIDGE, "type", "bridge"])
        self.created = True
        sh(["ip", "addr", "add", f"{NET.network_address + 1}/{NET.prefixlen}", "dev", BRIDGE])
        sh(["ip", "link", "set", BRIDGE, "up"])
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            self.host_keys = list(pool.map(lambda i: self._host(i, client_pub), range(self.n)))
        deadline = time.monotonic() + 60
        pending = set(range(self.n))
        while pending and time.monotonic() < deadline:
            for i in list(pending):
                with contextlib.suppress(OSError), socket.create_connection((addr(i), 22), timeout=0.5):
                    pending.discard(i)
            if pending:
                time.sleep(0.05)
        if pending:
            raise RuntimeError(f"{len(pending)} sshd hosts did not come up (e.g. {self.names[min(pending)]})")
        self.sshd_pids = [self._sshd_pid(proc.pid) for proc in self.procs]

    @staticmethod
    def _sshd_pid(top: int) -> int:
        for pid in _tree(top):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                    return pid  # the first one found from the top is the listening sshd
        raise RuntimeError(f"no sshd under process {top}")

    def _check_free(self) -> None:
        routes = sh(["ip", "-o", "-4", "route", "show", "table", "all"]).stdout
        for line in routes.splitlines():
            word = line.split()[0]
            with contextlib.suppress(ValueError):
                net = ipaddress.ip_network(word, strict=False)
                if net.prefixlen > 0 and net.overlaps(NET):
                    raise RuntimeError(f"{NET} is already routed on this machine ({line.strip()}): "
                                       f"not touching it")
        if Path("/sys/class/net", BRIDGE).exists():
            raise RuntimeError(f"bridge {BRIDGE} exists: another benchmark running, or left over "
                               f"(remove with: ip link del {BRIDGE})")

    def _host(self, i: int, client_pub: str) -> str:
        name, veth = self.names[i], f"nbv{i}"
        etc = ETC_NETNS / name
        ssh = etc / "ssh"
        (ssh / "authorized_keys").mkdir(parents=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"host-{i}", "-f",
            str(ssh / "ssh_host_ed25519_key")])
        (ssh / "sshd_config").write_text(SSHD_CONFIG.format(password="yes" if i % 3 == 0 else "no"))
        (ssh / "authorized_keys" / "root").write_text(client_pub + "\n")
        (etc / "hostname").write_text(f"bench-{i}\n")
        logs = self.work / "logs" / name
        logs.mkdir(parents=True)
        for f in ("wtmp", "btmp", "lastlog"):
            (logs / f).touch()
        # root's home as a fresh Debian VM has it (base-files' dotfiles), not this machine's: here it
        # holds developer tools whose .bashrc (pyenv init) costs ~0.09 s of CPU per SSH command, which
        # bash runs for every command sshd starts, and thousands of files for the key search.
        home = logs / "root-home"
        home.mkdir(mode=0o700)
        for dot in ("bashrc", "profile"):
            stock = BASE_FILES / f"dot.{dot}"
            if stock.is_file():
                shutil.copy(stock, home / f".{dot}")
        sh(["ip", "netns", "add", name])
        sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name])
        sh(["ip", "link", "set", veth, "master", BRIDGE, "up"])
        sh(["ip", "-n", name, "addr", "add", f"{addr(i)}/{NET.prefixlen}", "dev", "eth0"])
        sh(["ip", "-n", name, "link", "set", "eth0", "up"])
        sh(["ip", "-n", name, "link", "set", "lo", "up"])
        proc = subprocess.Popen(
            ["ip", "netns", "exec", name, "unshare", "--uts", "--pid", "--fork", "--mount-proc", "--",
             "sh", "-c", HOST_INIT, f"bench-{i}", SSHD, "-D", "-e", "-f", "/etc/ssh/sshd_config"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(logs / "sshd.log", "wb"),  # noqa: SIM115
            start_new_session=True,
            env={**os.environ, "NA_LOGS": str(logs), "NA_LISTS": str(self.lists) if self.lists else "",
                 "NA_HOME": str(home)},
        )
        self.procs.append(proc)
        return " ".join((ssh / "ssh_host_ed25519_key.pub").read_text().split()[:2])

    # -- teardown ------------------------------------------------------------------------------
    def down(self) -> None:
        if not self.created:  # never tear down a bridge or namespaces this run did not make
            return
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()

        def one(i: int) -> None:
            name = self.names[i]
            for pid in sh(["ip", "netns", "pids", name], check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            if Path("/sys/class/net", f"nbv{i}").exists():
                sh(["ip", "link", "del", f"nbv{i}"], check=False)
            if Path("/run/netns", name).exists():
                sh(["ip", "netns", "del", name], check=False)
            shutil.rmtree(ETC_NETNS / name, ignore_errors=True)

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(one, range(self.n)))
        if Path("/sys/class/net", BRIDGE).exists():
            sh(["ip", "link", "del", BRIDGE], check=False)
        with contextlib.suppress(OSError):
            ETC_NETNS.rmdir()


def host_cpu(fleet: Fleet) -> float:
    """CPU seconds used so far by the hosts' sshds and everything they ran (reaped children included).

    Each listening sshd reaps its sessions, which reap the shells and commands they started, so the
    own and children times of the listening sshds are the whole host-side cost, whatever else the
    machine runs at the same time.
    """
    ticks = 0
    for pid in fleet.sshd_pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", encoding="ascii") as fh:
                    todo.extend(int(c) for c in fh.read().split())
    return pids


def _status_kib(pid: int, field: str) -> int:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def timed(argv: list[str], env: dict[str, str] | None = None, stdout: Any = subprocess.DEVNULL,
          timeout: float = 3600) -> dict[str, float]:
    """Run argv; wall s, exit code, CPU s of the process tree, and its memory sampled every 20 ms:
    peak RSS of the main process (VmHWM), of its largest child, and of the whole tree at once."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.monotonic() + timeout
    main_hwm = child_hwm = tree_peak = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        tree = _tree(proc.pid)
        main_hwm = max(main_hwm, _status_kib(proc.pid, "VmHWM"))
        for child in tree[1:]:
            child_hwm = max(child_hwm, _status_kib(child, "VmHWM"))
        tree_peak = max(tree_peak, sum(_status_kib(p, "VmRSS") for p in tree))
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"{argv[0]} did not finish within {timeout:.0f} s")
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    rc = os.waitstatus_to_exitcode(status)
    if rc not in (0, 1, 2) and err:
        print(err[-2000:], file=sys.stderr)
    return {"wall": wall, "rc": rc, "cpu": usage.ru_utime + usage.ru_stime, "main_mb": main_hwm / 1024,
            "child_mb": child_hwm / 1024, "tree_mb": tree_peak / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--concurrency", type=int, default=50,
                    help="nectar-audit --concurrency, and ansible --forks")
    ap.add_argument("--no-ansible", action="store_true")
    ap.add_argument("--runs", type=int, default=1, help="nectar-audit runs on the same hosts (the median is "
                                                          "compared with Ansible's run)")
    ap.add_argument("--apt-lists", choices=("uncompressed", "as-is"), default="uncompressed",
                    help="uncompressed (default): hosts keep apt lists as a stock Debian VM does; as-is: "
                         "this machine's lz4-compressed lists, which make every host run apt-get -s "
                         "dist-upgrade (about 2 s of CPU per host here)")
    ap.add_argument("--jobs", type=int, default=None, help="nectar-audit --jobs (default: its own)")
    ap.add_argument("--keep-output", metavar="DIR", help="copy the JSON report here")
    ap.add_argument("--peer", metavar="SRC", help="the src directory of another checkout (e.g. a git worktree "
                                                  "of an earlier commit): each run is followed by one of its "
                                                  "code on the same hosts, and the ratios pair by pair are "
                                                  "printed (this code / the peer's)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    ansible = shutil.which("ansible")
    if not args.no_ansible and ansible is None:
        print("ansible not found: pip install ansible-core (or --no-ansible)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="nectar-fleet-bench-"))
    fleet = Fleet(args.hosts, work, None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        key = work / "id_ed25519"
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        if args.apt_lists == "uncompressed":
            fleet.lists = uncompressed_lists(work / "apt-lists")
        t0 = time.perf_counter()
        fleet.up((work / "id_ed25519.pub").read_text().strip())
        up_s = time.perf_counter() - t0
        known = work / "known_hosts"
        known.write_text("".join(f"{addr(i)} {k}\n" for i, k in enumerate(fleet.host_keys)))
        plain = work / "hosts.txt"
        plain.write_text("".join(f"root@{addr(i)}\n" for i in range(args.hosts)))
        report = work / "fleet.json"
        # This checkout's code, whatever nectar-audit the interpreter has installed.
        src = str(Path(__file__).resolve().parent.parent / "src")
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        tool_env = {**os.environ, "PYTHONPATH": path}
        tool = [sys.executable, "-m", "nectar_audit", "scan", "--inventory", str(plain),
                "--concurrency", str(args.concurrency), "--format", "json", "-o", str(report),
                "-i", str(key), "-F", "none", "--known-hosts", str(known), "--no-progress"]
        if args.jobs is not None:
            tool += ["--jobs", str(args.jobs)]
        print(f"{args.hosts} hosts up in {up_s:.1f} s (apt lists {args.apt_lists}); auditing with "
              f"concurrency {args.concurrency} ...", flush=True)
        runs = []
        peer_env = None
        if args.peer:
            peer_path = os.pathsep.join(p for p in (args.peer, os.environ.get("PYTHONPATH")) if p)
            peer_env = {**os.environ, "PYTHONPATH": peer_path}
        pairs: list[tuple[dict[str, float], dict[str, float]]] = []
        def run_side(env: dict[str, str]) -> tuple[dict[str, float], list[dict[str, Any]]]:
            c0 = host_cpu(fleet)
            side = timed(tool, env=env)
            side["far_cpu"] = host_cpu(fleet) - c0
            return side, json.loads(report.read_text())["hosts"]

        for i in range(args.runs):
            peer = None
            if peer_env is None:
                m, hosts = run_side(tool_env)
            elif i % 2 == 0:
                # The peer right after (or right before), on the same hosts: machine drift touches both
                # sides of a pair alike, and which goes first alternates from pair to pair.
                m, hosts = run_side(tool_env)
                peer, _ = run_side(peer_env)
            else:
                peer, _ = run_side(peer_env)
                m, hosts = run_side(tool_env)
            if peer is not None:
                pairs.append((m, peer))
            errors = [h for h in hosts if h["error"]]
            wall, rc, cpu, far_cpu = m["wall"], int(m["rc"]), m["cpu"], m["far_cpu"]
            print(f"nectar-audit: {wall:.2f} s wall for {len(hosts)} hosts = {len(hosts) / wall:.1f} hosts/s; "
                  f"peak RSS {m['main_mb']:.0f} MB (judge workers {m['child_mb']:.0f} MB each at most, "
                  f"{m['tree_mb']:.0f} MB all together); CPU: nectar-audit {cpu:.1f} s, hosts (sshd + gatherer) "
                  f"{far_cpu:.1f} s = {far_cpu / len(hosts):.2f} s/host; exit {rc}; {len(errors)} host errors",
                  flush=True)
            for h in errors[:5]:
                print(f"  {h['target']}: {h['error']}")
            if peer is not None:
                print(f"  peer: {peer['wall']:.2f} s wall, CPU nectar-audit {peer['cpu']:.1f} s, hosts "
                      f"{peer['far_cpu']:.1f} s, exit {int(peer['rc'])}", flush=True)
            runs.append(m)
        # The median run by wall time (the machine's other work makes single runs vary by ~10%).
        m = sorted(runs, key=lambda r: r["wall"])[len(runs) // 2]
        wall, cpu, far_cpu = m["wall"], m["cpu"], m["far_cpu"]
        if len(runs) > 1:
            print(f"nectar-audit median of {len(runs)} runs: {wall:.2f} s wall "
                  f"(min {min(r['wall'] for r in runs):.2f}, max {max(r['wall'] for r in runs):.2f}); "
                  f"peak RSS at most {max(r['main_mb'] for r in runs):.0f} MB, "
                  f"{max(r['tree_mb'] for r in runs):.0f} MB with the judges")
        if pairs:
            def median(values: list[float]) -> float:
                return sorted(values)[len(values) // 2]
            ratios = {k: median([a[k] / b[k] for a, b in pairs if b[k]]) for k in ("wall", "cpu", "far_cpu")}
            print(f"vs peer ({len(pairs)} pairs, median of the ratios this/peer): wall {ratios['wall']:.3f}, "
                  f"CPU nectar-audit {ratios['cpu']:.3f}, CPU hosts {ratios['far_cpu']:.3f}; peer median "
                  f"{median([b['wall'] for _, b in pairs]):.2f} s wall, "
                  f"{median([b['cpu'] for _, b in pairs]) / args.hosts:.3f} s CPU/host in nectar-audit")
        result: dict[str, Any] = {"hosts": args.hosts, "concurrency": args.concurrency,
                                  "apt_lists": args.apt_lists, "nectar_wall_s": wall,
                                  "nectar_walls_s": [r["wall"] for r in runs],
                                  "nectar_hosts_per_s": len(hosts) / wall,
                                  "nectar_peak_rss_mb": max(r["main_mb"] for r in runs),
                                  "nectar_worker_peak_rss_mb": max(r["child_mb"] for r in runs),
                                  "nectar_tree_peak_rss_mb": max(r["tree_mb"] for r in runs),
                                  "nectar_errors": len(errors), "nectar_cpu_s": cpu,
                                  "nectar_host_cpu_s": far_cpu}
        if not args.no_ansible:
            assert ansible is not None
            inv = work / "ansible.ini"
            inv.write_text("[bench]\n" + "".join(
                f"bench-{i} ansible_host={addr(i)}\n" for i in range(args.hosts)) +
                f"\n[bench:vars]\nansible_user=root\nansible_ssh_private_key_file={key}\n"
                "ansible_python_interpreter=/usr/bin/python3\n")
            env = {**os.environ, "ANSIBLE_HOME": str(work / "ansible-home"),
                   "ANSIBLE_LOCAL_TEMP": str(work / "ansible-local"),
                   "ANSIBLE_REMOTE_TEMP": str(work / "ansible-remote"),
                   "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "ansible-cp"),
                   "ANSIBLE_HOST_KEY_CHECKING": "True",
                   "ANSIBLE_SSH_ARGS": f"-C -o ControlMaster=auto -o ControlPersist=60s -F /dev/null "
                                       f"-o UserKnownHostsFile={known}",
                   "ANSIBLE_NOCOLOR": "1", "ANSIBLE_CONFIG": str(work / "none.cfg")}
            out = work / "ansible.out"
            print(f"ansible all -m setup --forks {args.concurrency} ...", flush=True)
            c0 = host_cpu(fleet)
            with open(out, "wb") as fh:
                a = timed([ansible, "all", "-i", str(inv), "-m", "setup", "--forks", str(args.concurrency),
                           "--one-line"], env=env, stdout=fh)
            a_wall, a_rc = a["wall"], int(a["rc"])
            text = out.read_text(errors="replace")
            ok = sum(1 for line in text.splitlines() if " | SUCCESS " in line)
            # Close Ansible's ControlPersist masters so the hosts' sshds reap (and count) those sessions.
            for sock in (work / "ansible-cp").glob("*"):
                sh(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench"], check=False, timeout=10)
            time.sleep(1.0)
            a_far = host_cpu(fleet) - c0
            print(f"ansible -m setup: {a_wall:.2f} s wall ({ok}/{args.hosts} hosts SUCCESS, exit {a_rc}); "
                  f"CPU on the hosts {a_far:.1f} s = {a_far / args.hosts:.2f} s/host")
            print(f"nectar-audit is {a_wall / wall:.1f}x faster than Ansible's fact gathering")
            # The hosts share this machine's CPUs with nectar-audit: a run takes at least all the CPU it
            # uses divided by the cores, whatever the concurrency.
            cores = os.cpu_count() or 1
            floor = (cpu + far_cpu) / cores
            print(f"CPU floor on {cores} cores: nectar-audit + hosts {cpu + far_cpu:.1f} s of CPU -> at least "
                  f"{floor:.1f} s of wall time ({far_cpu / cores:.1f} s for the hosts' side alone); 5x Ansible "
                  f"would be {a_wall / 5:.1f} s")
            result.update(ansible_wall_s=a_wall, ansible_ok=ok, ratio=a_wall / wall,
                          ansible_host_cpu_s=a_far, cpu_floor_s=floor, hosts_side_floor_s=far_cpu / cores)
        if args.keep_output:
            dest = Path(args.keep_output)
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(report, dest / "fleet.json")
        print(json.dumps(result))
        return 0
    finally:
        fleet.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
