from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest

from nectar_audit.config import ConfigError, load_config, normalise_check_id, parse_config


def test_full_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """
[accounts]
expected = ["alice", "svc-backup"]
max_days_since_login = 30
[services]
allowed = ["nginx"]
[ports]
allowed = [443, "123/udp", "8080/tcp"]
[network]
trusted_networks = ["10.0.0.0/8", "2001:db8::/32"]
[[waivers]]
check = "18"
reason = "the bastion only allows 22 from the office"
host = "vm1"
expires = 2027-01-31
"""
    )
    c = load_config(str(path))
    assert c.expected_accounts == ("alice", "svc-backup")
    assert c.max_days_since_login == 30
    assert c.allowed_ports == ("443/tcp", "123/udp", "8080/tcp")
    assert c.trusted_networks[1] == ipaddress.ip_network("2001:db8::/32")
    assert c.waivers[0].check == "Check-Security-18"
    assert c.waivers[0].expires == dt.date(2027, 1, 31)
    assert c.source == str(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"acounts": {}}, r"unknown section \[acounts\]"),
        ({"accounts": {"expcted": []}}, "unknown key accounts.expcted"),
        ({"accounts": {"max_days_since_login": "90"}}, "accounts.max_days_since_login must be"),
        ({"accounts": {"expected": "alice"}}, "accounts.expected must be a list"),
        ({"ports": {"allowed": [70000]}}, "ports.allowed: 70000 is not a port"),
        ({"ports": {"allowed": ["22/sctp"]}}, "is not a port"),
        ({"network": {"trusted_networks": ["10.0.0.300/8"]}}, "network.trusted_networks: '10.0.0.300/8'"),
        ({"waivers": [{"check": "99", "reason": "x"}]}, r"waivers\[0\].check '99' is not a checklist id"),
        ({"waivers": [{"check": "01"}]}, r"waivers\[0\].reason is required"),
        ({"waivers": [{"check": "01", "reason": "x", "until": "2020-01-01"}]}, "unknown key until"),
        ({"waivers": [{"check": "01", "reason": "x", "expires": "soon"}]}, "is not a date"),
    ],
)
def test_bad_config_names_the_key(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[accounts\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "nope.toml"))


@pytest.mark.parametrize(("text", "expected"), [
    ("1", "Check-Security-01"), ("17", "Check-Security-17"), ("Check-Security-05", "Check-Security-05"),
    ("security-18", "Check-Security-18"), ("19", None), ("abc", None), ("0", None),
])
def test_check_ids(text: str, expected: str | None) -> None:
    assert normalise_check_id(text) == expected
