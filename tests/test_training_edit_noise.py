"""Edit noise in the diffusion objective: the replacement tables come from the tokenizer, corrupted positions
are unmasked canvas positions labelled with their original token, and the option reaches the batches."""

from __future__ import annotations

import pytest
import torch

from infill.errors import TrainingError
from infill.regions import language_for_path
from tests.test_training_fixtures import SOURCES
from tests.tiny_models import CODE_SAMPLES
from training.config import TrainConfig
from training.corpus import SourceFile
from training.edit_noise import EditNoise
from training.objective import ExampleSource
from training.tokenizer import train_code_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_code_tokenizer(CODE_SAMPLES + list(SOURCES.values()), vocab_size=500)


def _id(tokenizer, text: str) -> int:
    (token,) = tokenizer(text, add_special_tokens=False)["input_ids"]
    return token


def test_tables_swap_operators_literals_and_identifiers(tokenizer) -> None:
    noise = EditNoise.from_tokenizer(tokenizer, 0.1)
    # Spellings the tiny tokenizer has as one token swap; " +" has no one-token partner (" -" is " ", "-").
    assert noise.swaps[_id(tokenizer, "+")] == (_id(tokenizer, "-"),)
    assert noise.swaps[_id(tokenizer, "*")] == (_id(tokenizer, "/"),)
    assert _id(tokenizer, " +") not in noise.swaps
    assert set(noise.swaps[_id(tokenizer, "1")]) == {_id(tokenizer, "0"), _id(tokenizer, "2")}
    assert _id(tokenizer, " name") in noise.identifiers and _id(tokenizer, " return") not in noise.identifiers
    with pytest.raises(TrainingError, match="share"):
        EditNoise.from_tokenizer(tokenizer, 1.5)


def test_corrupted_positions_are_unmasked_canvas_labelled_with_the_original(tokenizer) -> None:
    noise = EditNoise.from_tokenizer(tokenizer, 0.999)
    ids = tokenizer("    return a+b*2\n    print(name, a)\n", add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor([ids])
    labels = torch.full_like(input_ids, -100)
    weights = torch.zeros(input_ids.shape)
    candidates = torch.ones_like(input_ids, dtype=torch.bool)
    candidates[0, 0] = False  # e.g. a masked or context position: never touched
    generator = torch.Generator().manual_seed(0)
    noisy, new_labels, new_weights = noise.corrupt(input_ids, labels, weights, candidates, generator)
    changed = noisy != input_ids
    assert changed.any()
    assert not changed[0, 0]
    # Every changed position is labelled with its original token at weight 1; nothing else gets a label.
    assert torch.equal(new_labels[changed], input_ids[changed])
    assert (new_weights[changed] == 1).all() and (new_labels[~changed] == -100).all()
    # "+" became "-", "*" "/", 2 a neighbour, each identifier another identifier of the same example.
    for text in ("+", "*", "2"):
        column = ids.index(_id(tokenizer, text))
        assert int(noisy[0, column]) in noise.swaps[_id(tokenizer, text)]
    for column in changed[0].nonzero().flatten().tolist():
        if ids[column] in noise.identifiers:
            assert int(noisy[0, column]) in set(ids) & noise.identifiers
    # Deterministic for a seed (resuming a run redraws the same batches).
    again = noise.corrupt(input_ids, labels, weights, candidates, torch.Generator().manual_seed(0))[0]
    assert torch.equal(again, noisy)


def test_the_option_reaches_diffusion_batches(tokenizer) -> None:
    files = [SourceFile(path, text, language_for_path(path)) for path, text in SOURCES.items()]
    plain = ExampleSource(files, tokenizer, 64).diffusion_batch(8, seed=0, step=0)
    noisy = ExampleSource(files, tokenizer, 64, edit_noise=0.3).diffusion_batch(8, seed=0, step=0)
    mask = ExampleSource(files, tokenizer, 64).ids.mask

    def unmasked_labels(batch) -> torch.Tensor:
        return (batch.labels != -100) & (batch.input_ids != mask)

    assert not unmasked_labels(plain).any()  # plain MDLM: only masked positions have labels
    corrupted = unmasked_labels(noisy)
    assert corrupted.any()
    assert (noisy.input_ids[corrupted] != noisy.labels[corrupted]).all()
    assert (noisy.weights[corrupted] == 1).all()
    with pytest.raises(TrainingError, match="edit-noise"):
        TrainConfig(repo=".", edit_noise=0.2, objective="ar-fim", from_scratch=True).validate()
