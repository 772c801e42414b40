"""The cloud side of 18's port move: the instance's security groups let the new port in like 22.

Planned beside the host's remedy when ``fix --os-cloud NAME`` is given (shown in the plan before anything
is done), applied just before the host's first script runs, and undone with the run it belongs to:

- the instance behind the target is found among the project's ports (by the target's address, fixed or
  floating, or by the instance id the host reports: fix/cloud_facts.py ``find_instance``);
- every ingress rule of its groups that lets TCP 22 in gets a twin for the new port with the same remote
  prefix / remote group / address group and ethertype, unless a rule there already lets that in;
- with ``--close-old-port`` only, and only once a login on the new port is confirmed, the rules that open
  exactly 22/tcp are deleted (a group shared with other instances is named, with them, in the plan).

Every rule created or deleted is recorded on this machine under the host's run id
(``$XDG_STATE_HOME/nectar-audit/fix-cloud/RUN.json``): a failed confirmation and ``fix --undo RUN`` delete
the rules created and recreate the ones deleted. Only Neutron is called (no Nova).
"""

from __future__ import annotations

import ipaddress
import json
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nectar_audit.cloud.auth import CloudError, connect, explain
from nectar_audit.config import Config
from nectar_audit.fix.cloud_facts import find_instance, link, options, target_addresses
from nectar_audit.model import visible

CHECK = "Check-Security-18"
OLD = 22
RECORD_FORMAT = "nectar-audit-fix-cloud/1"
_TCP = ("tcp", "6")
_ANY_PROTO = (None, "", "any")
_KEYS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
         "remote_group_id", "remote_address_group_id")


def record_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nectar-audit" / "fix-cloud"


# -- rules --------------------------------------------------------------------------------------------
def rule_of(raw: Any, group_id: str | None = None) -> dict[str, Any]:
    """A rule (SDK resource or API dict) as a plain dict of the API's JSON names (plus id, group)."""
    get = raw.get if isinstance(raw, dict) else (lambda k, d=None: getattr(raw, k, d))
    out = {k: get(k) for k in _KEYS}
    if out["ethertype"] is None:  # openstacksdk's resources (dicts too) name it ether_type
        out["ethertype"] = get("ether_type") or getattr(raw, "ether_type", None)
    for k in ("port_range_min", "port_range_max"):
        value = out[k]
        out[k] = int(value) if value is not None and value != "" else None
    if out["protocol"] is not None:
        out["protocol"] = str(out["protocol"]).lower()
    out["id"] = get("id")
    out["security_group_id"] = get("security_group_id") or group_id
    return out


def normalized(rule: dict[str, Any]) -> tuple[Any, ...]:
    """What a rule lets in, without its id: two rules with the same key are the same rule."""
    prefix = rule.get("remote_ip_prefix")
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None  # Neutron treats "anywhere of the rule's family" and no prefix alike
    elif prefix:
        prefix = str(ipaddress.ip_network(prefix, strict=False))
    proto = rule.get("protocol")
    proto = "tcp" if proto == "6" else (None if proto in _ANY_PROTO else proto)
    return (rule.get("security_group_id"), rule.get("direction"), rule.get("ethertype"), proto,
            rule.get("port_range_min"), rule.get("port_range_max"), prefix, rule.get("remote_group_id"),
            rule.get("remote_address_group_id"))


def _admits_tcp(rule: dict[str, Any], port: int) -> bool:
    if rule.get("direction") != "ingress":
        return False
    if rule.get("protocol") not in (*_TCP, *_ANY_PROTO):
        return False
    lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
    if lo is None and hi is None:
        return True
    return (lo or 1) <= port <= (hi or lo or 65535)


def _same_source(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return normalized(a)[2:3] + normalized(a)[6:] == normalized(b)[2:3] + normalized(b)[6:]


def twin(rule: dict[str, Any], port: int) -> dict[str, Any]:
    """The rule for ``port`` from the same sources as ``rule`` (which lets 22 in)."""
    out = {k: rule.get(k) for k in _KEYS}
    out.update(protocol="tcp", port_range_min=port, port_range_max=port, id=None,
               security_group_id=rule["security_group_id"])
    return out


def describe(rule: dict[str, Any], groups: dict[str, str] | None = None) -> str:
    lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
    ports = "all ports" if lo is None and hi is None else (f"{lo}" if lo == hi else f"{lo}-{hi}")
    proto = rule.get("protocol") or "any protocol"
    names = groups or {}
    if rule.get("remote_group_id"):
        src = f"members of group {names.get(rule['remote_group_id'], rule['remote_group_id'])}"
    elif rule.get("remote_address_group_id"):
        src = f"address group {rule['remote_address_group_id']}"
    else:
        src = rule.get("remote_ip_prefix") or ("0.0.0.0/0" if rule.get("ethertype") == "IPv4" else "::/0")
    gid = rule.get("security_group_id") or "?"
    return (f"group {names.get(gid, gid)}: {rule.get('direction')} {rule.get('ethertype')} {proto}/{ports} "
            f"from {src}")


# -- the plan -----------------------------------------------------------------------------------------
@dataclass
class CloudPlan:
    """The security-group side of one host's port move (all Neutron data, no secrets)."""

    cloud: str
    port: int
    close_old: bool
    instance: str | None = None
    ports: list[str] = field(default_factory=list)
    groups: dict[str, str] = field(default_factory=dict)  # id -> name (the instance's groups)
    add: list[dict[str, Any]] = field(default_factory=list)  # new rules (each with ``like``: the 22 rule)
    present: list[dict[str, Any]] = field(default_factory=list)  # 22 rules whose twin exists already
    remove: list[dict[str, Any]] = field(default_factory=list)  # exact 22/tcp rules (only with close_old)
    kept: list[str] = field(default_factory=list)  # 22 rules that cannot be removed without more
    shared: dict[str, list[str]] = field(default_factory=dict)  # group id -> other instances using it
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def text(self) -> list[str]:
        v = visible
        head = f"  security groups (cloud {v(self.cloud)}"
        head += f", instance {v(self.instance)})" if self.instance else ")"
        out = [head + ":"]
        if self.error:
            return [*out, f"    REFUSED: {v(self.error)} (nothing is changed on the host either)"]
        for rule in self.add:
            out.append(f"    add: {v(describe(rule, self.groups))}  (like rule {v(str(rule.get('like')))} for 22)")
        for rule in self.present:
            out.append(f"    already open: {v(describe(rule, self.groups))}")
        if not self.add and not self.present and not self.remove:
            out.append(f"    no rule lets TCP {OLD} in: nothing to add for {self.port}")
        for rule in self.remove:
            out.append(f"    remove once a login on {self.port} is confirmed: {v(describe(rule, self.groups))} "
                       f"(rule {v(str(rule.get('id')))})")
        if not self.close_old and (self.add or self.present):
            out.append(f"    {OLD} stays open in the security groups: add --close-old-port to remove its rules "
                       f"once {self.port} works")
        for gid, who in self.shared.items():
            name = self.groups.get(gid, gid)
            lose = f", and lose {OLD} with --close-old-port" if self.close_old else ""
            out.append(f"    WARNING: group {v(name)} is shared with other instances: {v(', '.join(who))}; they "
                       f"get TCP {self.port} too{lose}")
        out += [f"    by hand: {v(k)}" for k in self.kept]
        out += [f"    note: {v(n)}" for n in self.notes]
        out.append("    recorded: every rule created or deleted is undone with the run (fix --undo RUN, or a "
                   "failed confirmation)")
        return out

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


def _neutron(what: str, call: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    try:
        return call(*args, **kw)
    except Exception as exc:  # openstacksdk raises many types; each becomes one sentence
        raise CloudError(explain(exc, what)) from None


def plan_for(conn: Any, cloud: str, target: Any, instance_id: str | None, port: int,
             close_old: bool) -> CloudPlan:
    """Read the project's ports and the instance's groups; say what the move changes in them."""
    plan = CloudPlan(cloud, port, close_old)
    try:
        _plan(conn, plan, target, instance_id)
    except CloudError as exc:
        plan.error = str(exc)
    return plan


def _plan(conn: Any, plan: CloudPlan, target: Any, instance_id: str | None) -> None:
    ports: list[Any] = _neutron("listing ports (Neutron)", lambda: list(conn.network.ports()))
    addresses = target_addresses(target)
    fips: list[Any] = _neutron("listing floating IPs (Neutron)", lambda: list(conn.network.ips())) if addresses \
        else []
    device = find_instance([(p.id, p.device_id, [str(ip.get("ip_address")) for ip in p.fixed_ips or ()])
                            for p in ports], [(f.port_id, f.floating_ip_address) for f in fips],
                           addresses, instance_id)
    plan.instance = device
    mine = [p for p in ports if p.device_id == device]
    plan.ports = [p.id for p in mine]
    if any(p.is_port_security_enabled is False for p in mine):
        plan.notes.append("port security is disabled on a port of the instance: Neutron filters nothing there")
    gids = sorted({g for p in mine for g in p.security_group_ids or ()})
    rules: list[dict[str, Any]] = []
    for gid in gids:
        group = _neutron(f"reading security group {gid} (Neutron)", conn.network.get_security_group, gid)
        plan.groups[gid] = group.name or gid
        rules += [rule_of(r, gid) for r in group.security_group_rules or ()]
    # Names of remote groups, for readable plans.
    for r in rules:
        rg = r.get("remote_group_id")
        if rg and rg not in plan.groups:
            try:
                plan.groups[rg] = conn.network.get_security_group(rg).name or rg
            except Exception:
                plan.groups[rg] = rg
    opens_old = [r for r in rules if _admits_tcp(r, OLD)]
    seen: set[tuple[Any, ...]] = set()
    for r in opens_old:
        new = twin(r, plan.port)
        covered = any(o["security_group_id"] == r["security_group_id"] and _admits_tcp(o, plan.port)
                      and _same_source(o, new) for o in rules)
        if covered:
            plan.present.append(r)
        elif normalized(new) not in seen:
            seen.add(normalized(new))
            plan.add.append({**new, "like": r["id"]})
        if not plan.close_old:
            continue
        exact = (r.get("protocol") in _TCP and r.get("port_range_min") == OLD and r.get("port_range_max") == OLD)
        if exact:
            plan.remove.append(r)
        else:
            plan.kept.append(f"{describe(r, plan.groups)} (rule {r['id']}) lets in more than {OLD}: it stays; "
                             f"narrow it yourself if {OLD} must close")
    for gid in gids:
        others = sorted(((p.device_id or f"port {p.id}", p) for p in ports
                         if p.device_id != device and gid in (p.security_group_ids or ())), key=lambda t: str(t[0]))
        if others:
            names = []
            for dev, p in others:
                ips = ", ".join(str(ip.get("ip_address")) for ip in p.fixed_ips or ())
                names.append(f"instance {dev} (port {p.id}{', ' + ips if ips else ''})")
            plan.shared[gid] = names


def attach(fix: Any, config: Config, named: set[str]) -> Any:
    """Plan the cloud side for ``fix`` (a HostFix) when --os-cloud and 18's move are asked for."""
    opts = options(config)
    cloud = opts.get("os_cloud")
    if not cloud or fix.error:
        return fix
    remedy = next((r for r in fix.to_apply(named) if r.check == CHECK and r.confirm_port), None)
    if remedy is None:
        return fix
    identity = fix.before.extra.get("identity", {}) if fix.before is not None else {}
    lk = link(config)
    assert lk is not None
    with lk.lock:  # the run's one connection: its calls one at a time
        try:
            conn = lk.connection()
        except CloudError as exc:
            fix.cloud = CloudPlan(str(cloud), int(remedy.confirm_port), bool(opts.get("close_old_port")),
                                  error=str(exc))
            return fix
        fix.cloud = plan_for(conn, str(cloud), fix.target, identity.get("instance_id"), int(remedy.confirm_port),
                             bool(opts.get("close_old_port")))
    return fix


# -- applying and undoing -----------------------------------------------------------------------------
class Record:
    """What one host run changed in the cloud, saved after every call (the undo's source of truth)."""

    def __init__(self, run_id: str, cloud: str, target: str, directory: Path | None = None, host: str = "") -> None:
        self.path = (directory or record_dir()) / f"{run_id}.json"
        # "kept" turns true once the host's run is known to stay; a record left neither kept nor undone
        # is a controller that stopped in between (killed, network gone): ``reconcile`` settles it.
        self.data: dict[str, Any] = {"format": RECORD_FORMAT, "run": run_id, "cloud": cloud, "target": target,
                                     "host": host, "created": [], "deleted": [], "undone": False, "kept": False}

    @classmethod
    def load(cls, run_id: str, directory: Path | None = None) -> Record | None:
        rec = cls(run_id, "", "", directory)
        try:
            data = json.loads(rec.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
            return None
        rec.data = data
        return rec

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".rec.", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            json.dump(self.data, out, indent=1)
        os.replace(tmp, self.path)


def _create(conn: Any, rule: dict[str, Any], why: str) -> dict[str, Any]:
    kw = {k: rule[k] for k in _KEYS if rule.get(k) is not None}
    kw["security_group_id"] = rule["security_group_id"]
    made = _neutron("creating a security group rule (Neutron)", conn.network.create_security_group_rule,
                    description=why[:255], **kw)
    return rule_of(made, rule["security_group_id"])


def open_new(conn: Any, plan: CloudPlan, record: Record) -> str | None:
    """Create the plan's new rules (re-checked against Neutron now); None, or what went wrong."""
    try:
        for rule in plan.add:
            group = _neutron("reading a security group (Neutron)", conn.network.get_security_group,
                         rule["security_group_id"])
            now = [rule_of(r, group.id) for r in group.security_group_rules or ()]
            if any(_admits_tcp(o, plan.port) and _same_source(o, rule) for o in now):
                continue  # added since the plan (or by an earlier run): nothing to do
            made = _create(conn, rule, f"nectar-audit fix 18: SSH moved to {plan.port} (like rule {rule.get('like')})")
            record.data["created"].append(made)
            record.save()
    except CloudError as exc:
        return str(exc)
    return None


def close_old(conn: Any, plan: CloudPlan, record: Record) -> str | None:
    """Delete the plan's exact 22/tcp rules (the new port is confirmed by now)."""
    try:
        for rule in plan.remove:
            current = _neutron("reading a security group rule (Neutron)", conn.network.find_security_group_rule,
                               rule["id"], ignore_missing=True)
            if current is None:
                continue
            record.data["deleted"].append(rule_of(current, rule["security_group_id"]))
            record.save()
            _neutron("deleting a security group rule (Neutron)", conn.network.delete_security_group_rule,
                     rule["id"], ignore_missing=True)
    except CloudError as exc:
        return str(exc)
    return None


def revert(conn: Any, record: Record) -> list[str]:
    """Undo a record: delete the rules it created, recreate the ones it deleted. Problems, if any."""
    problems: list[str] = []
    if record.data.get("undone"):
        return problems
    for rule in record.data.get("created", []):
        try:
            _neutron("deleting a security group rule (Neutron)", conn.network.delete_security_group_rule,
                     rule["id"], ignore_missing=True)
        except CloudError as exc:
            problems.append(str(exc))
    for rule in record.data.get("deleted", []):
        try:
            group = _neutron("reading a security group (Neutron)", conn.network.get_security_group,
                         rule["security_group_id"])
            now = {normalized(rule_of(r, group.id)) for r in group.security_group_rules or ()}
            if normalized(rule) not in now:
                _create(conn, rule, "nectar-audit fix 18: recreated by undo")
        except CloudError as exc:
            problems.append(str(exc))
    if not problems:
        record.data["undone"] = True
        record.save()
    return problems


@dataclass
class Session:
    """The cloud side of one host's apply: opened before the first script, closed after confirmation."""

    plan: CloudPlan
    conn: Any
    target: str
    record: Record | None = None
    messages: list[str] = field(default_factory=list)
    stays: bool = False
    host: str = ""
    # The run's shared connection is used by one host at a time (hosts are applied in parallel).
    lock: Any = field(default_factory=threading.RLock)

    def before_run(self, run_id: str) -> str | None:
        """The first run's hook: the new port is let in before the host listens on it."""
        self.record = Record(run_id, self.plan.cloud, self.target, host=self.host)
        with self.lock:
            problem = open_new(self.conn, self.plan, self.record)
        made = len(self.record.data["created"])
        if problem is not None:  # the caller's kept(False) removes what was made so far
            return f"security groups: {problem} (nothing changed on the host; rules made so far removed)"
        self.messages.append(f"security groups: {made} rule(s) added for TCP {self.plan.port}"
                             if made else f"security groups: TCP {self.plan.port} was let in already")
        return None

    def undo(self) -> None:
        if self.record is None:
            return
        with self.lock:
            problems = revert(self.conn, self.record)
        self.messages.append("security groups: " + ("; ".join(problems) if problems else
                                                    "the rules added were removed again"))

    def kept(self, stays: bool) -> None:
        """After the first run: its rules are reverted unless the run stays (confirmed, 18 applied)."""
        self.stays = stays
        if not stays:
            self.undo()
        elif self.record is not None:
            self.record.data["kept"] = True
            self.record.save()

    def finish(self, run_id: str | None, confirmed: bool) -> None:
        """After the last phase, if it was confirmed: 22's rules removed (--close-old-port)."""
        if not (self.stays and confirmed) or not self.plan.remove or run_id is None:
            return
        record = self.record if self.record is not None and self.record.data["run"] == run_id else \
            Record(run_id, self.plan.cloud, self.target, host=self.host)
        record.data["kept"] = True  # confirmed already: 22's rules go for good
        with self.lock:
            problem = close_old(self.conn, self.plan, record)
        gone = len(record.data["deleted"])
        self.messages.append(f"security groups: {gone} rule(s) for {OLD} removed" + (
            f"; stopped: {problem}" if problem else ""))


def start(fix: Any, config: Config | None = None) -> Session | None:
    """A Session for ``fix`` when its plan has a cloud side with anything to change (on the run's
    connection when ``config`` carries one)."""
    plan = getattr(fix, "cloud", None)
    if not isinstance(plan, CloudPlan) or plan.error is not None or not (plan.add or plan.remove):
        return None
    lk = link(config) if config is not None else None
    if lk is not None and lk.cloud != plan.cloud:
        lk = None
    try:
        conn = lk.connection() if lk is not None else connect(plan.cloud)
    except CloudError as exc:
        plan.error = str(exc)
        return None
    session = Session(plan, conn, str(fix.name), host=host_of(fix.target))
    if lk is not None:
        session.lock = lk.lock
    return session


def undo_run(run_id: str, cloud: str | None, directory: Path | None = None) -> list[str]:
    """``fix --undo``'s cloud half: revert the record of ``run_id`` if there is one (lines to print)."""
    record = Record.load(run_id, directory)
    if record is None or record.data.get("undone"):
        return []
    name = cloud or str(record.data.get("cloud") or "")
    try:
        conn = connect(name or None)
    except CloudError as exc:
        return [f"security groups: not reverted ({exc}); the changes are listed in {record.path}"]
    problems = revert(conn, record)
    if problems:
        return [f"security groups: {p}" for p in problems]
    made, gone = len(record.data.get("created", [])), len(record.data.get("deleted", []))
    return [f"security groups: {made} rule(s) added by run {run_id} removed, {gone} deleted rule(s) recreated"]


def has_records() -> bool:
    """Whether any run changed a cloud from this machine (else ``fix --undo`` need not ask the host)."""
    return any(record_dir().glob("*.json"))


def newest_open(runs: Sequence[tuple[str, str, str]]) -> str | None:
    """The run ``fix --undo`` without RUN undoes: the newest not undone yet."""
    live = sorted(r for r, state, _n in runs if state in ("applied", "pending"))
    return live[-1] if live else None


def host_of(target: Any) -> str:
    """The host a target reaches (its address or name, without user or port): records match on it, so
    ``user@host`` and ``user@host:2222`` after the move are the same instance."""
    return str(getattr(target, "host", None) or getattr(target, "name", ""))


def unsettled(target: Any, directory: Path | None = None) -> list[Record]:
    """Records of runs on ``target``'s host whose controller stopped before the run was decided."""
    host = host_of(target)
    found = []
    for path in sorted((directory or record_dir()).glob("*.json")):
        record = Record.load(path.stem, directory)
        if record is not None and record.data.get("host") == host and not record.data.get("undone") \
                and record.data.get("kept") is False:
            found.append(record)
    return found


def reconcile(records: Sequence[Record], runs: Sequence[tuple[str, str, str]], cloud: str | None,
              settle: bool) -> list[str]:
    """The cloud side of ``records`` (``unsettled``: runs on one host whose controller stopped half-way),
    from what the host says of each run (``runs``, as ``list_runs``). A run the host undid (its dead-man
    timer fired) or never started should lose the rules it added; a run that stays keeps them; a pending
    run is left to its timer. With ``settle`` (``fix --apply --os-cloud``) that is done; without
    (``fix --runs``) it is said. Lines to print."""
    lines: list[str] = []
    states = {run: state for run, state, _n in runs}
    for record in records:
        run = str(record.data.get("run"))
        state = states.get(run)
        made, gone = len(record.data.get("created", [])), len(record.data.get("deleted", []))
        if state == "pending":
            lines.append(f"security groups: run {run} is not decided yet (the host's dead-man timer decides)")
            continue
        if state == "applied":
            if settle:
                record.data["kept"] = True
                record.save()
            lines.append(f"security groups: run {run} stayed on the host: the {made} rule(s) it added stay")
            continue
        why = "the host undid it" if state == "undone" else "the host never ran it"
        if not settle:
            lines.append(f"security groups: run {run} was left half-way by its controller and {why}; the {made} "
                         f"rule(s) it added are still there: `nectar-audit fix --undo {run} --os-cloud "
                         f"{cloud or record.data.get('cloud') or 'NAME'}` (or the next fix --apply --os-cloud) "
                         "removes them")
            continue
        try:
            conn = connect(cloud or str(record.data.get("cloud") or "") or None)
        except CloudError as exc:
            lines.append(f"security groups: run {run} ({why}) not settled ({exc}); the changes are listed in "
                         f"{record.path}")
            continue
        problems = revert(conn, record)
        lines.extend([f"security groups: run {run}: {p}" for p in problems] or [
            f"security groups: run {run} was left half-way by its controller and {why}: the {made} rule(s) it "
            "added were removed" + (f", {gone} deleted rule(s) recreated" if gone else "")])
    return lines
