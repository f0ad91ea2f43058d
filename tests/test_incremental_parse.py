"""Incremental trees per document (infill/regions/syntax.tree_of): an editor's next request re-parses only
around what changed, the trees equal full parses, and the validity rule gives the same verdicts as on full
parses."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import tree_sitter

from infill import regions
from infill.regions import syntax
from infill.regions.languages import parser_for

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
# Real code: this repository's own modules, and small programs in the other grammars.
GO_LOOP = (
    'package main\n\nimport "fmt"\n\nfunc main() {\n\tfor i := 0; i < 3; i++ {\n\t\tfmt.Println(i)\n\t}\n}\n'
)
SOURCES = {
    "python": (REPO / "infill" / "regions" / "picker.py").read_text(),
    "javascript": "function add(a, b) {\n  return a + b;\n}\nconst x = add(1, 2);\n" * 40,
    "go": GO_LOOP * 30,
    "rust": 'fn main() {\n    let x = 5;\n    println!("{}", x);\n}\n' * 40,
}
# What a user types in the middle of writing code, broken or not.
SNIPPETS = ["x = ", "total += value", "(", ")", "{", "}", '"', "if x", "\n", "    ", "return self.", "'''"]


def in_fresh_thread(call: Callable[[], T]) -> T:
    """``call()`` in a new thread: no cached trees, so every parse there is a full one."""
    result: list[T] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    thread.join()
    return result[0]


def nodes(tree: tree_sitter.Tree) -> Iterator[tuple[str, int, int, bool, bool]]:
    cursor = tree.walk()
    while True:
        node = cursor.node
        assert node is not None
        yield node.type, node.start_byte, node.end_byte, node.is_error, node.is_missing
        if cursor.goto_first_child() or cursor.goto_next_sibling():
            continue
        while cursor.goto_parent():
            if cursor.goto_next_sibling():
                break
        else:
            return


def typing(text: str, rng: random.Random, sites: int) -> Iterator[str]:
    """What an editor sends: at a random place a snippet is typed a character at a time (a document per
    keystroke, mostly broken mid-way), or a few characters are deleted; then the next place."""
    for _ in range(sites):
        at = rng.randrange(len(text))
        if rng.random() < 0.8:
            snippet = rng.choice(SNIPPETS)
            for typed in range(1, len(snippet) + 1):
                yield text[:at] + snippet[:typed] + text[at:]
        else:
            yield text[:at] + text[at + rng.randrange(1, 40) :]


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_incremental_trees_equal_full_parses(language: str) -> None:
    rng = random.Random(9)
    for text in typing(SOURCES[language], rng, 30):
        data = syntax.encode(text)
        incremental = syntax.tree_of(data, language)
        full = parser_for(language).parse(data)
        assert list(nodes(incremental)) == list(nodes(full))


def test_the_next_request_on_a_document_is_an_incremental_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    text = SOURCES["python"]
    at = text.index("def pick_cursor_region")
    document = text[:at] + "x = compute(\n" + text[at:]
    in_fresh_thread(lambda: None)
    parses: list[bool] = []
    original = tree_sitter.Parser.parse

    def counting(
        parser: tree_sitter.Parser, source: bytes, old_tree: tree_sitter.Tree | None = None
    ) -> object:
        parses.append(old_tree is not None)
        return original(parser, source) if old_tree is None else original(parser, source, old_tree)

    def judge(document: str) -> bool:
        gap = document.index("x = compute(") + len("x = compute(")
        return regions.fill_is_valid(document[:gap], "1)", document[gap:], "python")

    def two_requests() -> tuple[bool, bool]:
        first = judge(document)
        monkeypatch.setattr(tree_sitter.Parser, "parse", counting)
        second = judge(document.replace("x = compute(", "x = compute(values, "))
        return first, second

    assert in_fresh_thread(two_requests) == (True, False)
    assert parses and all(parses), "a parse of the next request started from scratch"


def test_validity_verdicts_on_incremental_trees_equal_those_on_full_parses() -> None:
    """Many fills at many places in one document, judged in one thread (each parse an edit of the last
    ones) and each in a fresh thread (full parses only): the same verdict every time."""
    rng = random.Random(3)
    text = SOURCES["python"]
    fills = ["1", "1)", "(", "x +", "pass", "\n    return 2\n", '"""', "value.attr", " if x else y"]
    cases = []
    for _ in range(40):
        at = text.index("\n", rng.randrange(len(text) - 200)) + 1 + rng.randrange(4, 12)
        cases.append((text[:at], rng.choice(fills), text[at:]))
    warm = [regions.fill_is_valid(prefix, fill, suffix, "python") for prefix, fill, suffix in cases]
    cold = [
        in_fresh_thread(lambda c=case: regions.fill_is_valid(c[0], c[1], c[2], "python")) for case in cases
    ]
    assert warm == cold
    assert any(warm) and not all(warm)
