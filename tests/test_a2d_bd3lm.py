"""The dllm project's Tiny-A2D bd3lm conversion of Qwen2.5-Coder against its authors' sampler, written here.

The reference forward pass is test_block_diffusion.py's plain loops over the checkpoint's tensors (Qwen2:
q/k/v biases, no head norms) under the attention mask of dllm's ``_prepare_for_sampling``; the decoding loop
is ``BD3LMSampler.sample`` (dllm/core/samplers/bd3lm.py) as its evaluation calls it, greedy: the prompt
left-padded with pad ids to whole blocks of 32, the pads neither queries nor keys and skipped by the
positions (so here they are left out and only shift the block grid), each new block appended as masks and
denoised in ``steps_per_block`` steps of ``get_num_transfer_tokens`` (the linear scheduler's rounded shares,
zero steps dropped), ``low_confidence`` remasking (the step's most probable positions, no threshold), the
last block cut at ``max_new_tokens``, and a stop after the block that holds eos. It recomputes the prefix at
every step, so matching it also checks infill's prefix cache. One input of infill's own is passed to it: the
ids infill never commits (their logits -inf). It is shown to decode something else with bidirectional
attention, with blocks of 16, and with blocks counted from position 0 instead of from the prompt's end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from lsprotocol import types

from infill.engine.block_decoding import BlockDecodeOutput, PrefixCaches, block_denoise
from infill.engine.types import DecodeConfig
from infill.models import load_model
from infill.models.base import SpecialTokens
from infill.models.block_model import BlockDiffusionModel
from infill_cli.main import main
from tests.release_a2d import build_a2d_bd3lm_release
from tests.release_models import SENTINEL, bias_towards_x, cli_completion
from tests.test_block_diffusion import CODE, Reference
from tests.test_lsp_support import LspSession, inline_params, serve_argv, server_env

pytestmark = pytest.mark.usefixtures("one_thread")
BLOCK, STEPS = 32, 32  # eval.sh: block_size=32, steps=256 over max_new_tokens=256 (32 steps a block)
LONG_CODE = CODE + "\n\ndef total(values):\n    count = 0\n    for value in values:\n        count += value\n"


@pytest.fixture(scope="module")
def a2d_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_a2d_bd3lm_release(tmp_path_factory.mktemp("a2d") / "Qwen2.5-Coder-0.5B-Instruct-bd3lm")


@pytest.fixture(scope="module")
def x_a2d_dir(a2d_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bias_towards_x(a2d_dir, tmp_path_factory.mktemp("x_a2d") / "Qwen2.5-Coder-0.5B-Instruct-bd3lm")


# --- the reference: BD3LMSampler.sample, written from dllm's code -------------------------------------------


def num_transfer_tokens(masked: int, steps: int) -> list[int]:
    """get_num_transfer_tokens with the LinearAlphaScheduler (alpha(t) = 1 - t): per step, the masked count
    left times 1 - (1 - alpha(s)) / (1 - alpha(t)) (float32), rounded half to even; zero steps dropped."""
    shares, left = [], masked
    for j in range(steps):
        t, s = torch.tensor((steps - j) / steps), torch.tensor((steps - j - 1) / steps)
        ratio = (1 - (1 - s)) / (1 - (1 - t))  # float32, as reverse_mask_prob
        share = min(int(torch.round(torch.tensor(left, dtype=torch.float64) * (1 - ratio.item()))), left)
        left -= share
        shares.append(share)
        if left == 0:
            break
    return [share for share in shares if share > 0]


def sampler_mask(length: int, pads: int, block_size: int, bidirectional: bool = False) -> torch.Tensor:
    """_prepare_for_sampling's mask with the pads left out: block of column c is (c + pads) // block_size."""
    if bidirectional:
        return torch.ones(length, length, dtype=torch.bool)
    blocks = (torch.arange(length) + pads) // block_size
    return blocks[None, :] <= blocks[:, None]


def sample(
    reference: Reference,
    prompt: list[int],
    max_new_tokens: int,
    mask_id: int,
    eos_ids: set[int],
    banned: list[int],
    *,
    block_size: int = BLOCK,
    from_prompt_end: bool = True,
    bidirectional: bool = False,
    steps: int = STEPS,
) -> list[int]:
    """The new tokens of BD3LMSampler.sample for one prompt, greedy, low_confidence."""
    pads = -len(prompt) % block_size if from_prompt_end else 0
    x = list(prompt)
    generated = 0
    for _ in range(-(-max_new_tokens // block_size)):
        width = min(block_size, max_new_tokens - generated)
        start = len(x)
        x += [mask_id] * width
        for share in num_transfer_tokens(width, steps):
            current = torch.tensor(x[start:])
            masked = current == mask_id
            if not masked.any():
                break
            logits = reference.logits(x, sampler_mask(len(x), pads, block_size, bidirectional))[start:]
            logits[:, banned] = float("-inf")
            probs = logits.softmax(-1)
            x0 = probs.argmax(-1)
            confidence = torch.where(masked, probs.gather(-1, x0[:, None])[:, 0], float("-inf"))
            chosen = torch.topk(confidence, min(share, int(masked.sum()))).indices
            current[chosen] = x0[chosen]
            x[start:] = current.tolist()
        generated += width
        if eos_ids.intersection(x[start:]):
            break
    return x[len(prompt) :]


# --- logits and greedy generation ---------------------------------------------------------------------------


def _prompt(model_dir: Path) -> list[int]:
    prompt = load_model(model_dir, device="cpu").tokenizer.encode(LONG_CODE)
    assert len(prompt) > BLOCK and len(prompt) % BLOCK, len(prompt)  # a partial first block
    return prompt


def _decode(
    model: BlockDiffusionModel,
    prompt: list[int],
    length: int,
    special: SpecialTokens,
    stops: torch.Tensor | None = None,
    caches: PrefixCaches | None = None,
) -> BlockDecodeOutput:
    config = DecodeConfig(block_steps=STEPS, threshold=1.0, temperature=0.0)
    return block_denoise(model, prompt, length, special, config, stop_ids=stops, caches=caches)


@pytest.mark.parametrize(
    ("block_size", "from_prompt_end", "bidirectional", "matches"),
    [
        (BLOCK, True, False, True),
        (BLOCK, True, True, False),
        (16, True, False, False),
        (BLOCK, False, False, False),
    ],
    ids=["blocks-end-at-the-prompt", "bidirectional", "blocks-of-16", "blocks-from-position-0"],
)
def test_logits_equal_the_samplers_reading_only_with_its_block_mask(
    a2d_dir: Path, block_size: int, from_prompt_end: bool, bidirectional: bool, matches: bool
) -> None:
    loaded = load_model(a2d_dir, device="cpu")
    model = loaded.model
    assert isinstance(model, BlockDiffusionModel) and model.ends_blocks_at_prompt
    assert model.block_size == BLOCK
    prompt = _prompt(a2d_dir)
    ids = prompt + [loaded.special.mask_id] * BLOCK  # the prompt and the first new block, all masked
    pads = -len(prompt) % block_size if from_prompt_end else 0
    reference = Reference(a2d_dir).logits(ids, sampler_mask(len(ids), pads, block_size, bidirectional))
    tensor = torch.tensor([ids])
    ours = model.logits(tensor, torch.ones_like(tensor), phase=model.phase(len(prompt)))[0]
    difference = (ours - reference).abs().max().item()
    assert (difference <= 1e-4) if matches else (difference > 1e-3), difference


def test_greedy_generation_equals_the_sampler_and_stops_after_the_block_of_eos(a2d_dir: Path) -> None:
    loaded = load_model(a2d_dir, device="cpu")
    special, model, reference = loaded.special, loaded.model, Reference(a2d_dir)
    assert isinstance(model, BlockDiffusionModel)
    assert loaded.generation_defaults == {"block_steps": STEPS, "threshold": 1.0, "temperature": 0.0}
    assert special.stop_ids == ()  # the sampler stops on eos alone: end of span, no fold into it
    prompt = _prompt(a2d_dir)
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    length = BLOCK + 8  # two blocks, the last cut at max_new_tokens
    free = _decode(model, prompt, length, special)
    expected = sample(reference, prompt, length, special.mask_id, {special.end_of_span_id}, banned)
    assert free.ids == expected and len(free.ids) == length
    assert len(set(free.ids)) >= 5  # a real sequence, not one repeated token
    assert free.forward_passes == length  # one position a step, the prompt cached in the first pass

    # An end id in the first block: both stop after that block.
    stop = next(t for i, t in enumerate(free.ids[:BLOCK]) if i >= 4 and t not in free.ids[:i])
    stopped = _decode(model, prompt, length, special, stops=torch.tensor([stop]))
    expected = sample(reference, prompt, length, special.mask_id, {special.end_of_span_id, stop}, banned)
    assert stopped.ids == expected and len(stopped.ids) == BLOCK

    # The sampler with another mask decodes something else.
    wrongs = ({"bidirectional": True}, {"block_size": 16}, {"from_prompt_end": False})
    for wrong in wrongs:
        other = sample(reference, prompt, length, special.mask_id, {special.end_of_span_id}, banned, **wrong)
        assert other != free.ids, wrong
    assert not (a2d_dir / SENTINEL).exists()  # no file of the checkpoint ran


def test_the_schedule_is_the_linear_schedulers_rounded_shares() -> None:
    from infill.engine.block_decoding import linear_schedule, transfer_schedule

    for width, steps in ((32, 32), (8, 32), (32, 5), (32, 8), (10, 4), (7, 3), (32, 1)):
        assert linear_schedule(width, steps) == num_transfer_tokens(width, steps), (width, steps)
    assert num_transfer_tokens(32, 32) == [1] * 32  # the evaluation's: one position a step
    assert num_transfer_tokens(32, 5) == [6, 6, 7, 6, 7]  # half to even: 26 / 4 and 13 / 2 round down
    assert transfer_schedule(32, 5) == [7, 7, 6, 6, 6]  # SDAR's even split is another schedule


def test_fewer_steps_a_block_decode_as_the_sampler_does(a2d_dir: Path) -> None:
    loaded = load_model(a2d_dir, device="cpu")
    special, model = loaded.special, loaded.model
    assert isinstance(model, BlockDiffusionModel) and model.schedule == "linear"
    prompt = _prompt(a2d_dir)
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    config = DecodeConfig(block_steps=5, threshold=1.0, temperature=0.0)
    ours = block_denoise(model, prompt, BLOCK, special, config)
    expected = sample(Reference(a2d_dir), prompt, BLOCK, special.mask_id, set(), banned, steps=5)
    assert ours.ids == expected and ours.forward_passes == 5
    model.schedule = "even"  # SDAR's split of the same 5 steps decodes something else
    assert block_denoise(model, prompt, BLOCK, special, config).ids != expected


def test_the_prefix_cache_serves_prompts_of_the_same_phase_only(a2d_dir: Path) -> None:
    loaded = load_model(a2d_dir, device="cpu")
    model, special = loaded.model, loaded.special
    assert isinstance(model, BlockDiffusionModel)
    prompt = _prompt(a2d_dir)
    caches = PrefixCaches()
    first = _decode(model, prompt, 8, special, caches=caches)
    assert first.cached_positions == 0 and len(caches) == 1
    one_more = prompt + loaded.tokenizer.encode(" x")  # another phase: every block boundary moves
    again = _decode(model, one_more, 8, special, caches=caches)
    assert again.cached_positions == 0 and again.ids == _decode(model, one_more, 8, special).ids
    longer = prompt + prompt[-BLOCK:]  # the same phase: the previous prompt's whole blocks are reused
    reused = _decode(model, longer, 8, special, caches=caches)
    assert reused.cached_positions == len(prompt) and reused.ids == _decode(model, longer, 8, special).ids


def test_the_prompt_is_qwen25_coders_fill_in_the_middle(a2d_dir: Path) -> None:
    loaded = load_model(a2d_dir, device="cpu")
    spelled = [p if isinstance(p, str) else loaded.tokenizer.decode([p]) for p in loaded.special.block_prompt]
    assert spelled == ["<|fim_prefix|>", "{prefix}", "<|fim_suffix|>", "{suffix}", "<|fim_middle|>"]


# --- the CLI, doctor and the server -------------------------------------------------------------------------


def test_doctor_names_the_family_and_complete_fills_a_line(
    x_a2d_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--model", str(x_a2d_dir), "--device", "cpu"]) == 0
    report = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    assert report["model family"].strip().startswith("a2d-bd3lm: dllm Tiny-A2D bd3lm")
    assert report["mask token"].strip().endswith("'<|mask|>'")
    canvas = re.sub(r"\d+ '", "'", report["canvas"]).strip()  # the tokens without their ids
    layout = "'<|fim_prefix|>' + prefix + '<|fim_suffix|>' + suffix + '<|fim_middle|>' + blocks of 32 masks"
    assert canvas.startswith(layout), canvas
    assert "(the prompt's first block a partial one" in report["canvas"]
    assert report["test fill"].strip().startswith("'x")

    completion = cli_completion(x_a2d_dir, tmp_path, capsys)
    assert completion and set(completion) == {"x"}, completion
    assert not (x_a2d_dir / SENTINEL).exists()


def test_the_server_completes_and_reuses_the_prefix_cache_at_the_same_phase(
    x_a2d_dir: Path, tmp_path: Path
) -> None:
    log_file = tmp_path / "server.log"
    session = LspSession(serve_argv(x_a2d_dir, log_file), server_env(INFILL_LOG_LEVEL="DEBUG"))
    try:
        session.initialize({"maxTokens": 6})
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses), "A2D loaded")
        uri = "file:///a2d.py"
        text = LONG_CODE + "\n\nresult = \n"
        session.open(uri, text)
        line = text.count("\n") - 1
        for _ in range(2):  # the same request twice: the second prompt's blocks all come from the cache
            params = inline_params(uri, line, len("result = "))
            result = session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
            assert isinstance(result, types.InlineCompletionList) and result.items
            assert all(isinstance(i.insert_text, str) and set(i.insert_text) == {"x"} for i in result.items)
    finally:
        session.close()
    fill_line = r"^\S+ \S+ DEBUG infill\.engine\.engine: block fill: (\d+) prompt tokens, (\d+) of them from"
    fills = re.findall(fill_line, log_file.read_text(), flags=re.M)
    assert len(fills) == 2, fills
    (first_prompt, first_cached), (second_prompt, second_cached) = ((int(a), int(b)) for a, b in fills)
    assert first_cached == 0 and second_prompt == first_prompt == second_cached
