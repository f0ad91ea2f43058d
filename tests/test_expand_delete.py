"""DreamOn's expand/delete decoding against an independent, literal implementation of its authors' generator.

The reference below (``authors_generator``) follows DreamLM/DreamOn ``eval/generator.py``
(``batch_generate_with_expand_as_token``) step by step, in its own terms: a fixed-size tensor padded with
masks to ``len(prompt) + max_gen_len - min_gen_len``, a growing attention window over it, ``mask_index``,
pad-to-right, expansion by tensor concatenation, then deletion at the stale ``mask_index``. The model is a
tiny random DreamOn-shaped checkpoint (tests/release_models.py) whose LM head rows for ``<|expand|>`` and
end-of-text are scaled up, so that both expansion and deletion happen in the decodes compared here.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from infill.engine import InfillEngine
from infill.engine.expand_delete import decode_middle
from infill.engine.types import DecodeConfig, FillRequest
from infill.errors import InputError, ModelLoadError
from infill.models import LoadedModel, load_model
from infill.models.expand_delete import AUTHORS_EVAL
from tests.release_models import build_dream_release
from tests.test_cli import run_infill

# The authors' eval keys, as a DreamOn checkpoint's generation_config.json may carry them.
GENERATION = {
    "min_gen_len": 4,
    "max_gen_len": 12,
    "steps": 64,
    "alg": "entropy",
    "alg_temp": 0.0,
    "temperature": 0.0,
    "top_p": 0.9,
    "top_k": None,
    "eps": 1e-3,
    "pad_eos_to_right": True,
    "delete_eos_token": True,
    "number_transfer_tokens": 1,
}
# (prefix, suffix) pairs; with the biased head below, each decode expands and deletes at least once.
GAPS = [
    ("def add(a, b):\n    return ", "\n"),
    ("x = [", "]\nprint(x)\n"),
    ("for i in range(10):\n", "    print(i)\n"),
]
HEAD_SCALE = 6.0  # how much the <|expand|> and end-of-text rows of the LM head are scaled up
SEED = 2


def scale_head_rows(model_dir: Path, names: tuple[str, ...], factor: float) -> None:
    """Multiply the LM head rows of ``names`` by ``factor`` in the checkpoint's shard."""
    added = json.loads((model_dir / "added_tokens.json").read_text())
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    shard = model_dir / index["weight_map"]["lm_head.weight"]
    state = load_file(str(shard))
    for name in names:
        state["lm_head.weight"][added[name]] *= factor
    save_file(state, str(shard), metadata={"format": "pt"})


@pytest.fixture(scope="module")
def dreamon_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = build_dream_release(
        tmp_path_factory.mktemp("release") / "DreamOn-v0-7B",
        variant="dreamon",
        seed=SEED,
        generation=GENERATION,
    )
    scale_head_rows(model_dir, ("<|expand|>", "<|endoftext|>"), HEAD_SCALE)
    return model_dir


@pytest.fixture(scope="module")
def dreamon(dreamon_dir: Path) -> LoadedModel:
    return load_model(dreamon_dir, device="cpu")


# ------------------------------------------------------------------------- the authors' generator, literally


def authors_sample(logits: torch.Tensor, settings: dict[str, object]) -> tuple[torch.Tensor, torch.Tensor]:
    """Dream's sample_tokens at temperature 0: (confidence by alg, argmax token)."""
    top_p = settings["top_p"]
    if top_p is not None and top_p < 1:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, sorted_indices, remove)
        logits = logits.masked_fill(mask, torch.finfo(logits.dtype).min)
    probs = torch.softmax(logits, dim=-1)
    confidence, x0 = probs.max(dim=-1)
    if settings["alg"] == "topk_margin":
        sorted_probs, _ = torch.sort(probs, dim=-1, descending=True)
        confidence = sorted_probs[:, 0] - sorted_probs[:, 1]
    elif settings["alg"] == "entropy":
        confidence = torch.sum(probs * torch.log(probs + 1e-10), dim=-1)
    return confidence, x0


def authors_generator(
    loaded: LoadedModel, prefix: str, suffix: str, settings: dict[str, object]
) -> tuple[list[int], int, int]:
    """The middle's ids as the authors' eval generator decodes them, and its expansion and deletion counts."""
    mask_id, eos_id = loaded.special.mask_id, loaded.special.end_of_span_id
    assert loaded.expand_delete is not None
    expand_id = loaded.expand_delete.expand_id
    min_gen_len, max_gen_len = int(settings["min_gen_len"]), int(settings["max_gen_len"])
    encode = loaded.tokenizer.encode
    prefix_ids = [*loaded.special.prefix_ids, *encode(prefix)]  # bos + prefix
    prompt = prefix_ids + [mask_id] * min_gen_len + encode(suffix) + [eos_id]
    input_length = len(prompt)
    max_tokens = input_length + max_gen_len - min_gen_len
    x = torch.tensor([prompt + [mask_id] * (max_tokens - input_length)])
    num_generation_tokens = min_gen_len
    expand_budget = max_gen_len
    expansions = deletions = 0
    for _ in range(int(settings["steps"])):
        window = input_length - min_gen_len + num_generation_tokens
        attention_mask = torch.zeros(1, max_tokens, dtype=torch.long)
        attention_mask[:, :window] = 1
        mask_index = (x == mask_id) & (attention_mask == 1)
        if not mask_index[:, :window].any():
            break
        with torch.inference_mode():
            logits = loaded.model.logits(x, attention_mask)  # (1, T, V), already shifted as Dream's
        logits = logits.clone()[mask_index]
        if window == max_tokens or expand_budget == 0:
            logits[:, expand_id] -= 1e9
        confidence, x0 = authors_sample(logits, settings)
        _, transfer_index = torch.topk(confidence, 1)
        x0_ = torch.zeros_like(x0) + mask_id
        x0_[transfer_index] = x0[transfer_index].clone()
        x[mask_index] = x0_
        if settings["pad_eos_to_right"]:
            eos_indices = (x[0] == eos_id).nonzero(as_tuple=True)[0]
            if len(eos_indices) > 0:
                position_mask = torch.arange(x.shape[1]) >= eos_indices[0].item()
                x[0].masked_fill_(position_mask & mask_index[0], eos_id)
        for idx in sorted((x[0] == expand_id).nonzero(as_tuple=True)[0].tolist(), reverse=True):
            x = torch.cat((x[:, :idx], torch.tensor([[mask_id, mask_id]]), x[:, idx + 1 :]), dim=1)
            num_generation_tokens += 1
            expand_budget -= 1
            expansions += 1
            x = x[:, :max_tokens]
        if settings["delete_eos_token"]:
            stale = ((x[0] == eos_id) & mask_index[0]).nonzero(as_tuple=True)[0].tolist()
            for idx in sorted(stale, reverse=True):
                x = torch.cat((x[:, :idx], x[:, idx + 1 :], torch.tensor([[mask_id]])), dim=1)
                num_generation_tokens -= 1
                deletions += 1
    start = len(prefix_ids)
    return x[0, start : start + num_generation_tokens].tolist(), expansions, deletions


def authors_text(loaded: LoadedModel, ids: list[int]) -> str:
    return loaded.tokenizer.hf.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------- tests


VARIANTS = [
    {},
    {"alg": "maskgit_plus", "top_p": None},
    {"alg": "topk_margin", "pad_eos_to_right": False},
    {"delete_eos_token": False},
]


@pytest.mark.parametrize("variant", VARIANTS, ids=["eval", "maskgit", "margin-nopad", "nodelete"])
def test_greedy_decoding_equals_the_authors_generator_token_for_token(
    dreamon: LoadedModel, variant: dict[str, object]
) -> None:
    settings = {**GENERATION, **variant}
    expand_delete = dreamon.expand_delete
    assert expand_delete is not None
    expand_delete = replace(
        expand_delete,
        settings=replace(
            expand_delete.settings,
            pad_eos_to_right=bool(settings["pad_eos_to_right"]),
            delete_eos_token=bool(settings["delete_eos_token"]),
        ),
    )
    strategy = {"entropy": "entropy", "maskgit_plus": "confidence", "topk_margin": "margin"}[
        str(settings["alg"])
    ]
    config = DecodeConfig(
        strategy=strategy,  # type: ignore[arg-type]
        steps=int(settings["steps"]),
        temperature=0.0,
        top_p=1.0 if settings["top_p"] is None else float(settings["top_p"]),  # type: ignore[arg-type]
    )
    special = dreamon.special
    totals = {"ours": [0, 0], "authors": [0, 0]}
    for prefix, suffix in GAPS:
        expected, expansions, deletions = authors_generator(dreamon, prefix, suffix, settings)
        out = decode_middle(
            dreamon.model,
            [*special.prefix_ids, *dreamon.tokenizer.encode(prefix)],
            [*dreamon.tokenizer.encode(suffix), *special.suffix_ids],
            special.mask_id,
            expand_delete,
            config,
            int(settings["max_gen_len"]),
        )
        assert out.ids == expected, (prefix, suffix)
        assert (out.expansions, out.deletions) == (expansions, deletions)
        totals["ours"] = [totals["ours"][0] + out.expansions, totals["ours"][1] + out.deletions]
        totals["authors"] = [totals["authors"][0] + expansions, totals["authors"][1] + deletions]
    assert totals["ours"] == totals["authors"]
    assert totals["ours"][0] > 0, "no decode expanded: the comparison would not exercise expansion"
    if settings["delete_eos_token"]:
        assert totals["ours"][1] > 0, "no decode deleted: the comparison would not exercise deletion"


def test_every_gap_expands_and_deletes_under_the_eval_settings(dreamon: LoadedModel) -> None:
    for prefix, suffix in GAPS:
        ids, expansions, deletions = authors_generator(dreamon, prefix, suffix, GENERATION)
        assert expansions > 0 and deletions > 0, (prefix, suffix)
        assert len(ids) == GENERATION["min_gen_len"] + expansions - deletions


def test_batch_without_flags_writes_the_authors_text(
    dreamon: LoadedModel, dreamon_dir: Path, tmp_path: Path
) -> None:
    rows = [{"task_id": i, "prompt": prefix, "suffix": suffix} for i, (prefix, suffix) in enumerate(GAPS)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_infill(
        "batch", "in.jsonl", "-o", "out.jsonl", "--mode", "span", "--model", str(dreamon_dir), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line)["completion"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    expected = [authors_text(dreamon, authors_generator(dreamon, p, s, GENERATION)[0]) for p, s in GAPS]
    assert out == expected
    assert any(expected)


def test_the_engine_decodes_with_the_checkpoint_settings(dreamon: LoadedModel) -> None:
    engine = InfillEngine(dreamon)
    config = engine.default_config()
    assert (config.strategy, config.steps, config.temperature, config.top_p) == ("entropy", 64, 0.0, 0.9)
    prefix, suffix = GAPS[0]
    (result,) = engine.fill([FillRequest(prefix, suffix, max_tokens=64)])
    expected = authors_text(dreamon, authors_generator(dreamon, prefix, suffix, GENERATION)[0])
    assert result.best is not None and result.best.text == expected
    with pytest.raises(InputError, match="decides its length"):
        engine.fill([FillRequest(prefix, suffix)], replace(config, strategy="threshold"))


def test_expand_is_committable_and_the_settings_are_read(dreamon: LoadedModel) -> None:
    assert dreamon.family == "dreamon"
    expand_delete = dreamon.expand_delete
    assert expand_delete is not None
    assert dreamon.tokenizer.token_text(expand_delete.expand_id) == "<|expand|>"
    assert expand_delete.expand_id not in dreamon.special.banned_ids
    assert expand_delete.delete_id == dreamon.special.end_of_span_id
    assert dreamon.special.stop_ids == ()  # the authors merge nothing into end-of-text
    settings = expand_delete.settings
    assert (settings.min_gen_len, settings.max_gen_len, settings.number_transfer_tokens) == (4, 12, 1)


def test_absent_keys_take_the_authors_eval_values(tmp_path: Path) -> None:
    loaded = load_model(build_dream_release(tmp_path / "d", variant="dreamon"), device="cpu")
    assert loaded.expand_delete is not None
    settings = loaded.expand_delete.settings
    assert (settings.min_gen_len, settings.max_gen_len) == (
        AUTHORS_EVAL["min_gen_len"],
        AUTHORS_EVAL["max_gen_len"],
    )
    assert loaded.generation_defaults == {
        "strategy": "entropy",
        "steps": 128,
        "temperature": 0.1,
        "top_p": 0.9,
    }


@pytest.mark.parametrize(
    ("key", "value"), [("min_gen_len", 0), ("max_gen_len", 2), ("delete_eos_token", "yes"), ("alg", "origin")]
)
def test_bad_settings_are_refused_in_one_line(key: str, value: object, tmp_path: Path) -> None:
    model_dir = build_dream_release(tmp_path / "d", variant="dreamon", generation={**GENERATION, key: value})
    with pytest.raises(ModelLoadError, match=key if key != "max_gen_len" else "min_gen_len") as info:
        load_model(model_dir, device="cpu")
    assert "\n" not in str(info.value)


def test_other_dream_families_keep_a_fixed_canvas(tmp_path: Path) -> None:
    model_dir = build_dream_release(tmp_path / "coder", variant="dream-coder")
    assert load_model(model_dir, device="cpu").expand_delete is None
    shutil.rmtree(model_dir)


def test_doctor_says_the_model_decides_its_length(dreamon_dir: Path, tmp_path: Path) -> None:
    result = run_infill("doctor", "--model", str(dreamon_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = dict(line.split(":", 1) for line in result.stdout.splitlines())
    line = rows["fill length"].strip()
    assert line.startswith("decided by the model: expand/delete decoding from 4 masks up to 12 tokens"), line
    assert "'<|expand|>' adds a mask" in line


def test_a_rewrite_hole_is_decoded_as_the_authors_generator_does(
    dreamon: LoadedModel, dreamon_dir: Path, tmp_path: Path
) -> None:
    # A hole in a comment is filled as comment text, one line: what the random model writes there passes the
    # checks, so the greedy decode is what gets written (random code elsewhere would not parse, and rewrite
    # would try sampled spares instead).
    prefix, suffix = "def add(a, b):\n    # ", "\n    return a + b\n"
    (tmp_path / "add.py").write_text(prefix + "<|fill|>" + suffix)
    result = run_infill("rewrite", "add.py", "--in-place", "--model", str(dreamon_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    ids, expansions, deletions = authors_generator(dreamon, prefix, suffix, GENERATION)
    assert expansions > 0 and deletions > 0
    first_line = authors_text(dreamon, ids).split("\n")[0]
    assert first_line.strip()
    assert (tmp_path / "add.py").read_text() == prefix + first_line + suffix


def test_greedy_gives_one_candidate_and_sampling_one_per_seed(dreamon: LoadedModel) -> None:
    engine = InfillEngine(dreamon)
    prefix, suffix = GAPS[1]
    config = engine.default_config()
    (greedy,) = engine.fill([FillRequest(prefix, suffix, num_candidates=3)], config)
    assert len(greedy.candidates) == 1
    (skipped,) = engine.fill([FillRequest(prefix, suffix, skip_candidates=1)], config)
    assert skipped.candidates == []  # the only greedy candidate was decoded by an earlier call
    sampling = replace(config, temperature=1.0, seed=7)
    (first,) = engine.fill([FillRequest(prefix, suffix, num_candidates=3)], sampling)
    (again,) = engine.fill([FillRequest(prefix, suffix, num_candidates=3)], sampling)
    assert 1 <= len(first.candidates) <= 3
    assert [c.text for c in first.candidates] == [c.text for c in again.candidates]  # seeded
    assert first.forward_passes >= 3  # three decodes, at least one pass each


def test_a_cancelled_fill_stops_between_steps(dreamon: LoadedModel) -> None:
    from infill.errors import Cancelled

    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        InfillEngine(dreamon).fill([FillRequest(*GAPS[0])], should_stop=stop)
    assert len(calls) == 3
