"""The layering claim, checked: bot/ reaches storage only through the knowledge base, and nothing imports in a circle.

The bot talks to ``KnowledgeBase`` (and the engine-neutral ``index.engine`` / ``index.records``), so a
server engine can replace SQLite and FAISS without touching bot/. Each rule is tested on a module
written to break it, so a rule that silently stopped matching would fail here too.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "index")

# Storage engines and the libraries they are built on: bot/ must import none of them.
ENGINE_MODULES = {
    "index.store",
    "index.vectors",
    "index.side_tables",
    "index.schema",
    "index.postgres",
    "index.pg_store",
    "index.pg_vectors",
    "index.pg_side_tables",
    "index.unicode61",
}
STORAGE_LIBRARIES = {"faiss", "sqlite3", "sqlite_utils", "psycopg", "pgvector"}
# What the knowledge base holds its engines in; no bot code reads them, whatever the owner is called.
STORAGE_ATTRIBUTES = {"store", "vectors"}
OWN = {"self", "cls"}


def _forbidden_module(name: str) -> bool:
    top = name.split(".")[0]
    return top in STORAGE_LIBRARIES or any(name == m or name.startswith(m + ".") for m in ENGINE_MODULES)


def _imported_names(node: ast.AST) -> list[str]:
    """Absolute module names an import statement (or importlib/__import__ call with a literal) brings in."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and not node.level and node.module:
        # ``from index import store`` imports the module index.store.
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _storage_attribute(node: ast.AST) -> str | None:
    """``x.store``, ``a.b.vectors``, ``kb._embedder``, ``getattr(x, "store")``: storage reached into."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"getattr", "setattr", "hasattr"}:
        if len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            name = node.args[1].value
            if name in STORAGE_ATTRIBUTES or (name.startswith("_") and not name.startswith("__")):
                return f"{node.func.id}(…, {name!r})"
        return None
    if not isinstance(node, ast.Attribute):
        return None
    owner = node.value
    if isinstance(owner, ast.Name) and owner.id in OWN:
        return None  # the bot's own objects may name their attributes as they like
    if node.attr in STORAGE_ATTRIBUTES or (node.attr.startswith("_") and not node.attr.startswith("__")):
        return ast.unparse(node)
    return None


def violations(source: str) -> list[str]:
    """Every breach of the layering rules in one bot module's source, as "line: what"."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for name in _imported_names(node):
            if _forbidden_module(name):
                found.append(f"{node.lineno}: imports {name}")
        if (attribute := _storage_attribute(node)) is not None:
            found.append(f"{node.lineno}: uses {attribute}")
    return found


def _modules(package: str) -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / package).glob("*.py")):
        out[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return out


def offenders(directory: Path) -> dict[str, list[str]]:
    """Every module of a directory that breaks the rules, with its breaches."""
    return {
        path.name: found
        for path in sorted(directory.glob("*.py"))
        if (found := violations(path.read_text(encoding="utf-8")))
    }


def test_bot_never_touches_the_store_or_faiss():
    assert len(list((ROOT / "bot").glob("*.py"))) > 10, "the bot's modules were not found"
    found = offenders(ROOT / "bot")
    assert found == {}, f"bot/ must reach storage only through KnowledgeBase: {found}"


BREAKING = {
    "import index.store": "import index.store\n",
    "from index.store": "from index.store import connect\n",
    "from index import store": "from index import store\n",
    "index.vectors": "from index.vectors import VectorIndex\n",
    "side tables engine": "from index.side_tables import SQLiteAnswerLog\n",
    "faiss": "import faiss\n",
    "sqlite3 aliased": "import sqlite3 as db\n",
    "from sqlite3": "from sqlite3 import Connection\n",
    "sqlite_utils": "import sqlite_utils\n",
    "importlib": "import importlib\nengine = importlib.import_module('index.store')\n",
    ".store on any name": "def f(answerer):\n    return answerer.knowledge.store.version()\n",
    ".vectors on any name": "def f(thing):\n    return thing.vectors.count\n",
    ".store on self's attribute": "class A:\n    def f(self):\n        return self.kb.store\n",
    "private attribute": "def f(base):\n    return base._embedder\n",
    "getattr": "def f(base):\n    return getattr(base, 'store')\n",
}


@pytest.mark.parametrize("kind", sorted(BREAKING))
def test_the_layering_rule_catches(kind, tmp_path):
    (tmp_path / "fine.py").write_text("from index.kb import KnowledgeBase\n", encoding="utf-8")
    (tmp_path / "bad.py").write_text(BREAKING[kind], encoding="utf-8")
    found = offenders(tmp_path)
    assert list(found) == ["bad.py"], f"a module breaking the rules ({kind}) went unnoticed"


def test_the_layering_rule_allows_the_facade_and_own_attributes():
    source = (
        "from index.kb import KnowledgeBase\n"
        "from index.engine import AnswerLog\n"
        "from index.records import ArticleRecord\n"
        "class A:\n"
        "    def f(self, kb, value):\n"
        "        self._lock = None\n"
        "        self.vectors = kb.search('x')\n"
        "        return type(value).__name__, super().__init__\n"
    )
    assert violations(source) == []


def test_the_knowledge_base_knows_no_telegram_and_no_bot():
    for name, path in _modules("index").items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for imported in _imported_names(node):
                top = imported.split(".")[0]
                assert top not in {"telegram", "bot"}, f"{name} imports {imported}"


# --- import cycles ----------------------------------------------------------------------------


def import_graph(packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> project modules it imports, at any depth of the file (lazy and TYPE_CHECKING imports too)."""
    modules = {name: path for package in packages for name, path in _modules(package).items()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = f"{package}.{node.module}" if node.module else package
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                candidates = [c for n in _imported_names(node) for c in (n, n.rsplit(".", 1)[0])]
            deps |= {c for c in candidates if c in modules and c != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, …, a], or None (depth-first search, white/grey/black)."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_in_a_circle():
    graph = import_graph()
    assert "bot.answer" in graph and "index.embedding" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_module_imports():
    for name in import_graph():
        if not name.endswith(".__main__"):  # running it is its whole purpose
            importlib.import_module(name)
