"""Stable-DiffCoder (block diffusion on Seed-Coder's LLaMA) against an implementation written from the
authors' published code.

The forward pass is test_block_diffusion.py's reference, which reads the checkpoint's tensors with safetensors
and has no head norms to apply for a LLaMA checkpoint; what this file adds is the decoding loop of the
release's ``StableDiffcoderForCausalLM.generate_block`` with the model card's settings (blocks of 4, steps =
gen_length, so 4 a block; ``threshold=None``; ``low_confidence``; temperature 0): blocks on absolute
positions, the first one holding the prompt's tail; each block's masked count spread over its steps, the
remainder first, a step with a share of 0 skipped; the share's most confident masked positions committed; and
after the block holding ``eos_id`` the sequence cut and filled with eos. Like the SDAR reference it recomputes
every earlier block instead of caching, so matching it checks the prefix cache too. No file of the checkpoint
is imported; the comparison fails for bidirectional attention and for a wrong block size.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from infill.engine.block_decoding import BlockDecodeOutput, block_denoise, block_prompt
from infill.engine.types import DecodeConfig
from infill.models import load_model
from infill.models.base import SpecialTokens
from infill.models.block_model import BlockDiffusionModel
from infill.models.qwen2 import LlamaForCausalLM
from infill_cli.main import main
from tests.release_models import SENTINEL, bias_towards_x, cli_completion
from tests.release_stable_diffcoder import build_stable_diffcoder_release
from tests.test_block_diffusion import CODE, Reference

pytestmark = pytest.mark.usefixtures("one_thread")
BLOCK, STEPS = 4, 4  # the model card's block_length, and steps = gen_length: 4 steps a block


@pytest.fixture(scope="module")
def sdc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stable_diffcoder_release(tmp_path_factory.mktemp("sdc") / "Stable-DiffCoder-8B-Base")


def generate_block(
    reference: Reference,
    prompt: list[int],
    gen_length: int,
    mask_id: int,
    eos_id: int | None,
    banned: list[int],
    *,
    block_length: int = BLOCK,
    bidirectional: bool = False,
) -> list[int]:
    """generate_block (greedy, low_confidence, threshold None): the whole sequence, cut after eos."""
    x = prompt + [mask_id] * gen_length
    blocks = [block_length] * (gen_length // block_length)
    remainder = len(prompt) % block_length
    if remainder:
        first = block_length - remainder
        blocks = [first, *blocks]
        blocks[-1] = block_length - first
    ends = [len(prompt) + sum(blocks[: i + 1]) for i in range(len(blocks))]
    for index, end in enumerate(ends):
        start = ends[index - 1] if index else len(prompt) // block_length * block_length
        masked = sum(t == mask_id for t in x[start:end])
        base, extra = divmod(masked, STEPS)
        for count in [base + (1 if s < extra else 0) for s in range(STEPS)]:
            if count > 0:
                allowed = Reference.allowed(end, block_length, bidirectional)
                logits = reference.logits(x[:end], allowed)[start:end].double()
                logits[:, banned] = float("-inf")
                x0 = logits.argmax(-1)
                x0_p = logits.softmax(-1).gather(-1, x0[:, None])[:, 0]
                mask_index = torch.tensor(x[start:end]) == mask_id
                confidence = torch.where(mask_index, x0_p, float("-inf"))
                chosen = torch.topk(confidence, count).indices.tolist()
                for i in chosen:
                    x[start + i] = int(x0[i])
            if mask_id not in x[start:end]:
                generated = x[max(start, len(prompt)) : end]
                if eos_id is not None and eos_id in generated:
                    eos_at = max(start, len(prompt)) + generated.index(eos_id)
                    return x[:eos_at] + [eos_id] * (end - eos_at)
                break
    return x


def _decode(
    model: BlockDiffusionModel,
    prompt: list[int],
    length: int,
    special: SpecialTokens,
    stops: torch.Tensor | None = None,
) -> BlockDecodeOutput:
    config = DecodeConfig(block_steps=STEPS, threshold=1.0, temperature=0.0)
    return block_denoise(model, prompt, length, special, config, stop_ids=stops)


def test_the_release_loads_natively_as_a_llama_block_model(sdc_dir: Path) -> None:
    loaded = load_model(sdc_dir, device="cpu")
    assert loaded.family == "stable-diffcoder"
    assert isinstance(loaded.model, BlockDiffusionModel) and loaded.model.block_size == BLOCK
    assert isinstance(loaded.model.model, LlamaForCausalLM)
    assert loaded.special.mask_id == 5 and 5 in loaded.special.banned_ids  # generate_block's mask_id
    assert loaded.generation_defaults == {"block_steps": 4, "threshold": 1.0, "temperature": 0.0}
    special = loaded.special
    assert special.prefix_ids == (0,)  # the begin-of-sentence id the tokenizer puts first
    # Seed-Coder's SPM order: <[fim-suffix]> suffix <[fim-prefix]> prefix <[fim-middle]>, then the new tokens.
    assert block_prompt([10, 11], [20], special) == [0, 6, 20, 3, 10, 11, 4]
    assert block_prompt([10, 11], [], special) == [0, 6, 3, 10, 11, 4]
    assert not (sdc_dir / SENTINEL).exists()


@pytest.mark.parametrize(
    ("reference_block", "bidirectional", "matches"),
    [(BLOCK, False, True), (BLOCK, True, False), (2, False, False), (8, False, False)],
    ids=["block-causal-4", "bidirectional", "block-size-2", "block-size-8"],
)
def test_logits_equal_the_reference_only_with_block_causal_attention_of_the_right_size(
    sdc_dir: Path, reference_block: int, bidirectional: bool, matches: bool
) -> None:
    loaded = load_model(sdc_dir, device="cpu")
    assert isinstance(loaded.model, BlockDiffusionModel) and not loaded.special.stop_ids  # raw LM head
    ids = loaded.tokenizer.encode(CODE)
    reference = Reference(sdc_dir).logits(ids, Reference.allowed(len(ids), reference_block, bidirectional))
    model = loaded.model
    ours = model.logits(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    block = torch.tensor([ids[2 * BLOCK : 3 * BLOCK]])
    cached, _ = model.block_logits(block, model.prefill(torch.tensor([ids[: 2 * BLOCK]])))
    difference = (ours - reference).abs().max().item()
    cached_difference = (cached[0] - reference[2 * BLOCK : 3 * BLOCK]).abs().max().item()
    if matches:
        assert difference <= 1e-4 and cached_difference <= 1e-4, (difference, cached_difference)
    else:
        assert difference > 1e-3, difference


@pytest.mark.parametrize("trim", [0, 3], ids=["prompt-of-whole-blocks", "prompt-ending-inside-a-block"])
def test_greedy_generation_equals_generate_block_and_stops_after_the_block_of_eos(
    sdc_dir: Path, trim: int
) -> None:
    loaded = load_model(sdc_dir, device="cpu")
    special, model, reference = loaded.special, loaded.model, Reference(sdc_dir)
    assert isinstance(model, BlockDiffusionModel)
    ids = loaded.tokenizer.encode(CODE)
    prompt = ids[: len(ids) // BLOCK * BLOCK - trim]
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    length = 24
    free = _decode(model, prompt, length, special)
    expected = generate_block(reference, prompt, length, special.mask_id, special.end_of_span_id, banned)
    # generate_block's last block is cut short where the prompt ends inside a block; the blocks before it
    # are the same computation.
    same = (len(prompt) + length) // BLOCK * BLOCK - len(prompt)
    assert free.ids[:same] == expected[len(prompt) : len(prompt) + same]
    assert len(set(free.ids)) >= 3  # a real sequence, not one repeated token

    # An eos in the middle: both stop after its block (generate_block fills the rest of it with eos).
    eos = next(t for i, t in enumerate(free.ids) if i >= 2 * BLOCK and t not in free.ids[:i])
    stopped = _decode(model, prompt, length, special, stops=torch.tensor([eos]))
    expected = generate_block(reference, prompt, length, special.mask_id, eos, banned)
    cut = stopped.ids.index(eos) + 1
    assert stopped.ids[:cut] == expected[len(prompt) : len(prompt) + cut] and len(stopped.ids) < len(free.ids)
    assert set(expected[len(prompt) + cut - 1 :]) == {eos}

    for wrong in ({"bidirectional": True}, {"block_length": 8}):
        other = generate_block(reference, prompt, length, special.mask_id, None, banned, **wrong)
        assert other[len(prompt) : len(prompt) + same] != free.ids[:same], wrong


def test_doctor_shows_the_spm_prompt_and_complete_fills_a_line(
    sdc_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x_dir = bias_towards_x(sdc_dir, tmp_path / "x" / "Stable-DiffCoder-8B-Base")
    assert main(["doctor", "--model", str(x_dir), "--device", "cpu"]) == 0
    report = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    assert report["model family"].strip().startswith("stable-diffcoder: Stable-DiffCoder")
    canvas = report["canvas"].replace("'", "")
    assert "6 <[fim-suffix]> + suffix + 3 <[fim-prefix]> + prefix + 4 <[fim-middle]> + blocks of 4" in canvas
    assert report["span length"].strip().startswith("blocks of 4 until the block holding end of span")
    assert report["test fill"].strip().startswith("'x")

    completion = cli_completion(x_dir, tmp_path, capsys)
    assert completion and set(completion) == {"x"}, completion
    assert not (x_dir / SENTINEL).exists()


def test_a_llama_config_with_mlp_biases_is_refused_by_name(sdc_dir: Path, tmp_path: Path) -> None:
    import shutil

    from infill.errors import ModelLoadError

    copy = shutil.copytree(sdc_dir, tmp_path / "biased", ignore=shutil.ignore_patterns(SENTINEL))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "mlp_bias": True}))
    with pytest.raises(ModelLoadError, match="not one infill runs natively"):
        load_model(copy, device="cpu")
