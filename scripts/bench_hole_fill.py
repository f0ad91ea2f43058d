"""Hole fill rate: how often a `<|fill|>` hole cut at a syntactic unit of real code gets a checked fill.

Cuts holes in the Python files of an installed package the bundled model was not trained on (default:
``starlette``, BSD-3-Clause; the bundle's ``training_manifest.json`` lists what it was trained on): one hole
per document, at a syntactic unit picked by tree-sitter (``--units``): an expression at the end of its line (a
return value, an assignment's right-hand side), a whole simple statement on its own line, or the body of a
block of at most ``--max-block-lines`` lines. Each document is filled the way ``infill rewrite`` fills it
(``Infiller.fill_document``). Prints, per unit and in all: the fill rate (the hole got a candidate that passed
the check) and the edit similarity of what is written with the code that was cut out (an unfilled hole counts
as 0; among filled holes too). Run it on two checkouts to compare them:

    OMP_NUM_THREADS=1 python scripts/bench_hole_fill.py --places 120
    OMP_NUM_THREADS=1 PYTHONPATH=/path/to/other/checkout python scripts/bench_hole_fill.py --places 120
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO_ROOT))  # this checkout, unless PYTHONPATH names another one

import tree_sitter  # noqa: E402

from infill import regions  # noqa: E402
from infill.regions.syntax import parse  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lsp_latency import hardware  # noqa: E402

UNITS = ("expression", "statement", "block")
# Simple statements worth cutting out whole (not `pass`, imports or docstrings: nothing to infer).
_STATEMENTS = frozenset({"expression_statement", "return_statement", "raise_statement", "assert_statement"})


@dataclass(frozen=True)
class Place:
    path: str
    unit: str
    start: int  # str offsets of the cut-out code in the file's text
    end: int


def places_in(path: Path, text: str, max_block_lines: int) -> list[Place]:
    """Every syntactic unit of ``text`` that could be a hole (see the module docstring)."""
    tree = parse(text, "python")
    found: list[Place] = []
    stack: list[tree_sitter.Node] = [tree.root]
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        start, end = tree.span(node)
        code = text[start:end]
        if "\n" in code and node.type != "block":
            continue
        if node.type in ("return_statement", "assignment") and node.named_child_count:
            value = node.named_children[-1]
            value_start, value_end = tree.span(value)
            rest_of_line = text[value_end : text.find("\n", value_end)]
            if value_start > start and not rest_of_line.strip() and "\n" not in text[value_start:value_end]:
                found.append(Place(str(path), "expression", value_start, value_end))
        in_block = node.parent is not None and node.parent.type == "block"
        docstring = node.type == "expression_statement" and node.named_children[0].type == "string"
        if node.type in _STATEMENTS and in_block and not docstring:
            found.append(Place(str(path), "statement", start, end))
        if node.type == "block" and 1 <= code.count("\n") + 1 <= max_block_lines:
            line_begin = text.rfind("\n", 0, start) + 1
            if not text[line_begin:start].strip():  # a body on its own lines, the hole at its indentation
                found.append(Place(str(path), "block", start, end))
    return found


def package_files(package: str) -> list[Path]:
    distribution = importlib.metadata.distribution(package)
    return sorted(
        Path(str(distribution.locate_file(file)))
        for file in distribution.files or []
        if str(file).endswith(".py") and str(file).startswith(package.replace("-", "_") + "/")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", default="starlette", help="an installed distribution to cut holes in")
    parser.add_argument("--places", type=int, default=120, help="holes, sampled evenly over --units")
    parser.add_argument("--units", default=",".join(UNITS), help=f"comma-separated, of {', '.join(UNITS)}")
    parser.add_argument("--max-block-lines", type=int, default=6)
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="print this many holes with their fills")
    args = parser.parse_args(argv)
    units = [unit for unit in args.units.split(",") if unit]
    if not units or any(unit not in UNITS for unit in units) or args.places < 1:
        parser.error(f"--units must name some of {', '.join(UNITS)} and --places must be >= 1")

    from infill.infiller import Infiller
    from training.eval.metrics import edit_similarity

    texts = {str(path): path.read_text(encoding="utf-8") for path in package_files(args.package)}
    by_unit: dict[str, list[Place]] = {unit: [] for unit in units}
    for path, text in texts.items():
        for place in places_in(Path(path), text, args.max_block_lines):
            if place.unit in by_unit:
                by_unit[place.unit].append(place)
    rng = random.Random(args.seed)
    chosen: list[Place] = []
    for index, unit in enumerate(units):
        share = args.places // len(units) + (1 if index < args.places % len(units) else 0)
        chosen += rng.sample(by_unit[unit], min(share, len(by_unit[unit])))

    infiller = Infiller.load(args.model, device="cpu")
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    scores: dict[str, list[tuple[bool, float]]] = {unit: [] for unit in units}
    for number, place in enumerate(chosen):
        text = texts[place.path]
        holed = text[: place.start] + regions.HOLE + text[place.end :]
        (edit,) = infiller.fill_document(holed, language="python")
        written = edit.new_text if edit.validated else ""
        reference = text[place.start : place.end]
        scores[place.unit].append((edit.validated, edit_similarity(written, reference)))
        if number < args.show:
            print(f"--- {place.unit} {place.path}:{text.count(chr(10), 0, place.start) + 1}")
            print(f"    reference {reference!r}\n    fill      {edit.new_text!r} (checked: {edit.validated})")
    seconds = time.perf_counter() - began

    def report(name: str, rows: list[tuple[bool, float]]) -> str:
        filled = [similarity for valid, similarity in rows if valid]
        rate = len(filled) / len(rows) if rows else 0.0
        mean_all = statistics.fmean(similarity for _, similarity in rows) if rows else 0.0
        mean_filled = statistics.fmean(filled) if filled else 0.0
        return (
            f"{name}: {len(filled)}/{len(rows)} filled ({rate:.0%}), edit similarity {mean_all:.3f} "
            f"(filled holes: {mean_filled:.3f})"
        )

    version = importlib.metadata.version(args.package)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{args.package} {version}, {len(chosen)} holes, seed {args.seed}, {seconds:.0f} s, {date}")
    print(f"hardware: {hardware()}, load {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    for unit in units:
        print(report(unit, scores[unit]))
    print(report("all", [row for rows in scores.values() for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
