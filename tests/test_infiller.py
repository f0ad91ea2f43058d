"""Infiller on real tiny models and real tree-sitter regions (in-process).

The models are random except for an output bias towards the token "x" (``x_model_dir``), so they reliably
propose identifiers that are valid code wherever the region allows one: every test that checks the edits
first asserts that there are some. The tests check what the Infiller promises: where edits go, what the
model is shown, that kept candidates are valid code, batching.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from infill import regions
from infill.engine import InfillEngine
from infill.engine.types import Candidate, DecodeConfig, FillRequest, FillResult, TokenConfidence
from infill.errors import Cancelled, InputError
from infill.infiller import (
    INVOKED_CANDIDATES,
    MIN_ENGINE_CANDIDATES,
    CompletionRequest,
    Edit,
    Infiller,
    apply_edits,
)
from infill.models import load_model
from infill.models.base import LoadedModel

FAST = DecodeConfig(steps=4)

PYTHON = (
    "import os\n"
    "\n"
    "def add(a, b):\n"
    "    total = a + b\n"
    "    return total\n"
    "\n"
    "def greet(name):\n"
    "    print('hello', name)\n"
)


class RecordingEngine(InfillEngine):
    """The real engine, remembering what it was asked (to check what the Infiller shows the model)."""

    def __init__(self, loaded: LoadedModel) -> None:
        super().__init__(loaded)
        self.calls: list[list[FillRequest]] = []
        self.configs: list[DecodeConfig | None] = []

    def fill(
        self,
        requests: Sequence[FillRequest],
        config: DecodeConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[FillResult]:
        self.calls.append(list(requests))
        self.configs.append(config)
        return super().fill(requests, config, should_stop)


@pytest.fixture(scope="module")
def engine(x_model_dir: Path) -> RecordingEngine:
    return RecordingEngine(load_model(x_model_dir, device="cpu"))


@pytest.fixture()
def infiller(engine: RecordingEngine) -> Infiller:
    engine.calls.clear()
    engine.configs.clear()
    return Infiller(engine)


# ------------------------------------------------------------------------------------------- apply_edits


def test_apply_edits_in_any_order() -> None:
    text = "abcdef"
    edits = [Edit(4, 6, "XY", 0.0), Edit(0, 1, "", 0.0), Edit(2, 2, "+", 0.0)]
    assert apply_edits(text, edits) == "b+cdXY"
    assert apply_edits(text, []) == text


def test_apply_edits_rejects_overlap_and_out_of_range() -> None:
    with pytest.raises(InputError, match="overlap"):
        apply_edits("abcdef", [Edit(0, 3, "x", 0.0), Edit(2, 4, "y", 0.0)])
    with pytest.raises(InputError, match="outside"):
        apply_edits("abc", [Edit(2, 9, "x", 0.0)])


# -------------------------------------------------------------------------------------------- complete


def assert_valid_edits(text: str, edits: list[Edit], language: str | None, region: regions.Region) -> None:
    assert edits, "the x model always has a valid candidate here"
    assert len({e.new_text for e in edits}) == len(edits), "candidates are distinct"
    assert [e.score for e in edits] == sorted((e.score for e in edits), reverse=True), "best first"
    for edit in edits:
        assert (edit.start, edit.end) == (region.start, region.end)
        assert edit.new_text.strip()
        assert regions.fill_is_valid(text[: edit.start], edit.new_text, text[edit.end :], language)
        if regions.document_parses(text, language):
            assert regions.document_parses(apply_edits(text, [edit]), language)
        # Token confidences, when given, spell the kept text (cut along with it).
        spelled = "".join(t.text for t in edit.tokens)
        assert not spelled or spelled.startswith(edit.new_text) or edit.new_text.startswith(spelled)


@pytest.mark.parametrize("mode", ["auto", "line", "block", "function"])
def test_complete_edits_the_picked_region_with_checked_candidates(infiller: Infiller, mode: str) -> None:
    offset = PYTHON.index("total = a + b") + len("total = ")
    request = CompletionRequest(PYTHON, offset, "python", mode=mode, num_candidates=3)
    edits = infiller.complete(request, FAST)
    region = regions.pick_cursor_region(PYTHON, offset, "python", mode)
    assert len(edits) <= 3
    assert_valid_edits(PYTHON, edits, "python", region)
    (requests,) = infiller.engine.calls
    assert requests[0].prefix == PYTHON[: region.start]
    assert requests[0].suffix == PYTHON[region.end :]
    if region.kind == "line":
        assert requests[0].mode == "line"
    if region.kind in ("block", "function"):
        assert requests[0].mode == "block"


def test_complete_asks_for_spare_candidates_and_honours_should_stop(infiller: Infiller) -> None:
    infiller.complete(CompletionRequest(PYTHON, 10, "python"), FAST)  # user-invoked by default
    ((sent,),) = infiller.engine.calls
    assert sent.num_candidates == INVOKED_CANDIDATES
    assert infiller.engine.configs[0].steps == FAST.steps
    with pytest.raises(Cancelled):
        infiller.complete(CompletionRequest(PYTHON, 10, "python"), FAST, should_stop=lambda: True)


def test_complete_many_is_one_engine_call(infiller: Infiller) -> None:
    gap = "def add(a, b):\n    total = \n    return total\n"
    requests = [
        CompletionRequest(gap, gap.index("total = ") + len("total = "), "python"),
        CompletionRequest("x = [1, 2\ny = 3\n", 5, None, mode="line", num_candidates=2),
        CompletionRequest("", 0, "python"),
    ]
    results = infiller.complete_many(requests, FAST)
    assert len(infiller.engine.calls) == 1
    assert len(infiller.engine.calls[0]) == len(requests)
    assert len(results) == len(requests)
    for request, edits, sent in zip(requests, results, infiller.engine.calls[0], strict=True):
        region = regions.pick_cursor_region(request.text, request.offset, request.language, request.mode)
        assert (sent.prefix, sent.suffix) == (request.text[: region.start], request.text[region.end :])
        assert len(edits) <= request.num_candidates
        assert_valid_edits(request.text, edits, request.language, region)


def test_complete_rejects_an_offset_outside_the_text(infiller: Infiller) -> None:
    with pytest.raises(InputError):
        infiller.complete(CompletionRequest("abc", 4, None))


# --------------------------------------------------------------------------------------------- rewrite


def test_rewrite_masks_the_old_code_and_budgets_by_its_length(infiller: Infiller) -> None:
    start = PYTHON.index("total = a + b")
    edit = infiller.rewrite(PYTHON, start, start + 5, language="python", config=FAST)
    region = regions.expand_selection(PYTHON, start, start + 5, "python")
    (requests,) = infiller.engine.calls
    (request,) = requests
    old = PYTHON[region.start : region.end]
    assert request.prefix + old + request.suffix == PYTHON
    assert old not in request.prefix + request.suffix
    assert request.max_tokens >= len(infiller.engine.loaded.tokenizer.encode(old))
    assert edit is not None and (edit.start, edit.end) == (region.start, region.end)
    assert regions.document_parses(apply_edits(PYTHON, [edit]), "python")


def test_rewrite_function_outside_any_function_is_none(infiller: Infiller) -> None:
    assert infiller.rewrite_function(PYTHON, 2, language="python", config=FAST) is None
    assert infiller.engine.calls == []
    offset = PYTHON.index("print(")
    region = regions.function_region(PYTHON, offset, "python")
    assert region is not None
    edit = infiller.rewrite_function(PYTHON, offset, language="python", config=FAST)
    assert len(infiller.engine.calls) == 1
    assert edit is not None and (edit.start, edit.end) == (region.start, region.end)
    assert regions.document_parses(apply_edits(PYTHON, [edit]), "python")


# ------------------------------------------------------------------------------------------- fill_document

MARKED = (
    "import os\n"
    "\n"
    "def add(a, b):\n"
    "    total = <|fill|>\n"
    "    return total\n"
    "\n"
    "def greet(name):\n"
    "    # infill:begin\n"
    "    message = 'hello ' + name\n"
    "    print(message)\n"
    "    # infill:end\n"
    "    return name\n"
)


def test_fill_document_fills_every_marker_in_one_call(infiller: Infiller) -> None:
    edits = infiller.fill_document(MARKED, language="python", config=FAST)
    marks = regions.find_fill_markers(MARKED, "python")
    assert len(edits) == len(marks) == 2
    assert [(e.start, e.end) for e in edits] == [(m.start, m.end) for m in marks]
    (requests,) = infiller.engine.calls  # one batched engine call
    hole_request, region_request = requests
    for request in requests:
        shown = request.prefix + request.suffix
        assert "<|fill|>" not in shown and "infill:begin" not in shown and "infill:end" not in shown
    # The hole's view keeps the region's old code; the region's own view masks it.
    assert "message = 'hello ' + name" in hole_request.suffix
    assert "message = 'hello ' + name" not in region_request.prefix + region_request.suffix
    assert region_request.prefix.endswith(MARKED[: marks[1].start].replace("<|fill|>", ""))
    assert all(edit.validated for edit in edits)
    result = apply_edits(MARKED, edits)
    assert "<|fill|>" not in result and "infill:" not in result
    assert regions.document_parses(result, "python")
    # Everything outside the markers is unchanged, in order.
    assert result.startswith(MARKED[: marks[0].start])
    assert result.endswith(MARKED[marks[1].end :])


def test_fill_document_without_markers_does_not_run_the_model(infiller: Infiller) -> None:
    assert infiller.fill_document(PYTHON, language="python", config=FAST) == []
    assert infiller.engine.calls == []


# --------------------------------------------------------------------------------------------- fill_batch


@pytest.mark.parametrize("mode", ["line", "span"])
def test_fill_batch_batches_and_reports_progress(infiller: Infiller, mode: str) -> None:
    rows = [(f"def f{i}(x):\n    return ", "\n\nprint(1)\n") for i in range(5)]
    done: list[int] = []
    completions = infiller.fill_batch(
        rows, mode=mode, max_tokens=8, config=FAST, progress=done.append, batch_size=2
    )
    assert len(completions) == len(rows)
    assert len(infiller.engine.calls) == math.ceil(len(rows) / 2)
    assert [len(call) for call in infiller.engine.calls] == [2, 2, 1]
    assert all(
        request.mode == mode and request.max_tokens == 8 for call in infiller.engine.calls for request in call
    )
    assert done == [2, 2, 1]
    if mode == "line":
        assert all("\n" not in c.rstrip("\n") for c in completions)


class EchoEngine(InfillEngine):
    """Fills every gap with its own prefix, so a completion shows which row it was made for."""

    def fill(
        self,
        requests: Sequence[FillRequest],
        config: DecodeConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[FillResult]:
        return [FillResult(candidates=[Candidate(r.prefix, 0.0)]) for r in requests]


def test_fill_batch_groups_rows_by_length_and_keeps_input_order(infiller: Infiller) -> None:
    rows = [("x" * n, "") for n in (50, 3, 40, 1, 30, 2)]
    assert Infiller(EchoEngine(infiller.engine.loaded)).fill_batch(rows, batch_size=2) == [p for p, _ in rows]
    infiller.fill_batch(rows, max_tokens=2, config=FAST, batch_size=2)
    assert [[len(r.prefix) for r in call] for call in infiller.engine.calls] == [[1, 2], [3, 30], [40, 50]]


def test_fill_batch_rejects_an_unknown_mode(infiller: Infiller) -> None:
    with pytest.raises(InputError, match="mode"):
        infiller.fill_batch([("a", "b")], mode="paragraph")


# ------------------------------------------------------------------------------------ other model kinds


@pytest.mark.parametrize("kind", ["roberta", "dream"])
def test_other_model_kinds_complete(kind: str, request: pytest.FixtureRequest) -> None:
    if kind == "roberta":
        model_dir = request.getfixturevalue("x_roberta_dir")
    else:  # a Dream release's layout, biased to "x" like the others
        model_dir = request.getfixturevalue("x_release_dirs")["dream-v0"]
    infiller = Infiller.load(model_dir, device="cpu")
    text = "def add(a, b):\n    total = \n    return total\n"
    offset = text.index("total = ") + len("total = ")
    edits = infiller.complete(CompletionRequest(text, offset, "python", num_candidates=2), FAST)
    region = regions.pick_cursor_region(text, offset, "python")
    assert_valid_edits(text, edits, "python", region)
    assert "x" in edits[0].new_text  # the fixture's favourite token, through this kind's own logits
    (completion,) = infiller.fill_batch([("x = ", "\n")], max_tokens=4, config=FAST)
    assert completion.strip()


# ----------------------------------------------------------------------------- choosing among candidates


class ScriptedEngine(InfillEngine):
    """The real engine object with fixed candidates instead of sampling: random tiny models never write
    parseable code, so this is how the cut / check / dedupe / rank logic gets candidates worth choosing."""

    def __init__(self, loaded: LoadedModel, candidates: list[Candidate]) -> None:
        super().__init__(loaded)
        self.candidates = candidates

    def fill(
        self,
        requests: Sequence[FillRequest],
        config: DecodeConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[FillResult]:
        return [FillResult(candidates=list(self.candidates)) for _ in requests]


class SequencedEngine(InfillEngine):
    """Fixed candidates per call (the first call gets ``script[0]``...), remembering every request and
    decoding config."""

    def __init__(self, loaded: LoadedModel, script: list[list[Candidate]]) -> None:
        super().__init__(loaded)
        self.script = script
        self.calls: list[list[FillRequest]] = []
        self.configs: list[DecodeConfig | None] = []

    def fill(
        self,
        requests: Sequence[FillRequest],
        config: DecodeConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[FillResult]:
        candidates = self.script[len(self.calls)]
        self.calls.append(list(requests))
        self.configs.append(config)
        return [FillResult(candidates=list(candidates)) for _ in requests]


def test_an_automatic_completion_decodes_one_canvas_and_the_spares_only_when_it_fails(
    engine: RecordingEngine,
) -> None:
    text = "def add(a, b):\n    \n    return a\n"
    request = CompletionRequest(text, text.index("\n    \n") + 5, "python", mode="line", trigger="automatic")
    # No prefix of the invalid one is valid either (a valid prefix would be the fill).
    invalid, valid = Candidate("= = 1", -0.1), Candidate("total = a + b", -0.5)

    passing = SequencedEngine(engine.loaded, [[valid]])
    assert [e.new_text for e in Infiller(passing).complete(request)] == ["total = a + b"]
    ((sent,),) = passing.calls
    assert (sent.num_candidates, sent.skip_candidates) == (1, 0)

    failing = SequencedEngine(engine.loaded, [[invalid], [valid]])
    assert [e.new_text for e in Infiller(failing).complete(request)] == ["total = a + b"]
    (first,), (spare,) = failing.calls
    assert (first.num_candidates, first.skip_candidates) == (1, 0)
    # The spares leave out the canvas decoded already.
    assert (spare.num_candidates, spare.skip_candidates) == (MIN_ENGINE_CANDIDATES, 1)

    # A user-invoked completion decodes the spares at once and is not retried.
    invoked = SequencedEngine(engine.loaded, [[invalid]])
    assert Infiller(invoked).complete(replace(request, trigger="invoked")) == []
    ((sent,),) = invoked.calls
    assert sent.num_candidates == INVOKED_CANDIDATES


def test_an_automatic_completion_runs_the_model_on_one_row(x_model_dir: Path) -> None:
    from tests.test_sampler import RecordingModel

    loaded = load_model(x_model_dir)
    recorder = RecordingModel(loaded.model)
    infiller = Infiller(InfillEngine(replace(loaded, model=recorder)))
    text = "def add(a, b):\n    total = \n    return total\n"
    request = CompletionRequest(text, text.index("total = ") + 8, "python", trigger="automatic")
    (edit,) = infiller.complete(request, FAST)
    assert edit.new_text.startswith("x")
    assert recorder.inputs and {state.shape[0] for state in recorder.inputs} == {1}
    recorder.inputs.clear()
    infiller.complete(replace(request, trigger="invoked"), FAST)
    assert recorder.inputs and {state.shape[0] for state in recorder.inputs} == {INVOKED_CANDIDATES}


def confident(*pieces: str) -> tuple[TokenConfidence, ...]:
    return tuple(TokenConfidence(piece, 0.5) for piece in pieces)


def test_candidates_are_cut_checked_deduplicated_and_ranked(engine: RecordingEngine) -> None:
    text = "def add(a, b):\n    \n    return a\n"
    offset = text.index("\n    \n") + len("\n    ")
    scripted = ScriptedEngine(
        engine.loaded,
        [
            Candidate(
                "total = a + b)", -0.1, confident("total", " =", " a", " +", " b", ")")
            ),  # cut before ")"
            Candidate("total = = 1", -0.2),  # adds a parse error: rejected
            Candidate('total = "\ufffd"', -0.25),  # stray byte tokens decoded to U+FFFD (parses!): rejected
            Candidate("return a * b", -0.3),
            Candidate("total = a + b\n", -0.4),  # the same text as the first once cut: dropped
        ],
    )
    request = CompletionRequest(text, offset, "python", mode="line", num_candidates=3)
    edits = Infiller(scripted).complete(request)
    assert [e.new_text for e in edits] == ["total = a + b", "return a * b"]
    assert [e.score for e in edits] == [-0.1, -0.3]
    assert "".join(t.text for t in edits[0].tokens) == "total = a + b"
    assert apply_edits(text, edits[:1]) == "def add(a, b):\n    total = a + b\n    return a\n"
    only_one = Infiller(scripted).complete(replace(request, num_candidates=1))
    assert [e.new_text for e in only_one] == ["total = a + b"]


def test_fill_document_keeps_an_unchecked_fill_rather_than_the_marker(engine: RecordingEngine) -> None:
    text = "x = [<|fill|>]\n"
    scripted = ScriptedEngine(engine.loaded, [Candidate("(1, ", -0.5)])  # no prefix of it is valid either
    (edit,) = Infiller(scripted).fill_document(text, language="python")
    assert not edit.validated
    assert apply_edits(text, [edit]) == "x = [(1, ]\n"
    # A candidate valid whole beats a better-scoring one cut back to its valid prefix ("1,").
    valid = ScriptedEngine(engine.loaded, [Candidate("1, (", -0.5), Candidate("1, 2", -0.9)])
    (edit,) = Infiller(valid).fill_document(text, language="python")
    assert edit.validated and apply_edits(text, [edit]) == "x = [1, 2]\n"
