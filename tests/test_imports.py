"""The package's modules form no import cycle, of any length, function-level imports included: each module can
be read, and changed, on top of what it imports. Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``
first, so it counts as importing those packages too. The folders themselves are layered: ``core`` imports no
other folder, ``analysis`` only ``core``, ``chapters`` and ``batch`` only those below them."""

import ast
from pathlib import Path

import retain_utils

PACKAGE = Path(retain_utils.__file__).parent
TOP = "retain_utils"
# folder -> the folders it may import (itself and the top-level package always)
LAYERS = {"core": set(), "toy": {"core"}, "analysis": {"core"}, "chapters": {"core", "analysis", "toy"},
          "batch": {"core", "analysis", "chapters", "toy"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Package modules ``path`` imports anywhere in it (``from . import x`` counts as importing ``x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(TOP):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(TOP))
    return found - {name}


def graph(package: Path = None) -> dict[str, set[str]]:
    """Module -> the package modules it imports, with the packages whose ``__init__`` each import runs (not the
    importer's own packages, already running) and without the top-level package (it imports nothing)."""
    modules = {module_name(p): p for p in (package or PACKAGE).rglob("*.py")}
    edges = {}
    for name, path in modules.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        deps = set()
        for target in imports(path) & set(modules):
            parts = target.split(".")
            deps.update(".".join(parts[:i]) for i in range(2, len(parts) + 1))
        edges[name] = (deps & set(modules)) - own - {TOP}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected set of nodes (Tarjan), as the list of nodes along it."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
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
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(_path(edges, set(component), v))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def _path(edges, component: set, start: str) -> list[str]:
    """A cycle from ``start`` back to it inside ``component`` (breadth-first: a shortest one)."""
    previous, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges.get(v, ()) & component):
                if w == start:
                    path = [v]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def folder(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else None


def test_no_import_cycle_of_any_length():
    found = cycles(graph())
    assert found == [], "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_each_folder_imports_only_the_layers_below_it():
    assert set(LAYERS) == {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    wrong = sorted((a, b) for a, deps in graph().items() for b in deps
                   if folder(a) and folder(b) and folder(b) != folder(a) and folder(b) not in LAYERS[folder(a)])
    assert wrong == [], f"imports against the layering: {wrong}"


def _package(tmp_path, files: dict[str, str]) -> Path:
    root = tmp_path / TOP
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_check_sees_function_level_imports(tmp_path, monkeypatch):
    root = _package(tmp_path, {"a.py": "def f():\n    from .b import g\n    return g\n", "b.py": ""})
    monkeypatch.setitem(globals(), "PACKAGE", root)
    assert imports(root / "a.py") == {"retain_utils.b", "retain_utils.b.g"}


def test_the_check_finds_a_cycle_of_three_through_a_package_init(tmp_path, monkeypatch):
    # a -> p.b (which runs p/__init__) ; p/__init__ -> c ; c -> a (inside a function)
    root = _package(tmp_path, {"a.py": "from .p import b\n", "p/__init__.py": "from .. import c\n",
                               "p/b.py": "", "c.py": "def f():\n    from . import a\n"})
    monkeypatch.setitem(globals(), "PACKAGE", root)
    found = cycles(graph(root))
    assert len(found) == 1 and set(found[0]) == {"retain_utils.a", "retain_utils.p", "retain_utils.c"}
    assert found[0][0] == found[0][-1] and len(found[0]) == 4
    (root / "c.py").write_text("")  # break it
    assert cycles(graph(root)) == []
