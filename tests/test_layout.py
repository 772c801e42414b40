"""The layout's rules, checked on the code's own imports (every import, function-local ones included).

Data flows one way: targets -> evidence -> facts -> checks -> results -> reports (and for ``fix``:
checks -> remedies -> the same targets). ``evidence`` imports
nothing of ours; fact packs import each other (and ``evidence``) only through their ``__init__``, in a
fixed order, never upwards; a check's ``needs`` covers every pack its code uses, and a pack's ``NEEDS``
covers every pack it builds on, so ``--checks NN`` gathers what NN reads.
"""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from nectar_audit import catalog
from nectar_audit.evidence import Needs
from tests import REPO

SRC = REPO / "src" / "nectar_audit"
PACKS = ("accounts", "system", "firewall", "ssh", "updates", "keys", "network")
LEAVES = ("host", "net", "openstack")  # single-module facts every pack may use
# Who may import whom, by top-level part: a part may import itself and the parts listed.
BELOW = {
    "evidence": set(),
    "facts": {"evidence", "model", "config", "facts"},
    "checks": {"evidence", "model", "config", "facts", "checklist", "checks", "remedy"},
    "remedy": set(),  # the structured fix: plain data every layer above may carry
    "fix": {"catalog", "cloud", "config", "engine", "evidence", "facts", "fix", "model", "remedy", "targets"},
    "reports": {"model", "reports", "__init__"},
    "targets": {"evidence", "targets", "shape"},
    "shape": set(),
}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> Iterator[tuple[int, str, list[str], bool]]:
    """(line, module, names, under TYPE_CHECKING) for every import of ours in ``path``."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only |= {n.lineno for b in node.body for n in ast.walk(b) if hasattr(n, "lineno")}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nectar_audit"):
            yield node.lineno, node.module, [a.name for a in node.names], node.lineno in type_only
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("nectar_audit"):
                    yield node.lineno, a.name, [], node.lineno in type_only


def _targets(module: str, names: list[str]) -> list[str]:
    """The modules an import statement reaches: ``from nectar_audit.facts import ssh`` reaches the pack."""
    out = [module]
    for name in names:
        full = f"{module}.{name}"
        is_file = (SRC.parent / full.replace(".", "/")).with_suffix(".py").exists() or (
            SRC.parent / full.replace(".", "/") / "__init__.py"
        ).exists()
        # A pack may export a fact named like one of its modules (system.services): the export wins.
        if is_file and isinstance(getattr(importlib.import_module(module), name, None), types.ModuleType):
            out.append(full)
    return out


FILES = sorted(SRC.rglob("*.py"))


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _pack(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if parts[:2] == ["nectar_audit", "facts"] and len(parts) > 2 else None


def test_layers_import_only_downwards() -> None:
    bad = []
    for path in FILES:
        me = _module(path)
        allowed = BELOW.get(_part(me))
        if allowed is None:
            continue
        for line, mod, names, _ in _imports(path):
            for target in _targets(mod, names):
                if _part(target) not in allowed | {_part(me)}:
                    bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert not bad, "\n".join(bad)


def test_packs_meet_only_at_their_front_door_and_in_order() -> None:
    order = {p: i for i, p in enumerate(PACKS)}
    bad = []
    for path in FILES:
        me = _module(path)
        mine = _pack(me)
        for line, mod, names, _ in _imports(path):
            for target in _targets(mod, names):
                theirs = _pack(target)
                if theirs is None or theirs == mine or theirs in LEAVES:
                    continue
                where = f"{path.relative_to(REPO)}:{line}"
                if target != f"nectar_audit.facts.{theirs}":
                    bad.append(f"{where} reaches into {target} (import nectar_audit.facts.{theirs})")
                if mine in order and order[theirs] >= order[mine]:
                    bad.append(f"{where}: pack {mine} imports {theirs}, which comes after it")
        if _part(me) != "evidence":
            continue
        for line, mod, _names, _ in _imports(path):
            if not mod.startswith("nectar_audit.evidence"):
                bad.append(f"{path.relative_to(REPO)}:{line}: evidence imports {mod}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in FILES:
        me = _module(path)
        deps = graph.setdefault(me, set())
        for _line, mod, names, type_only in _imports(path):
            if not type_only:
                deps.update(t for t in _targets(mod, names) if t != me and not me.startswith(t + "."))
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt in graph and nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # A package's __init__ importing its own modules, which import the package's siblings, is no cycle.
    real = [c for c in cycles if len({_pack(m) or m for m in c}) > 1 or not all(_pack(m) for m in c)]
    assert not real, "\n".join(" -> ".join(c) for c in real)


def _covers(outer: Needs, inner: Needs) -> list[str]:
    missing = [f"file {p}" for p in inner.files if p not in outer.files]
    missing += [f"stat {p}" for p in inner.stats if p not in outer.stats]
    missing += [f"command {c}" for c in inner.commands if c not in outer.commands]
    missing += [f"search {s.name}" for s in inner.searches if s not in outer.searches]
    missing += [f"sanitizer for {p}" for p in inner.sanitize if outer.sanitize.get(p) is not inner.sanitize[p]]
    return missing


def _used_packs(path: Path, seen: set[Path] | None = None) -> set[str]:
    """The fact packs (and leaves with evidence) a module's code imports, through the checks it imports."""
    seen = seen if seen is not None else {path}
    out: set[str] = set()
    for _line, mod, names, type_only in _imports(path):
        if type_only:
            continue
        for target in _targets(mod, names):
            pack = _pack(target)
            if pack is not None:
                out.add(pack)
            if target.startswith("nectar_audit.checks.") and target != "nectar_audit.checks.base":
                other = SRC.parent / (target.replace(".", "/") + ".py")
                if other not in seen:
                    seen.add(other)
                    out |= _used_packs(other, seen)
    return out


def _needs_of(pack: str) -> Needs:
    needs = getattr(importlib.import_module(f"nectar_audit.facts.{pack}"), "NEEDS", None)
    return needs if isinstance(needs, Needs) else Needs()


@pytest.mark.parametrize("pack", PACKS)
def test_a_packs_needs_cover_the_packs_it_builds_on(pack: str) -> None:
    used = set().union(*(_used_packs(p) for p in (SRC / "facts" / pack).glob("*.py"))) - {pack}
    mine = _needs_of(pack)
    missing = {other: _covers(mine, _needs_of(other)) for other in sorted(used)}
    assert not {k: v for k, v in missing.items() if v}, missing


@pytest.mark.parametrize("entry", catalog.implemented(), ids=lambda e: e.id)
def test_a_checks_needs_cover_every_pack_it_uses(entry: catalog.Entry) -> None:
    assert entry.check is not None
    used = _used_packs(SRC / "checks" / f"{entry.module}.py")
    # A check module imports its fix planner too, whose evidence comes through plan_needs (gathered by fix).
    needs = entry.check.needs | entry.check.plan_needs
    missing = {pack: _covers(needs, _needs_of(pack)) for pack in sorted(used)}
    assert not {k: v for k, v in missing.items() if v}, missing


def test_check_metadata_is_written_once() -> None:
    """Title from the checklist, severity from the check: probes and the cloud side copy neither."""
    for path in FILES:
        text = path.read_text()
        if path.parent.name in ("checks",) or path.name in ("catalog.py", "checklist.py"):
            continue
        for word in ('"high"', '"medium"', '"low"'):
            assert word not in text, f"{path.relative_to(REPO)} spells a severity ({word}): ask catalog.severity"
    for e in catalog.implemented():
        assert e.check is not None and e.check.title == e.title
