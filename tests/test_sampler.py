"""Invariants of the pure denoising loop (infill/engine/sampler.py) on real tiny models.

A tiny random model gives random tokens, so these tests check mechanics: what may change between steps,
how many positions each step commits, which ids can never appear. Models made confident on purpose get a
large output bias written into their weights (``biased_model_dir``).
"""

from __future__ import annotations

import itertools
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from infill.engine.sampler import denoise
from infill.engine.scoring import _top_p_filter, take_top
from infill.engine.types import DecodeConfig
from infill.errors import Cancelled
from infill.models import LoadedModel, load_model


def biased_model_dir(source: Path, target: Path, bias: dict[int, float]) -> Path:
    """A copy of a ModernBERT model directory whose output bias is raised by ``bias[token_id]``."""
    shutil.copytree(source, target)
    weights = load_file(str(target / "model.safetensors"))
    for token_id, delta in bias.items():
        weights["decoder.bias"][token_id] += delta
    save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
    return target


class RecordingModel:
    """The real model, plus a copy of the canvas it was shown at every forward pass."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.inputs: list[torch.Tensor] = []
        self.positions: list[torch.Tensor | None] = []

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        self.inputs.append(input_ids.clone())
        self.positions.append(None if positions is None else positions.clone())
        return self.model.logits(input_ids, attention_mask, positions)  # type: ignore[attr-defined]


def make_batch(loaded: LoadedModel, spans: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows with the same code context and spans of the given lengths, right-padded."""
    special = loaded.special
    prefix = [*special.prefix_ids, *loaded.tokenizer.encode("def add(a, b):\n    return")]
    suffix = [*loaded.tokenizer.encode("\n\nprint(add(1, 2))\n"), *special.suffix_ids]
    width = len(prefix) + max(spans) + len(suffix)
    ids = torch.full((len(spans), width), special.pad_id)
    attention = torch.zeros_like(ids)
    editable = torch.zeros(ids.shape, dtype=torch.bool)
    for row, span in enumerate(spans):
        canvas = prefix + [special.mask_id] * span + suffix
        ids[row, : len(canvas)] = torch.tensor(canvas)
        attention[row, : len(canvas)] = 1
        editable[row, len(prefix) : len(prefix) + span] = True
    return ids, editable, attention


@pytest.fixture(scope="module")
def loaded(modernbert_dir: Path) -> LoadedModel:
    return load_model(modernbert_dir)


@pytest.fixture(scope="module")
def eos_model(modernbert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    """Ends spans often but not always: end_of_span is likely enough to appear mid-span when sampling."""
    plain = load_model(modernbert_dir)
    target = tmp_path_factory.mktemp("eos") / "model"
    return load_model(biased_model_dir(modernbert_dir, target, {plain.special.end_of_span_id: 5.5}))


def run(loaded: LoadedModel, spans: list[int], config: DecodeConfig, **kwargs: object):
    ids, editable, attention = make_batch(loaded, spans)
    recorder = RecordingModel(loaded.model)
    out = denoise(recorder, ids, editable, attention, loaded.special, config, **kwargs)  # type: ignore[arg-type]
    return out, recorder.inputs, editable


def tail_positions(ids: torch.Tensor, editable: torch.Tensor, eos: int) -> torch.Tensor:
    """(B, T) bool: editable positions after the first end_of_span of their row."""
    seen = torch.cumsum((ids == eos) & editable, dim=1)
    first = seen.eq(1) & (ids == eos)
    return editable & (seen >= 1) & ~first


@pytest.mark.parametrize("strategy", ["confidence", "margin", "entropy"])
def test_fixed_k_strategies_commit_k_per_step_and_never_change_committed(
    loaded: LoadedModel, strategy: str
) -> None:
    spans, steps = [16, 10], 4
    out, inputs, editable = run(loaded, spans, DecodeConfig(strategy=strategy, steps=steps))
    mask, eos = loaded.special.mask_id, loaded.special.end_of_span_id
    assert out.forward_passes == steps == len(inputs)
    states = [*inputs, out.ids]
    for before, after in itertools.pairwise(states):
        committed = before != mask
        assert torch.equal(after[committed], before[committed])
    expected = {16: [4, 4, 4, 4], 10: [3, 3, 2, 2]}  # LLaDA's schedule: remainder on the first steps
    tail = tail_positions(out.ids, editable, eos)
    for row, span in enumerate(spans):
        for step, k in enumerate(expected[span]):
            at_step = out.commit_step[row] == step
            assert int(at_step.sum()) >= k
            assert int((at_step & ~tail[row]).sum()) <= k
            if not (out.ids[row][editable[row]] == eos).any():
                assert int(at_step.sum()) == k
    assert not (out.ids[editable] == mask).any()
    assert torch.equal(out.ids[~editable], make_batch(loaded, spans)[0][~editable])


def test_mask_pad_and_banned_ids_are_never_committed(
    loaded: LoadedModel, modernbert_dir: Path, tmp_path: Path
) -> None:
    special = loaded.special
    extra_banned = loaded.tokenizer.encode(" return")[0]
    favoured = {special.mask_id: 50.0, special.pad_id: 50.0, extra_banned: 50.0}
    biased = load_model(biased_model_dir(modernbert_dir, tmp_path / "m", favoured))
    strict = replace(biased, special=replace(special, banned_ids=(*special.banned_ids, extra_banned)))
    for strategy in ("confidence", "threshold", "blocks", "p2"):
        out, _, editable = run(strict, [12], DecodeConfig(strategy=strategy, steps=4, block_size=4))
        committed = out.ids[editable]
        assert not torch.isin(committed, torch.tensor([special.mask_id, special.pad_id, extra_banned])).any()
    # Without the extra ban the favoured token wins everywhere: the ban above is what kept it out.
    out, _, editable = run(biased, [12], DecodeConfig(strategy="confidence", steps=4))
    assert (out.ids[editable] == extra_banned).all()


def test_threshold_decodes_a_confident_span_in_one_pass(
    loaded: LoadedModel, modernbert_dir: Path, tmp_path: Path
) -> None:
    token = loaded.tokenizer.encode(" return")[0]
    confident = load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {token: 50.0}))
    out, _, editable = run(confident, [12], DecodeConfig(strategy="threshold", steps=6, threshold=0.9))
    assert out.forward_passes == 1
    assert (out.ids[editable] == token).all()
    out, _, _ = run(confident, [12], DecodeConfig(strategy="confidence", steps=6))
    assert out.forward_passes == 6


def test_threshold_commits_at_least_one_per_step_within_the_step_budget(loaded: LoadedModel) -> None:
    # The random tiny model is never 0.99 sure: progress comes from the ceil(remaining / steps left) floor.
    out, _, editable = run(loaded, [16, 5], DecodeConfig(strategy="threshold", steps=8, threshold=0.99))
    assert out.forward_passes <= 8
    for row in range(2):
        steps = out.commit_step[row][editable[row]]
        assert set(steps.tolist()) == set(range(int(steps.max()) + 1))


def test_blocks_commit_left_to_right(loaded: LoadedModel) -> None:
    config = DecodeConfig(strategy="blocks", steps=8, block_size=4)
    out, _, editable = run(loaded, [16, 7], config)
    tail = tail_positions(out.ids, editable, loaded.special.end_of_span_id)
    for row, span in enumerate([16, 7]):
        steps = out.commit_step[row][editable[row] & ~tail[row]].tolist()
        blocks = [steps[i : i + 4] for i in range(0, len(steps), 4)]
        for earlier, later in itertools.pairwise(blocks):
            assert max(earlier) < min(later)
        if span == 16:  # 8 steps over 4 blocks: two steps, two commits each
            assert sorted(steps) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]


def test_end_of_span_fills_the_rest_of_the_span_and_never_precedes_content(eos_model: LoadedModel) -> None:
    eos, mask = eos_model.special.end_of_span_id, eos_model.special.mask_id
    mid_span_ends = 0
    for seed in range(6):
        config = DecodeConfig(strategy="confidence", steps=6, temperature=1.0, top_p=1.0, seed=seed)
        out, inputs, editable = run(eos_model, [12, 12], config)
        for row in range(2):
            span = out.ids[row][editable[row]].tolist()
            if eos in span:
                first = span.index(eos)
                assert all(token == eos for token in span[first:])
                mid_span_ends += first > 0
                steps = out.commit_step[row][editable[row]].tolist()
                assert all(step <= steps[first] for step in steps[first:])
            for state in inputs:
                canvas = state[row][editable[row]].tolist()
                content = [i for i, t in enumerate(canvas) if t not in (mask, eos)]
                ends = [i for i, t in enumerate(canvas) if t == eos]
                assert not ends or not content or max(content) < min(ends)
    assert mid_span_ends > 0, "the biased model should end some spans after some content"


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(loaded: LoadedModel) -> None:
    greedy = DecodeConfig(strategy="confidence", steps=4)
    assert torch.equal(run(loaded, [12], greedy)[0].ids, run(loaded, [12], greedy)[0].ids)
    sampled = replace(greedy, temperature=1.0, top_p=1.0, seed=7)
    first, second = run(loaded, [12], sampled)[0].ids, run(loaded, [12], sampled)[0].ids
    assert torch.equal(first, second)
    assert not torch.equal(first, run(loaded, [12], replace(sampled, seed=8))[0].ids)


def test_should_stop_is_honoured_before_the_next_forward_pass(loaded: LoadedModel) -> None:
    calls: list[int] = []

    def stop_after_first_step() -> bool:
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(Cancelled):
        run(loaded, [12], DecodeConfig(strategy="confidence", steps=6), should_stop=stop_after_first_step)
    recorder = RecordingModel(loaded.model)
    ids, editable, attention = make_batch(loaded, [12])
    with pytest.raises(Cancelled):
        denoise(recorder, ids, editable, attention, loaded.special, DecodeConfig(), should_stop=lambda: True)  # type: ignore[arg-type]
    assert recorder.inputs == []


def test_remasking_only_returns_committed_tokens_to_the_mask(loaded: LoadedModel) -> None:
    mask = loaded.special.mask_id
    out, inputs, editable = run(loaded, [16], DecodeConfig(strategy="confidence", steps=8, remask=0.5))
    states = [*inputs, out.ids]
    remasked = 0
    for before, after in itertools.pairwise(states):
        changed = (before != mask) & (after != before)
        assert (after[changed] == mask).all()
        remasked += int(changed.sum())
    assert remasked > 0
    assert not (out.ids[editable] == mask).any()


def test_top_p_keeps_the_smallest_set_reaching_p() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert (_top_p_filter(probs, 0.7) > 0).tolist() == [[True, True, False, False]]
    assert (_top_p_filter(probs, 0.4) > 0).tolist() == [[True, False, False, False]]
    assert (_top_p_filter(probs, 0.81) > 0).tolist() == [[True, True, True, False]]


def test_take_top_picks_per_row_counts_and_skips_minus_inf() -> None:
    inf = float("inf")
    scores = torch.tensor([[0.1, 0.9, -inf, 0.5], [inf, 0.2, 0.3, -inf]])
    chosen = take_top(scores, torch.tensor([2, 5]))
    assert chosen.tolist() == [[False, True, False, True], [True, True, True, False]]


def newline_ids(loaded: LoadedModel) -> torch.Tensor:
    texts = [loaded.tokenizer.token_text(i) for i in range(loaded.tokenizer.vocab_size)]
    return torch.tensor([i for i, text in enumerate(texts) if "\n" in text])


def test_a_line_row_stops_decoding_at_its_first_newline(modernbert_dir: Path, tmp_path: Path) -> None:
    plain = load_model(modernbert_dir)
    (newline,) = plain.tokenizer.encode("\n")
    confident = load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {newline: 50.0}))
    eos = confident.special.end_of_span_id
    config = DecodeConfig(strategy="confidence", steps=12)  # one commit per step
    lines = torch.tensor([True, False])
    out, _, editable = run(confident, [12, 12], config, line_rows=lines, newline_ids=newline_ids(plain))
    line_span, free_span = out.ids[0][editable[0]].tolist(), out.ids[1][editable[1]].tolist()
    # The line row commits its newline first, and everything after it is end_of_span in that same step.
    assert line_span == [newline] + [eos] * 11
    assert set(out.commit_step[0][editable[0]].tolist()) == {0}
    # The other row (same canvas) decodes its whole span, one position per pass: the batch ran 12 passes.
    assert free_span == [newline] * 12 and out.forward_passes == 12
    alone, _, _ = run(confident, [12], config, line_rows=lines[:1], newline_ids=newline_ids(plain))
    assert alone.forward_passes == 1


def test_no_masked_position_is_ever_left_after_a_line_rows_newline(
    loaded: LoadedModel, modernbert_dir: Path, tmp_path: Path
) -> None:
    # A model that writes newlines now and then: whatever order it commits in, once a line row holds a
    # newline, nothing after it is still masked when the next pass starts.
    nl = newline_ids(loaded)
    (newline,) = loaded.tokenizer.encode("\n")
    sometimes = load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {newline: 4.5}))
    mask = loaded.special.mask_id
    seen_newline = 0
    for seed in range(6):
        config = DecodeConfig(strategy="confidence", steps=12, temperature=1.0, top_p=1.0, seed=seed)
        out, inputs, editable = run(
            sometimes, [12, 12], config, line_rows=torch.tensor([True, True]), newline_ids=nl
        )
        for state in [*inputs, out.ids]:
            for row in range(2):
                span = state[row][editable[row]]
                is_newline = torch.isin(span, nl)
                if is_newline.any():
                    seen_newline += 1
                    first = int(is_newline.nonzero()[0])
                    assert not (span[first + 1 :] == mask).any()
    assert seen_newline > 0, "the random model should write some newlines"


def test_threshold_acts_inside_blocks(loaded: LoadedModel, modernbert_dir: Path, tmp_path: Path) -> None:
    token = loaded.tokenizer.encode(" return")[0]
    confident = load_model(biased_model_dir(modernbert_dir, tmp_path / "m", {token: 50.0}))
    blocks = DecodeConfig(strategy="blocks", steps=12, block_size=4, threshold=0.9)
    out, _, editable = run(confident, [12], blocks)
    assert out.forward_passes == 3  # one pass per block: every position is above the threshold
    assert out.commit_step[0][editable[0]].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # Without the rule (a threshold nothing reaches below certainty) the schedule commits one per step.
    out, _, _ = run(loaded, [12], replace(blocks, threshold=1.0))
    assert out.forward_passes == 12


def test_each_step_asks_for_logits_at_its_block_only(loaded: LoadedModel) -> None:
    out, _, _ = run(loaded, [12, 7], DecodeConfig(strategy="blocks", steps=6, block_size=4))
    recorder = RecordingModel(loaded.model)
    ids, editable, attention = make_batch(loaded, [12, 7])
    denoise(
        recorder,
        ids,
        editable,
        attention,
        loaded.special,
        DecodeConfig(strategy="blocks", steps=6, block_size=4),
    )  # type: ignore[arg-type]
    assert len(recorder.positions) == out.forward_passes > 0
    for positions, state in zip(recorder.positions, recorder.inputs, strict=True):
        assert positions is not None and positions.shape == (2, 4)
        for row in range(2):
            asked = positions[row].tolist()
            span = editable[row].nonzero().flatten()
            masked = (state[row, span] == loaded.special.mask_id).nonzero().flatten()
            assert len(set(asked)) == 4
            if len(masked):  # the block of the leftmost masked position is asked about
                block = int(masked[0]) // 4
                assert set(span[block * 4 : block * 4 + 4].tolist()) <= set(asked)


def test_a_step_reads_the_device_only_to_ask_whether_anything_is_left(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On CUDA every read of a tensor's value by the host stalls the device. Count the reads the sampler makes
    # itself (not the model's forward pass) with the debug checks off, as in normal use.
    monkeypatch.setenv("INFILL_CHECK_INVARIANTS", "0")
    reads: list[str] = []
    in_model = [False]
    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__"):
        original = getattr(torch.Tensor, name)

        def counting(self: torch.Tensor, *args: object, _name: str = name, _original=original) -> object:  # type: ignore[no-untyped-def]
            if not in_model[0]:
                reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counting)

    class Quiet(RecordingModel):
        def logits(self, input_ids, attention_mask, positions=None):  # type: ignore[no-untyped-def]
            in_model[0] = True
            try:
                return super().logits(input_ids, attention_mask, positions)
            finally:
                in_model[0] = False

    ids, editable, attention = make_batch(loaded, [12, 7])
    config = DecodeConfig(strategy="blocks", steps=6, block_size=4, remask=0.25)
    lines = torch.tensor([True, False])
    out = denoise(Quiet(loaded.model), ids, editable, attention, loaded.special, config, line_rows=lines)  # type: ignore[arg-type]
    assert out.forward_passes > 1
    # One read fixes the slot shapes for the decode; then one per step, and one that finds nothing left.
    assert len(reads) == out.forward_passes + 2, reads


def test_block_steps_caps_the_steps_a_block_gets(loaded: LoadedModel) -> None:
    # The random model never reaches the threshold: every step commits the schedule's share only.
    config = DecodeConfig(strategy="blocks", steps=16, block_size=4, threshold=1.0)
    assert run(loaded, [16], config)[0].forward_passes == 16  # 4 blocks x 4 steps
    out, _, editable = run(loaded, [16, 9], replace(config, block_steps=2))
    assert out.forward_passes == 8  # 4 blocks x 2 steps, two commits each
    assert sorted(out.commit_step[0][editable[0]].tolist()) == [i for i in range(8) for _ in range(2)]
    # The cap never raises a share: 4 steps over 4 blocks is one step per block, cap or not.
    assert run(loaded, [16], replace(config, steps=4, block_steps=2))[0].forward_passes == 4


def test_a_constraint_sees_the_asked_positions_in_canvas_coordinates() -> None:
    from infill.engine.slots import CanvasLogits

    logits = torch.zeros(2, 3, 5)  # a step that asks about 3 positions per row
    view = CanvasLogits(logits, torch.tensor([[4, 5, 6], [9, 10, 11]]), canvas_width=12)
    assert view.shape == (2, 12, 5)
    view[1, 10] += torch.arange(5.0)  # an asked position: lands in the step's logits
    view[0, 7] += torch.ones(5)  # not asked this step: dropped
    view[0, 4] = torch.full((5,), -1.0)
    assert torch.equal(logits[1, 1], torch.arange(5.0)) and (logits[0, 0] == -1).all()
    assert logits[0, 1:].abs().sum() == 0 and logits[1, [0, 2]].abs().sum() == 0
    with pytest.raises(TypeError):
        view[0]
