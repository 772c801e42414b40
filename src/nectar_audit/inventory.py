"""Fleet inventories: a plain list of targets, or an Ansible inventory read by Ansible itself.

Plain file: one target per line, exactly as on the command line (``user@host``, ``ssh://…``, an ssh_config
alias, ``local``, ``root:PATH``…); ``#`` starts a comment (whole line, or after whitespace).

Ansible inventories (INI or YAML, a directory of them, with groups, children, group and host vars,
``group_vars/``/``host_vars/``) are parsed by ansible-core's own ``InventoryManager``, never by a
hand-made parser of Ansible's format; ansible-core is the optional extra ``nectar-audit[ansible]``.
Per host: ``ansible_host`` (else the inventory name), ``ansible_port``, ``ansible_user``,
``ansible_ssh_private_key_file``; ``ansible_connection=local`` audits this machine.

A file is Ansible's when it is a directory, has a .yml/.yaml/.json/.ini/.toml suffix, or contains an
INI group header (``[web]``, ``[web:children]``, ``[web:vars]``), a ``key=value`` host variable, a
host range (``web[01:20]``), a YAML document start or a ``key:`` line. Anything else is plain.

``--limit`` takes Ansible's patterns (``web``, ``web:&prod``, ``!db``, ``web*``, ``~regex``) for
Ansible inventories; for a plain file, comma-separated shell-style patterns matched against the
target as written (``!pattern`` excludes).
"""

from __future__ import annotations

import fnmatch
import importlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nectar_audit.evidence import Bundle, Needs
from nectar_audit.targets import LocalTarget, Target, TargetError, parse_target
from nectar_audit.targets.ssh import SshTarget
from nectar_audit.targets.ssh_options import SshOptions


class InventoryError(Exception):
    """The inventory cannot be read (the scan does not start)."""


@dataclass(frozen=True)
class InventoryHost:
    name: str  # the name in reports: the plain line, or the Ansible inventory hostname
    spec: str | None = None  # plain inventories: the target spec of the line
    address: str | None = None  # ansible_host
    port: int | None = None  # ansible_port
    user: str | None = None  # ansible_user
    identity: str | None = None  # ansible_ssh_private_key_file
    connection: str = "ssh"  # ansible_connection
    groups: tuple[str, ...] = ()
    line: int = 0  # plain inventories: the line number


_INI_GROUP = re.compile(r"^\[[A-Za-z0-9_.-]+(?::(?:children|vars))?\]\s*(?:[#;].*)?$")
_INI_VAR = re.compile(r"(?:^|\s)[A-Za-z_][A-Za-z0-9_]*=")
_HOST_RANGE = re.compile(r"\[[0-9a-zA-Z]+:[0-9a-zA-Z]+(?::[0-9]+)?\]")
_YAML_KEY = re.compile(r"^(?:---|\s*[A-Za-z0-9_.-]+:)\s*(?:#.*)?$")  # a document start or "group:"
_ANSIBLE_SUFFIXES = {".yml", ".yaml", ".json", ".ini", ".toml", ".cfg"}


def detect_format(path: Path) -> str:
    """``ansible`` or ``plain`` (see the module docstring)."""
    if path.is_dir() or path.suffix.lower() in _ANSIBLE_SUFFIXES:
        return "ansible"
    for raw in _read_lines(path):
        line = _strip_comment(raw)
        if not line:
            continue
        if _INI_GROUP.match(line) or _YAML_KEY.match(raw.rstrip()) or _HOST_RANGE.search(line.split()[0]):
            return "ansible"
        if len(line.split()) > 1 and _INI_VAR.search(line):
            return "ansible"
    return "plain"


def load_inventory(path: str, limit: str | None = None, fmt: str | None = None) -> list[InventoryHost]:
    p = Path(path).expanduser()
    if not p.exists():
        raise InventoryError(f"inventory {path} does not exist")
    kind = fmt or detect_format(p)
    hosts = _load_ansible(p, limit) if kind == "ansible" else _load_plain(p, limit)
    if not hosts:
        if limit:
            raise InventoryError(f"--limit {limit!r} matches no host of inventory {path}")
        raise InventoryError(f"inventory {path} lists no host")
    return hosts


def inventory_targets(hosts: Iterable[InventoryHost], ssh: SshOptions | None = None) -> list[Target]:
    """Targets for the hosts; a plain line that is not a valid target raises InventoryError."""
    out: list[Target] = []
    for h in hosts:
        if h.spec is not None:
            try:
                out.append(parse_target(h.spec, ssh))
            except TargetError as exc:
                raise InventoryError(f"line {h.line}: {exc}") from None
        elif h.connection == "local":
            target = LocalTarget()
            target.name = h.name
            out.append(target)
        elif h.connection not in ("ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                                  "ansible.builtin.paramiko_ssh"):
            out.append(UnsupportedTarget(h.name, f"ansible_connection={h.connection} is not supported: "
                                                 f"nectar-audit reaches hosts over SSH (or local)"))
        else:
            out.append(SshTarget(h.address or h.name, user=h.user, port=h.port, name=h.name,
                                 identity=h.identity, options=ssh))
    return out


class UnsupportedTarget:
    """A host the inventory lists but nectar-audit cannot reach: reported as that host's error."""

    kind = "unsupported"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def gather(self, needs: Needs) -> Bundle:
        raise TargetError(self.reason)


# -- plain files ----------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InventoryError(f"inventory {path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise InventoryError(f"cannot read inventory {path}: {exc.strerror or exc}") from None


def _strip_comment(line: str) -> str:
    text = line.strip()
    if text.startswith("#"):
        return ""
    return re.split(r"\s#", text, maxsplit=1)[0].strip()


def _load_plain(path: Path, limit: str | None) -> list[InventoryHost]:
    hosts: list[InventoryHost] = []
    for number, raw in enumerate(_read_lines(path), start=1):
        text = _strip_comment(raw)
        if not text:
            continue
        if len(text.split()) > 1:
            raise InventoryError(f"{path}:{number}: one target per line, got {text!r}")
        hosts.append(InventoryHost(name=text, spec=text, line=number))
    if limit:
        hosts = [h for h in hosts if _plain_match(h.name, limit)]
    return hosts


def _plain_match(name: str, limit: str) -> bool:
    patterns = [p.strip() for p in limit.split(",") if p.strip()]
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    host = name.rsplit("@", 1)[-1]
    if name.startswith("ssh://"):
        host = name[len("ssh://"):].rsplit("@", 1)[-1]

    def hit(p: str) -> bool:
        return fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(host, p) or \
            fnmatch.fnmatchcase(host.rsplit(":", 1)[0], p)

    return (not include or any(hit(p) for p in include)) and not any(hit(p) for p in exclude)


# -- Ansible --------------------------------------------------------------------------------------
MAX_NESTING = 200  # brackets/braces deep; real inventories nest a few levels


def _refuse_deep_nesting(path: Path) -> None:
    """Ansible's YAML/JSON parsers recurse on nested flow collections and crash the process (a C stack
    overflow, not an exception) some thousands of levels down: such a file is refused first."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    for f in files[:10000]:
        try:
            data = f.read_bytes()
        except OSError:
            continue  # Ansible reports what it cannot read
        depth = 0
        for byte in data.translate(None, delete=bytes(b for b in range(256) if b not in b"[]{}")):
            depth += 1 if byte in b"[{" else -1
            if depth > MAX_NESTING:
                raise InventoryError(f"inventory {f}: nested more than {MAX_NESTING} levels deep")


def _load_ansible(path: Path, limit: str | None) -> list[InventoryHost]:
    _refuse_deep_nesting(path)
    try:
        ansible_constants = importlib.import_module("ansible.constants")
        AnsibleError = importlib.import_module("ansible.errors").AnsibleError
        InventoryManager = importlib.import_module("ansible.inventory.manager").InventoryManager
        DataLoader = importlib.import_module("ansible.parsing.dataloader").DataLoader
        VariableManager = importlib.import_module("ansible.vars.manager").VariableManager
    except ImportError:
        raise InventoryError(
            f"{path} is an Ansible inventory, and reading it needs ansible-core "
            f"(pip install 'nectar-audit[ansible]' or pip install ansible-core); a plain inventory "
            f"(one target per line) needs nothing"
        ) from None
    # A source no plugin can parse is an error here, not Ansible's default warning + empty inventory.
    setattr(ansible_constants, "INVENTORY_ANY_UNPARSED_IS_FAILED", True)  # noqa: B010
    try:
        loader = DataLoader()
        inventory = InventoryManager(loader=loader, sources=[str(path)])
        if limit:
            inventory.subset(limit)
        variables = VariableManager(loader=loader, inventory=inventory)
        hosts = []
        for host in inventory.get_hosts("all"):
            hostvars = variables.get_vars(host=host, include_hostvars=False)
            hosts.append(_ansible_host(host.name, hostvars, loader, [g.name for g in host.get_groups()]))
    except AnsibleError as exc:
        raise InventoryError(f"cannot read Ansible inventory {path}: {_first_line(str(exc))}") from None
    return hosts


def _ansible_host(name: str, hostvars: dict[str, Any], loader: Any, groups: list[str]) -> InventoryHost:
    def var(*keys: str) -> str | None:
        for key in keys:
            value = hostvars.get(key)
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                # A list or mapping (or yes/no) where a name, address or port belongs: a typo in the
                # inventory, never to be turned into an address by str().
                kind = ("true/false" if isinstance(value, bool) else "a list" if isinstance(value, (list, tuple))
                        else "a mapping" if isinstance(value, dict) else type(value).__name__)
                raise InventoryError(f"host {name}: {key} must be a string or a number, not {kind}")
            text = str(value)
            if "{{" in text or "{%" in text:  # template the original: Ansible tags it as trusted
                text = _template(value, hostvars, loader, name, key)
            return text
        return None

    port_text = var("ansible_port", "ansible_ssh_port")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InventoryError(f"host {name}: ansible_port {port_text!r} is not a port number")
        port = int(port_text)
    identity = var("ansible_ssh_private_key_file", "ansible_private_key_file")
    return InventoryHost(
        name=name,
        address=var("ansible_host", "ansible_ssh_host"),
        port=port,
        user=var("ansible_user", "ansible_ssh_user"),
        identity=os.path.expanduser(identity) if identity else None,
        connection=(var("ansible_connection") or "ssh").lower(),
        groups=tuple(g for g in groups if g != "all"),
    )


def _template(value: Any, hostvars: dict[str, Any], loader: Any, name: str, key: str) -> str:
    try:
        templar = importlib.import_module("ansible.template").Templar(loader=loader, variables=hostvars)
        text = str(templar.template(value))
    except Exception as exc:
        raise InventoryError(f"host {name}: cannot evaluate {key}={str(value)!r}: "
                             f"{_first_line(str(exc))}") from None
    if "{{" in text or "{%" in text:
        raise InventoryError(f"host {name}: cannot evaluate {key}={str(value)!r} "
                             f"(Ansible left it untemplated)")
    return text


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)
