"""Probes refuse addresses that are no single host (multicast, broadcast, unspecified, reserved) before any
socket exists, wherever the address comes from, unless named with ``--allow-special-address``."""

from __future__ import annotations

import socket
import threading

import pytest
from click.testing import CliRunner

from nectar_audit.cli import main
from nectar_audit.probes import guard
from nectar_audit.probes.guard import Scope, ScopeError, special_address
from nectar_audit.probes.run import host_job, new_probe_result, observe, run_probes

SPECIAL = ["224.0.0.1", "239.255.255.250", "ff02::1", "::ffff:224.0.0.251", "255.255.255.255", "0.0.0.0", "::",
           "240.0.0.1", "100::1"]
ORDINARY = ["127.0.0.1", "::1", "10.200.7.2", "192.168.1.5", "fd00::2", "2001:db8::5", "203.0.113.9"]


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """Every probe socket that would be made (none may be, for a refused address)."""
    made: list[tuple[object, ...]] = []
    real = socket.socket.__init__

    def record(self: socket.socket, *args: object, **kw: object) -> None:
        made.append(args)
        real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(guard.GuardedSocket, "__init__", record)
    return made


@pytest.mark.parametrize("address", SPECIAL)
def test_special_addresses_are_refused(address: str) -> None:
    assert special_address(address) is not None
    with pytest.raises(ScopeError, match="--allow-special-address"):
        Scope([address])
    assert Scope([address], allow_special=True).addresses


@pytest.mark.parametrize("address", ORDINARY)
def test_ordinary_addresses_are_not(address: str) -> None:
    assert special_address(address, on_link="10.200.7.0/24") is None
    Scope([address])


def test_the_broadcast_address_of_an_attached_network() -> None:
    assert "broadcast address of the attached network 10.200.7.0/24" in str(
        special_address("10.200.7.255", on_link="10.200.7.0/24"))
    assert special_address("10.200.7.255", on_link="10.200.0.0/16") is None  # a host there
    assert special_address("10.200.7.1", on_link="10.200.7.0/31") is None  # point-to-point: no broadcast


def test_cli_probe_of_a_multicast_group_is_a_usage_error(no_sockets: list[tuple[object, ...]]) -> None:
    result = CliRunner().invoke(main, ["probe", "224.0.0.1", "--ports", "123"])
    assert result.exit_code == 2
    assert "224.0.0.1 is a multicast address" in result.output and "--allow-special-address" in result.output
    result = CliRunner().invoke(main, ["probe", "127.0.0.1", "255.255.255.255", "--ports", "9"])
    assert result.exit_code == 2 and "broadcast" in result.output
    assert no_sockets == []


def test_every_probe_path_refuses_before_a_socket(no_sockets: list[tuple[object, ...]]) -> None:
    """scan --probe and cloud --probe reach observe() with an address from ssh_config or the cloud API."""
    with pytest.raises(ScopeError, match="multicast"):
        observe("224.0.0.251", [5353], 0.2, stop=threading.Event())
    result = new_probe_result("239.1.2.3")
    run_probes([(result, host_job("239.1.2.3", [9], 0.2))], 1)
    assert result.error is not None and "refusing to probe 239.1.2.3: a multicast address" in result.error
    assert no_sockets == []


def test_allowed_special_address_reaches_the_socket(no_sockets: list[tuple[object, ...]]) -> None:
    """Named with the flag, a special address gets its probe socket (nothing is sent: test traffic goes
    only to loopback and the lab's namespaces)."""
    scope = Scope(["224.0.0.1"], allow_special=True)
    sock = scope.socket("224.0.0.1", "udp", "ntp", 0.2)
    sock.close()
    assert len(no_sockets) == 1
