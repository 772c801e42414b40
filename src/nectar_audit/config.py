"""The user's configuration: allowlists, thresholds and waivers (TOML).

Looked up in ``--config FILE``, else ``/etc/nectar-audit.toml``, else
``~/.config/nectar-audit.toml``. Unknown keys and bad values are errors naming the key, because a
misspelt allowlist silently ignored is a wrong audit.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_PATHS = (Path("/etc/nectar-audit.toml"), Path("~/.config/nectar-audit.toml"))


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class WaiverRule:
    check: str
    reason: str
    host: str | None = None
    expires: dt.date | None = None


@dataclass(frozen=True)
class Config:
    expected_accounts: tuple[str, ...] = ()
    max_days_since_login: int = 90
    allowed_services: tuple[str, ...] = ()
    allowed_ports: tuple[str, ...] = ()  # "22/tcp", "443" (tcp), "123/udp"
    trusted_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    waivers: tuple[WaiverRule, ...] = ()
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_SCHEMA: dict[str, dict[str, str]] = {
    "accounts": {"expected": "list[str]", "max_days_since_login": "int"},
    "services": {"allowed": "list[str]"},
    "ports": {"allowed": "list[port]"},
    "network": {"trusted_networks": "list[net]"},
}
_WAIVER_KEYS = {"check", "host", "reason", "expires"}


def load_config(path: str | None) -> Config:
    if path is not None:
        return parse_config_file(Path(path))
    for candidate in DEFAULT_PATHS:
        candidate = candidate.expanduser()
        if candidate.is_file():
            return parse_config_file(candidate)
    return Config()


def parse_config_file(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text") from exc
    try:
        return parse_config(tomllib.loads(text), source=str(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path}: invalid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses into nested arrays and tables
        raise ConfigError(f"config {path}: invalid TOML: nested too deeply") from exc


def parse_config(data: dict[str, Any], source: str | None = None) -> Config:
    where = f"config {source}: " if source else "config: "
    values: dict[str, Any] = {}
    for section, body in data.items():
        if section == "waivers":
            continue
        if section not in _SCHEMA:
            raise ConfigError(f"{where}unknown section [{section}] (known: {', '.join(sorted(_SCHEMA))}, waivers)")
        if not isinstance(body, dict):
            raise ConfigError(f"{where}[{section}] must be a table")
        for key, value in body.items():
            kind = _SCHEMA[section].get(key)
            if kind is None:
                known = ", ".join(sorted(_SCHEMA[section]))
                raise ConfigError(f"{where}unknown key {section}.{key} (known: {known})")
            values[f"{section}.{key}"] = _coerce(f"{where}{section}.{key}", kind, value)
    waivers = tuple(_waiver(f"{where}waivers[{i}]", w) for i, w in enumerate(_list(where + "waivers",
                                                                                   data.get("waivers", []))))
    return Config(
        expected_accounts=tuple(values.get("accounts.expected", ())),
        max_days_since_login=values.get("accounts.max_days_since_login", 90),
        allowed_services=tuple(values.get("services.allowed", ())),
        allowed_ports=tuple(values.get("ports.allowed", ())),
        trusted_networks=tuple(values.get("network.trusted_networks", ())),
        waivers=waivers,
        source=source,
    )


def _list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be a list")
    return value


def _coerce(name: str, kind: str, value: Any) -> Any:
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer, not {value!r}")
        return value
    items = _list(name, value)
    if kind == "list[str]":
        if not all(isinstance(v, str) and v for v in items):
            raise ConfigError(f"{name} must be a list of non-empty strings")
        return items
    if kind == "list[port]":
        return [_port(name, v) for v in items]
    if kind == "list[net]":
        nets = []
        for v in items:
            if not isinstance(v, str):
                raise ConfigError(f"{name}: {v!r} is not a network: write it as a string like \"10.0.0.0/8\"")
            try:
                nets.append(ipaddress.ip_network(v, strict=False))
            except ValueError as exc:
                raise ConfigError(f"{name}: {v!r} is not a network ({exc})") from exc
        return nets
    raise AssertionError(kind)


def _port(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigError(f"{name}: {value!r} is not a port like 443, \"443/tcp\" or \"123/udp\"")
    text = str(value)
    number, _, proto = text.partition("/")
    proto = proto or "tcp"
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("tcp", "udp"):
        raise ConfigError(f"{name}: {value!r} is not a port like 443, \"443/tcp\" or \"123/udp\"")
    return f"{int(number)}/{proto}"


def _waiver(name: str, value: Any) -> WaiverRule:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table")
    unknown = set(value) - _WAIVER_KEYS
    if unknown:
        raise ConfigError(f"{name}: unknown key {sorted(unknown)[0]} (known: {', '.join(sorted(_WAIVER_KEYS))})")
    check = value.get("check")
    if not isinstance(check, str) or not check:
        raise ConfigError(f"{name}.check is required (e.g. \"Check-Security-18\")")
    check = normalise_check_id(check)
    if check is None:
        raise ConfigError(f"{name}.check {value['check']!r} is not a checklist id")
    reason = value.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError(f"{name}.reason is required: say why the check is waived")
    host = value.get("host")
    if host is not None and not isinstance(host, str):
        raise ConfigError(f"{name}.host must be a string")
    expires = value.get("expires")
    if expires is not None:
        if isinstance(expires, str):
            try:
                expires = dt.date.fromisoformat(expires)
            except ValueError as exc:
                raise ConfigError(f"{name}.expires {expires!r} is not a date (YYYY-MM-DD)") from exc
        elif isinstance(expires, dt.datetime):
            expires = expires.date()
        elif not isinstance(expires, dt.date):
            raise ConfigError(f"{name}.expires must be a date (YYYY-MM-DD)")
    return WaiverRule(check=check, reason=reason.strip(), host=host, expires=expires)


def normalise_check_id(text: str) -> str | None:
    """``17``, ``Security-17``, ``check-security-17`` -> ``Check-Security-17``."""
    digits = text.strip().lower().removeprefix("check-").removeprefix("security-")
    if digits.isdigit() and 1 <= int(digits) <= 18:
        return f"Check-Security-{int(digits):02d}"
    return None
