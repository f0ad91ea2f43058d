"""InfillEngine end to end on real tiny models of every kind, plus the canvas, healing and ranking pieces.

Random tiny models write random text: these tests check mechanics (batching, lengths, cuts, healing,
cancellation, trimming), and use output biases written into the weights where a behaviour needs a model
that prefers something.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from infill.engine import InfillEngine
from infill.engine.candidates import rank_candidates, span_candidate
from infill.engine.canvas import build_canvas, context_budget, trim_context
from infill.engine.engine import check_config, default_context_tokens
from infill.engine.healing import MAX_HEALED_TOKENS, HealedSpan, HealingConstraint, TokenTexts, heal_prefix
from infill.engine.length import canvas_lengths, estimate_span_length, growing_lengths, length_ladder
from infill.engine.types import DecodeConfig, FillRequest
from infill.errors import Cancelled, ContextTooLong, InputError, ModelLoadError
from infill.models import LoadedModel, load_model
from tests import tiny_models
from tests.test_sampler import RecordingModel, biased_model_dir

PYTHON_PREFIX = "import os\n\n\ndef add(a, b):\n    "
PYTHON_SUFFIX = "\n\n\nprint(add(1, 2))\n"
STRATEGIES = ["confidence", "margin", "entropy", "threshold", "blocks", "p2"]
KINDS = ["modernbert", "roberta", "dream"]


@pytest.fixture(scope="module")
def engines(modernbert_dir: Path, roberta_dir: Path, dream_dir: Path) -> dict[str, InfillEngine]:
    return {
        "modernbert": InfillEngine(load_model(modernbert_dir)),
        "roberta": InfillEngine(load_model(roberta_dir)),
        "dream": InfillEngine(load_model(dream_dir)),
    }


def special_texts(loaded: LoadedModel) -> set[str]:
    special = loaded.special
    ids = {special.mask_id, special.pad_id, special.end_of_span_id, *special.banned_ids}
    return {loaded.tokenizer.token_text(i) for i in ids if i < loaded.tokenizer.vocab_size} - {""}


def recording(engine: InfillEngine) -> tuple[InfillEngine, RecordingModel]:
    recorder = RecordingModel(engine.loaded.model)
    return InfillEngine(replace(engine.loaded, model=recorder)), recorder


@pytest.mark.parametrize("kind", ["modernbert", "roberta", "dream"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_fills_on_every_model_kind(
    engines: dict[str, InfillEngine], kind: str, strategy: str
) -> None:
    engine = engines[kind]
    requests = [
        FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=12),
        FillRequest("x = [1, 2", "]\n", max_tokens=5, mode="line"),
    ]
    config = DecodeConfig(strategy=strategy, steps=3, block_size=4)
    results = engine.fill(requests, config)
    assert len(results) == 2
    forbidden = special_texts(engine.loaded)
    for request, result in zip(requests, results, strict=True):
        best = result.best
        assert best is not None
        assert not any(text in best.text for text in forbidden)
        assert 1 <= result.forward_passes <= 1 + config.steps
        assert result.generated_tokens <= request.max_tokens + MAX_HEALED_TOKENS
    assert "\n" not in results[1].best.text[:-1]


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        *[(kind, DecodeConfig(strategy="confidence", steps=4, num_candidates=2)) for kind in KINDS],
        # With the context cache each row is refreshed on its own schedule, whatever its batch-mates do.
        *[
            (kind, DecodeConfig(strategy="blocks", steps=12, block_size=4, block_steps=2, cache_refresh=8))
            for kind in ("modernbert", "dream")
        ],
    ],
)
def test_batched_fill_equals_one_by_one_for_greedy(
    engines: dict[str, InfillEngine], kind: str, config: DecodeConfig
) -> None:
    engine = engines[kind]
    requests = [
        FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=10),
        FillRequest("for i in range(10):\n    if i % 2 == 0:\n        pri", "\n", max_tokens=6),
        FillRequest("", "", max_tokens=12),
    ]
    batched = engine.fill(requests, config)
    single = [engine.fill([request], config)[0] for request in requests]
    for together, alone in zip(batched, single, strict=True):
        assert [c.text for c in together.candidates] == [c.text for c in alone.candidates]


def test_sampling_is_reproducible_and_candidates_are_distinct(engines: dict[str, InfillEngine]) -> None:
    engine = engines["modernbert"]
    request = FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=8)
    config = DecodeConfig(
        strategy="threshold", steps=4, temperature=1.0, top_p=0.9, seed=11, num_candidates=3
    )
    first, second = engine.fill([request], config)[0], engine.fill([request], config)[0]
    assert [c.text for c in first.candidates] == [c.text for c in second.candidates]
    texts = [c.text for c in first.candidates]
    assert len(texts) == len(set(texts)) >= 2
    assert [c.score for c in first.candidates] == sorted((c.score for c in first.candidates), reverse=True)


def test_should_stop_cancels_between_steps(engines: dict[str, InfillEngine]) -> None:
    engine, recorder = recording(engines["modernbert"])
    calls: list[int] = []

    def stop_on_third_check() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        engine.fill(
            [FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=16)],
            DecodeConfig(steps=8),
            stop_on_third_check,
        )
    assert len(recorder.inputs) == 2  # two denoising steps, then the stop


def test_line_mode_ends_after_the_first_newline(
    engines: dict[str, InfillEngine], modernbert_dir: Path, tmp_path: Path
) -> None:
    newline = engines["modernbert"].loaded.tokenizer.encode("\n")[0]
    engine = InfillEngine(load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {newline: 50.0})))
    config = DecodeConfig(strategy="threshold", steps=4)
    line, span = engine.fill(
        [FillRequest("x = (", "", max_tokens=6, mode="line"), FillRequest("x = (", "", max_tokens=6)], config
    )
    assert line.best is not None and line.best.text == "\n"
    assert span.best is not None and span.best.text == "\n" * 6


def test_length_estimation_decodes_a_short_canvas_when_the_span_likely_ends(
    engines: dict[str, InfillEngine], modernbert_dir: Path, tmp_path: Path
) -> None:
    plain = engines["modernbert"]
    eos = plain.loaded.special.end_of_span_id
    ending = load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {eos: 8.0}))
    request = FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=32)
    config = DecodeConfig(strategy="confidence", steps=8, estimate_length=True)

    engine, recorder = recording(InfillEngine(ending))
    result = engine.fill([request], config)[0]
    full_width = recorder.inputs[0].shape[1]
    assert all(state.shape[1] <= full_width - 32 + 2 for state in recorder.inputs[1:])
    assert result.best is not None and result.generated_tokens <= 2
    assert result.forward_passes == 2  # the estimate, then one step: config.steps scale with the canvas
    assert not any(text in result.best.text for text in special_texts(ending))

    # The random model does not expect the span to end: the canvas keeps its full length.
    engine, recorder = recording(plain)
    engine.fill([request], config)
    assert {state.shape[1] for state in recorder.inputs} == {full_width}


class OverflowingModel:
    """The real model with a skewed end_of_span logit: sure the span ends at once on the first (estimation)
    pass, never ending it afterwards. The estimate is far too short and the span overflows its canvas."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.model = loaded.model
        self.end_of_span_id = loaded.special.end_of_span_id
        self.widths: list[int] = []

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = self.model.logits(input_ids, attention_mask, positions)
        logits[..., self.end_of_span_id] = 30.0 if not self.widths else -30.0
        self.widths.append(input_ids.shape[1])
        return logits


def test_a_span_that_overflows_its_estimated_canvas_is_decoded_again_on_the_full_budget(
    engines: dict[str, InfillEngine],
) -> None:
    loaded = engines["modernbert"].loaded
    model = OverflowingModel(loaded)
    engine = InfillEngine(replace(loaded, model=model))
    config = DecodeConfig(steps=2, estimate_length=True)
    result = engine.fill([FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=16)], config)[0]
    full = model.widths[0]
    assert model.widths == [full, full - 14, full, full]  # estimate, short canvas (1 step), full retry
    assert result.generated_tokens == 16 and result.forward_passes == 4


def test_token_healing_completes_the_word_under_the_cursor(
    engines: dict[str, InfillEngine], modernbert_dir: Path, tmp_path: Path
) -> None:
    tokenizer = engines["modernbert"].loaded.tokenizer
    (add,) = tokenizer.encode(" add")
    assert [tokenizer.token_text(i) for i in tokenizer.encode("def ad")] == ["def", " a", "d"]
    engine = InfillEngine(load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {add: 50.0})))
    config = DecodeConfig(strategy="confidence", steps=4)
    healed = engine.fill([FillRequest("def ad", "(a, b):\n", max_tokens=4)], config)[0].best
    assert healed is not None
    assert healed.text.startswith("d add") and healed.tokens[0].text == "d"
    # A trailing blank is healed too: the favoured " add" takes the blank's place, so no double space.
    plain = engine.fill([FillRequest("def ", "(a, b):\n", max_tokens=4)], config)[0].best
    assert plain is not None and plain.text.startswith("add add")


def test_healing_constraint_follows_a_chain_of_partial_tokens(engines: dict[str, InfillEngine]) -> None:
    loaded = engines["modernbert"].loaded
    texts = TokenTexts(loaded.tokenizer, loaded.special)
    prefix_ids, removed = heal_prefix(loaded.tokenizer.encode("def ad"), texts)
    assert removed == " ad" and [texts.texts[i] for i in prefix_ids] == ["def"]
    assert heal_prefix(loaded.tokenizer.encode("    ret"), texts)[1] == " ret"
    assert heal_prefix(loaded.tokenizer.encode("x = ("), texts)[1] == ""

    mask = loaded.special.mask_id
    ids = torch.tensor([[*prefix_ids, mask, mask, mask]])
    constraint = HealingConstraint(texts, [HealedSpan(0, 1, 4, removed)], mask)
    logits = torch.zeros(1, 4, len(texts.texts))
    priority = torch.zeros(1, 4)
    constraint(ids, logits, priority)
    allowed = {texts.texts[i] for i in torch.nonzero(logits[0, 1] == 0).flatten().tolist()}
    assert (
        " add" in allowed
        and " a" in allowed
        and all(" ad".startswith(t) or t.startswith(" ad") for t in allowed)
    )
    # A proper prefix may be chosen, so that position is decided alone this step.
    assert priority[0, 1] == float("inf") and (priority[0, 2:] == float("-inf")).all()

    (partial,) = loaded.tokenizer.encode(" a")
    ids[0, 1] = partial
    logits.zero_()
    priority.zero_()
    constraint(ids, logits, priority)
    allowed = {texts.texts[i] for i in torch.nonzero(logits[0, 2] == 0).flatten().tolist()}
    assert allowed and all(t.startswith("d") for t in allowed)
    assert (logits[0, 3] == 0).all()


def test_trimming_keeps_both_sides_at_line_boundaries(engines: dict[str, InfillEngine]) -> None:
    tokenizer = engines["modernbert"].loaded.tokenizer
    prefix = "".join(f"x{i} = {i}\n" for i in range(200)) + "    y = "
    suffix = "\n" + "".join(f"z{i} = {i}\n" for i in range(100))
    context = trim_context(prefix, suffix, tokenizer.encode, budget=90)
    kept_prefix, kept_suffix = tokenizer.decode(context.prefix_ids), tokenizer.decode(context.suffix_ids)
    assert len(context.prefix_ids) + len(context.suffix_ids) <= 90
    assert prefix.endswith(kept_prefix) and kept_prefix.startswith("x") and kept_prefix.endswith("    y = ")
    assert suffix.startswith(kept_suffix) and kept_suffix.endswith("\n") and kept_suffix.count("\n") >= 2
    assert len(context.prefix_ids) > len(context.suffix_ids) > 0  # the prefix gets the larger share
    assert context.dropped_prefix_lines > 0 and context.dropped_suffix_lines > 0

    # A side that needs little leaves its share to the other.
    short_suffix = trim_context(prefix, "\n", tokenizer.encode, budget=90)
    assert len(short_suffix.prefix_ids) > len(context.prefix_ids)
    assert len(short_suffix.prefix_ids) + len(short_suffix.suffix_ids) <= 90
    # A minified line too long for the window still gives the prefix its share: the tokens at the cursor.
    minified = "var a=[" + ",".join(str(i) for i in range(300))
    cut = trim_context(minified, suffix, tokenizer.encode, budget=90)
    assert minified.endswith(tokenizer.decode(cut.prefix_ids)) and len(cut.prefix_ids) == 60
    assert len(cut.suffix_ids) <= 30 and suffix.startswith(tokenizer.decode(cut.suffix_ids))
    whole = trim_context("a = 1\n", "b = 2\n", tokenizer.encode, budget=90)
    assert tokenizer.decode(whole.prefix_ids) == "a = 1\n" and whole.dropped_prefix_lines == 0


def test_a_small_window_keeps_the_canvas_and_refuses_spans_that_cannot_fit(tmp_path: Path) -> None:
    engine = InfillEngine(load_model(tiny_models.build_modernbert(tmp_path / "m", max_positions=64)))
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(60))
    result = engine.fill([FillRequest(prefix, prefix, max_tokens=16)], DecodeConfig(steps=2))[0]
    assert result.best is not None
    with pytest.raises(ContextTooLong):
        engine.fill([FillRequest("x", "y", max_tokens=65)])
    special = engine.loaded.special
    canvas = build_canvas(trim_context("a\n", "b\n", engine.loaded.tokenizer.encode, 10), 3, special)
    assert canvas.ids[canvas.span_start : canvas.span_start + 3] == [special.mask_id] * 3
    assert context_budget(special, 16, 64) == 64 - 16 - len(special.prefix_ids) - len(special.suffix_ids)


def test_default_config_takes_the_model_defaults(engines: dict[str, InfillEngine]) -> None:
    loaded = engines["modernbert"].loaded
    engine = InfillEngine(replace(loaded, generation_defaults={"strategy": "blocks", "steps": 7, "other": 1}))
    context = engine.context_tokens
    assert engine.default_config() == DecodeConfig(strategy="blocks", steps=7, context_tokens=context)
    with pytest.raises(ModelLoadError):
        InfillEngine(replace(loaded, generation_defaults={"threshold": 3})).default_config()
    for bad in (DecodeConfig(steps=0), DecodeConfig(strategy="nope"), DecodeConfig(top_p=0.0)):  # type: ignore[arg-type]
        with pytest.raises(InputError):
            check_config(bad)
    with pytest.raises(InputError):
        engines["modernbert"].fill([FillRequest("a", "b", max_tokens=0)])


@pytest.mark.parametrize("name", ["steps", "block_size", "block_steps", "num_candidates", "cache_refresh"])
def test_counts_and_sizes_must_be_integers(name: str, engines: dict[str, InfillEngine]) -> None:
    """A fractional block size used to reach the sampler and fail there with a torch error (a traceback at
    the edges); from generation_config.json it is a bad model, from a caller bad input."""
    engine = engines["modernbert"]
    config = replace(engine.default_config(), strategy="blocks", **{name: 2.5})
    with pytest.raises(InputError, match=f"{name} must be an integer, not 2.5"):
        engine.fill([FillRequest("def f(a):\n    return ", "\n", max_tokens=8)], config)
    defaults = InfillEngine(replace(engine.loaded, generation_defaults={name: 2.5}))
    with pytest.raises(ModelLoadError, match=f"{name} must be an integer"):
        defaults.default_config()
    check_config(replace(engine.default_config(), **{name: 2}))  # a whole number is fine


def test_scores_and_confidences_are_the_models_probabilities(
    engines: dict[str, InfillEngine], x_model_dir: Path
) -> None:
    """A model sure of its tokens ("x", +30 on its logit) scores near 0 with confidences near 1; the random
    model (near-uniform over 400 tokens) scores far below with small confidences."""
    request = FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=8)
    config = DecodeConfig(strategy="confidence", steps=4)
    sure = InfillEngine(load_model(x_model_dir)).fill([request], config)[0].best
    unsure = engines["modernbert"].fill([request], config)[0].best
    assert sure is not None and unsure is not None and sure.tokens and unsure.tokens
    assert all(token.confidence > 0.99 for token in sure.tokens) and sure.score > math.log(0.99)
    assert all(token.confidence < 0.5 for token in unsure.tokens) and unsure.score < math.log(0.5)


def test_span_candidates_stop_at_end_of_span_and_rank_by_mean_log_probability(
    engines: dict[str, InfillEngine],
) -> None:
    loaded = engines["modernbert"].loaded
    tokenizer, eos = loaded.tokenizer, loaded.special.end_of_span_id
    ids = [*tokenizer.encode("return a\nb"), eos, eos]
    confidences = [0.9] * (len(ids) - 2) + [0.5, 0.5]
    span = span_candidate(ids, confidences, tokenizer, eos)
    assert span is not None and span.candidate.text == "return a\nb" and span.generated_tokens == len(ids) - 2
    line = span_candidate(ids, confidences, tokenizer, eos, line=True)
    assert line is not None and line.candidate.text == "return a\n"
    assert span_candidate(ids, confidences, tokenizer, eos, removed="xyz") is None
    ranked = rank_candidates([span, line, span], limit=5)
    assert [r.candidate.text for r in ranked] == ["return a\n", "return a\nb"]
    # A span cut short by its canvas ranks below any that ended, however well it scores.
    cut = span_candidate(tokenizer.encode("return a + b"), [0.99] * 5, tokenizer, eos)
    assert cut is not None and not cut.ended and cut.candidate.score > span.candidate.score
    assert [r.candidate.text for r in rank_candidates([cut, span], limit=2)] == [
        "return a\nb",
        "return a + b",
    ]


def test_span_length_estimate_and_canvas_choices() -> None:
    assert estimate_span_length([0.1, 0.2, 0.7, 0.9]) == 2
    assert estimate_span_length([0.9, 0.9], minimum=1) == 1
    assert estimate_span_length([0.1, 0.2]) == 2
    assert length_ladder(64) == [8, 16, 32, 64]
    assert length_ladder(20) == [8, 16, 20] and length_ladder(16) == [8, 16]
    # The first rung the span ends inside decides: 10 tokens expected in the 16-canvas.
    assert canvas_lengths([(8, 8), (16, 10), (32, 12), (64, 30)], 64) == [16, 32, 64]
    assert canvas_lengths([(8, 3), (16, 3), (32, 20)], 32) == [7, 8, 16, 32]
    assert canvas_lengths([(8, 0), (16, 0)], 16)[0] == 2
    assert canvas_lengths([(8, 8), (16, 16)], 16) == [16]  # never ends: the whole budget
    assert canvas_lengths([(5, 5)], 5) == [5]  # not estimated
    # A weak model puts the end about halfway along any canvas: no rung confirms the next, so the span is
    # decoded on the full budget first (the first ending rung's choice stays as a further candidate).
    assert canvas_lengths([(8, 2), (16, 9), (32, 17), (48, 26)], 48) == [48, 5, 8, 16]
    # The last rung counts when the rung before expected the span to run past its end.
    assert canvas_lengths([(8, 8), (16, 16), (64, 20)], 64) == [32, 64]
    assert canvas_lengths([(8, 2), (16, 9), (64, 20)], 64) == [64, 5, 8, 16]  # neither neighbour agrees


def test_the_context_cap_limits_what_the_model_sees_whatever_its_window(
    engines: dict[str, InfillEngine],
) -> None:
    engine, recorder = recording(engines["modernbert"])
    prefix = "".join(f"value_{i} = compute({i})\n" for i in range(80))
    request = FillRequest(prefix, prefix, max_tokens=8)
    engine.fill([request], DecodeConfig(steps=2, context_tokens=40))
    special = engine.loaded.special
    fixed = len(special.prefix_ids) + len(special.suffix_ids) + 8
    assert recorder.inputs and max(state.shape[1] for state in recorder.inputs) <= 40 + fixed
    recorder.inputs.clear()
    engine.fill([request], DecodeConfig(steps=2))  # the default for a tiny model: its whole window (512)
    assert max(state.shape[1] for state in recorder.inputs) > 40 + fixed
    # Defaults by size, and the one stored with the weights wins.
    assert default_context_tokens(1_400_000) >= 4096 > default_context_tokens(7_000_000_000) == 2048
    assert default_context_tokens(None) == 2048
    stored = InfillEngine(replace(engine.loaded, generation_defaults={"context_tokens": 64}))
    assert stored.default_config().context_tokens == 64
    with pytest.raises(ModelLoadError):
        InfillEngine(replace(engine.loaded, generation_defaults={"context_tokens": "all"})).default_config()


@pytest.mark.parametrize("kind", ["modernbert", "dream"])
def test_the_context_cache_refreshed_every_step_changes_no_candidate(
    engines: dict[str, InfillEngine], kind: str
) -> None:
    engine = engines[kind]
    requests = [
        FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=12),
        FillRequest("def ad", "(a, b):\n", max_tokens=6, mode="line"),  # healed and a line stop
        FillRequest("x = [1, 2", "]\n", max_tokens=5, mode="line"),
    ]
    config = DecodeConfig(strategy="blocks", steps=6, block_size=4, threshold=0.3, num_candidates=2)
    plain = engine.fill(requests, config)
    cached = engine.fill(requests, replace(config, cache_refresh=1))
    assert [[c.text for c in r.candidates] for r in cached] == [[c.text for c in r.candidates] for r in plain]
    # Refreshing once per block (stale context between refreshes) still fills every request.
    per_block = engine.fill(requests, replace(config, cache_refresh=100))
    assert all(result.best is not None for result in per_block)


def test_alternative_canvases_are_not_retried_on_the_full_budget(engines: dict[str, InfillEngine]) -> None:
    # The spare canvases of a request are shorter on purpose (unestimated_lengths): one that does not end
    # is an alternative, not a bad estimate, and must not cost a decode of the full canvas again.
    loaded = engines["modernbert"].loaded
    model = OverflowingModel(loaded)
    model.widths.append(0)  # skip the "estimation" answer: never end
    engine = InfillEngine(replace(loaded, model=model))
    request = FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=16, num_candidates=2, skip_candidates=1)
    (result,) = engine.fill([request], DecodeConfig(steps=2))
    assert result.best is not None and result.generated_tokens == 8
    full = len(build_canvas(engine._prepare(request, DecodeConfig()).context, 16, loaded.special).ids)
    assert set(model.widths[1:]) == {full - 8}


class FixedEndModel:
    """The real model with end_of_span always (``end`` True) or never (False) the likeliest token."""

    def __init__(self, loaded: LoadedModel, end: bool) -> None:
        self.model = loaded.model
        self.end_of_span_id = loaded.special.end_of_span_id
        self.end = end
        self.widths: list[int] = []

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        logits = self.model.logits(input_ids, attention_mask, positions)
        logits[..., self.end_of_span_id] = 30.0 if self.end else -30.0
        self.widths.append(input_ids.shape[1])
        return logits


def test_growing_lengths_start_at_the_share_and_double_to_the_budget() -> None:
    assert growing_lengths(96, 0.33) == [32, 64, 96]
    assert growing_lengths(64, 0.33) == [21, 42, 64]
    assert growing_lengths(20, 0.1) == [8, 16, 20]  # never below CHEAP_CANVAS
    assert growing_lengths(6, 0.5) == [6]
    assert growing_lengths(96, 1.0) == [96]


@pytest.mark.parametrize(("end", "canvases"), [(False, [12, 24, 48, 48]), (True, [12])])
def test_a_growing_canvas_is_doubled_while_the_span_fills_it(
    engines: dict[str, InfillEngine], end: bool, canvases: list[int]
) -> None:
    loaded = engines["modernbert"].loaded
    model = FixedEndModel(loaded, end)
    engine = InfillEngine(replace(loaded, model=model))
    config = DecodeConfig(strategy="confidence", steps=2, canvas_share=0.25)
    (result,) = engine.fill([FillRequest(PYTHON_PREFIX, PYTHON_SUFFIX, max_tokens=48)], config)
    context = model.widths[0] - 12
    # steps scale with the canvas: 1 step for 12 and 24 tokens, 2 for the whole budget of 48
    assert [width - context for width in model.widths] == canvases
    assert result.generated_tokens == (0 if end else 48)
    assert result.forward_passes == len(canvases)
    # A line fill is never grown: its newline ends it on the whole budget.
    model.widths.clear()
    engine.fill([FillRequest("x = ", "\n", max_tokens=16, mode="line")], replace(config, steps=1))
    assert len(set(model.widths)) == 1


def test_canvas_share_must_be_a_share() -> None:
    with pytest.raises(InputError, match="canvas_share"):
        check_config(DecodeConfig(canvas_share=0.0))
    with pytest.raises(InputError, match="canvas_share"):
        check_config(DecodeConfig(canvas_share=1.5))
