"""The package's shape: no import cycles, imports at the top, small modules, thin CLI handlers,
few top-level entries, and docs that name only modules and objects that exist."""

from __future__ import annotations

import ast
import importlib
import re
import sys
from pathlib import Path

from helpers import REPO

PACKAGE = REPO / "src" / "audiollm"
MAX_MODULE_LINES = 600
MAX_HANDLER_LINES = 25
MAX_TOP_LEVEL = 17
# Where a function may import our own modules: the CLI, so that `audiollm --help` loads no
# torch, and `audiollm.load`, so that `import audiollm` does not either.
LAZY_IMPORTS_ALLOWED = ("cli/", "__init__.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def module_imports(name: str, path: Path) -> set[str]:
    """Our modules that ``name`` imports when it is imported (module level, outside
    ``if TYPE_CHECKING``). ``from pkg import sub`` counts as importing ``pkg.sub`` only."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        statements = node.body if isinstance(node, ast.Try) else [node]
        for stmt in statements:
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom):
                base = stmt.module or ""
                if stmt.level:
                    kept = package.split(".")[: len(package.split(".")) - stmt.level + 1]
                    base = ".".join(kept + ([stmt.module] if stmt.module else []))
                subs = [f"{base}.{a.name}" for a in stmt.names if f"{base}.{a.name}" in MODULES]
                targets = subs if len(subs) == len(stmt.names) else [base, *subs]
            else:
                continue
            found.update(t for t in targets if t in MODULES and t != name)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (cycle := visit(w)):
                return cycle
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state and (cycle := visit(v)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycles():
    graph = {name: module_imports(name, path) for name, path in MODULES.items()}
    assert sum(map(len, graph.values())) > 100  # the walk sees the package's imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def function_level_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    out += [(node.lineno, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    out.append((node.lineno, node.module or ""))
    return out


def test_imports_inside_functions_are_only_heavy_optional_libraries():
    """Our modules and the standard library are imported at the top of a module; a function
    may import a heavy or optional third-party library (transformers, music21, nltk, …)."""
    problems = []
    for name, path in MODULES.items():
        rel = path.relative_to(PACKAGE).as_posix()
        for line, module in function_level_imports(path):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or (top == "audiollm" and not rel.startswith(LAZY_IMPORTS_ALLOWED)):
                problems.append(f"{rel}:{line} imports {module}")
    assert not problems, "\n".join(problems)


def test_modules_are_small():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES.values()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_cli_handlers_are_thin():
    long = {}
    for path in (PACKAGE / "cli").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("cmd_"):
                if (n := node.end_lineno - node.lineno + 1) > MAX_HANDLER_LINES:
                    long[f"{path.name}:{node.name}"] = n
    assert not long, f"CLI handlers over {MAX_HANDLER_LINES} lines: {long}"


def test_few_top_level_entries():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL, entries


def test_design_tree_matches_the_package():
    """docs/DESIGN.md's layout block names every folder and module of the package, and
    nothing that is not there."""
    text = (REPO / "docs" / "DESIGN.md").read_text()
    block = re.search(r"```text\nsrc/audiollm/\n(.*?)```", text, re.S)
    assert block, "docs/DESIGN.md has no ```text block starting with src/audiollm/"
    listed: set[str] = set()
    folder: list[str] = []
    for line in block.group(1).splitlines():
        m = re.match(r"( *)(.*)", line)
        depth = len(m.group(1)) // 2 - 1
        names = [n.strip() for n in re.split(r"\s{2,}", m.group(2).strip())[0].split(",") if n.strip()]
        if not names:
            continue
        folder = folder[:depth]
        if len(names) == 1 and names[0].endswith("/"):
            folder.append(names[0].rstrip("/"))
            listed.add("/".join(folder) + "/")
        else:
            listed.update("/".join([*folder, n]) for n in names if n.endswith(".py"))
    actual = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    actual |= {p.relative_to(PACKAGE).as_posix() + "/" for p in PACKAGE.rglob("*")
               if p.is_dir() and p.name != "__pycache__"}
    assert not actual - listed, f"in the package, missing from DESIGN.md: {sorted(actual - listed)}"
    assert not listed - actual, f"in DESIGN.md, not in the package: {sorted(listed - actual)}"


def resolves(reference: str) -> bool:
    parts = reference.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_docs_and_docstrings_name_real_modules():
    """Every dotted ``audiollm.x.y`` in the code, configs, benchmarks, README and docs/ (not the
    dated experiment notes, which describe the code of their day) is a module or object."""
    files = [*MODULES.values(), REPO / "README.md", *(REPO / "docs").glob("*.md"),
             *(REPO / "benchmarks").glob("*.py"), *(REPO / "configs").rglob("*.yaml")]
    stale = {}
    for f in files:
        for ref in set(re.findall(r"(?<![/\w-])audiollm(?:\.[A-Za-z_]\w*)+", f.read_text())):
            if not ref.endswith((".py", ".yaml", ".json")) and not resolves(ref):
                stale.setdefault(ref, []).append(str(f.relative_to(REPO)))
    assert not stale, f"names that do not exist: {stale}"
