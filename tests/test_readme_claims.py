"""The README names a test for each reliability claim; every test it names must exist.

A renamed or deleted test would otherwise leave the README vouching for a check that no longer runs.
References are read from backticked spans: ``tests/test_x.py::test_name``, ``test_x.py::test_name[param id]``,
a bare ``::test_name`` (same file as the reference before it), a ``[param id]`` right after a reference
(same test), and a file alone (``tests/test_load.py``).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
SPAN = re.compile(r"`([^`]+)`")
REFERENCE = re.compile(r"^(?:tests/)?(test_\w+\.py)(?:::(test_\w+))?(?:\[([^\]]+)\])?$")
SAME_FILE = re.compile(r"^::(test_\w+)$")
PARAM = re.compile(r"^\[([^\]]+)\]$")
FENCED = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def readme_references(text: str) -> list[tuple[str, str | None, str | None]]:
    """(file, test or None, parameter id or None) for every test the text names, in order."""
    found: list[tuple[str, str | None, str | None]] = []
    last: tuple[str, str | None, str | None] | None = None
    previous_end = 0
    text = FENCED.sub("", text)  # code blocks would pair their fences' backticks with the spans around them
    for span in SPAN.finditer(text):
        body, gap = span.group(1), text[previous_end : span.start()]
        previous_end = span.end()
        if match := REFERENCE.match(body):
            last = (match.group(1), match.group(2), match.group(3))
        elif (match := SAME_FILE.match(body)) and last:
            last = (last[0], match.group(1), None)
        elif (match := PARAM.match(body)) and last and last[1] and gap.strip() == ",":
            last = (last[0], last[1], match.group(1))  # only right after a test: `[::1]` elsewhere is an address
        else:
            last = None
            continue
        found.append(last)
    return found


@cache
def _parsed(file: str) -> tuple[set[str], set[str]]:
    """The test functions a test file defines, and every string constant in it (candidate parameter ids)."""
    tree = ast.parse((TESTS / file).read_text(encoding="utf-8"))
    functions = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return functions, strings


def missing(reference: tuple[str, str | None, str | None]) -> str | None:
    file, test, param = reference
    if not (TESTS / file).is_file():
        return f"{file} does not exist"
    functions, strings = _parsed(file)
    if test and test not in functions:
        return f"{file} has no {test}"
    if param and param not in strings:
        return f"{file}::{test} has no parameter id {param!r}"
    return None


def test_every_test_the_readme_names_exists():
    references = readme_references((ROOT / "README.md").read_text(encoding="utf-8"))
    # The Reliability section alone names well over 70 tests: finding few means the parser broke.
    assert len({r for r in references if r[1]}) >= 70, references
    problems = [problem for r in references if (problem := missing(r))]
    assert problems == []


def test_the_reference_reader_follows_the_readme_shorthands():
    text = (
        "`tests/test_a.py::test_one`, `::test_two`; `test_b.py::test_three[x y]`, `[z]`; such as `localhost`, "
        "`[::ffff:127.0.0.1]` and `tests/test_c.py` then `[not a param]`"
    )
    assert readme_references(text) == [
        ("test_a.py", "test_one", None),
        ("test_a.py", "test_two", None),
        ("test_b.py", "test_three", "x y"),
        ("test_b.py", "test_three", "z"),
        ("test_c.py", None, None),
    ]


def test_a_missing_test_or_parameter_is_reported():
    assert missing(("test_nothing_here.py", None, None)) == "test_nothing_here.py does not exist"
    assert missing(("test_store.py", "test_that_was_never_written", None)) == (
        "test_store.py has no test_that_was_never_written"
    )
    assert missing(("test_store.py", "test_damaged_index_is_detected_and_rebuilt", "no such damage")) is not None
    assert missing(("test_store.py", "test_damaged_index_is_detected_and_rebuilt", "sidecar deleted")) is None
