"""DreamOn's length states in the training objective (training/length_states.py)."""

from __future__ import annotations

import random

import pytest

from infill.errors import TrainingError
from infill.regions import language_for_path
from tests.test_training_fixtures import SOURCES
from tests.tiny_models import CODE_SAMPLES
from training.corpus import SourceFile
from training.length_states import EXPAND_TOKEN, MAX_DELETE, LengthStates, state_canvas
from training.objective import ExampleSource
from training.tokenizer import train_code_tokenizer

STATES = LengthStates(expand=90, end=91, mask=92)


def expand_canvas(inputs: list[int], targets: list[int | None], states: LengthStates) -> list[int]:
    """Undo the states as expand/delete decoding would with a perfect model: an expand target becomes two
    positions, a delete target none."""
    out: list[int] = []
    for token, target in zip(inputs, targets, strict=True):
        if target is None:
            out.append(token)
        elif target == states.expand:
            out += [-1, -1]  # two masks to decode
        elif target != states.end:
            out.append(target)
    return out


def test_masked_pairs_merge_into_expand_slots_and_the_tail_is_all_deletes() -> None:
    middle = list(range(10, 40))
    rng = random.Random(0)
    merged_any = False
    for _ in range(200):
        rate = rng.random()
        canvas = state_canvas(middle, 5, rate, STATES, rng)
        merges = canvas.targets.count(STATES.expand)
        merged_any |= merges > 0
        assert canvas.merges == merges
        assert len(canvas.inputs) == len(middle) + 5 - merges  # each merge takes one position out
        assert canvas.inputs[-5:] == [STATES.mask] * 5 and canvas.targets[-5:] == [STATES.end] * 5
        for token, target in zip(canvas.inputs, canvas.targets, strict=True):
            assert (token == STATES.mask) == (target is not None)  # scored exactly where masked
        # A perfect model that expands and deletes as told gets the middle's length back.
        assert len(expand_canvas(canvas.inputs, canvas.targets, STATES)) == len(middle)
    assert merged_any


def test_nothing_masked_merges_nothing_and_everything_masked_merges_about_half_the_pairs() -> None:
    middle = list(range(10, 110))
    kept = state_canvas(middle, 0, 0.0, STATES, random.Random(1))
    assert kept.inputs == middle and kept.merges == 0
    full = state_canvas(middle, 0, 1.0, STATES, random.Random(1))
    assert 15 <= full.merges <= 40  # merge_prob 0.5 over the pairs scanned left to right


@pytest.fixture(scope="module")
def files() -> list[SourceFile]:
    return [SourceFile(path, text, language_for_path(path)) for path, text in SOURCES.items()]


def test_the_objective_option_draws_batches_with_expand_and_delete_targets(files) -> None:
    tokenizer = train_code_tokenizer(CODE_SAMPLES + list(SOURCES.values()), vocab_size=500)
    with pytest.raises(TrainingError, match=EXPAND_TOKEN):
        ExampleSource(files, tokenizer, 96, span_fraction=1.0, length_states=True)
    tokenizer.add_special_tokens({"additional_special_tokens": [EXPAND_TOKEN]})
    source = ExampleSource(files, tokenizer, 96, span_fraction=1.0, length_states=True)
    states = source.length_states
    assert states is not None and states.max_delete == MAX_DELETE
    plain = ExampleSource(files, tokenizer, 96, span_fraction=1.0)
    batch = source.diffusion_batch(8, seed=3, step=0)
    again = source.diffusion_batch(8, seed=3, step=0)
    assert batch.input_ids.equal(again.input_ids) and batch.labels.equal(again.labels)  # reproducible
    scored = batch.labels != -100
    assert (batch.input_ids[scored] == states.mask).all() and (batch.weights[~scored] == 0).all()
    assert (batch.labels == states.expand).any() and (batch.labels == states.end).any()
    assert not (plain.diffusion_batch(8, seed=3, step=0).labels == states.expand).any()
    assert batch.row_maskable is not None and (batch.row_maskable > 0).all()
    # End tokens are masked always: weight 1; the rest were masked at their row's rate t: weight 1/t > 1.
    ends = batch.labels == states.end
    assert (batch.weights[ends] == 1.0).all() and (batch.weights[scored & ~ends] > 1.0).all()


def test_edit_noise_also_corrupts_length_state_batches(files) -> None:
    """Both options at once (the bundled model's objective): unmasked canvas tokens get plausible wrong
    tokens whose originals are scored, beside the expand and delete targets."""
    tokenizer = train_code_tokenizer(CODE_SAMPLES + list(SOURCES.values()), vocab_size=500)
    tokenizer.add_special_tokens({"additional_special_tokens": [EXPAND_TOKEN]})
    plain = ExampleSource(files, tokenizer, 96, span_fraction=1.0, length_states=True)
    noisy = ExampleSource(files, tokenizer, 96, span_fraction=1.0, length_states=True, edit_noise=0.3)
    mask = plain.length_states.mask
    clean, batch = plain.diffusion_batch(8, seed=5, step=0), noisy.diffusion_batch(8, seed=5, step=0)
    changed = batch.input_ids != clean.input_ids
    assert changed.any()
    assert (clean.input_ids[changed] != mask).all() and (
        batch.labels[changed] == clean.input_ids[changed]
    ).all()
    assert (batch.weights[changed] == 1.0).all()
    assert (clean.labels.eq(plain.length_states.expand) | clean.labels.eq(plain.length_states.end)).any()
