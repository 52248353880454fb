"""The bot reaches the knowledge base only through its facade, so a server engine can replace storage."""

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parent.parent / "bot"


def _knowledge_base_attributes(path: Path) -> set[str]:
    """Attributes read off anything called ``kb`` (``kb.x``, ``self.kb.x``, ``conversation.kb.x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id == "kb") or (
            isinstance(owner, ast.Attribute) and owner.attr == "kb"
        ):
            names.add(node.attr)
    return names


def test_bot_never_touches_the_store_or_faiss():
    offenders = {
        path.name: sorted(names)
        for path in sorted(BOT.glob("*.py"))
        if (names := {n for n in _knowledge_base_attributes(path) if n in {"store", "vectors"} or n.startswith("_")})
    }
    assert offenders == {}


def test_bot_imports_no_vector_index():
    # sqlite_utils is allowed: the bot's own side tables (ledger, feedback) are SQLite by design.
    for path in sorted(BOT.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in {"index.vectors", "faiss"}:
                raise AssertionError(f"{path.name} imports {node.module}")
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
                assert "faiss" not in names, f"{path.name} imports {names}"
