"""The layout as the issue states it, checked on the real import graph and the real docs.

- no module imports another in a loop (a package and its own submodules excepted), with and
  without ``TYPE_CHECKING`` imports; the library never imports a shell (``cli``, ``api``,
  ``workers``);
- every third-party module the repository imports is declared in ``pyproject.toml`` (one that
  only arrives as another package's dependency can vanish with that package's next release);
- docs/ARCHITECTURE.md names every module in its table, and the names the docs give
  (dotted ``video_inst...`` names, ``video_inst/...`` paths, the data-flow functions, the
  code examples' calls) exist in the code.

``lint-imports`` (the test command) checks the layers; this file checks what a layers
contract cannot say. The graph comes from grimp, the library import-linter itself uses.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.metadata
import re
import sys
from pathlib import Path
from typing import Any

import grimp
import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md")) + [REPO / "README.md"]
SHELLS = ("video_inst.cli", "video_inst.api", "workers")


def _graph(type_checking: bool) -> Any:
    return grimp.build_graph(
        "video_inst", "workers", exclude_type_checking_imports=not type_checking, cache_dir=None
    )


def _is_inside(module: str, package: str) -> bool:
    return module.startswith(package + ".")


def import_loops(graph: Any) -> list[list[str]]:
    """Strongly connected sets of two or more modules (Tarjan), i.e. modules that import each
    other in a loop. An import of a module's own ancestor package (``from . import x`` in
    ``a.b``) is left out: Python imports the package first anyway, and the issue excepts a
    package and its own submodules; a package importing its submodules is kept, so a loop that
    runs through a package's ``__init__`` to an outside module and back still counts."""
    modules = sorted(graph.modules)
    edges = {
        m: sorted(
            x
            for x in graph.find_modules_directly_imported_by(m)
            if x in graph.modules and not _is_inside(m, x)
        )
        for m in modules
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the module count (~120)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                loops.append(sorted(component))

    for m in modules:
        if m not in index:
            visit(m)
    return loops


class _FakeGraph:
    """A hand-made graph for checking the loop finder itself."""

    def __init__(self, edges: dict[str, list[str]]) -> None:
        self.modules = set(edges) | {x for xs in edges.values() for x in xs}
        self._edges = edges

    def find_modules_directly_imported_by(self, module: str) -> set[str]:
        return set(self._edges.get(module, []))


def test_the_loop_finder_finds_loops_and_excepts_only_a_package_and_its_submodules() -> None:
    assert import_loops(_FakeGraph({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]})) == [["a", "b", "c"]]
    assert import_loops(_FakeGraph({"p": ["p.x"], "p.x": ["p"]})) == []  # package <-> own submodule
    assert import_loops(_FakeGraph({"p.x": ["p.y"], "p.y": ["p.x"]})) == [["p.x", "p.y"]]
    # through a package's __init__ to an outside module and back: a loop
    assert import_loops(_FakeGraph({"p": ["p.x"], "p.x": ["q"], "q": ["p"]})) == [["p", "p.x", "q"]]


@pytest.mark.parametrize("type_checking", [False, True], ids=["runtime", "with-type-hints"])
def test_no_module_imports_another_in_a_loop(type_checking: bool) -> None:
    graph = _graph(type_checking)
    assert len(graph.modules) > 100  # the whole library was read, not an empty graph
    assert import_loops(graph) == []


def test_the_library_never_imports_a_shell() -> None:
    graph = _graph(type_checking=True)
    library = [m for m in graph.modules if not any(m == s or _is_inside(m, s) for s in SHELLS)]
    assert "video_inst.ingest.pipeline" in library
    wrong = sorted(
        (m, x)
        for m in library
        for x in graph.find_modules_directly_imported_by(m)
        if any(x == s or _is_inside(x, s) for s in SHELLS)
    )
    assert wrong == []  # a direct import is the only way in: every chain from below starts with one


# --- dependencies -----------------------------------------------------------------------------

# Imported only when present, and said so in docs/DEPENDENCIES.md ("Not dependencies").
OPTIONAL = {"onnxruntime", "onnx"}


def _requirement_name(spec: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0]).lower()


def _imported_top_level_names() -> dict[str, set[str]]:
    """Absolute imports of every Python file we ship or run, by top-level name -> files."""
    found: dict[str, set[str]] = {}
    for folder in ("video_inst", "workers", "migrations", "scripts", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO)))
    return found


def test_every_imported_third_party_package_is_declared() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = {_requirement_name(d) for d in config["project"]["dependencies"]}
    declared |= {
        _requirement_name(d) for extra in config["project"]["optional-dependencies"].values() for d in extra
    }
    ours = {"video_inst", "workers", "migrations", "tests"}
    ours |= {p.stem for folder in ("tests", "scripts") for p in (REPO / folder).glob("*.py")}
    distributions = importlib.metadata.packages_distributions()
    imported = _imported_top_level_names()
    assert {"torch", "click", "scipy", "kombu"} <= set(imported)
    undeclared = {}
    for name, files in sorted(imported.items()):
        if name in sys.stdlib_module_names or name in ours or name in OPTIONAL or name == "__future__":
            continue
        dists = distributions.get(name, [])
        if not any(_requirement_name(d) in declared for d in dists):
            undeclared[name] = (dists or "not installed", sorted(files)[:3])
    assert undeclared == {}, f"imported but not declared in pyproject.toml: {undeclared}"


# --- docs true to the code ----------------------------------------------------------------------


def _resolve(dotted: str) -> str | None:
    """None when ``dotted`` names a module or an attribute chain of one, else what is missing."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return f"{'.'.join(parts[:i])} has no {attr!r} (in {dotted})"
            obj = getattr(obj, attr)
        return None
    return f"no module for {dotted}"


def _modules_table() -> str:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    return text.split("\n## Modules\n", 1)[1].split("\n## ", 1)[0]


def test_architecture_names_every_module_and_only_modules_that_exist() -> None:
    table = _modules_table()
    named = set(re.findall(r"`([\w/]+(?:\.py|/))`", table))
    missing = []
    for path in sorted((REPO / "video_inst").rglob("*.py")) + sorted((REPO / "workers").rglob("*.py")):
        if path.name == "__init__.py":
            continue  # a package is its modules
        rel = (
            path.relative_to(REPO / "video_inst")
            if path.is_relative_to(REPO / "video_inst")
            else path.relative_to(REPO)
        )
        if str(rel) not in named:
            missing.append(str(rel))
    assert missing == [], f"docs/ARCHITECTURE.md's module table lacks {missing}"
    gone = [n for n in named if not (REPO / "video_inst" / n).exists() and not (REPO / n).exists()]
    assert gone == [], f"docs/ARCHITECTURE.md names modules that do not exist: {gone}"


def test_the_data_flow_names_functions_that_exist() -> None:
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    flow = text.split("```", 2)[1]
    names = set(re.findall(r"\b([a-z_]+\.[a-z_]+\.[A-Za-z_]\w*(?:\.[a-z_]\w*)?)", flow))
    assert {"media.probe.probe", "vectors.store.IndexStore.sync"} <= names
    assert [problem for n in sorted(names) if (problem := _resolve("video_inst." + n))] == []


def test_dotted_names_and_paths_in_the_docs_exist() -> None:
    from video_inst.jobs.queue import ROUTES

    # Task names (README, docs/WORKERS.md) and OTIO metadata keys (docs/EXPORT.md) look dotted.
    not_code = set(ROUTES) | {f"video_inst.{k}" for k in ("hit", "timecode", "rate", "drop_frame")}
    problems = []
    for doc in DOCS:
        text = doc.read_text()
        for dotted in set(re.findall(r"(?<![\w/.])((?:video_inst|workers)(?:\.[A-Za-z_]\w*)+)", text)):
            if dotted not in not_code and (problem := _resolve(dotted)):
                problems.append(f"{doc.name}: {problem}")
        for path in set(re.findall(r"(?<![\w/.])((?:video_inst|workers)/[\w./]*\w)", text)):
            if not (REPO / path).exists() and not (REPO / f"{path}.py").exists():
                problems.append(f"{doc.name}: no such path {path}")
    assert problems == [], problems


# Code blocks that list an API without importing it: the module they document, and what their
# instance variables stand for.
API_BLOCKS = {
    "CLIP_AND_LABELS.md": (
        ("video_inst.models.clip", "video_inst.models.labels"),
        {"clip": "ClipEmbedder", "matcher": "LabelMatcher"},
    ),
}


def _python_blocks(doc: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)


def test_the_docs_code_examples_call_what_exists() -> None:
    checked = 0
    problems = []
    for doc in DOCS:
        modules, instances = API_BLOCKS.get(doc.name, ((), {}))
        for block in _python_blocks(doc):
            if not re.search(r"^\s*(from|import) video_inst", block, re.M) and not modules:
                continue  # e.g. the editing tool's Celery client, which imports no video_inst
            namespace: dict[str, Any] = {}
            for module in modules:
                namespace.update(vars(importlib.import_module(module)))
            for line in block.splitlines():
                m = re.match(r"\s*from (video_inst[\w.]*) import (.+)", line)
                if m:
                    module = importlib.import_module(m.group(1))
                    for name in (n.strip() for n in m.group(2).split(",")):
                        if not hasattr(module, name):
                            problems.append(f"{doc.name}: {m.group(1)} has no {name}")
                        namespace[name] = getattr(module, name, None)
            code = "\n".join(
                line.split("#", 1)[0] for line in block.splitlines() if not line.lstrip().startswith("from ")
            )
            assigned = set(re.findall(r"^\s*([A-Za-z_]\w*)(?:\s*,\s*[A-Za-z_]\w*)*\s*=", code, re.M))
            for head, attr in re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?:\.(\w+))?\(", code):
                checked += 1
                if head in instances:
                    owner = namespace.get(instances[head])
                    if owner is None or not hasattr(owner, attr):
                        problems.append(f"{doc.name}: {instances[head]} has no {attr!r} ({head}.{attr})")
                elif head in namespace:
                    if attr and not hasattr(namespace[head], attr):
                        problems.append(f"{doc.name}: {head} has no {attr!r}")
                elif not hasattr(builtins, head) and head not in assigned:
                    problems.append(
                        f"{doc.name}: {head}(...) is neither imported nor part of {modules or 'the block'}"
                    )
    assert checked > 20
    assert problems == [], problems


def _library_modules() -> list[Any]:
    names = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "video_inst").rglob("*.py")
        if p.name != "__main__.py"
    )
    return [importlib.import_module(n) for n in names]


def test_module_docstring_examples_call_what_exists() -> None:
    """``Example::`` blocks of module docstrings (the issue's ``analyse.py`` example called methods
    that did not exist): every function called exists in the library, every ``Class.method`` and
    ``obj.method`` of an object built in the block exists on its class."""
    modules = _library_modules()
    everywhere: dict[str, Any] = {}
    for module in modules:
        everywhere.update({k: v for k, v in vars(module).items() if not k.startswith("__") and callable(v)})
    checked, problems = 0, []
    for module in modules:
        doc = module.__doc__ or ""
        for block in re.findall(r"Example::\n\n((?:(?: {4,}.*)?\n)+)", doc + "\n"):
            code = "\n".join(line.split("#", 1)[0] for line in block.splitlines())
            built = {  # x = Cls(...) / x = Cls.load(...): what x is an instance of
                var: everywhere[cls]
                for var, cls in re.findall(r"^\s*(\w+)\s*=\s*([A-Z]\w*)[.(]", code, re.M)
                if isinstance(everywhere.get(cls), type)
            }
            assigned = set(re.findall(r"^\s*([A-Za-z_]\w*)(?:\s*,\s*[A-Za-z_]\w*)*\s*=", code, re.M))
            assigned |= set(re.findall(r"\bfor\s+([\w, ]+?)\s+in\b", code))
            assigned |= set(re.findall(r"\bas\s+(\w+)", code))
            for head, attr in re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?:\.(\w+))?\(", code):
                checked += 1
                where = f"{module.__name__}: {head}{'.' + attr if attr else ''}"
                if head in built:
                    if attr and not hasattr(built[head], attr):
                        problems.append(f"{where}: {built[head].__name__} has no {attr!r}")
                elif head in everywhere and head not in assigned:
                    if attr and not hasattr(everywhere[head], attr):
                        problems.append(f"{where}: {head} has no {attr!r}")
                elif not attr and not hasattr(builtins, head) and head not in assigned:
                    problems.append(f"{where}: no function {head} in the library")
    assert checked > 50
    assert problems == [], problems
