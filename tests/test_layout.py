"""The shape of the package: no import cycle among its modules, no module too long to read as one, stages that
do not import the wiring, and DEVELOPERS.md's layout table equal to the tree.

Imports are read with :mod:`ast`, not by importing: every ``import``/``from ... import`` counts, relative or
absolute, at the top of a module or inside a function or an ``if TYPE_CHECKING`` block, so an import
deferred to dodge a cycle at run time still shows as the cycle it is.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import inspatio_cli

PACKAGE = Path(inspatio_cli.__file__).parent
ROOT = PACKAGE.name

MAX_LINES = 400
SINGLE_MODELS = {"models/dit.py", "models/vae.py", "depth/da3.py"}
"""Modules that hold one network each and may be longer than :data:`MAX_LINES` (as a model.py usually is)."""


def _module_name(path: Path) -> str:
    """``inspatio_cli.weights.hub`` for ``.../inspatio_cli/weights/hub.py``; a package's ``__init__.py`` is
    named after the package."""
    parts = [ROOT, *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(name: str, path: Path, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The package's modules that one import statement of module ``name`` (file ``path``) imports: for
    ``from X import y``, ``X.y`` when it is a module, else ``X``."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in modules}
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    found = {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    """Module -> the other modules of the package it imports anywhere in its source."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _imported(name, path, node, modules)
        graph[name] = edges - {name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Modules reachable from ``start`` through one import or more."""
    seen: set[str] = set()
    stack = list(graph[start])
    while stack:
        module = stack.pop()
        if module not in seen:
            seen.add(module)
            stack.extend(graph[module])
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (each an import cycle), sorted."""
    reach = {m: _reachable(graph, m) for m in graph}
    components = {frozenset({m} | {n for n in reach[m] if m in reach[n]}) for m in graph if m in reach[m]}
    return sorted(sorted(c) for c in components)


def test_the_import_graph_is_read_from_relative_absolute_and_deferred_imports() -> None:
    graph = import_graph()
    assert f"{ROOT}.weights.io" in graph[f"{ROOT}.models.vae"]              # from ..weights.io import ...
    assert f"{ROOT}.weights.hub" in graph[f"{ROOT}.depth.checkpoints"]      # from ..weights import hub
    assert f"{ROOT}.models.dit" in graph[f"{ROOT}.weights.checks"]          # inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


def test_weights_package_imports_models_only_to_check_files() -> None:
    """Only :mod:`inspatio_cli.weights.checks` imports models, the captioner or the depth networks; the
    catalogue, the hub look-up and the readers stay below every model."""
    graph = import_graph()
    heavy = (f"{ROOT}.models", f"{ROOT}.caption", f"{ROOT}.depth.checkpoints", f"{ROOT}.depth.da3")
    for module, edges in graph.items():
        if module.startswith(f"{ROOT}.weights") and module != f"{ROOT}.weights.checks":
            assert not [m for m in edges if m.startswith(heavy)], module


def test_no_module_over_the_line_limit_but_single_models() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert {k: v for k, v in long.items() if k not in SINGLE_MODELS} == {}


REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src" / ROOT
WIRING = ("render", "batch", "cli")
"""The packages that wire stages together; no stage imports them."""


def _layout_table() -> dict[str, str]:
    """DEVELOPERS.md's layout table: the path in the first column -> the text of the second."""
    text = (REPO / "DEVELOPERS.md").read_text()
    section = text[text.index("## Layout"):]
    section = section[:section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) >= 2:
            rows[cells[0].strip("`")] = "|".join(cells[1:])
    return rows


def test_developers_layout_table_names_every_module_and_nothing_else() -> None:
    """A row per top-level module and per package; a package's row names each of its modules (``x.py``),
    its ``__init__.py`` optional (named where it holds more than lazy exports)."""
    rows = _layout_table()
    packages = sorted(str(p.parent.relative_to(SOURCE)) + "/" for p in SOURCE.rglob("__init__.py") if p.parent != SOURCE)
    top = sorted(p.name for p in SOURCE.glob("*.py"))
    assert sorted(r for r in rows if r.endswith(".py")) == top
    assert sorted(r for r in rows if r.endswith("/")) == packages
    for package in packages:
        named = set(re.findall(r"`([a-z0-9_]+\.py)`", rows[package])) - {"__init__.py"}
        present = {p.name for p in (SOURCE / package).glob("*.py")} - {"__init__.py"}
        assert named == present, f"{package}: table names {sorted(named - present)}, misses {sorted(present - named)}"


def test_stages_do_not_import_the_wiring() -> None:
    """Data flows one way: only the wiring packages (and the package root's lazy exports, the entry point)
    import ``render``, ``batch`` or ``cli``."""
    wiring = tuple(f"{ROOT}.{w}" for w in WIRING)
    for module, edges in import_graph().items():
        if module.startswith(wiring) or module in (ROOT, f"{ROOT}.__main__"):
            continue
        assert not [m for m in edges if m.startswith(wiring)], module


def _exports(init: Path) -> set[str]:
    """The names a package's ``__init__.py`` exports lazily (the keys of its ``_EXPORTS`` dict)."""
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return {k.value for k in node.value.keys}
    return set()


def test_no_submodule_is_named_like_a_name_its_package_exports() -> None:
    """Importing ``pkg.x`` sets the attribute ``pkg.x`` to the module, so a submodule named like an exported
    function (``video/probe.py`` beside ``probe``) would replace the function for every later importer."""
    for init in SOURCE.rglob("__init__.py"):
        submodules = {p.stem for p in init.parent.glob("*.py")} | {p.name for p in init.parent.iterdir() if p.is_dir()}
        assert not _exports(init) & submodules, init.parent.name
