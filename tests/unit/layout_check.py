"""The layout's floors, checked from the source: ``python -m tests.unit.layout_check``.

Prints one line per violation and nothing when the tree is right:

- no module under ``ece/`` (the foundation) imports a higher package of the project;
- no module under ``api/core/`` imports an ``api`` domain (or ``api.web``);
- nothing outside ``ops/`` imports ``ops`` (the operations floor is the top);
- no source module is over 400 lines (tests, benchmarks and migration versions aside);
- no module is named after a standard library module;
- there is no import cycle between modules.

Why a script and not a linter rule: the floors are this project's own
architecture (``docs/architecture.md``). ``tests/unit/test_layout.py`` runs it,
so the layout stays true.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ece", "api", "ops", "streaming", "orchestration", "warehouse", "quality")
ABOVE_FOUNDATION = ("api", "ops", "streaming", "orchestration", "warehouse", "quality")
# What api/core may import from api: itself only.
CORE_ALLOWED = ("api.core",)
MAX_LINES = 400


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass
class Module:
    name: str
    path: Path
    rel: str
    tree: ast.Module
    lines: int
    imports: set[str] = field(default_factory=set)  # project modules it imports at run time


class Layout:
    """The project's modules under ``root`` and the imports between them."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.modules: dict[str, Module] = {}
        for pkg in PACKAGES:
            base = root / pkg
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*.py")):
                if "__pycache__" in path.parts:
                    continue
                text = path.read_text()
                name = self._name(path)
                self.modules[name] = Module(name, path, path.relative_to(root).as_posix(),
                                            ast.parse(text, filename=str(path)),
                                            len(text.splitlines()))
        for module in self.modules.values():
            module.imports = self._imports(module)

    def _name(self, path: Path) -> str:
        parts = list(path.relative_to(self.root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)

    def _resolve(self, name: str) -> str | None:
        """The project module an imported name refers to (the module, else its package)."""
        while name:
            if name in self.modules:
                return name
            name = name.rpartition(".")[0]
        return None

    def _imports(self, module: Module) -> set[str]:
        type_only = {
            inner.lineno
            for node in ast.walk(module.tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for sub in node.body
            for inner in ast.walk(sub)
            if isinstance(inner, ast.Import | ast.ImportFrom)
        }
        package = module.name if module.path.name == "__init__.py" else (
            module.name.rpartition(".")[0])
        found: set[str] = set()
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or node.lineno in type_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join([*base, node.module] if node.module else base)
                else:
                    target = node.module or ""
                names = [f"{target}.{alias.name}" for alias in node.names] or [target]
            for name in names:
                resolved = self._resolve(name)
                if resolved and resolved != module.name:
                    found.add(resolved)
        return found

    def violations(self) -> list[str]:
        out: list[str] = []
        stdlib = set(sys.stdlib_module_names)
        for m in self.modules.values():
            for target in sorted(m.imports):
                if m.rel.startswith("ece/") and _under(target, ABOVE_FOUNDATION):
                    out.append(f"{m.rel}: the foundation imports {target}")
                if (m.rel.startswith("api/core/") and _under(target, ("api",))
                        and not _under(target, CORE_ALLOWED) and target != "api"):
                    out.append(f"{m.rel}: api/core imports {target}")
                if not m.rel.startswith("ops/") and _under(target, ("ops",)):
                    out.append(f"{m.rel}: imports the operations floor ({target})")
            if "/migrations/versions/" not in f"/{m.rel}" and m.lines > MAX_LINES:
                out.append(f"{m.rel}: {m.lines} lines (over {MAX_LINES})")
            leaf = m.name.rpartition(".")[2]
            if "." in m.name and leaf in stdlib:
                out.append(f"{m.rel}: module name {leaf!r} shadows the standard library")
        out += ["import cycle: " + " -> ".join(cycle) for cycle in self.cycles()]
        return sorted(set(out))

    def cycles(self) -> list[list[str]]:
        """Every strongly connected group of more than one module (iterative Tarjan).

        A package's ``__init__`` importing its own submodules is not a cycle: the
        edge from a submodule up to its package is how Python loads it anyway.
        """
        graph = {
            name: {t for t in m.imports if not name.startswith(t + ".")}
            for name, m in self.modules.items()
        }
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        for start in sorted(graph):
            if start in index:
                continue
            work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            while work:
                node, pending = work[-1]
                if pending:
                    nxt = pending.pop()
                    if nxt not in index:
                        index[nxt] = low[nxt] = len(index)
                        stack.append(nxt)
                        on_stack.add(nxt)
                        work.append((nxt, sorted(graph[nxt])))
                    elif nxt in on_stack:
                        low[node] = min(low[node], index[nxt])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
        return found

    def upward_imports(self) -> int:
        """How many (module, imported module) pairs point to a higher floor."""
        return sum(1 for v in self.violations() if "imports" in v)


def main() -> int:
    found = Layout().violations()
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
