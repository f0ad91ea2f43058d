"""Held-out gaps whose answer uses a name the repository defines: where a repository-specific model gains.

A fine-tuned model should first get better at what only this repository knows: its own functions, classes,
methods, attributes and constants. General gaps (``training.repo_eval.heldout_rows``) are mostly common code,
where a small base gains little, so the report scores these gaps separately.

Names are the definitions tree-sitter finds in the files the model trains on (the ``name`` of every
definition or declaration node, the targets of assignments: module constants, ``self.attribute``), minus
names that are common everywhere: keywords and builtins, dunders, methods of the builtin types, very short
names, single lowercase words (``mode``, ``rows``) and a short list of ubiquitous identifiers. A gap starts
at a use of such a name (an identifier node, not a comment or string) in a held-out file and runs to the end
of its line: the model must produce the name itself and what follows it.
"""

from __future__ import annotations

import builtins
import keyword
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import tree_sitter

from infill.regions.languages import parser_for
from training.corpus import SourceFile
from training.eval.metrics import edit_similarity, exact_match
from training.repo_eval import MAX_MIDDLE_CHARS, PREFIX_CHARS, SUFFIX_CHARS, EvalRow

MIN_NAME_CHARS = 4
_DEFINITION_SUFFIXES = ("_definition", "_declaration", "_declarator", "_item", "_signature", "_spec")
_ASSIGNMENTS = ("assignment", "augmented_assignment", "assignment_expression")
# Compound identifiers that frameworks make every codebase define: knowing them says nothing about this one.
_UBIQUITOUS = frozenset(("setUp", "tearDown", "setUpClass", "tearDownClass", "addEventListener", "toString"))
_COMMON_TYPES = (str, bytes, list, dict, set, tuple, int, float, object, BaseException)


def common_names() -> frozenset[str]:
    names = set(keyword.kwlist) | set(dir(builtins)) | _UBIQUITOUS
    for kind in _COMMON_TYPES:
        names |= set(dir(kind))
    return frozenset(names)


def _text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _defined(node: tree_sitter.Node, in_function: bool) -> Iterator[tree_sitter.Node]:
    """The identifier nodes ``node`` defines: its name, or an assignment's target. Inside a function only
    attributes count (``self.x = ...``); its plain variables are locals, not the repository's names."""
    if node.type.endswith(_DEFINITION_SUFFIXES):
        name = node.child_by_field_name("name")
        if name is not None and "identifier" in name.type and not (in_function and "declarator" in node.type):
            yield name
    elif node.type in _ASSIGNMENTS:
        target = node.child_by_field_name("left")
        if target is not None and target.type == "identifier" and not in_function:
            yield target
        elif target is not None and target.type in ("attribute", "member_expression"):
            field = target.child_by_field_name("attribute") or target.child_by_field_name("property")
            if field is not None:
                yield field


def _walk(source: SourceFile) -> Iterator[tuple[tree_sitter.Node, bool]]:
    """Every named node of the file's syntax tree, with whether it lies inside a function."""
    parser = parser_for(source.language) if source.language else None
    if parser is None:
        return
    stack = [(parser.parse(source.text.encode("utf-8")).root_node, False)]
    while stack:
        node, in_function = stack.pop()
        yield node, in_function
        inner = in_function or any(word in node.type for word in ("function", "method", "lambda"))
        stack.extend((child, inner) for child in node.named_children)


def defined_names(files: Sequence[SourceFile]) -> set[str]:
    """Names defined in ``files`` (tree-sitter), keeping those that are not common elsewhere."""
    common = common_names()
    names = {_text(n) for source in files for node, inside in _walk(source) for n in _defined(node, inside)}
    return {n for n in names if len(n) >= MIN_NAME_CHARS and n not in common and _distinctive(n)}


def _distinctive(name: str) -> bool:
    """A compound (``snake_case``, ``CamelCase``, ``UPPER_CASE``, with digits) or capitalised name; a single
    lowercase word (``mode``, ``rows``) is common in any codebase, and dunders belong to the language."""
    if name.startswith("__") and name.endswith("__"):
        return False
    return not name.isalpha() or not name.islower()


@dataclass(frozen=True)
class NameGap:
    row: EvalRow  # kind "line": from the use of the name to the end of its line
    name: str


def _file_gaps(source: SourceFile, names: set[str]) -> list[NameGap]:
    """One gap per line holding an identifier (code, not a comment or string) that is one of ``names``."""
    data = source.text.encode("utf-8")
    gaps: list[NameGap] = []
    lines_seen: set[int] = set()
    uses = sorted(
        (node.start_byte, _text(node))
        for node, _ in _walk(source)
        if "identifier" in node.type and node.child_count == 0 and _text(node) in names
    )
    for start, name in uses:
        line_start = data.rfind(b"\n", 0, start) + 1
        end = data.find(b"\n", start)
        middle = data[start : len(data) if end < 0 else end].decode("utf-8", "replace").rstrip()
        if line_start in lines_seen or len(middle) > MAX_MIDDLE_CHARS:
            continue
        lines_seen.add(line_start)
        stop = start + len(middle.encode("utf-8"))
        prefix = data[:start].decode("utf-8", "replace")[-PREFIX_CHARS:]
        suffix = data[stop:].decode("utf-8", "replace")[:SUFFIX_CHARS]
        gaps.append(NameGap(EvalRow(source.path, "line", prefix, suffix, middle), name))
    return gaps


def name_gaps(
    train: Sequence[SourceFile], heldout: Sequence[SourceFile], count: int, seed: int = 0
) -> list[NameGap]:
    """Up to ``count`` gaps in ``heldout`` files that start at a use of a name defined in ``train``; at most
    one per line, spread round-robin over the files, in a seeded order."""
    names = defined_names(train) if count > 0 else set()
    if not names:
        return []
    rng = random.Random(f"repo-names:{seed}")
    per_file = []
    for source in heldout:
        gaps = _file_gaps(source, names)
        rng.shuffle(gaps)
        per_file.append(gaps)
    picked: list[NameGap] = []
    for round_ in range(max((len(g) for g in per_file), default=0)):
        picked += [gaps[round_] for gaps in per_file if round_ < len(gaps)]
    return picked[:count]


def name_gap_scores(gaps: Sequence[NameGap], completions: Sequence[str]) -> dict[str, list[float]]:
    """Per-gap ``names_*`` scores in gap order: exact match, edit similarity, and whether the fill holds the
    name at all (the most direct sign that the model learned it)."""
    pairs = list(zip(completions, gaps, strict=True))
    return {
        "names_exact_match": [float(exact_match(c, g.row.middle)) for c, g in pairs],
        "names_edit_similarity": [edit_similarity(c, g.row.middle) for c, g in pairs],
        "names_recalled": [float(re.search(rf"\b{re.escape(g.name)}\b", c) is not None) for c, g in pairs],
    }
