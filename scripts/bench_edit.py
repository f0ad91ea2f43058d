"""Find-and-fix: functions from real code with one injected single-token bug (plus clean ones), repaired by
edit mode (``Infiller.edit_region`` on the function body) and by whole-region regeneration
(``Infiller.rewrite_function``) on the same cases, with the same model; then next-edit suggestion latency.

Sources: the reference solutions of MBPP (``../shared/bench/MBPP-MultiLineInfilling.jsonl.gz``, CC-BY-4.0:
prompt + canonical solution + suffix is one problem's whole program) and the functions of a pure-Python
package the bundled model was NOT trained on (its training_manifest.json lists the venv's distributions): by
default the boltons wheel (BSD-3-Clause), fetched with

    python -m pip download boltons==26.2.0 --no-deps -d /tmp/edit_bench_pkgs
    python scripts/bench_edit.py --wheel /tmp/edit_bench_pkgs/boltons-26.2.0-py3-none-any.whl

Bugs (one per case, Python's own tokenizer finds the sites): a comparison operator swapped (< and <=, > and
>=, == and !=), an arithmetic operator swapped (+ and -, * and /), an integer literal off by one, an
identifier swapped for another name used in the same function, ``and``/``or``, ``True``/``False``; the
mutated function must still parse. Reported per method: fixed exactly (the buggy cases whose result is the
original), collateral change (Python tokens changed other than the bug token, over all tokens of all cases),
clean functions left unchanged, results that parse.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import gzip
import io
import json
import os
import platform
import random
import statistics
import sys
import time
import tokenize
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO_ROOT))

MBPP = REPO_ROOT.parent / "shared" / "bench" / "MBPP-MultiLineInfilling.jsonl.gz"
SWAPS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "+": "-", "-": "+", "*": "/"}
SWAPS |= {"/": "*", "and": "or", "or": "and", "True": "False", "False": "True"}
KINDS = ("comparison", "arithmetic", "literal", "identifier", "boolean")
# The bundled model's window is 256 tokens: a body it can regenerate whole (half the window) with context.
MAX_BODY_CHARS = 280
MIN_BODY_LINES = 2


@dataclass(frozen=True)
class Case:
    source: str  # "mbpp" or the package name
    name: str
    clean: str  # the program / function text as written
    text: str  # what the methods are given (clean, or with the bug)
    body_start: int  # the function body in ``text``
    body_end: int
    kind: str  # bug kind, or "clean"


def mbpp_programs(path: Path) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    with gzip.open(path, "rt") as rows:
        for line in rows:
            row = json.loads(line)
            program = row["prompt"] + row["canonical_solution"] + row["suffix"]
            if row["entry_point"] not in seen:
                seen.add(row["entry_point"])
                yield row["entry_point"], program.expandtabs(4)


def wheel_functions(wheel: Path) -> Iterator[tuple[str, str]]:
    """Each top-level function of the wheel's modules, as its own source text."""
    with zipfile.ZipFile(wheel) as archive:
        for name in sorted(archive.namelist()):
            if not name.endswith(".py"):
                continue
            source = archive.read(name).decode("utf-8", errors="replace")
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            lines = source.splitlines(keepends=True)
            for node in tree.body:
                if not isinstance(node, ast.FunctionDef) or node.end_lineno is None:
                    continue
                first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                kept = lines[first - 1 : node.end_lineno]
                docstring = node.body[0]
                if (
                    len(node.body) > 1
                    and isinstance(docstring, ast.Expr)
                    and isinstance(docstring.value, ast.Constant)
                ):
                    # A docstring is prose, not code to fix (and the bundled model's window is small).
                    assert docstring.end_lineno is not None
                    del kept[docstring.lineno - first : docstring.end_lineno - first + 1]
                text = "".join(kept)
                if '"""' not in text and "'''" not in text and parses(text):
                    yield f"{name}:{node.name}", text


def body_span(text: str) -> tuple[int, int] | None:
    """The last top-level function's body: from the line after its signature to its end."""
    tree = ast.parse(text)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    if not functions:
        return None
    function = functions[-1]
    lines = text.splitlines(keepends=True)
    first = function.body[0].lineno - 1
    if first == function.lineno - 1 or function.end_lineno is None:
        return None  # a one-line `def f(): return x`
    start = sum(len(line) for line in lines[:first])
    end = sum(len(line) for line in lines[: function.end_lineno])
    return start, end


def bug_sites(text: str, start: int, end: int) -> dict[str, list[tuple[int, int, str]]]:
    """Per bug kind, ``(start, end, replacement)`` of every token of ``text[start:end]`` it can mutate."""
    line_offsets = [0]
    for line in text.splitlines(keepends=True):
        line_offsets.append(line_offsets[-1] + len(line))
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    names = sorted({t.string for t in tokens if t.type == tokenize.NAME and t.string.isidentifier()})
    names = [n for n in names if n not in ("and", "or", "not", "True", "False", "None") and n.islower()]
    sites: dict[str, list[tuple[int, int, str]]] = {kind: [] for kind in KINDS}
    for index, token in enumerate(tokens):
        offset = line_offsets[token.start[0] - 1] + token.start[1]
        if not start <= offset < end:
            continue
        stop = offset + len(token.string)
        previous = tokens[index - 1].string if index else ""
        if token.string in ("<", "<=", ">", ">=", "==", "!="):
            sites["comparison"].append((offset, stop, SWAPS[token.string]))
        elif token.string in ("+", "-", "*", "/") and token.type == tokenize.OP:
            sites["arithmetic"].append((offset, stop, SWAPS[token.string]))
        elif token.type == tokenize.NUMBER and token.string.isdigit():
            value = int(token.string)
            sites["literal"].append((offset, stop, str(value + 1 if value == 0 else value - 1)))
        elif token.string in ("and", "or", "True", "False"):
            sites["boolean"].append((offset, stop, SWAPS[token.string]))
        elif token.type == tokenize.NAME and token.string in names and previous != ".":
            others = [n for n in names if n != token.string and not keyword_like(n)]
            if others and not keyword_like(token.string):
                sites["identifier"].append((offset, stop, random.Random(offset).choice(others)))
    return sites


def keyword_like(name: str) -> bool:
    import keyword

    return keyword.iskeyword(name) or name in dir(__builtins__)


def make_cases(programs: list[tuple[str, str, str]], buggy: int, clean: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    rng.shuffle(programs)
    cases: list[Case] = []
    wanted_clean = clean
    for source, name, text in programs:
        if len(cases) >= buggy + clean:
            break
        try:
            span = body_span(text)
        except SyntaxError:
            continue
        if span is None:
            continue
        start, end = span
        body = text[start:end]
        if len(body) > MAX_BODY_CHARS or body.count("\n") < MIN_BODY_LINES:
            continue
        if wanted_clean > 0 and rng.random() < clean / (buggy + clean):
            wanted_clean -= 1
            cases.append(Case(source, name, text, text, start, end, "clean"))
            continue
        if sum(case.kind != "clean" for case in cases) >= buggy:
            continue
        try:
            sites = bug_sites(text, start, end)
        except (tokenize.TokenError, IndentationError):
            continue
        kinds = [kind for kind in KINDS if sites[kind]]
        rng.shuffle(kinds)
        # The kinds seen least so far first, so that identifiers (found in every function) do not crowd out
        # the rarer sites.
        kinds.sort(key=lambda kind: sum(case.kind == kind for case in cases))
        for kind in kinds:
            site_start, site_end, replacement = rng.choice(sites[kind])
            mutated = text[:site_start] + replacement + text[site_end:]
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
            shift = len(replacement) - (site_end - site_start)
            cases.append(Case(source, name, text, mutated, start, end + shift, kind))
            break
    return cases


def python_tokens(text: str) -> list[str]:
    try:
        return [
            t.string
            for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text.split()


def collateral(case: Case, result: str) -> tuple[int, int]:
    """(tokens changed other than the bug, tokens of the input): the result against the input, where a
    change at the bug token (fixing it or not) is not collateral."""
    before, after = python_tokens(case.text), python_tokens(result)
    bug = None
    if case.kind != "clean":
        clean_tokens = python_tokens(case.clean)
        for tag, i1, _i2, _j1, _j2 in SequenceMatcher(
            None, before, clean_tokens, autojunk=False
        ).get_opcodes():
            if tag != "equal":
                bug = i1
                break
    changed = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, before, after, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        touched = max(i2 - i1, j2 - j1)
        if bug is not None and i1 <= bug < max(i2, i1 + 1):
            touched -= 1
        changed += max(0, touched)
    return changed, len(before)


def parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


# Per buggy case of the edit run: the rank of the bug among the body's tokens, least likely first (0: the
# token the model doubts most), or None where the bug token is not one token of the model's.
LOCALIZED: list[int | None] = []


def bug_rank(case: Case, spans: object) -> int | None:
    first = next(i for i, (a, b) in enumerate(zip(case.text, case.clean, strict=False)) if a != b)
    ordered = sorted(spans, key=lambda span: span.confidence)  # type: ignore[attr-defined]
    for rank, span in enumerate(ordered):
        if span.start <= first < span.end:
            return rank
    return None


def run_method(infiller: object, method: str, case: Case, edit_config: object) -> str:
    from infill.engine.edit import EditConfig
    from infill.infiller import Infiller, apply_edits

    assert isinstance(infiller, Infiller) and isinstance(edit_config, EditConfig)
    if method == "edit":
        outcome = infiller.edit_region(
            case.text, case.body_start, case.body_end, language="python", edit_config=edit_config
        )
        if case.kind != "clean":
            LOCALIZED.append(bug_rank(case, outcome.original_confidences))
        return apply_edits(case.text, [outcome.edit]) if outcome.edit else case.text
    edit = infiller.rewrite_function(case.text, case.body_start + 1, language="python")
    return apply_edits(case.text, [edit]) if edit else case.text


def report(cases: list[Case], results: dict[str, list[str]], seconds: dict[str, float]) -> list[str]:
    buggy = [i for i, case in enumerate(cases) if case.kind != "clean"]
    clean = [i for i, case in enumerate(cases) if case.kind == "clean"]
    rows = [
        "| method | fixed exactly | collateral change | clean unchanged | results that parse "
        "| changed at all | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, outs in results.items():
        fixed = sum(outs[i] == cases[i].clean for i in buggy)
        changed_tokens = total_tokens = 0
        for case, out in zip(cases, outs, strict=True):
            changed, total = collateral(case, out)
            changed_tokens += changed
            total_tokens += total
        unchanged = sum(outs[i] == cases[i].text for i in clean)
        parsed = sum(parses(out) for out in outs)
        touched = sum(out != case.text for case, out in zip(cases, outs, strict=True))
        rows.append(
            f"| {method} | {fixed}/{len(buggy)} | {changed_tokens}/{total_tokens} "
            f"({100 * changed_tokens / max(1, total_tokens):.1f}%) | {unchanged}/{len(clean)} | "
            f"{parsed}/{len(outs)} | {touched}/{len(outs)} | {seconds[method]:.1f} |"
        )
    return rows


def next_edit_latency(infiller: object, cases: list[Case], count: int, edit_config: object) -> list[float]:
    """Milliseconds per next-edit suggestion (edit mode on the lines around a cursor on the bug's line)."""
    from infill.engine.edit import EditConfig
    from infill.infiller import Infiller

    assert isinstance(infiller, Infiller) and isinstance(edit_config, EditConfig)
    timings: list[float] = []
    for case in (cases * (1 + count // max(1, len(cases))))[:count]:
        offset = next(
            (i for i, (a, b) in enumerate(zip(case.text, case.clean, strict=False)) if a != b),
            case.body_start,
        )
        started = time.perf_counter()
        infiller.suggest_next_edit(case.text, offset, language="python", edit_config=edit_config)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> int:
    from infill.engine.edit import EditConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wheel", type=Path, required=True, help="a pure-Python wheel of real code (see above)"
    )
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument(
        "--buggy", type=int, default=60, help="cases with one injected bug (half from each source)"
    )
    parser.add_argument("--clean", type=int, default=20, help="clean cases (half from each source)")
    parser.add_argument("--methods", default="edit,regenerate", help="comma-separated: edit, regenerate")
    parser.add_argument("--latency-runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    defaults = EditConfig()
    for name in ("groups", "doubt_ratio", "max_reopen", "rounds"):
        kind = type(getattr(defaults, name))
        parser.add_argument(f"--{name.replace('_', '-')}", type=kind, default=getattr(defaults, name))
    args = parser.parse_args()
    edit_config = EditConfig(args.groups, args.doubt_ratio, args.max_reopen, args.rounds)

    import torch

    from infill.infiller import Infiller

    torch.set_num_threads(args.threads)
    mbpp = [("mbpp", name, text) for name, text in mbpp_programs(MBPP)]
    package = args.wheel.name.split("-")[0]
    real = [(package, name, text) for name, text in wheel_functions(args.wheel)]
    cases = make_cases(mbpp, args.buggy // 2, args.clean // 2, args.seed)
    cases += make_cases(real, args.buggy - args.buggy // 2, args.clean - args.clean // 2, args.seed)
    infiller = Infiller.load(args.model)
    results: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for method in args.methods.split(","):
        started = time.perf_counter()
        results[method] = [run_method(infiller, method, case, edit_config) for case in cases]
        seconds[method] = time.perf_counter() - started
    kinds = {kind: sum(case.kind == kind for case in cases) for kind in (*KINDS, "clean")}
    sources = {
        source: sum(case.source == source for case in cases) for source in sorted({c.source for c in cases})
    }
    timings = next_edit_latency(
        infiller, [c for c in cases if c.kind != "clean"], args.latency_runs, edit_config
    )
    print(
        f"# bench_edit {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch threads {args.threads}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"model: {infiller.engine.loaded.name}; {edit_config}")
    print(f"cases by source {sources}; by bug kind {kinds}")
    print("\n".join(report(cases, results, seconds)))
    ranks = [rank for rank in LOCALIZED if rank is not None]
    if ranks:
        print(
            f"edit mode's scores: the bug is the token the model doubts most in "
            f"{ranks.count(0)}/{len(LOCALIZED)} buggy cases, among its 3 most doubted in "
            f"{sum(rank < 3 for rank in ranks)}/{len(LOCALIZED)}"
        )
    print(
        f"next-edit suggestion latency over {len(timings)} runs: p50 {statistics.median(timings):.0f} ms, "
        f"p95 {sorted(timings)[int(0.95 * (len(timings) - 1))]:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
