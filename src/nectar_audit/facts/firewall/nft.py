"""nftables: ``nft -j list ruleset`` (JSON) and ruleset files in nft syntax, into the firewall model.

The text reader (for ``/etc/nftables.conf`` of an offline image) turns each statement into the same
JSON-shaped expressions ``nft -j`` prints, so both go through one translator. It knows the statements
real hosts use; an unknown one becomes an undecidable match (the evaluator then says so) rather than an
error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from nectar_audit.facts.firewall.model import (
    PROTO_NUMBERS,
    Action,
    Addr,
    Chain,
    Const,
    CtState,
    Iface,
    IPNetwork,
    L4Proto,
    NfProto,
    Port,
    Pred,
    Rule,
    Ruleset,
    Table,
    TcpFlags,
    address_range,
)

PRIORITIES = {
    "raw": -300,
    "mangle": -150,
    "dstnat": -100,
    "filter": 0,
    "security": 50,
    "srcnat": 100,
    "out": 100,
    "in": -300,
}  # bridge family names too (rarely relevant here)
L4 = ("tcp", "udp", "sctp", "dccp", "udplite")
OTHER_L4 = ("icmp", "icmpv6", "igmp", "esp", "ah", "comp", "gre", "ipcomp", "vrrp", "ospf")

Json = Any


# --------------------------------------------------------------------------------------------------
# Rendering JSON expressions back to nft syntax (for evidence text and assumption keys)
def render_value(v: Json) -> str:
    if isinstance(v, bool):
        return "missing" if v is False else "exists"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return v if re.fullmatch(r"[@\w.:/*+-]+", v) else json.dumps(v)
    if isinstance(v, list):
        if (
            len(v) == 2
            and isinstance(v[1], dict)
            and len(v[1]) == 1
            and next(iter(v[1])) in ("accept", "drop", "jump", "goto", "return", "continue", "reject")
        ):
            return f"{render_value(v[0])} : {render_stmt(v[1])}"
        return ",".join(render_value(x) for x in v)
    if isinstance(v, dict):
        if "set" in v:
            items = v["set"] if isinstance(v["set"], list) else [v["set"]]
            return "{ " + ", ".join(render_value(x) for x in items) + " }"
        if "range" in v:
            a, b = v["range"]
            return f"{render_value(a)}-{render_value(b)}"
        if "prefix" in v:
            return f"{v['prefix'].get('addr')}/{v['prefix'].get('len')}"
        if "elem" in v:
            return render_value(v["elem"].get("val"))
        if "concat" in v:
            return " . ".join(render_value(x) for x in v["concat"])
        if len(v) == 1:
            ((k, val),) = v.items()
            return f"{k} {render_value(val)}" if val not in (None, {}) else str(k)
    return json.dumps(v, sort_keys=True)


def render_left(e: Json) -> str:
    if isinstance(e, dict):
        if "payload" in e:
            p = e["payload"]
            if "protocol" in p:
                return f"{p['protocol']} {p.get('field', '')}".strip()
            return f"@{p.get('base')},{p.get('offset')},{p.get('len')}"
        if "meta" in e:
            key = e["meta"].get("key", "")
            return key if key in ("iif", "iifname", "oif", "oifname", "mark") else f"meta {key}"
        if "ct" in e:
            return f"ct {e['ct'].get('key', '')}"
        if "fib" in e:
            f = e["fib"]
            return f"fib {' . '.join(f.get('flags', []))} {f.get('result', '')}"
        if "&" in e:
            a, b = e["&"]
            return f"{render_left(a)} & {render_value(b)}"
        if "concat" in e:
            return " . ".join(render_left(x) for x in e["concat"])
        if len(e) == 1:
            ((k, val),) = e.items()
            return f"{k} {render_value(val)}" if isinstance(val, (str, int)) else str(k)
    return render_value(e)


def render_match(m: Json) -> str:
    op = m.get("op", "==")
    opt = "" if op in ("==", "in") else f"{op} "
    return f"{render_left(m.get('left'))} {opt}{render_value(m.get('right'))}"


def render_stmt(s: Json) -> str:
    if not isinstance(s, dict) or len(s) != 1:
        return json.dumps(s)
    ((k, v),) = s.items()
    if k == "match":
        return render_match(v)
    if k in ("jump", "goto"):
        return f"{k} {v.get('target')}"
    if k == "vmap":
        return f"{render_left(v.get('key'))} vmap {render_value(v.get('data'))}"
    if k in (
        "counter",
        "log",
        "limit",
        "reject",
        "queue",
        "dnat",
        "snat",
        "masquerade",
        "redirect",
        "mangle",
        "quota",
        "xt",
        "set",
        "notrack",
        "ct count",
        "meter",
    ):
        if v in (None, {}):
            return str(k)
        if k == "xt" and isinstance(v, dict):
            return f"xt {v.get('type', '')} {v.get('name', '')}".strip()
        if k == "limit" and isinstance(v, dict):
            per = f"/{v['per']}" if v.get("per") else ""
            return f"limit rate {'over ' if v.get('inv') else ''}{v.get('rate')}{per}"
        if k == "counter":
            return "counter"
        return str(k)
    return str(k) if v is None else f"{k} {render_value(v)}"


def render_rule(expr: list[Json]) -> str:
    return " ".join(render_stmt(s) for s in expr)


# --------------------------------------------------------------------------------------------------
# JSON expressions -> predicates
class _Ctx:
    def __init__(self, table: Table, sets: Mapping[str, list[Json]], where: str = "") -> None:
        self.table = table
        self.sets = sets
        self.where = where  # "ip filter INPUT #3": tells apart opaque matches of different rules


def _flatten(v: Json, ctx: _Ctx) -> list[Json] | None:
    """Elements of a right-hand side (a value, an anonymous set, a named set); None if unknown."""
    if isinstance(v, str) and v.startswith("@"):
        elems = ctx.sets.get(v[1:])
        return None if elems is None else [_unelem(x) for x in elems]
    if isinstance(v, dict) and "set" in v:
        items = v["set"] if isinstance(v["set"], list) else [v["set"]]
        return [_unelem(x) for x in items]
    if isinstance(v, list):
        return [_unelem(x) for x in v]
    return [_unelem(v)]


def _unelem(x: Json) -> Json:
    if isinstance(x, dict) and "elem" in x and isinstance(x["elem"], dict):
        return x["elem"].get("val")
    return x


_SERVICES = {
    "ssh": 22,
    "http": 80,
    "https": 443,
    "domain": 53,
    "smtp": 25,
    "ntp": 123,
    "telnet": 23,
    "ftp": 21,
    "bootpc": 68,
    "bootps": 67,
    "dhcpv6-client": 546,
    "dhcpv6-server": 547,
    "mdns": 5353,
    "imap": 143,
    "imaps": 993,
    "pop3": 110,
    "pop3s": 995,
    "submission": 587,
    "submissions": 465,
    "smtps": 465,
    "snmp": 161,
    "ldap": 389,
    "ldaps": 636,
    "mysql": 3306,
    "postgresql": 5432,
    "rsync": 873,
    "microsoft-ds": 445,
    "netbios-ns": 137,
    "netbios-dgm": 138,
    "netbios-ssn": 139,
    "tftp": 69,
    "syslog": 514,
    "sunrpc": 111,
    "nfs": 2049,
    "kerberos": 88,
    "ipp": 631,
    "x11": 6000,
    "http-alt": 8080,
    "ssdp": 1900,
    "isakmp": 500,
    "ipsec-nat-t": 4500,
    "openvpn": 1194,
    "ms-wbt-server": 3389,
    "domain-s": 853,
    "llmnr": 5355,
    "zabbix-agent": 10050,
}


def _port_value(x: Json) -> tuple[int, int] | None:
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return (x, x)
    if isinstance(x, str):
        if x.isdigit():
            return (int(x), int(x))
        if x in _SERVICES:
            return (_SERVICES[x], _SERVICES[x])
        m = re.fullmatch(r"(\d+)-(\d+)", x)
        if m:
            return (int(m.group(1)), int(m.group(2)))
        return None
    if isinstance(x, dict) and "range" in x:
        a, b = (_port_value(y) for y in x["range"])
        if a is None or b is None:
            return None
        return (a[0], b[1])
    return None


def net_value(x: Json, family: int) -> IPNetwork | None:
    try:
        if isinstance(x, str):
            net = ipaddress.ip_network(x, strict=False)
        elif isinstance(x, dict) and "prefix" in x:
            net = ipaddress.ip_network(f"{x['prefix']['addr']}/{x['prefix']['len']}", strict=False)
        elif isinstance(x, dict) and "range" in x:
            nets = address_range(str(x["range"][0]), str(x["range"][1]))
            return nets[0] if len(nets) == 1 and nets[0].version == family else None
        else:
            return None
    except (ValueError, TypeError, KeyError):
        return None
    return net if net.version == family else None


def _nets(values: list[Json], family: int) -> list[IPNetwork] | None:
    out: list[IPNetwork] = []
    for x in values:
        if isinstance(x, dict) and "range" in x:
            try:
                out.extend(
                    n for n in address_range(str(x["range"][0]), str(x["range"][1])) if n.version == family
                )
                continue
            except (ValueError, TypeError):
                return None
        n = net_value(x, family)
        if n is None:
            return None
        out.append(n)
    return out


def _strings(values: list[Json]) -> list[str]:
    return [str(v) for v in values if isinstance(v, (str, int)) and not isinstance(v, bool)]


def match_preds(m: Json, ctx: _Ctx) -> list[Pred]:
    """One ``match`` expression -> predicates (a protocol implication plus the comparison)."""
    text = render_match(m)
    op = m.get("op", "==")
    left, right = m.get("left"), m.get("right")
    neg = op == "!="
    unknown: list[Pred] = [Const(text, None)]
    if op not in ("==", "!=", "in"):
        return unknown
    if not isinstance(left, dict):
        return unknown
    values = _flatten(right, ctx)
    if "payload" in left:
        p = left["payload"]
        proto, fieldname = p.get("protocol"), p.get("field")
        if proto in (*L4, "th") and fieldname in ("dport", "sport"):
            ranges = None if values is None else [_port_value(v) for v in values]
            if ranges is None or any(r is None for r in ranges):
                return [Port(text, fieldname, None if proto == "th" else proto, (), neg, unknown=True)]
            return [
                Port(
                    text,
                    fieldname,
                    None if proto == "th" else proto,
                    tuple(r for r in ranges if r is not None),
                    neg,
                )
            ]
        if proto in ("ip", "ip6") and fieldname in ("saddr", "daddr"):
            fam = 4 if proto == "ip" else 6
            nets = None if values is None else _nets(values, fam)
            if nets is None:
                return [Addr(text, fieldname, fam, (), neg, unknown=True)]
            return [Addr(text, fieldname, fam, tuple(nets), neg)]
        if (proto, fieldname) in (("ip", "protocol"), ("ip6", "nexthdr")):
            fam = 4 if proto == "ip" else 6
            names = _l4names(values)
            if names is None:
                return [NfProto(f"meta nfproto ipv{fam}", fam), Const(text, None)]
            return [NfProto(f"meta nfproto ipv{fam}", fam), L4Proto(text, frozenset(names), neg)]
        if proto == "tcp" and fieldname == "flags":
            flags = _strings(values or [])
            if op == "in" or (
                op == "==" and isinstance(right, str) and values is not None and len(values) == 1
            ):
                # "tcp flags syn": bits set
                return [TcpFlags(text, frozenset(), frozenset(flags), neg, any_of=True)]
            return [TcpFlags(text, frozenset(), frozenset(flags), neg, any_of=True)]
        if proto in L4 or proto in OTHER_L4 or proto == "th":
            if proto in ("icmp", "icmpv6", "igmp", "esp", "ah", "comp", "gre"):
                l4 = "ipv6-icmp" if proto == "icmpv6" else proto
                return [L4Proto(f"meta l4proto {l4}", frozenset({l4}))]
            return [
                L4Proto(f"meta l4proto {proto}", frozenset({proto}) if proto != "th" else frozenset(L4)),
                Const(text, None),
            ]
        if proto in ("ip", "ip6"):
            fam = 4 if proto == "ip" else 6
            return [NfProto(f"meta nfproto ipv{fam}", fam), Const(text, None)]
        return unknown
    if "&" in left:
        a, b = left["&"]
        if (
            isinstance(a, dict)
            and a.get("payload", {}).get("protocol") == "tcp"
            and a.get("payload", {}).get("field") == "flags"
        ):
            mask = frozenset(_strings(_flatten(b, ctx) or []))
            comp = frozenset(_strings(values or [])) if values else frozenset()
            if right == 0 or values == [0]:
                comp = frozenset()
            return [TcpFlags(text, mask, comp, neg)]
        if isinstance(a, dict) and "ct" in a and a["ct"].get("key") == "state":
            # "ct state & (established|related) != 0"
            states = frozenset(_strings(_flatten(b, ctx) or []))
            want_nonzero = (op == "!=" and right == 0) or (op == "==" and right != 0)
            return [CtState(text, states, not want_nonzero)]
        return unknown
    if "meta" in left:
        key = left["meta"].get("key")
        if key in ("l4proto",):
            names = _l4names(values)
            return unknown if names is None else [L4Proto(text, frozenset(names), neg)]
        if key == "nfproto":
            vals = _strings(values or [])
            fams = {4 if v in ("ipv4", "2") else 6 if v in ("ipv6", "10") else 0 for v in vals}
            if len(fams) != 1 or 0 in fams:
                return unknown
            fam = fams.pop()
            return [NfProto(text, fam if not neg else (6 if fam == 4 else 4))]
        if key == "protocol":
            vals = _strings(values or [])
            if vals and all(v in ("ip", "ip6") for v in vals) and len(vals) == 1:
                fam = 4 if vals[0] == "ip" else 6
                return [NfProto(text, fam if not neg else (6 if fam == 4 else 4))]
            return unknown
        if key in ("iif", "iifname"):
            names = _strings(values or [])
            if values is None or not names or (key == "iif" and any(n.isdigit() for n in names)):
                return unknown
            return [Iface(text, tuple(names), neg)]
        if key == "iiftype":
            vals = _strings(values or [])
            if vals == ["loopback"]:
                return [Iface(text, ("lo",), neg)]
            return unknown
        if key == "pkttype":
            types = set(_strings(values or []))
            if not types:
                return unknown
            return [Const(text, ("host" in types or "unicast" in types) != neg)]
        if key in ("oif", "oifname", "oiftype"):
            return [Const(text, neg)]  # no output interface on the input path
        if key == "mark":
            if values is not None and all(v == 0 or v == "0x00000000" for v in values):
                return [Const(text, not neg)]
            return unknown
        return unknown
    if "ct" in left:
        key = left["ct"].get("key")
        if key == "state":
            if values is None:
                return unknown
            return [CtState(text, frozenset(_strings(values)), neg)]
        if key == "status":
            statuses = set(_strings(values or []))
            if statuses and statuses <= {"dnat", "snat", "expected", "seen-reply", "assured", "dying"}:
                return [Const(text, neg)]  # a new connection to this host has none of these
            return unknown
        if key == "direction":
            dirs = set(_strings(values or []))
            return [Const(text, ("original" in dirs) != neg)] if dirs else unknown
        return unknown
    if "fib" in left:
        f = left["fib"]
        result, fib_flags = f.get("result"), set(f.get("flags", []))
        if result == "oif" and "saddr" in fib_flags and right is False:
            return [Const(text, neg)]  # reverse-path check: a routable source is not "missing"
        if result == "type" and fib_flags == {"daddr"} and values is not None:
            types = set(_strings(values))
            return [Const(text, ("local" in types) != neg)]
        if result == "type" and "saddr" in fib_flags and values is not None:
            types = set(_strings(values))
            return [Const(text, ("unicast" in types) != neg)]
        return unknown
    return unknown


def _l4names(values: list[Json] | None) -> list[str] | None:
    if values is None:
        return None
    out = []
    for v in values:
        s = str(v)
        s = PROTO_NUMBERS.get(s, s)
        out.append("ipv6-icmp" if s == "icmpv6" else s)
    return out


_NON_TERMINAL = {
    "counter",
    "log",
    "mangle",
    "notrack",
    "set",
    "meter",
    "dup",
    "fwd",
    "flow",
    "secmark",
    "ct helper",
    "ct timeout",
    "ct expectation",
    "synproxy_",
    "tproxy_",
    "last",
    "map",
    "objref",
    "xt_target_log",
}


# Statements _stmt_to_rule_parts reads; any other may be a verdict.
_KNOWN_STMTS = _NON_TERMINAL | {
    "match",
    "accept",
    "drop",
    "continue",
    "return",
    "reject",
    "jump",
    "goto",
    "queue",
    "limit",
    "quota",
    "ct count",
    "vmap",
    "dnat",
    "snat",
    "masquerade",
    "redirect",
    "nat",
    "xt",
    "synproxy",
    "tproxy",
}


def _stmt_to_rule_parts(
    s: Json, ctx: _Ctx
) -> tuple[list[Pred], Action | None, list[tuple[Pred, Action]] | None]:
    """(preds, terminal action or None, vmap entries or None)."""
    if not isinstance(s, dict) or len(s) != 1:
        return [Const(json.dumps(s), None)], None, None
    ((k, v),) = s.items()
    text = render_stmt(s)
    if k == "match":
        return match_preds(v, ctx), None, None
    if k in ("accept", "drop", "continue", "return"):
        return [], Action(k, None, k), None
    if k == "reject":
        return [], Action("reject", None, text), None
    if k in ("jump", "goto"):
        return [], Action(k, str(v.get("target")), text), None
    if k == "queue":
        return [], Action("undecided", None, text), None
    if k == "limit":
        inv = isinstance(v, dict) and bool(v.get("inv"))
        return [Const(text, not inv)], None, None
    if k == "quota":
        inv = isinstance(v, dict) and bool(v.get("inv"))
        return [Const(text, not inv)], None, None
    if k == "ct count":
        inv = isinstance(v, dict) and bool(v.get("inv"))
        return [Const(text, not inv)], None, None
    if k == "vmap":
        entries = _vmap_entries(v, ctx)
        if entries is None:
            return [], Action("undecided", None, text), None
        return [], None, entries
    if k in ("dnat", "snat", "masquerade", "redirect", "nat"):
        return [], Action("accept", None, text), None  # nat statements end nat chains (filter ignores them)
    if k == "xt":
        if isinstance(v, dict) and v.get("type") == "target":
            if str(v.get("name", "")).upper() in ("LOG", "NFLOG", "MARK", "CONNMARK", "CT", "TCPMSS"):
                return [], None, None
            return [], Action("undecided", None, text), None
        if isinstance(v, dict) and str(v.get("name", "")) == "comment":
            return [], None, None
        # Options are not shown: two such matches are not the same condition.
        return [Const(f"{text} (options hidden, rule {ctx.where})", None)], None, None
    if k in _NON_TERMINAL or k in ("counter", "log"):
        return [], None, None
    if k == "synproxy" or k == "tproxy":
        return [], Action("undecided", None, text), None
    return [Const(text, None)], None, None


def _vmap_entries(v: Json, ctx: _Ctx) -> list[tuple[Pred, Action]] | None:
    key, data = v.get("key"), v.get("data")
    if isinstance(data, str) and data.startswith("@"):
        elems = ctx.sets.get(data[1:])
        if elems is None:
            return None
        pairs = elems
    elif isinstance(data, dict) and "set" in data:
        pairs = data["set"]
    else:
        return None
    out: list[tuple[Pred, Action]] = []
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            return None
        value, verdict = pair
        preds = match_preds({"op": "==", "left": key, "right": value}, ctx)
        if not isinstance(verdict, dict) or len(verdict) != 1:
            return None
        _, action, _ = _stmt_to_rule_parts(verdict, ctx)
        if action is None:
            return None
        pred = preds[-1] if len(preds) == 1 else _And(" ".join(p.text for p in preds), tuple(preds))
        out.append((pred, action))
    return out


class _And(Pred):
    def __init__(self, text: str, parts: tuple[Pred, ...]) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "parts", parts)

    def eval(self, pkt: Any) -> bool | None:
        result: bool | None = True
        for p in self.parts:  # type: ignore[attr-defined]
            v = p.eval(pkt)
            if v is False:
                return False
            if v is None:
                result = None
        return result


def build_rule(expr: list[Json], ctx: _Ctx, comment: str | None = None) -> Rule:
    preds: list[Pred] = []
    action = Action("continue", None, "")
    vmap: tuple[tuple[Pred, Action], ...] = ()
    unknown: list[str] = []
    for s in expr:
        p, a, vm = _stmt_to_rule_parts(s, ctx)
        preds.extend(p)
        if not isinstance(s, dict) or len(s) != 1 or next(iter(s)) not in _KNOWN_STMTS:
            unknown.append(render_stmt(s) if isinstance(s, dict) else json.dumps(s))
        if vm is not None:
            vmap = tuple(vm)
            break
        if a is not None:
            action = a
            break
    text = render_rule(expr)
    if unknown and action.kind == "continue" and not vmap:
        # A statement the reader does not know may be a verdict (it ends the rule): never assume it is not.
        action = Action("undecided", None, "; ".join(unknown))
    if comment:
        text += f' comment "{comment}"'
    return Rule(tuple(preds), action, text, vmap)


# --------------------------------------------------------------------------------------------------
# nft -j list ruleset
def _priority(v: Json) -> int:
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        m = re.fullmatch(r"\s*([a-z]+)?\s*(?:([+-])\s*(\d+))?\s*", v)
        if m and (m.group(1) or m.group(3)):
            base = PRIORITIES.get(m.group(1) or "", 0)
            off = int(m.group(3) or 0)
            return base + (off if m.group(2) != "-" else -off)
        try:
            return int(v)
        except ValueError:
            return 0
    return 0


def parse_nft_json(text: str, source: str = "command: nft -j list ruleset", backend: str = "nft") -> Ruleset:
    """The JSON of ``nft -j list ruleset``; ValueError if it is not that."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("nftables"), list):
        raise ValueError("not nft JSON output (no 'nftables' list)")
    return from_objects(data["nftables"], source, backend)


def from_objects(objects: Iterable[Json], source: str, backend: str) -> Ruleset:
    rs = Ruleset(source=source, backend=backend)
    tables: dict[tuple[str, str], Table] = {}
    sets: dict[tuple[str, str], dict[str, list[Json]]] = {}
    rules: list[Json] = []
    for obj in objects:
        if not isinstance(obj, dict) or len(obj) != 1:
            continue
        ((kind, body),) = obj.items()
        if not isinstance(body, dict):
            continue
        fam, tname = str(body.get("family", "")), str(body.get("table", body.get("name", "")))
        if kind == "table":
            tables.setdefault((fam, str(body.get("name"))), Table(fam, str(body.get("name"))))
        elif kind == "chain":
            t = tables.setdefault((fam, tname), Table(fam, tname))
            c = Chain(str(body.get("name")))
            if "hook" in body:
                c.hook = str(body["hook"])
                c.type = str(body.get("type", "filter"))
                c.priority = _priority(body.get("prio", 0))
                c.policy = str(body.get("policy", "accept"))
            existing = t.chains.get(c.name)
            if existing is None:
                t.chains[c.name] = c
            elif c.hook:
                existing.hook, existing.type, existing.priority, existing.policy = (
                    c.hook,
                    c.type,
                    c.priority,
                    c.policy,
                )
        elif kind in ("set", "map"):
            elems = body.get("elem")
            if elems is None:
                elems = []
            if not isinstance(elems, list):
                elems = [elems]
            sets.setdefault((fam, tname), {})[str(body.get("name"))] = elems
        elif kind == "rule":
            rules.append(body)
    for body in rules:
        fam, tname = str(body.get("family", "")), str(body.get("table", ""))
        t = tables.setdefault((fam, tname), Table(fam, tname))
        cname = str(body.get("chain", ""))
        chain = t.chains.setdefault(cname, Chain(cname))
        expr = body.get("expr", [])
        ctx = _Ctx(t, sets.get((fam, tname), {}), f"{fam} {tname} {cname} #{len(chain.rules) + 1}")
        try:
            if not isinstance(expr, list):
                raise TypeError("expr is not a list")
            chain.rules.append(build_rule(expr, ctx, body.get("comment")))
        except (AttributeError, TypeError, ValueError, KeyError, IndexError) as exc:
            # Never drop a rule silently: an unreadable rule makes the verdicts it can affect undecided.
            text = json.dumps(expr)[:200] if not isinstance(expr, str) else expr[:200]
            rs.errors.append(f"rule in {fam} {tname} {cname} not understood ({exc}): {text}")
            chain.rules.append(
                Rule(
                    (Const(f"unreadable rule {text}", None),),
                    Action("undecided", None, text),
                    f"unreadable rule: {text}",
                )
            )
    rs.tables = list(tables.values())
    return rs


# --------------------------------------------------------------------------------------------------
# nft syntax (ruleset files)
_TOKEN_RE = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # strings
    r"|\$[\w.-]+"  # variables
    r"|@[\w.-]+"  # set references
    r"|[{}();,:=&|!<>]"  # punctuation ("!=" "==" assembled below)
    r"|[^\s{}();,\"=!&|<>#]+"  # words (addresses with ':', '/', '.', ranges 1-2)
    r"|#[^\n]*"  # comments
    r"|\n"
)


class NftSyntaxError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.replace("\\\n", " ")
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            if text[pos] in " \t\r":
                pos += 1
                continue
            raise NftSyntaxError(f"cannot read character {text[pos]!r}")
        tok = m.group(0)
        pos = m.end()
        if tok.startswith("#"):
            continue
        if tok in ("=", "!", "<", ">") and pos < len(text) and text[pos] == "=":
            tok += "="
            pos += 1
        out.append(tok)
    return out


class _TextParser:
    """A small reader for ``table … { chain … { … } set … { … } }`` files, with define and include."""

    def __init__(self, files: Mapping[str, str], source: str) -> None:
        self.files = files
        self.source = source
        self.defines: dict[str, list[str]] = {}
        self.objects: list[Json] = []
        self.errors: list[str] = []
        self.depth = 0

    def parse_file(self, path: str) -> None:
        text = self.files.get(path)
        if text is None:
            self.errors.append(f"{path}: not gathered")
            return
        self.depth += 1
        if self.depth > 16:
            self.errors.append(f"{path}: includes nested too deep")
            self._unreadable(path, "includes nested too deep")
            self.depth -= 1
            return
        try:
            stmts = _split_statements(_tokens(text))
        except NftSyntaxError as exc:
            self.errors.append(f"{path}: {exc}")
            self._unreadable(path, str(exc))
            self.depth -= 1
            return
        for st in stmts:
            try:
                self._toplevel(st, path)
            except (NftSyntaxError, IndexError, ValueError, TypeError, AttributeError) as exc:
                text = " ".join(_flat(st))[:120]
                self.errors.append(f"{path}: {text}: {exc}")
                self._unreadable(path, text)
        self.depth -= 1

    def _unreadable(self, path: str, text: str) -> None:
        """Whatever could not be read may filter input: a chain that makes the verdicts undecided."""
        name = f"unreadable {path}"
        self.objects.append({"table": {"family": "inet", "name": name}})
        self.objects.append(
            {
                "chain": {
                    "family": "inet",
                    "table": name,
                    "name": "input",
                    "type": "filter",
                    "hook": "input",
                    "prio": 0,
                    "policy": "accept",
                }
            }
        )
        self.objects.append(
            {
                "rule": {
                    "family": "inet",
                    "table": name,
                    "chain": "input",
                    "expr": [{"queue": {"unreadable": text}}],
                }
            }
        )

    def _toplevel(self, st: list[Any], path: str) -> None:
        if not st:
            return
        head = st[0]
        if head == "include":
            pattern = st[1].strip('"') if isinstance(st[1], str) else ""
            import fnmatch

            matched = sorted(p for p in self.files if fnmatch.fnmatchcase(p, pattern))
            if not matched and not any(ch in pattern for ch in "*?["):
                self.errors.append(f"{path}: include {pattern} not found")
                self._unreadable(path, f"include {pattern} (not read)")
            for p in matched:
                self.parse_file(p)
            return
        if head == "define":
            name = st[1]
            body = _flat(st[3:]) if len(st) > 3 and st[2] == "=" else _flat(st[2:])
            self.defines[name] = body
            return
        if head in ("flush", "delete", "destroy"):
            if len(st) > 1 and st[1] == "ruleset":
                self.objects.append({"flush": "ruleset"})
            return
        if head in ("table", "add", "create") and "table" in st[:2]:
            words = [w for w in st if isinstance(w, str)]
            i = words.index("table")
            fam, name = (
                (words[i + 1], words[i + 2])
                if len(words) > i + 2 and words[i + 1] in ("ip", "ip6", "inet", "arp", "bridge", "netdev")
                else ("ip", words[i + 1])
            )
            self.objects.append({"table": {"family": fam, "name": name}})
            block = next((x for x in st if isinstance(x, list)), None)
            if block is not None:
                self._table_body(block, fam, name)
            return
        if head in ("add", "insert") and len(st) > 1 and st[1] in ("rule", "chain", "set", "element"):
            self._add_command(st, path)
            return
        self.errors.append(f"{path}: statement not understood: {' '.join(_flat(st))[:80]}")

    def _add_command(self, st: list[Any], path: str) -> None:
        words = _flat(st)
        kind = words[1]
        rest = words[2:]
        fam = "ip"
        if rest and rest[0] in ("ip", "ip6", "inet", "arp", "bridge", "netdev"):
            fam = rest.pop(0)
        tname, name = rest[0], rest[1] if len(rest) > 1 else ""
        if kind == "rule":
            expr = self._statement(rest[2:], fam)
            rule = {"family": fam, "table": tname, "chain": name, "expr": expr}
            if st[0] == "insert":
                self.objects.insert(0, {"rule": rule})
            else:
                self.objects.append({"rule": rule})
        elif kind == "chain":
            block = next((x for x in st if isinstance(x, list)), None)
            self._chain(name, block or [], fam, tname)
        elif kind == "set":
            block = next((x for x in st if isinstance(x, list)), None)
            self._set(name, block or [], fam, tname)

    def _table_body(self, block: list[Any], fam: str, tname: str) -> None:
        for st in _split_statements(block):
            if not st:
                continue
            if st[0] == "chain":
                body = next((x for x in st if isinstance(x, list)), [])
                self._chain(str(st[1]), body, fam, tname)
            elif st[0] in ("set", "map"):
                body = next((x for x in st if isinstance(x, list)), [])
                self._set(str(st[1]), body, fam, tname)
            elif st[0] in ("flags", "comment"):
                continue
            else:
                continue  # flowtable, counter objects, quotas: not part of the input path

    def _chain(self, name: str, block: list[Any], fam: str, tname: str) -> None:
        chain: dict[str, Any] = {"family": fam, "table": tname, "name": name}
        rules: list[Json] = []
        for st in _split_statements(block, ()):
            words = _flat(st)
            if not words:
                continue
            if words[0] == "type":
                # type filter hook input priority 0 ; (policy comes as its own statement)
                chain["type"] = words[1]
                if "hook" in words:
                    chain["hook"] = words[words.index("hook") + 1]
                if "priority" in words:
                    chain["prio"] = " ".join(words[words.index("priority") + 1 :])
                chain.setdefault("policy", "accept")
                continue
            if words[0] == "policy":
                chain["policy"] = words[1]
                continue
            if words[0] in ("comment", "devices", "device"):
                continue
            rules.append(
                {
                    "family": fam,
                    "table": tname,
                    "chain": name,
                    "expr": self._statement(words, fam),
                    "text": " ".join(words),
                }
            )
        self.objects.append({"chain": chain})
        self.objects.extend({"rule": r} for r in rules)

    def _set(self, name: str, block: list[Any], fam: str, tname: str) -> None:
        elems: list[Json] = []
        for st in _split_statements(block):
            words = st
            if words and words[0] == "elements":
                i = 1
                while i < len(words) and words[i] == "=":
                    i += 1
                vals = words[i] if i < len(words) else []
                if isinstance(vals, list):
                    elems.extend(self._set_elements(vals))
                else:
                    elems.extend(_word_value(w) for w in self._expand([str(vals)]))
        self.objects.append({"set": {"family": fam, "table": tname, "name": name, "elem": elems}})

    def _set_elements(self, block: list[Any]) -> list[Json]:
        out: list[Json] = []
        cur: list[Any] = []
        for tok in [*block, ","]:
            if tok in (",", "\n"):
                words = self._expand([w for w in cur if isinstance(w, str)])
                cur = []
                if not words:
                    continue
                if ":" in words and len(words) >= 3:
                    i = words.index(":")
                    key = _word_value(" ".join(words[:i]))
                    verdict_words = words[i + 1 :]
                    out.append([key, _verdict_json(verdict_words)])
                else:
                    for w in words:
                        out.append(_word_value(w))
            elif isinstance(tok, list):
                out.extend(self._set_elements(tok))
            else:
                cur.append(tok)
        return out

    def _expand(self, words: list[str]) -> list[str]:
        out: list[str] = []
        for w in words:
            if w.startswith("$") and w[1:] in self.defines:
                out.extend(self._expand(self.defines[w[1:]]))
            else:
                out.append(w)
        return out

    def _value(self, words: list[str]) -> list[Json]:
        return [_word_value(w) for w in words]

    def _statement(self, words: list[str], fam: str) -> list[Json]:
        return _rule_words_to_json(self._expand(words), self)


def _word_value(w: str) -> Json:
    w = w.strip('"')
    if w.isdigit():
        return int(w)
    m = re.fullmatch(r"([0-9a-fA-F:.]+)/(\d+)", w)
    if m:
        return {"prefix": {"addr": m.group(1), "len": int(m.group(2))}}
    m = re.fullmatch(r"(\d+)-(\d+)", w)
    if m:
        return {"range": [int(m.group(1)), int(m.group(2))]}
    m = re.fullmatch(r"([0-9.]+)-([0-9.]+)", w)
    if m and m.group(1).count(".") == 3:
        return {"range": [m.group(1), m.group(2)]}
    return w


def _verdict_json(words: list[str]) -> Json:
    if not words:
        return {"continue": None}
    if words[0] in ("jump", "goto") and len(words) > 1:
        return {words[0]: {"target": words[1]}}
    if words[0] in ("accept", "drop", "return", "continue"):
        return {words[0]: None}
    if words[0] == "reject":
        return {"reject": None}
    return {"queue": None}


_BLOCK_HEADS = (
    "table",
    "chain",
    "set",
    "map",
    "add",
    "create",
    "flowtable",
    "counter",
    "quota",
    "ct",
    "limit",
    "secmark",
    "synproxy",
)


def _split_statements(toks: list[Any], block_heads: tuple[str, ...] = _BLOCK_HEADS) -> list[list[Any]]:
    """Nest braces/parens into lists and split on newlines / semicolons at this level."""
    nested = _nest(toks) if toks and not any(isinstance(t, list) for t in toks) else toks
    out: list[list[Any]] = []
    cur: list[Any] = []
    for t in nested:
        if t in ("\n", ";"):
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(t)
            if isinstance(t, list) and cur and cur[0] in block_heads:
                # a block ends the statement
                out.append(cur)
                cur = []
    if cur:
        out.append(cur)
    return out


def _nest(toks: list[str]) -> list[Any]:
    root: list[Any] = []
    stack: list[list[Any]] = [root]
    for t in toks:
        if t in ("{", "("):
            new: list[Any] = []
            stack[-1].append(new)
            stack.append(new)
        elif t in ("}", ")"):
            if len(stack) == 1:
                raise NftSyntaxError("unbalanced '}'")
            stack.pop()
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise NftSyntaxError("unbalanced '{'")
    return root


def _flat(st: list[Any]) -> list[str]:
    out: list[str] = []
    for t in st:
        if isinstance(t, list):
            inner = [x for x in _flat(t) if x != "\n"]
            out.append("{ " + " ".join(inner) + " }")
        elif t != "\n":
            out.append(str(t))
    return out


# Words of one rule -> JSON statements like nft -j prints.
_PAYLOAD_PROTOS = {
    "ip",
    "ip6",
    "tcp",
    "udp",
    "th",
    "sctp",
    "dccp",
    "udplite",
    "icmp",
    "icmpv6",
    "igmp",
    "esp",
    "ah",
    "ether",
    "vlan",
    "arp",
}
_META_KEYS = {
    "iif",
    "iifname",
    "oif",
    "oifname",
    "mark",
    "iiftype",
    "oiftype",
    "skuid",
    "skgid",
    "priority",
    "length",
    "protocol",
    "nfproto",
    "l4proto",
    "pkttype",
    "cpu",
    "iifgroup",
    "oifgroup",
    "cgroup",
    "random",
    "time",
    "day",
    "hour",
}
_OPS = {"==", "!=", "<", ">", "<=", ">=", "eq", "ne", "lt", "gt", "le", "ge"}
_OPMAP = {"eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="}


def _rhs(word: str) -> Json:
    if word.startswith("{ ") and word.endswith(" }"):
        inner = word[2:-2].strip()
        parts = [p.strip() for p in inner.replace("\n", ",").split(",") if p.strip()]
        elems: list[Json] = []
        for p in parts:
            if " : " in f" {p} ":
                continue
            elems.append(_word_value(p))
        return {"set": elems}
    if "," in word and not word.startswith("@"):
        return [_word_value(p) for p in word.split(",") if p]
    return _word_value(word)


def _join_lists(words: list[str]) -> list[str]:
    """'established , related' -> 'established,related'; 'fin | syn' -> 'fin|syn'."""
    out: list[str] = []
    i = 0
    while i < len(words):
        w = words[i]
        if w in (",", "|") and out and i + 1 < len(words):
            out[-1] = out[-1] + w + words[i + 1]
            i += 2
            continue
        out.append(w)
        i += 1
    return out


def _rule_words_to_json(words: list[str], parser: _TextParser | None = None) -> list[Json]:
    words = _join_lists(words)
    out: list[Json] = []
    i = 0
    n = len(words)

    def take_rhs(j: int) -> tuple[str, Json, int]:
        op = "=="
        if j < n and words[j] in _OPS:
            op = _OPMAP.get(words[j], words[j])
            j += 1
        if j >= n:
            raise NftSyntaxError("value missing")
        return op, _rhs(words[j]), j + 1

    while i < n:
        w = words[i]
        if w in ("accept", "drop", "continue", "return"):
            out.append({w: None})
            i += 1
            continue
        if w == "reject":
            out.append({"reject": None})
            break
        if w in ("jump", "goto"):
            out.append({w: {"target": words[i + 1]}})
            i += 2
            continue
        if w in ("queue",):
            out.append({"queue": None})
            break
        if w == "counter":
            i += 1
            while i < n and words[i] in ("packets", "bytes"):
                i += 2
            out.append({"counter": None})
            continue
        if w == "log":
            i += 1
            while i < n and words[i] in ("prefix", "level", "flags", "group", "snaplen", "queue-threshold"):
                i += 2
            out.append({"log": None})
            continue
        if w == "limit":
            inv = i + 2 < n and words[i + 2] == "over"
            j = i + 2 + (1 if inv else 0)
            rate = words[j] if j < n else ""
            j += 1
            while j < n and words[j] in ("burst", "packets", "bytes", "/"):
                j += 2 if words[j] == "burst" else 1
            out.append({"limit": {"rate": rate, "inv": inv}})
            i = j
            continue
        if w == "comment":
            i += 2
            continue
        if w in ("dnat", "snat", "masquerade", "redirect"):
            out.append({w: None})
            break
        if w == "notrack":
            out.append({"notrack": None})
            i += 1
            continue
        if w == "ct" and i + 1 < n:
            key = words[i + 1]
            if key == "count":
                inv = i + 2 < n and words[i + 2] == "over"
                out.append({"ct count": {"inv": inv}})
                i += 3 + (1 if inv else 0)
                continue
            if i + 2 < n and words[i + 2] == "set":
                out.append({"mangle": None})
                i += 4
                continue
            if i + 2 < n and words[i + 2] == "vmap":
                out.append({"vmap": {"key": {"ct": {"key": key}}, "data": _vmap_rhs(words[i + 3], parser)}})
                i += 4
                continue
            op, rhs, j = take_rhs(i + 2)
            out.append({"match": {"op": op, "left": {"ct": {"key": key}}, "right": rhs}})
            i = j
            continue
        if w == "fib":
            j = i + 1
            flags = [words[j]] if j < n else []
            j += 1
            while j + 1 < n and words[j] == ".":
                flags.append(words[j + 1])
                j += 2
            result = words[j] if j < n else ""
            op, rhs, j = take_rhs(j + 1)
            if rhs == "missing":
                rhs = False
            out.append(
                {"match": {"op": op, "left": {"fib": {"result": result, "flags": flags}}, "right": rhs}}
            )
            i = j
            continue
        if w == "meta" and i + 1 < n:
            key = words[i + 1]
            if i + 2 < n and words[i + 2] == "set":
                out.append({"mangle": None})
                i += 4
                continue
            if i + 2 < n and words[i + 2] == "vmap":
                out.append({"vmap": {"key": {"meta": {"key": key}}, "data": _vmap_rhs(words[i + 3], parser)}})
                i += 4
                continue
            op, rhs, j = take_rhs(i + 2)
            out.append({"match": {"op": op, "left": {"meta": {"key": key}}, "right": rhs}})
            i = j
            continue
        if w in _META_KEYS and w not in ("ip", "ip6"):
            if i + 1 < n and words[i + 1] == "vmap":
                out.append({"vmap": {"key": {"meta": {"key": w}}, "data": _vmap_rhs(words[i + 2], parser)}})
                i += 3
                continue
            op, rhs, j = take_rhs(i + 1)
            out.append({"match": {"op": op, "left": {"meta": {"key": w}}, "right": rhs}})
            i = j
            continue
        if w in _PAYLOAD_PROTOS and i + 1 < n:
            field = words[i + 1]
            if field == "flags" and w == "tcp":
                # tcp flags syn | tcp flags & (fin|syn|rst|ack) == syn | tcp flags syn / fin,syn,rst,ack
                j = i + 2
                if j < n and words[j] == "&":
                    mask = words[j + 1]
                    mask_vals = [x for x in re.split(r"[|{}() ]+", mask) if x]
                    op, rhs, j = take_rhs(j + 2)
                    rv = rhs if not isinstance(rhs, str) else [x for x in rhs.split("|") if x]
                    out.append(
                        {
                            "match": {
                                "op": op,
                                "left": {
                                    "&": [{"payload": {"protocol": "tcp", "field": "flags"}}, mask_vals]
                                },
                                "right": rv,
                            }
                        }
                    )
                    i = j
                    continue
                op, rhs, j = take_rhs(j)
                if isinstance(rhs, str) and "|" in rhs:
                    rhs = rhs.split("|")
                if j < n and words[j] == "/":
                    mask_vals = [x for x in words[j + 1].split(",") if x]
                    vals = rhs if isinstance(rhs, list) else [rhs]
                    out.append(
                        {
                            "match": {
                                "op": op,
                                "left": {
                                    "&": [{"payload": {"protocol": "tcp", "field": "flags"}}, mask_vals]
                                },
                                "right": vals,
                            }
                        }
                    )
                    i = j + 2
                    continue
                out.append(
                    {
                        "match": {
                            "op": "in" if op == "==" else op,
                            "left": {"payload": {"protocol": "tcp", "field": "flags"}},
                            "right": rhs,
                        }
                    }
                )
                i = j
                continue
            if i + 2 < n and words[i + 2] == "vmap":
                out.append(
                    {
                        "vmap": {
                            "key": {"payload": {"protocol": w, "field": field}},
                            "data": _vmap_rhs(words[i + 3], parser),
                        }
                    }
                )
                i += 4
                continue
            if field == "." or (i + 2 < n and words[i + 2] == "."):
                out.append({"match": {"op": "==", "left": {"concat": []}, "right": " ".join(words[i:])}})
                break
            op, rhs, j = take_rhs(i + 2)
            out.append(
                {"match": {"op": op, "left": {"payload": {"protocol": w, "field": field}}, "right": rhs}}
            )
            i = j
            continue
        # anything else: keep as an undecidable expression covering the rest of the words
        out.append({"unknown": " ".join(words[i:])})
        break
    return out


def _vmap_rhs(word: str, parser: _TextParser | None) -> Json:
    if word.startswith("@"):
        return word
    if word.startswith("{ ") and word.endswith(" }"):
        inner = word[2:-2]
        pairs: list[Json] = []
        for part in inner.split(","):
            if ":" not in part:
                continue
            k, _, v = part.rpartition(" : ") if " : " in part else part.partition(":")
            kv = k.strip()
            pairs.append([_word_value(kv), _verdict_json(v.split())])
        return {"set": pairs}
    return word


def parse_nft_text(files: Mapping[str, str], main: str, source: str | None = None) -> Ruleset:
    """A ruleset file in nft syntax (``/etc/nftables.conf``) with its includes, as ``nft -f`` loads it."""
    p = _TextParser(files, source or main)
    p.parse_file(main)
    objects: list[Json] = []
    for obj in p.objects:
        if "flush" in obj:
            objects = []  # "flush ruleset": what came before (in this file set) is gone
            continue
        if "rule" in obj and "text" in obj["rule"]:
            obj = {"rule": {k: v for k, v in obj["rule"].items() if k != "text"}}
        objects.append(obj)
    rs = from_objects(objects, source or main, "nft")
    rs.errors.extend(p.errors)
    return rs


def tables_named(rs: Ruleset, pred: Callable[[Table], bool]) -> list[Table]:
    return [t for t in rs.tables if pred(t)]
