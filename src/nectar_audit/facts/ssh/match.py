"""Match blocks: a connection situation, and OpenSSH's pattern and address matching (match.c, addrmatch.c)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from nectar_audit.facts.ssh.files import PROBE_ADDR, PROBE_ADDR6


@dataclass(frozen=True)
class Criterion:
    kind: str  # one of MATCH_CRITERIA, or an unknown name as written (lower-case)
    pattern: str = ""



@dataclass(frozen=True)
class Context:
    """One connection situation: who logs in, from where, to which local address and port."""

    user: str
    groups: tuple[str, ...] = ()
    addr: str = PROBE_ADDR
    host: str = PROBE_ADDR
    laddr: str = ""  # "": not given (sshd -T without laddr=: Match LocalAddress does not match)
    lport: int = 0  # 0: not given (Match LocalPort does not match)
    user_exists: bool = True
    unknown: bool = False  # how criteria this tool cannot evaluate (Match Version) are taken

    @property
    def is_probe(self) -> bool:
        """The connection the live sshd -T probe describes."""
        return (
            self.addr == PROBE_ADDR
            and self.host == PROBE_ADDR
            and not self.unknown
            and not self.laddr
            and not self.lport
        )

    def describe_source(self) -> str:
        parts = []
        if self.addr in (PROBE_ADDR, PROBE_ADDR6) and self.host in (PROBE_ADDR, PROBE_ADDR6):
            parts.append("from any address")
        elif self.host != self.addr:
            parts.append(f"from {self.addr} (host name {self.host})")
        else:
            parts.append(f"from {self.addr}")
        if self.laddr:
            parts.append(f"to {self.laddr}")
        if self.lport:
            parts.append(f"on port {self.lport}")
        return " ".join(parts)



# --------------------------------------------------------------------------------------------------
# Patterns (match.c, addrmatch.c)
# --------------------------------------------------------------------------------------------------
def match_pattern(string: str, pattern: str) -> bool:
    """OpenSSH's match_pattern: ``*`` and ``?`` wildcards, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, string, re.DOTALL) is not None


def match_pattern_list(string: str, patterns: str, dolower: bool = False) -> int:
    """1: a positive entry matched and no negated one; -1: a negated entry matched; 0: nothing."""
    got_positive = 0
    for sub in patterns.split(","):
        negated = sub.startswith("!")
        if negated:
            sub = sub[1:]
        if dolower:
            sub = sub.lower()
        if len(sub) >= 1023:
            return 0
        if match_pattern(string, sub):
            if negated:
                return -1
            got_positive = 1
    return got_positive


def _parse_cidr(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | str | None:
    """An address or network; "bad" when it looks like CIDR but is invalid; None for a wildcard."""
    try:
        return ipaddress.ip_network(entry, strict=True)
    except ValueError:
        pass
    if "/" in entry:
        head = entry.split("/", 1)[0]
        try:
            ipaddress.ip_address(head)
        except ValueError:
            return None
        return "bad"
    return None


def addr_match_list(addr: str | None, patterns: str) -> int:
    """1 match, 0 no match, -1 negated match, -2 invalid list (sshd: "Bad Match condition")."""
    try:
        ip = ipaddress.ip_address(addr) if addr is not None else None
    except ValueError:
        ip = None
    ret = 0
    for entry in patterns.split(","):
        neg = entry.startswith("!")
        if neg:
            entry = entry[1:]
        if not entry:
            return -2
        net = _parse_cidr(entry)
        if net == "bad":
            return -2
        if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            hit = ip is not None and ip.version == net.version and ip in net
        else:
            hit = addr is not None and match_pattern(addr, entry)
        if hit:
            if neg:
                return -1
            ret = 1
    return ret


def user_at_host_match(user: str, ctx: Context, pattern: str) -> bool:
    """DenyUsers/AllowUsers entry ``user`` or ``user@host`` (host: patterns or CIDR) against ctx."""
    if "@" in pattern:
        upat, hpat = pattern.split("@", 1)
        if not match_pattern(user, upat):
            return False
        if addr_match_list(ctx.addr, hpat) == 1:
            return True
        return match_pattern_list(ctx.host.lower(), hpat, True) == 1
    return match_pattern(user, pattern)


def criterion_matches(c: Criterion, ctx: Context) -> bool:
    kind = c.kind
    if kind == "all":
        return True
    if kind == "user":
        return match_pattern_list(ctx.user, c.pattern) == 1
    if kind == "group":
        if not ctx.user_exists or not ctx.groups:
            return False
        found = False
        for g in ctx.groups:
            r = match_pattern_list(g, c.pattern)
            if r == -1:
                return False
            if r == 1:
                found = True
        return found
    if kind == "host":
        return match_pattern_list(ctx.host.lower(), c.pattern, True) == 1
    if kind == "address":
        return addr_match_list(ctx.addr, c.pattern) == 1
    if kind == "localaddress":
        return bool(ctx.laddr) and addr_match_list(ctx.laddr, c.pattern) == 1
    if kind == "localport":
        return ctx.lport > 0 and c.pattern.isdigit() and int(c.pattern) == ctx.lport
    if kind == "rdomain":
        return False  # Linux has no routing domains
    if kind == "invalid-user":
        return not ctx.user_exists
    return ctx.unknown  # Version and criteria this tool does not know


def address_representatives(patterns: str) -> list[str]:
    """Concrete addresses inside each positive entry of an address pattern list."""
    out: list[str] = []
    for entry in patterns.split(","):
        if not entry or entry.startswith("!"):
            continue
        net = _parse_cidr(entry)
        if isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
            host = net.network_address + (1 if net.num_addresses > 2 else 0)
            out.append(str(host))
            continue
        if net == "bad":
            continue
        cand = entry.replace("*", "1").replace("?", "1")
        if re.fullmatch(r"[0-9.]+", cand):
            parts = [p for p in cand.split(".") if p]
            while len(parts) < 4:
                parts.append("1")
            cand = ".".join(parts[:4])
        try:
            ipaddress.ip_address(cand)
        except ValueError:
            continue
        if match_pattern(cand, entry):
            out.append(cand)
    return out


def host_representatives(patterns: str) -> list[str]:
    out: list[str] = []
    for entry in patterns.split(","):
        if not entry or entry.startswith("!") or _parse_cidr(entry) is not None:
            continue
        out.append(entry.lower().replace("*", "x").replace("?", "x"))
    return out
