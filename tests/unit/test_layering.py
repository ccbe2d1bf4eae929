"""The package's import graph, read from the source (every import statement, inside
functions too): the layers of README "How it is built" hold, and no module imports one
that imports it back."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "dlvsnap"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


MODULES = _modules()


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """The statements that may run: not ``if TYPE_CHECKING:`` blocks, nor a module's
    ``__getattr__`` (PEP 562: a package's lazy names, imported when asked for, as
    dlvsnap/__init__.py does for the API)."""
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                out += child.orelse
                todo += child.orelse
                continue
            if node is tree and isinstance(child, ast.FunctionDef) and child.name == "__getattr__":
                continue
            out.append(child)
            todo.append(child)
    return out


@cache
def imports(module: str) -> frozenset[str]:
    """The package's modules importing ``module`` may load: ``from dlvsnap.render import
    html`` is dlvsnap.render and dlvsnap.render.html; importing a module imports its
    packages; imports inside functions count (they run when the function does)."""
    out: set[str] = set()
    for node in _runtime_nodes(ast.parse(MODULES[module].read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for name in names:
            parts = name.split(".")
            out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return frozenset(m for m in out if m in MODULES and m != module)


def closure(module: str) -> set[str]:
    """Every module of the package that importing ``module`` can load."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += imports(m)
    return seen - {module}


def _under(root: str) -> list[str]:
    return sorted(m for m in MODULES if m == root or m.startswith(root + "."))


# module (or package: each module under it) -> what it must never load. The decoders take
# a layout, a MemoryReader and an address: they decode a live process, a saved file and
# synthetic bytes alike, so they never see the transport (nor does what they import).
FORBIDDEN = {
    "dlvsnap.decode": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.model": ("dlvsnap.delve", "dlvsnap.render", "dlvsnap.decode", "dlvsnap.layouts"),
    "dlvsnap.memory": ("dlvsnap.delve",),
    # the allocator's rules are arithmetic on sizes: they know no map, layout or reader
    "dlvsnap.alloc": (
        "dlvsnap.delve",
        "dlvsnap.session",
        "dlvsnap.model",
        "dlvsnap.decode",
        "dlvsnap.layouts",
        "dlvsnap.memory",
        "dlvsnap.render",
    ),
    "dlvsnap.target": ("dlvsnap.delve",),
    "dlvsnap.layouts": ("dlvsnap.delve", "dlvsnap.model"),
    "dlvsnap.snapfile": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    # the watch engine's recorder works through decoders and a CallControl: only the stop
    # source (and resolution, and the loop tying them) speaks Delve
    "dlvsnap.watch.recorder": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.watch.trust": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.watch.watched": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.watch.hits": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.watch.options": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    # the advice is text from decoded facts: it reads and decodes nothing itself
    "dlvsnap.advice": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render", "dlvsnap.decode"),
    # the census walks and decodes through a MemoryReader: only its roots (and take, which
    # ties them) ask Delve, so a core is walked as a live process is
    "dlvsnap.census.plan": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.census.walk": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.census.maps": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    "dlvsnap.census.result": ("dlvsnap.delve", "dlvsnap.session", "dlvsnap.render"),
    # the transport never knows what a map is
    "dlvsnap.delve.rpc": ("dlvsnap.model", "dlvsnap.decode", "dlvsnap.layouts"),
    "dlvsnap.delve.client": ("dlvsnap.model", "dlvsnap.decode", "dlvsnap.layouts"),
    "dlvsnap.delve.types": ("dlvsnap.model", "dlvsnap.decode", "dlvsnap.layouts"),
}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [(m, f) for root, f in FORBIDDEN.items() for m in _under(root)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_layer_never_loads_what_is_above_it(module: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(m for m in closure(module) if m.startswith(forbidden))
    assert bad == [], f"{module} loads {bad}"


def test_the_decoders_import_nothing_of_delve() -> None:
    """The issue's own words, with every module under dlvsnap/decode/ named."""
    decoders = _under("dlvsnap.decode")
    assert "dlvsnap.decode.swiss" in decoders and "dlvsnap.decode.classic" in decoders
    for m in decoders:
        assert not any(x.startswith("dlvsnap.delve") for x in closure(m)), m


def test_the_recorder_imports_nothing_of_delve() -> None:
    """Issue 11: nothing the watch engine's recorder loads speaks Delve; the stop source
    does (so the test would see a leak)."""
    assert not any(x.startswith("dlvsnap.delve") for x in closure("dlvsnap.watch.recorder"))
    assert "dlvsnap.decode" in closure("dlvsnap.watch.recorder")
    assert "dlvsnap.delve.client" in closure("dlvsnap.watch.stops")


def test_no_module_imports_one_that_imports_it_back() -> None:
    cycles = sorted(m for m in MODULES if m in closure(m))
    assert cycles == []


def test_the_graph_is_read_from_real_imports() -> None:
    """The reader itself: known edges are found, imports inside functions included, type
    checkers' imports and a package's lazy names (PEP 562 ``__getattr__``) left out."""
    assert "dlvsnap.delve.client" in imports("dlvsnap.delve.memory")
    assert {"dlvsnap.render", "dlvsnap.render.text"} <= imports("dlvsnap.api")
    assert "dlvsnap.delve.release" in imports("dlvsnap.delve.guardian")  # inside a function
    assert "dlvsnap.delve.rpc" in closure("dlvsnap.session")
    assert imports("dlvsnap") == frozenset()  # dlvsnap.api: when dlvsnap.launch is asked for
