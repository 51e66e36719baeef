"""The layout's floors, checked from the source: ``python -m tests.unit.layout_check``.

Prints one line per violation and nothing when the tree is right:

- no module under ``ece/`` imports a higher package of the project;
- no module under ``api/core/`` imports an ``api`` domain;
- nothing outside ``ops/`` (and tests, benchmarks) imports ``ops``;
- no source module is over 400 lines (tests, benchmarks and migration versions aside);
- no module is named after a standard library module;
- there is no import cycle between modules.

Why a script and not a linter rule: the floors are this project's own
architecture (``docs/architecture.md``); a test runs it so the layout stays true.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ece", "api", "streaming", "orchestration", "warehouse", "quality", "ops")
ABOVE_FOUNDATION = ("api", "streaming", "orchestration", "warehouse", "quality", "ops")
MAX_LINES = 400
# The `api` packages that are not domains: what api/core may import.
API_NON_DOMAINS = ("api.core",)


def source_files() -> Iterator[Path]:
    for pkg in PACKAGES:
        base = ROOT / pkg
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[str]:
    """Absolute module names a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append(target)
            found.extend(f"{target}.{alias.name}" for alias in node.names)
    return found


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _known_modules(files: list[Path]) -> set[str]:
    return {module_name(p) for p in files}


def _resolve(name: str, known: set[str]) -> str | None:
    """The project module an imported name refers to (a module, or its package)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking_only(path: Path) -> set[int]:
    """Line numbers of imports under ``if TYPE_CHECKING:`` (no runtime edge)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        lines.add(inner.lineno)
    return lines


def import_graph(files: list[Path]) -> dict[str, set[str]]:
    known = _known_modules(files)
    graph: dict[str, set[str]] = {}
    for path in files:
        mod = module_name(path)
        skip = _is_type_checking_only(path)
        edges: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in skip:
                continue
            # Only module-level imports form cycles that break at import time;
            # imports inside functions are deliberate late bindings but still count
            # as dependencies, so they are kept.
            for name in _names(node, path):
                target = _resolve(name, known)
                if target and target != mod and not mod.startswith(target + "."):
                    edges.add(target)
        graph[mod] = edges
    return graph


def _names(node: ast.Import | ast.ImportFrom, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    mod = module_name(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    if node.level:
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    return [target, *(f"{target}.{a.name}" for a in node.names)]


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def violations() -> list[str]:
    files = list(source_files())
    out: list[str] = []
    stdlib = set(sys.stdlib_module_names)
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        mod = module_name(path)
        imported = imports_of(path)
        if rel.startswith("ece/"):
            out += [f"{rel}: foundation imports {n}" for n in imported
                    if _under(n, ABOVE_FOUNDATION)]
        if rel.startswith("api/core/"):
            out += [f"{rel}: api/core imports domain {n}" for n in imported
                    if _under(n, ("api",)) and not _under(n, API_NON_DOMAINS)
                    and n != "api"]
        if not rel.startswith("ops/"):
            out += [f"{rel}: imports the operations floor {n}" for n in imported
                    if _under(n, ("ops",))]
        if "/migrations/versions/" not in f"/{rel}":
            lines = len(path.read_text().splitlines())
            if lines > MAX_LINES:
                out.append(f"{rel}: {lines} lines (over {MAX_LINES})")
        leaf = mod.rpartition(".")[2]
        if leaf in stdlib and path.name != "__init__.py" or (
            path.name == "__init__.py" and leaf in stdlib and "." in mod
        ):
            out.append(f"{rel}: module name {leaf!r} shadows the standard library")
    for cycle in find_cycles(import_graph(files)):
        out.append("import cycle: " + " <-> ".join(cycle))
    return sorted(set(out))


def main() -> int:
    found = violations()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
