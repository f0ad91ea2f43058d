"""Where a fill ends and what it is judged in (issue 14, items 4-6): a candidate cut at its syntactic unit and
at its longest valid prefix, runaway repetition, text that repeats the suffix, indentation a fill adds to a
given line, holes in comments and strings, other holes holding a neutral placeholder, and the exit code when
nothing checked comes out. Each test fails on the code before these changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from infill.engine.types import Candidate, DecodeConfig
from infill.infiller import (
    MIN_ENGINE_CANDIDATES,
    SPARE_GAP_CANDIDATES,
    CompletionRequest,
    Edit,
    Infiller,
)
from infill.models import load_model
from infill.models.base import LoadedModel
from infill.regions import (
    HOLE,
    fill_is_valid,
    finalize_candidate,
    hole_literal_kind,
    neutral_placeholder,
)
from infill.regions.length import cut_repetition, hole_unit, shorter_prefixes
from infill_cli.common import EXIT_UNFILLED
from infill_cli.main import main
from infill_cli.rewrite import _valid_together
from tests.test_infiller import ScriptedEngine, SequencedEngine

CLI_FAST = ("--steps", "4", "--max-tokens", "8")


@pytest.fixture(scope="module")
def loaded(x_model_dir: Path) -> LoadedModel:
    return load_model(x_model_dir, device="cpu")


def scripted(loaded: LoadedModel, *texts: str) -> Infiller:
    """An Infiller whose engine proposes ``texts`` (best first) for every gap."""
    return Infiller(ScriptedEngine(loaded, [Candidate(text, -0.1 * rank) for rank, text in enumerate(texts)]))


# ---------------------------------------------------------------------------- a fill ends where its code ends


def test_a_return_hole_keeps_the_expression_and_drops_what_the_model_wrote_after_it() -> None:
    # The README's trial: the model writes `False` and goes on; the whole candidate used to be thrown away.
    prefix, suffix = "def area(radius):\n    return ", "\n\n\nprint(area(2))\n"
    runaway = "False\n\n\n\ndef\n =\n\noverload\n"
    assert finalize_candidate(prefix, runaway, suffix, "python", "span") == "False"


def test_the_unit_of_a_hole_is_read_from_the_code_around_it() -> None:
    assert hole_unit("def f(x):\n    return ", "\n", "python") == "inline"
    assert hole_unit("for i in range(", "):\n    pass\n", "python") == "inline"
    assert hole_unit("def f(x):\n    y = 1\n    ", "\n    return y\n", "python") == "statement"
    assert hole_unit("def f(x):\n    ", "\n\ndef g():\n    pass\n", "python") == "block"
    assert hole_unit("def f(x):\n", "\ndef g():\n    pass\n", "python") == "block"


def test_a_statement_hole_ends_with_its_statement_and_a_compound_one_keeps_its_body() -> None:
    prefix, suffix = "def f(xs):\n    total = 0\n    ", "\n    return total\n"
    simple = "total += 1\n    junk junk(\n"
    assert finalize_candidate(prefix, simple, suffix, "python", "span") == "total += 1"
    body = "for x in xs:\n        total += x\n    return total\n    ("
    assert finalize_candidate(prefix, body, suffix, "python", "span") == "for x in xs:\n        total += x"


def test_a_block_hole_ends_at_its_dedent() -> None:
    prefix, suffix = "def f(xs):\n    ", "\n\n\ndef g():\n    pass\n"
    fill = "total = sum(xs)\n    return total\ndef broken(:\n"
    assert finalize_candidate(prefix, fill, suffix, "python", "span") == "total = sum(xs)\n    return total"


def test_an_invalid_candidate_gives_its_longest_valid_prefix() -> None:
    prefix, suffix = "def f(a, b):\n    total = ", "\n    return total\n"
    assert finalize_candidate(prefix, "a + b * (c", suffix, "python", "span") == "a + b"
    assert shorter_prefixes("a + b * (c") == ["a + b * (", "a + b *", "a + b", "a +", "a"]
    # A quote run is one token (no `""` cut from `"""`), and a lone word does not make a statement.
    assert shorter_prefixes('"""doc') == ['"""']
    assert shorter_prefixes("total = = 1", starts_statement=True) == ["total = =", "total ="]


def test_a_line_fill_stops_at_runaway_repetition() -> None:
    prefix, suffix = "import os\n\n\ndef config_dir(home):\n    folder = os.path.", "\n    return folder\n"
    stutter = "join(home" + ", pathpath" * 20 + ")"  # valid Python, 200 characters of it
    fill = finalize_candidate(prefix, stutter, suffix, "python", "line")
    assert fill is not None and fill.startswith("join(home") and "pathpath" not in fill
    assert cut_repetition("self self self.axis") == "self"
    assert cut_repetition("x.axis.axis.axis.axis = 1") == "x.axis"
    # Real code that repeats itself is left alone.
    for code in ("return None, None, None", "f(g(h(x)))", "[0, 0, 0, 0]", "0xFFFFFFFF", "xxxxxxxx"):
        assert cut_repetition(code) == code


def test_text_that_repeats_the_suffix_is_dropped() -> None:
    # A hole between `range(` and `):` must not write the `):` (and the next line) again.
    prefix, suffix = "def f(n):\n    for i in range(", "):\n        print(i)\n"
    assert finalize_candidate(prefix, "n):\n        pass\n", suffix, "python", "span") == "n"
    # A line fill in the middle of a line stops where it starts writing the rest of that line again.
    # (`self.axis = axis  # setaxis = axis` is valid Python, and used to be written.)
    prefix, suffix = "class V:\n    def __init__(self, axis):\n        self.", "axis = axis\n"
    assert finalize_candidate(prefix, "axis = axis  # set", suffix, "python", "line") == ""
    # ...and never breaks the line in two (`y = 1\nz = 2` parses, and used to be written).
    assert finalize_candidate("y = ", "1\n", "z = 2\n", "python", "line") is None


# ---------------------------------------------------------------------------------- checks that hold


def test_blanks_a_fill_adds_to_an_indented_line_are_compiled_where_they_land() -> None:
    # `   self.axis` typed at column 9 of an empty method line: column 12, an IndentationError.
    prefix = "class V:\n    def __init__(self, axis):\n        self.axis = axis\n\n    def norm(self):\n"
    prefix += "        "
    suffix = "\n        return 1.0\n"
    assert not fill_is_valid(prefix, "   self.axis", suffix, "python")
    assert fill_is_valid(prefix, "self.axis", suffix, "python")
    # The completion path (CLI and language server alike) writes it at the line's own indentation.
    assert finalize_candidate(prefix, "   self.axis", suffix, "python", "line") == "self.axis"


def test_an_indented_completion_is_compiled_in_place(loaded: LoadedModel) -> None:
    text = "class V:\n    def norm(self):\n        \n        return 1.0\n"
    offset = text.index("\n        \n") + len("\n        ")
    request = CompletionRequest(text, offset, "python", mode="line", num_candidates=3)
    edits = scripted(loaded, "   self.axis\n").complete(request)
    assert [edit.new_text for edit in edits] == ["self.axis"]


def test_a_hole_in_a_comment_or_string_is_filled_with_its_text(loaded: LoadedModel) -> None:
    assert hole_literal_kind("x = 1  # ", "\ny = 2\n", "python") == "text_line"
    assert hole_literal_kind('x = "ab', 'c"\n', "python") == "text_line"
    assert hole_literal_kind('def f():\n    """Doc ', '\n    """\n', "python") == "text"
    assert hole_literal_kind("x = ", "\n", "python") is None

    text = f"x = 1  # {HOLE}\ny = 2\n"
    (edit,) = scripted(loaded, "noqa: E501\n12345\n").fill_document(text, language="python")
    assert edit.validated and edit.new_text == "noqa: E501"  # no new code line of digits
    text = f'name = "file {HOLE}"\n'
    (edit,) = scripted(loaded, 'a" + b + "c').fill_document(text, language="python")
    assert edit.validated and edit.new_text == "a"  # string text, not code that closes the string


def test_each_fill_is_judged_with_the_other_holes_holding_a_placeholder(loaded: LoadedModel) -> None:
    # `break` outside a loop is a SyntaxError only Python sees. With the first hole left empty, Python stops
    # at `total = ` above it, and the broken fill used to pass.
    text = f"def f(xs):\n    total = {HOLE}\n    {HOLE}\n    return total\n"
    first, second = scripted(loaded, "break").fill_document(text, language="python")
    assert not first.validated and not second.validated
    assert neutral_placeholder("def f(xs):\n    total = ", "\n    return total\n", "python") == "..."
    assert neutral_placeholder("x = 1  # ", "\n", "python") == ""


def test_fills_judged_together_see_unfilled_holes_as_placeholders() -> None:
    text = f"def f(xs):\n    total = {HOLE}\n    {HOLE}\n    return total\n"
    first = text.index(HOLE)
    second = text.index(HOLE, first + 1)
    unfilled = Edit(first, first + len(HOLE), "", 0.0, (), False)
    broken = Edit(second, second + len(HOLE), "break", 0.0)
    assert _valid_together(text, [unfilled, broken], "python") == []
    fine = Edit(second, second + len(HOLE), "print(xs)", 0.0)
    assert _valid_together(text, [unfilled, fine], "python") == [fine]


def test_a_hole_no_greedy_canvas_fills_gets_sampled_spares(loaded: LoadedModel) -> None:
    text = f"def f(a, b):\n    return {HOLE}\n\n\ndef g():\n    return 1\n"
    engine = SequencedEngine(loaded, [[Candidate(") (", -0.1)], [Candidate("a + b", -0.5)]])
    (edit,) = Infiller(engine).fill_document(text, language="python", config=DecodeConfig(steps=4))
    assert edit.validated and edit.new_text == "a + b"
    (_,), (spare,) = engine.calls  # the spares leave out the canvases decoded already
    assert (spare.num_candidates, spare.skip_candidates) == (SPARE_GAP_CANDIDATES, MIN_ENGINE_CANDIDATES)
    greedy, sampled = engine.configs
    assert greedy is not None and greedy.temperature == 0
    assert sampled is not None and sampled.temperature > 0 and sampled.seed is not None  # reproducible
    # A hole filled by its first canvases costs no second call.
    engine = SequencedEngine(loaded, [[Candidate("a + b", -0.1)]])
    Infiller(engine).fill_document(text, language="python", config=DecodeConfig(steps=4))
    assert len(engine.calls) == 1


# ---------------------------------------------------------------------------------------- exit codes


def test_complete_with_no_checked_candidate_exits_3_and_says_where(
    tmp_path: Path, x_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The "x" model writes only x's: `return (a xxxx)` never parses, and `xxxx` has no shorter token prefix.
    (tmp_path / "bad.py").write_text("def f(a, b):\n    return (a )\n")
    monkeypatch.chdir(tmp_path)
    code = main(["complete", "bad.py:2:15", "--mode", "line", "--model", str(x_model_dir), *CLI_FAST])
    assert code == EXIT_UNFILLED == 3
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bad.py:2:15: no completion" in captured.err and "syntax check" in captured.err


def test_rewrite_check_with_a_hole_left_unfilled_exits_3_and_names_it(
    tmp_path: Path, x_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    original = f"def f(a, b):\n    return (a {HOLE})\n"
    (tmp_path / "bad.py").write_text(original)
    monkeypatch.chdir(tmp_path)
    assert main(["rewrite", "--check", "bad.py", "--model", str(x_model_dir), *CLI_FAST]) == EXIT_UNFILLED
    assert "bad.py:2: no candidate passed the syntax check" in capsys.readouterr().err
    assert (tmp_path / "bad.py").read_text() == original
