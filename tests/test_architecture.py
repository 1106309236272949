"""The import rule of ARCHITECTURE.md: a module imports from its own wing and the wings below, never above;
no import circle between modules. Read from the source with ast (imports inside functions count too)."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "etl"

# Lowest first. Top-level modules (playbook, status, __init__, __main__) and the run and cli packages form the top wing.
WINGS = ("core", "source", "stage", "mysql", "check", "report", "cutover", "api")
TOP = len(WINGS)


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, package: Path, tree: ast.AST | None = None) -> list[tuple[str, int]]:
    """(imported etl module, line) for every import of the package in the file (or in `tree`, read from it)."""
    name = _module_name(path, package)
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree if tree is not None else ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == package.name]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                mod = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            if mod.split(".")[0] != package.name:
                continue
            for a in node.names:  # `from etl.core import stores` imports the module etl.core.stores
                sub = f"{mod}.{a.name}"
                found.append((sub if _exists(sub, package) else mod, node.lineno))
    return found


def _exists(module: str, package: Path) -> bool:
    rel = Path(*module.split(".")[1:])
    return (package / rel).with_suffix(".py").is_file() or (package / rel / "__init__.py").is_file()


def _wing(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[1] in WINGS):
        return WINGS.index(parts[1]) if parts[1] in WINGS else TOP
    return TOP


def violations(package: Path = PACKAGE) -> list[str]:
    """Every import that reaches into a higher wing, as 'file:line: a imports b'."""
    bad = []
    for path in sorted(package.rglob("*.py")):
        me = _module_name(path, package)
        for target, line in _imports(path, package):
            if _wing(target) > _wing(me):
                bad.append(f"{path.relative_to(package.parent)}:{line}: {me} imports {target} from a higher wing")
    return bad


def circles(package: Path = PACKAGE) -> list[list[str]]:
    graph: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        me = _module_name(path, package)
        graph.setdefault(me, set()).update(t for t, _ in _imports(path, package) if t != me)
    found, state = [], {}

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ naming its own modules lazily is not a circle worth a failure
    return [c for c in found if not any(m in (package.name,) for m in c)]


def test_no_module_imports_from_a_higher_wing():
    assert violations() == []


def test_no_import_circle():
    assert circles() == []


def test_the_rule_catches_a_planted_upward_import(tmp_path):
    """The test of the test: copy the package, plant core -> check, and the checker names it."""
    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.js"))
    assert violations(copy) == []
    (copy / "core" / "planted.py").write_text("def f():\n    from ..check import parity\n    return parity\n")
    bad = violations(copy)
    assert len(bad) == 1 and "etl.core.planted imports etl.check.parity" in bad[0]


def test_the_circle_check_catches_a_planted_circle(tmp_path):
    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.js"))
    (copy / "core" / "a_one.py").write_text("from . import a_two\n")
    (copy / "core" / "a_two.py").write_text("from .a_one import x\n")
    assert any("etl.core.a_one" in c and "etl.core.a_two" in c for c in circles(copy))


@pytest.mark.parametrize("wing", WINGS[:6])
def test_every_wing_is_a_package(wing):
    assert (PACKAGE / wing / "__init__.py").is_file()


def test_every_command_calls_the_playbook_only():
    """The CLI holds no logic: inside a command, the only import of etl is the playbook (application layer).
    Every module of the etl.cli package is read (each holds a group of commands)."""
    commands = []
    for path in sorted((PACKAGE / "cli").rglob("*.py")):
        tree = ast.parse(path.read_text())
        commands += [(path, f) for f in tree.body if isinstance(f, ast.FunctionDef)
                     and any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") in ("command", "callback") for d in f.decorator_list)]
    assert len(commands) > 10
    bad = []
    for path, fn in commands:
        for node in ast.walk(fn):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            # `from <dots> import playbook`, and the dots lead to etl.playbook from where the module sits
            form = not (isinstance(node, ast.ImportFrom) and node.level) or (node.module is None and [a.name for a in node.names] == ["playbook"])
            targets = {t for t, _ in _imports(path, PACKAGE, ast.Module(body=[node], type_ignores=[]))}
            if not form or targets - {f"{PACKAGE.name}.playbook"}:
                bad.append(f"{path.relative_to(PACKAGE.parent)}: {fn.name}: {ast.unparse(node)}")
    assert bad == []


def test_every_import_of_the_package_names_a_module_that_exists():
    """Imports inside functions run only when called: a stale one (a module since moved) is found here, not in use."""
    missing = [f"{path.relative_to(PACKAGE.parent)}:{line}: {target}"
               for path in sorted(PACKAGE.rglob("*.py")) for target, line in _imports(path, PACKAGE)
               if not _exists(target, PACKAGE) and target != PACKAGE.name]
    assert missing == []
