"""The package's modules form no cycle of two: no module imports one that imports it back (function-level
imports included), so each can be read, and changed, on its own."""

import ast
from pathlib import Path

import retain_utils

PACKAGE = Path(retain_utils.__file__).parent


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
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("retain_utils"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("retain_utils"))
    return found - {name}


def test_no_two_modules_import_each_other():
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: imports(path) & set(modules) for name, path in modules.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in graph.items() for b in deps
                    if a in graph.get(b, ()) and not (a.startswith(b + ".") or b.startswith(a + "."))})
    assert pairs == [], f"modules importing each other: {pairs}"


def test_the_check_sees_function_level_imports(tmp_path):
    (tmp_path / "retain_utils").mkdir()
    path = tmp_path / "retain_utils" / "a.py"
    path.write_text("def f():\n    from .b import g\n    return g\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "retain_utils"
    try:
        assert imports(path) == {"retain_utils.b", "retain_utils.b.g"}
    finally:
        PACKAGE = saved
