"""The layout is the architecture: the layer rule of docs/design.md holds, nothing imports in a circle,
no module reaches into another's private names, and each shared rule has one home.

The layer contracts live in pyproject.toml ([tool.importlinter]) and are checked with import-linter;
the module graph (grimp, import-linter's own graph library) includes imports inside functions and
under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "zcnb"
FOUNDATION = {"__init__", "__main__", "actions", "cli", "config", "exceptions", "files", "incident", "locks", "redact",
              "units"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("zcnb", cache_dir=None)


def test_layer_contracts_hold() -> None:
    """import-linter's layers and independence contracts from pyproject.toml (its own process, no cache)."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken", proc.stdout), proc.stdout


def test_the_layers_contract_names_every_folder_and_module() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in cfg["contracts"] if c["type"] == "layers")
    assert layers["containers"] == ["zcnb"] and layers.get("exhaustive") is True
    named = {name.strip() for layer in layers["layers"] for name in re.split(r"[|:]", layer)}
    children = {p.stem for p in PKG.glob("*.py") if p.stem != "__init__"}
    children |= {p.parent.name for p in PKG.glob("*/__init__.py")}
    assert named == children, f"not in a layer: {children - named}; no such module: {named - children}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules() -> None:
    g = _graph()
    edges = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    assert _cycles(edges) == []


def test_no_import_cycles_between_folders() -> None:
    """Collapsed to zcnb's direct children (folders and foundation modules), the graph is still acyclic."""
    g = _graph()
    top: dict[str, set[str]] = {}
    for m in g.modules:
        src = ".".join(m.split(".")[:2])
        for dep in g.find_modules_directly_imported_by(m):
            dst = ".".join(dep.split(".")[:2])
            if src != dst and dst != "zcnb":
                top.setdefault(src, set()).add(dst)
            top.setdefault(dst, set())
    assert _cycles(top) == []


def test_at_most_twelve_modules_directly_in_the_package() -> None:
    direct = {p.stem for p in PKG.glob("*.py")}
    assert len(direct) <= 12, sorted(direct)
    assert direct <= FOUNDATION, f"only the foundation lives at the top: {sorted(direct - FOUNDATION)}"


def _imports(path: Path, module: str) -> Iterator[tuple[int, str, str]]:
    """(line, imported module, imported name) of every ``from ... import`` in ``path``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        for alias in node.names:
            yield node.lineno, target, alias.name


def test_no_private_imports_across_modules() -> None:
    """No ``from x import _name``; a ``_private`` module is imported only from its own package."""
    bad = []
    for module, path in _modules():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for line, target, name in _imports(path, module):
            if not target.startswith("zcnb"):
                continue
            if name.startswith("_") and name != "__version__":
                bad.append(f"{module}:{line} imports {target}.{name}")
            parts = target.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and ".".join(parts[:i]) != package:
                    bad.append(f"{module}:{line} imports the private module {target}")
    assert not bad, bad


SHARED_RULES = {  # function name -> the one module that may define it
    "format_bytes": "zcnb.units", "to_epoch": "zcnb.units", "parse_duration": "zcnb.units",
    "canonical_skill": "zcnb.logs.skills", "detect_skill_form": "zcnb.logs.skills",
    "skill_mentions": "zcnb.logs.skills", "read_input": "zcnb.files", "open_input": "zcnb.files",
}
_FORMATTED_BYTES = re.compile(r"/\s*(?:2\s*\*\*\s*(?:10|20|30)|1024(?:\s*\*\*\s*[234])?|1048576)\s*:[^}]*f\}")
_SKILL_REGEX = re.compile(r"re\.compile\([^)]*skill")


def test_each_shared_rule_has_one_home() -> None:
    """One byte formatter, one to_epoch, one skill-name rule, one "read this input file" helper."""
    defined: dict[str, list[str]] = {}
    formatted, skill_regexes = [], []
    for module, path in _modules():
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name in SHARED_RULES:
                defined.setdefault(node.name, []).append(module)
        if module != "zcnb.units":
            formatted += [f"{module}: {m.group(0)}" for m in _FORMATTED_BYTES.finditer(text)]
        if module not in ("zcnb.logs.skills", "zcnb.logs.scan"):  # scan builds its tag regex from the rule
            skill_regexes += [f"{module}: {m.group(0)}" for m in _SKILL_REGEX.finditer(text)]
    assert defined == {name: [home] for name, home in SHARED_RULES.items()}
    assert not formatted, f"bytes formatted by hand (use zcnb.units.format_bytes): {formatted}"
    assert not skill_regexes, f"skill regexes outside zcnb.logs.skills: {skill_regexes}"


def test_notebooks_call_their_stage_helper() -> None:
    """Every stage notebook imports its helper from zcnb.stages (and only foundation modules besides)."""
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
        tree = ast.parse("".join(cells[0]["source"]))
        sources = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert any(s and s.startswith("zcnb.stages") for s in sources), (nb_path.name, sources)
        assert all(s in ("zcnb.stages", "zcnb.stages.report", "zcnb.incident", "zcnb.config") for s in sources), \
            (nb_path.name, sources)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
