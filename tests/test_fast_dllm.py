"""Fast-dLLM v2 (block diffusion on Qwen2.5 with a token shift) against an implementation written from the
authors' published code.

The forward pass is test_block_diffusion.py's reference (with Qwen2's q/k/v biases); what this file adds is
the decoding loop of the release's ``Fast_dLLM_QwenForCausalLM.generate`` without the block cache
(``use_block_cache=False``), greedy, with the model card's ``threshold=0.9``, ``small_block_size=8`` and
the default ``block_size=32``: the prompt's whole blocks are prefilled, and when the prompt ends on a block
boundary the prefill's last logits give the next token; each block is the rest of the current one filled
with masks, decoded one sub-block of 8 after another, each step a pass over the block whose logits are shifted
by one (row i from the hidden state at i - 1), committing the sub-block's masked positions above the threshold
and always its most confident one; a finished block is cached by a pass whose last logits give the next
block's first token; decoding ends once a stop id has no mask before it. Like the SDAR reference it
recomputes every earlier block instead of caching. Deliberate generalisations, no-ops for the comparison: a
set of stop ids (infill also stops at end of span) and the ids infill never commits, passed in as -inf.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from infill.engine.block_decoding import BlockDecodeOutput, block_denoise
from infill.engine.types import DecodeConfig
from infill.models import load_model
from infill.models.base import SpecialTokens
from infill.models.block_model import BlockDiffusionModel
from infill.models.qwen2 import load_qwen2
from tests.release_fast_dllm import build_fast_dllm_release
from tests.release_models import SENTINEL
from tests.test_block_diffusion import CODE, Reference

pytestmark = pytest.mark.usefixtures("one_thread")
BLOCK, SUB_BLOCK, THRESHOLD = 32, 8, 0.9
LONG_CODE = CODE * 3  # a prompt of more than one block


@pytest.fixture(scope="module")
def fast_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fast_dllm_release(tmp_path_factory.mktemp("fast") / "Fast_dLLM_v2_7B")


def fast_dllm_generate(
    reference: Reference,
    prompt: list[int],
    max_new_tokens: int,
    mask_id: int,
    stops: set[int],
    banned: list[int],
    *,
    block_size: int = BLOCK,
    bidirectional: bool = False,
) -> list[int]:
    """generate (greedy, no block cache): the new tokens, cut after the first stop id."""

    def pass_over(x: list[int]) -> torch.Tensor:
        logits = reference.logits(x, Reference.allowed(len(x), block_size, bidirectional))
        logits[:, banned] = float("-inf")
        return logits

    def stopped(x: list[int], since: int) -> bool:
        first = next((i for i in range(since, len(x)) if x[i] in stops), None)
        return first is not None and mask_id not in x[since:first]

    x, original = list(prompt), len(prompt)
    if len(x) > block_size and len(x) % block_size == 0:
        x.append(int(pass_over(x)[-1].argmax()))
    for _ in range(max_new_tokens // block_size):
        if any(t in stops for t in x[original:]):
            break
        since = len(x)
        x += [mask_id] * (block_size - len(x) % block_size)
        start = len(x) - block_size
        for lo in range(start, len(x), SUB_BLOCK):
            while mask_id in x[lo : lo + SUB_BLOCK] and not stopped(x, since):
                logits = pass_over(x)[start:]
                logits = torch.cat([logits[:1], logits[:-1]])[lo - start : lo - start + SUB_BLOCK]
                p = logits.softmax(-1)
                x1 = p.argmax(-1)
                masked = torch.tensor(x[lo : lo + SUB_BLOCK]) == mask_id
                x1_p = torch.where(masked, p.gather(-1, x1[:, None])[:, 0], float("-inf"))
                unmask = x1_p > THRESHOLD
                unmask[x1_p.argmax()] = True
                for i in (unmask & masked).nonzero()[:, 0].tolist():
                    x[lo + i] = int(x1[i])
        if stopped(x, since):
            break
        x.append(int(pass_over(x)[-1].argmax()))  # the finished block's pass gives the next token
    new = x[original:]
    first_stop = next((i for i, t in enumerate(new) if t in stops), None)
    return new if first_stop is None else new[: first_stop + 1]


def _raw_model(model_dir: Path) -> BlockDiffusionModel:
    """The native module without the loader's stop-token fold on its LM head (raw logits)."""
    config = json.loads((model_dir / "config.json").read_text())
    loaded = load_qwen2(model_dir, config, torch.device("cpu"), torch.float32, "qwen2", any_model_type=True)
    assert loaded is not None and not loaded[1]["missing_keys"]
    return BlockDiffusionModel(loaded[0].eval(), BLOCK, shift=True, sub_block_size=SUB_BLOCK)


def _decode(
    model: BlockDiffusionModel,
    prompt: list[int],
    length: int,
    special: SpecialTokens,
    stops: torch.Tensor | None = None,
) -> BlockDecodeOutput:
    config = DecodeConfig(block_steps=0, threshold=THRESHOLD, temperature=0.0)
    return block_denoise(model, prompt, length, special, config, stop_ids=stops)


def test_the_release_loads_natively_as_a_shifted_block_model(fast_dir: Path) -> None:
    loaded = load_model(fast_dir, device="cpu")
    assert loaded.family == "fast-dllm-v2"
    model = loaded.model
    assert isinstance(model, BlockDiffusionModel)
    assert (model.block_size, model.shift, model.sub_block_size) == (BLOCK, True, SUB_BLOCK)  # bd_size 32
    assert loaded.tokenizer.decode([loaded.special.end_of_span_id]) in ("<|im_end|>", "")
    assert loaded.special.stop_ids  # <|endoftext|> folded into <|im_end|>
    assert loaded.generation_defaults == {"block_steps": 0, "threshold": 0.9, "temperature": 0.0}
    assert not (fast_dir / SENTINEL).exists()


@pytest.mark.parametrize("bidirectional", [False, True], ids=["block-causal", "bidirectional"])
def test_logits_equal_the_reference_only_with_block_causal_attention(
    fast_dir: Path, bidirectional: bool
) -> None:
    ids = load_model(fast_dir, device="cpu").tokenizer.encode(LONG_CODE)[: 3 * BLOCK]
    reference = Reference(fast_dir).logits(ids, Reference.allowed(len(ids), BLOCK, bidirectional))
    model = _raw_model(fast_dir)
    ours = model.logits(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    difference = (ours - reference).abs().max().item()
    assert (difference <= 1e-4) if not bidirectional else (difference > 1e-3), difference


@pytest.mark.parametrize("trim", [0, 5], ids=["prompt-of-whole-blocks", "prompt-ending-inside-a-block"])
def test_greedy_generation_equals_generate_and_stops_where_it_does(fast_dir: Path, trim: int) -> None:
    loaded = load_model(fast_dir, device="cpu")
    special, model, reference = loaded.special, _raw_model(fast_dir), Reference(fast_dir)
    ids = loaded.tokenizer.encode(LONG_CODE)
    prompt = ids[: 2 * BLOCK - trim]
    assert len(prompt) > BLOCK
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    ends = {special.end_of_span_id}
    free = _decode(model, prompt, 2 * BLOCK, special)
    expected = fast_dllm_generate(reference, prompt, 2 * BLOCK, special.mask_id, ends, banned)
    # generate also appends the token after its last block; infill stops at the block's end.
    same = min(len(free.ids), len(expected))
    assert free.ids[:same] == expected[:same], (free.ids, expected)
    # Into the block after the prompt's, past its first sub-block: its first token came from the AR pass.
    assert len(prompt) + same > (len(prompt) // BLOCK + 1) * BLOCK + SUB_BLOCK
    assert len(set(expected)) >= 3  # a real sequence, not one repeated token

    # A stop id in the middle of a block: the same tokens up to it.
    stop = next(t for i, t in enumerate(expected) if i >= BLOCK // 2 and t not in expected[:i])
    stopped = _decode(model, prompt, 2 * BLOCK, special, stops=torch.tensor([stop]))
    cut = stopped.ids.index(stop) + 1
    assert stopped.ids[:cut] == fast_dllm_generate(
        reference, prompt, 2 * BLOCK, special.mask_id, {*ends, stop}, banned
    )

    # Without the shift, the sub-blocks or block-causal attention the result is another one.
    unshifted = BlockDiffusionModel(model.model, BLOCK, shift=False, sub_block_size=SUB_BLOCK)
    whole_blocks = BlockDiffusionModel(model.model, BLOCK, shift=True)
    for other in (unshifted, whole_blocks):
        assert _decode(other, prompt, 2 * BLOCK, special).ids[:same] != expected[:same]
    other = fast_dllm_generate(
        reference, prompt, 2 * BLOCK, special.mask_id, ends, banned, bidirectional=True
    )
    assert other != expected


def test_the_loaded_model_fills_through_the_engine(fast_dir: Path) -> None:
    from infill.engine import InfillEngine
    from infill.engine.types import FillRequest

    engine = InfillEngine(load_model(fast_dir, device="cpu"))
    (result,) = engine.fill([FillRequest(prefix=LONG_CODE, suffix="\n", max_tokens=8, mode="line")])
    assert result.forward_passes > 0
    assert not (fast_dir / SENTINEL).exists()


def test_the_prefix_cache_is_reused_and_changes_nothing(fast_dir: Path) -> None:
    """A shifted model needs the hidden state of the prompt's last position for the first new token: an
    aligned prompt reuses all its cached blocks but the last, which the first pass recomputes."""
    from infill.engine.block_decoding import PrefixCaches

    special, model = load_model(fast_dir, device="cpu").special, _raw_model(fast_dir)
    prompt = load_model(fast_dir, device="cpu").tokenizer.encode(LONG_CODE)[: 2 * BLOCK]
    config = DecodeConfig(block_steps=0, threshold=THRESHOLD, temperature=0.0)
    caches = PrefixCaches()
    first = block_denoise(model, prompt, BLOCK, special, config, caches=caches)
    again = block_denoise(model, prompt, BLOCK, special, config, caches=caches)
    assert (first.cached_positions, again.cached_positions) == (0, BLOCK) and again.ids == first.ids
    typed = prompt + prompt[:3]  # the next keystrokes: the same blocks and a few tokens more
    later = block_denoise(model, typed, BLOCK, special, config, caches=caches)
    assert later.cached_positions == 2 * BLOCK
    assert later.ids == block_denoise(model, typed, BLOCK, special, config).ids
