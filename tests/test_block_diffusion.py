"""SDAR (block diffusion on Qwen3) against an implementation written here from the authors' published code.

The reference below is plain loops over the checkpoint's tensors, read with safetensors (no file of the
checkpoint is imported, nothing of infill's decoding or modules is used): the forward pass of
modeling_sdar.py (SDARAttention: per-head RMSNorm on queries and keys before RoPE, grouped-query attention,
SwiGLU MLP) and the decoding loop of generate.py's ``block_diffusion_generate`` with
``low_confidence_dynamic``, greedy. It recomputes every earlier block at each step instead of caching their
keys and values, which block-causal attention makes the same computation: so matching it also checks that
infill's prefix cache is exact. Two inputs of infill's own are passed to it explicitly: the ids infill never
commits (their logits -inf) and, where the loaded model's LM head folds the stop ids into end-of-span, that
fold (stops.py). The comparison is shown to fail for a bidirectional reference and for a wrong block size.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from lsprotocol import types
from safetensors import safe_open

from infill.engine.block_decoding import BlockDecodeOutput, PrefixCaches, block_denoise, block_prompt
from infill.engine.types import DecodeConfig
from infill.models import load_model
from infill.models.base import SpecialTokens
from infill.models.block_model import BlockDiffusionModel
from infill.models.qwen2 import load_qwen2
from infill_cli.main import main
from tests.release_models import SENTINEL, bias_towards_x, cli_completion
from tests.release_sdar import build_sdar_release
from tests.test_lsp_support import LspSession, inline_params, serve_argv, server_env

pytestmark = pytest.mark.usefixtures("one_thread")
CODE = (
    "def scale(values):\n    factor = 3\n    return [v * factor for v in values]\n\n\nresult = scale([1])\n"
)
SDAR_BLOCK, SDAR_STEPS, SDAR_THRESHOLD = 4, 4, 0.85  # generate.py's defaults, the family's recipe


@pytest.fixture(scope="module")
def sdar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_sdar_release(tmp_path_factory.mktemp("sdar") / "SDAR-8B-Chat")


@pytest.fixture(scope="module")
def x_sdar_dir(sdar_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bias_towards_x(sdar_dir, tmp_path_factory.mktemp("x_sdar") / "SDAR-8B-Chat")


# --- the reference: modeling_sdar.py's forward and generate.py's loop, written from their code --------------


class Reference:
    def __init__(self, model_dir: Path) -> None:
        self.config = json.loads((model_dir / "config.json").read_text())
        self.w: dict[str, torch.Tensor] = {}
        for shard in sorted(model_dir.glob("*.safetensors")):
            with safe_open(str(shard), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    self.w[name] = f.get_tensor(name).float()

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        eps = self.config["rms_norm_eps"]
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """A projection with its bias when the checkpoint has one (Qwen2's q/k/v: Fast-dLLM v2)."""
        bias = self.w.get(name + ".bias")
        out = x @ self.w[name + ".weight"].T
        return out if bias is None else out + bias

    def logits(self, ids: list[int], allowed: torch.Tensor) -> torch.Tensor:
        """(T, V) logits of ``ids`` at positions 0..T-1, query t attending to key s where allowed[t, s]."""
        c, w = self.config, self.w
        heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        dim = c.get("head_dim") or c["hidden_size"] // heads
        length = len(ids)
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, dim, 2).float() / dim))
        angles = torch.arange(length).float()[:, None] * inv_freq[None, :]
        cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

        def rope(x: torch.Tensor) -> torch.Tensor:  # (T, D)
            half = torch.cat([-x[:, dim // 2 :], x[:, : dim // 2]], -1)
            return x * cos + half * sin

        h = w["model.embed_tokens.weight"][torch.tensor(ids)]
        for layer in range(c["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            x = self._rms(h, w[p + "input_layernorm.weight"])
            q = self._linear(x, p + "self_attn.q_proj").view(length, heads, dim)
            k = self._linear(x, p + "self_attn.k_proj").view(length, kv_heads, dim)
            v = self._linear(x, p + "self_attn.v_proj").view(length, kv_heads, dim)
            if p + "self_attn.q_norm.weight" in w:  # Qwen3's head norms (SDAR); LLaMA has none
                q = self._rms(q, w[p + "self_attn.q_norm.weight"])
                k = self._rms(k, w[p + "self_attn.k_norm.weight"])
            outs = []
            for head in range(heads):
                kv = head // (heads // kv_heads)
                scores = rope(q[:, head]) @ rope(k[:, kv]).T * dim**-0.5
                scores = scores.masked_fill(~allowed, float("-inf"))
                outs.append(scores.softmax(-1) @ v[:, kv])
            h = h + self._linear(torch.cat(outs, -1), p + "self_attn.o_proj")
            x = self._rms(h, w[p + "post_attention_layernorm.weight"])
            gate = torch.nn.functional.silu(x @ w[p + "mlp.gate_proj.weight"].T)
            h = h + (gate * (x @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])  # tied embeddings: no lm_head tensor
        return self._rms(h, w["model.norm.weight"]) @ head.T

    def generate(
        self,
        prompt: list[int],
        gen_length: int,
        mask_id: int,
        stop_ids: set[int],
        banned: list[int],
        *,
        block_length: int = SDAR_BLOCK,
        bidirectional: bool = False,
        fold: tuple[int, list[int]] | None = None,
    ) -> list[int]:
        """generate.py's block_diffusion_generate, greedy, low_confidence_dynamic: the whole canvas."""
        num_blocks = (len(prompt) + gen_length + block_length - 1) // block_length
        x = prompt + [mask_id] * (num_blocks * block_length - len(prompt))
        base, remainder = divmod(block_length, SDAR_STEPS)
        num_transfer = [base + (1 if s < remainder else 0) for s in range(SDAR_STEPS)]
        for block in range(len(prompt) // block_length, num_blocks):
            lo, hi = block * block_length, (block + 1) * block_length
            for step in range(SDAR_STEPS + 1):
                current = torch.tensor(x[lo:hi])
                mask_index = current == mask_id
                if not mask_index.any():
                    break
                logits = self.logits(x[:hi], self.allowed(hi, block_length, bidirectional))[lo:hi]
                if fold is not None:
                    end, stops = fold
                    logits[:, end] = torch.logsumexp(logits[:, [end, *stops]], -1)
                logits[:, banned] = float("-inf")
                probs = logits.softmax(-1)
                x0 = probs.argmax(-1)
                x0_p = probs.gather(-1, x0[:, None])[:, 0]
                confidence = torch.where(mask_index, x0_p, float("-inf"))
                high = confidence > SDAR_THRESHOLD
                if high.sum() >= num_transfer[step]:
                    transfer = high
                else:
                    transfer = torch.zeros_like(high)
                    transfer[torch.topk(confidence, num_transfer[step]).indices] = True
                x[lo:hi] = torch.where(transfer, x0, current).tolist()
            if any(t in stop_ids for t in x[len(prompt) :]):
                break
        return x

    @staticmethod
    def allowed(length: int, block_length: int, bidirectional: bool = False) -> torch.Tensor:
        """generate.py's block_diffusion_attention_mask (tril over blocks, repeated per position)."""
        if bidirectional:
            return torch.ones(length, length, dtype=torch.bool)
        blocks = torch.arange(length) // block_length
        return blocks[None, :] <= blocks[:, None]


# --- logits -------------------------------------------------------------------------------------------------


def _raw_model(model_dir: Path) -> BlockDiffusionModel:
    """The native module without the loader's stop-token fold on its LM head (raw logits)."""
    config = json.loads((model_dir / "config.json").read_text())
    loaded = load_qwen2(model_dir, config, torch.device("cpu"), torch.float32, "qwen3")
    assert loaded is not None and not loaded[1]["missing_keys"]
    return BlockDiffusionModel(loaded[0].eval(), SDAR_BLOCK)


def _prompt(model_dir: Path, text: str = CODE) -> list[int]:
    return load_model(model_dir, device="cpu").tokenizer.encode(text)


@pytest.mark.parametrize(
    ("reference_block", "bidirectional", "matches"),
    [(SDAR_BLOCK, False, True), (SDAR_BLOCK, True, False), (2, False, False), (8, False, False)],
    ids=["block-causal-4", "bidirectional", "block-size-2", "block-size-8"],
)
def test_logits_equal_the_reference_only_with_block_causal_attention_of_the_right_size(
    sdar_dir: Path, reference_block: int, bidirectional: bool, matches: bool
) -> None:
    ids = _prompt(sdar_dir)
    assert len(ids) > 3 * SDAR_BLOCK
    reference = Reference(sdar_dir).logits(ids, Reference.allowed(len(ids), reference_block, bidirectional))
    model = _raw_model(sdar_dir)
    ours = model.logits(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    # The same logits through the prefix cache: two blocks prefilled, a third block against them; and the
    # first block cached, the second appended in the pass that reads the third.
    block = torch.tensor([ids[2 * SDAR_BLOCK : 3 * SDAR_BLOCK]])
    cached, _ = model.block_logits(block, model.prefill(torch.tensor([ids[: 2 * SDAR_BLOCK]])))
    first = model.prefill(torch.tensor([ids[:SDAR_BLOCK]]))
    appended, grown = model.block_logits(block, first, torch.tensor([ids[SDAR_BLOCK : 2 * SDAR_BLOCK]]))
    assert grown is not None and grown.length == 2 * SDAR_BLOCK
    difference = (ours - reference).abs().max().item()
    window = reference[2 * SDAR_BLOCK : 3 * SDAR_BLOCK]
    cached_difference = max((c[0] - window).abs().max().item() for c in (cached, appended))
    if matches:
        assert difference <= 1e-4 and cached_difference <= 1e-4, (difference, cached_difference)
    else:
        assert difference > 1e-3, difference


# --- greedy generation --------------------------------------------------------------------------------------


def _decode(
    model: BlockDiffusionModel,
    prompt: list[int],
    length: int,
    special: SpecialTokens,
    stops: torch.Tensor | None = None,
    caches: PrefixCaches | None = None,
) -> BlockDecodeOutput:
    config = DecodeConfig(block_steps=SDAR_STEPS, threshold=SDAR_THRESHOLD, temperature=0.0)
    return block_denoise(model, prompt, length, special, config, stop_ids=stops, caches=caches)


def test_greedy_generation_equals_the_reference_and_stops_after_the_block_of_an_end_id(
    sdar_dir: Path,
) -> None:
    loaded = load_model(sdar_dir, device="cpu")
    special, model, reference = loaded.special, _raw_model(sdar_dir), Reference(sdar_dir)
    prompt = loaded.tokenizer.encode(CODE)[:-3]  # the prompt ends inside a block: its tail spills into it
    assert len(prompt) % SDAR_BLOCK
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    free = _decode(model, prompt, 24, special)
    expected = reference.generate(prompt, 24, special.mask_id, {special.end_of_span_id}, banned)
    assert free.ids == expected[len(prompt) :]
    assert len(set(free.ids)) >= 3  # a real sequence, not one repeated token

    # An end id in the middle of the sequence: both stop after the block that holds it.
    stop = next(t for i, t in enumerate(free.ids) if i >= 2 * SDAR_BLOCK and t not in free.ids[:i])
    stopped = _decode(model, prompt, 24, special, stops=torch.tensor([stop]))
    expected = reference.generate(prompt, 24, special.mask_id, {special.end_of_span_id, stop}, banned)
    assert stopped.ids == expected[len(prompt) : len(prompt) + len(stopped.ids)]
    assert len(stopped.ids) < len(free.ids) and stop in stopped.ids[-SDAR_BLOCK:]
    assert set(expected[len(prompt) + len(stopped.ids) :]) == {special.mask_id}

    # The reference with the wrong attention or block size decodes something else.
    for wrong in ({"bidirectional": True}, {"block_length": 8}):
        other = reference.generate(prompt, 24, special.mask_id, {special.end_of_span_id}, banned, **wrong)
        assert other[len(prompt) :] != free.ids, wrong


@pytest.mark.parametrize("checkpoint", ["sdar_dir", "x_sdar_dir"])
def test_the_loaded_model_decodes_as_the_reference_with_the_stop_ids_folded_into_end_of_span(
    checkpoint: str, request: pytest.FixtureRequest
) -> None:
    """On the random checkpoint every step commits its one most confident position; on the one biased towards
    "x" every position is above the threshold, so each block is committed in one step."""
    sdar_dir = request.getfixturevalue(checkpoint)
    loaded = load_model(sdar_dir, device="cpu")
    special = loaded.special
    assert loaded.family == "sdar" and special.stop_ids  # <|endoftext|> folded into <|im_end|>
    assert loaded.generation_defaults == {"block_steps": 4, "threshold": 0.85, "temperature": 0.0}
    assert isinstance(loaded.model, BlockDiffusionModel) and loaded.model.block_size == SDAR_BLOCK
    prompt = loaded.tokenizer.encode(CODE)
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    ours = _decode(loaded.model, prompt, 12, special)
    expected = Reference(sdar_dir).generate(
        prompt, 12, special.mask_id, {special.end_of_span_id}, banned,
        fold=(special.end_of_span_id, list(special.stop_ids)),
    )  # fmt: skip
    assert ours.ids == expected[len(prompt) : len(prompt) + len(ours.ids)]
    blocks = math.ceil((len(prompt) + 12) / SDAR_BLOCK) - len(prompt) // SDAR_BLOCK
    one_step_per_block = checkpoint == "x_sdar_dir"
    # One pass per step: the prompt's blocks and each committed block are cached in the next step's pass.
    steps = blocks if one_step_per_block else len(ours.ids)
    assert ours.forward_passes == steps, ours
    assert not (sdar_dir / SENTINEL).exists()  # no file of the checkpoint ran


def test_the_prefix_cache_is_reused_between_calls_and_changes_nothing(sdar_dir: Path) -> None:
    loaded = load_model(sdar_dir, device="cpu")
    model, special = _raw_model(sdar_dir), loaded.special
    prompt = loaded.tokenizer.encode(CODE)
    caches = PrefixCaches()
    first = _decode(model, prompt, 12, special, caches=caches)
    assert first.cached_positions == 0 and len(caches) == 1
    typed = prompt + loaded.tokenizer.encode("x")  # the next keystroke: the same blocks and one token more
    again = _decode(model, typed, 12, special, caches=caches)
    assert again.cached_positions == len(prompt) // SDAR_BLOCK * SDAR_BLOCK
    assert again.ids == _decode(model, typed, 12, special).ids
    assert PrefixCaches(max_bytes=0).lookup(prompt, SDAR_BLOCK) == (0, None)


def test_the_suffix_goes_before_the_prefix_as_an_earlier_document(sdar_dir: Path) -> None:
    special = load_model(sdar_dir, device="cpu").special
    separator = special.block_prompt[1]
    assert special.block_prompt == ("{suffix}", separator, "{prefix}") and isinstance(separator, int)
    assert block_prompt([1, 2], [7, 8], special) == [7, 8, separator, 1, 2]
    assert block_prompt([1, 2], [], special) == [1, 2]


# --- the CLI, doctor and the server -------------------------------------------------------------------------


def test_doctor_names_the_family_and_complete_fills_a_line(
    x_sdar_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--model", str(x_sdar_dir), "--device", "cpu"]) == 0
    report = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    assert report["model family"].strip().startswith("sdar: SDAR")
    assert report["mask token"].strip().endswith("'<|MASK|>'")
    assert "blocks of 4" in report["canvas"] and "suffix + 400" in report["canvas"].replace("'", "")
    assert report["test fill"].strip().startswith("'x")

    completion = cli_completion(x_sdar_dir, tmp_path, capsys)
    assert completion and set(completion) == {"x"}, completion
    assert not (x_sdar_dir / SENTINEL).exists()


def test_the_server_completes_with_sdar_and_reuses_the_prefix_cache_on_the_next_keystroke(
    x_sdar_dir: Path, tmp_path: Path
) -> None:
    log_file = tmp_path / "server.log"
    session = LspSession(serve_argv(x_sdar_dir, log_file), server_env(INFILL_LOG_LEVEL="DEBUG"))
    try:
        session.initialize({"maxTokens": 6})
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses), "SDAR loaded")
        uri = "file:///sdar.py"
        text = CODE + "\n\ndef total(values):\n    return \n"
        session.open(uri, text)
        line = text.count("\n") - 1
        for version, typed in enumerate(("", "s"), start=1):
            if typed:  # the next keystroke at the cursor
                end = types.Position(line=line, character=len("    return "))
                session.change(uri, version + 1, typed, types.Range(start=end, end=end))
            params = inline_params(uri, line, len("    return " + typed))
            result = session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
            assert isinstance(result, types.InlineCompletionList) and result.items
            assert all(isinstance(i.insert_text, str) and set(i.insert_text) == {"x"} for i in result.items)
    finally:
        session.close()
    # The server's own log lines (the client's copies of them, logged by pygls, are left out).
    fill_line = r"^\S+ \S+ DEBUG infill\.engine\.engine: block fill: (\d+) prompt tokens, (\d+) of them from"
    fills = re.findall(fill_line, log_file.read_text(), flags=re.M)
    assert len(fills) == 2, fills
    (first_prompt, first_cached), (second_prompt, second_cached) = ((int(a), int(b)) for a, b in fills)
    assert first_cached == 0 and second_prompt >= first_prompt
    # Every whole block of the previous keystroke's prompt but the one holding its last token, which the
    # typed character may merge into (" " + "s" is one token " s").
    assert second_cached >= (first_prompt - 1) // SDAR_BLOCK * SDAR_BLOCK > 0


def test_the_transfer_schedule_is_generate_pys() -> None:
    """get_num_transfer_tokens: the block spread evenly over the steps, the remainder first."""
    from infill.engine.block_decoding import transfer_schedule

    assert transfer_schedule(4, 4) == [1, 1, 1, 1]
    assert transfer_schedule(10, 4) == [3, 3, 2, 2]


def test_the_qwen3_module_with_blocks_of_one_is_transformers_causal_qwen3(sdar_dir: Path) -> None:
    """A second, independent check of the backbone: block-causal attention over blocks of one position is
    causal attention, so the native module must give transformers' own Qwen3ForCausalLM logits."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = json.loads((sdar_dir / "config.json").read_text())
    fields = {k: v for k, v in config.items() if k not in ("auto_map", "architectures", "model_type")}
    theirs = Qwen3ForCausalLM.from_pretrained(
        str(sdar_dir), config=Qwen3Config(**fields), dtype=torch.float32
    )
    ids = torch.tensor([_prompt(sdar_dir)])
    with torch.inference_mode():
        expected = theirs.eval()(ids).logits[0]
    ours = BlockDiffusionModel(_raw_model(sdar_dir).model, block_size=1)
    got = ours.logits(ids, torch.ones_like(ids))[0]
    assert (got - expected).abs().max().item() <= 1e-4
    assert (_raw_model(sdar_dir).logits(ids, torch.ones_like(ids))[0] - expected).abs().max().item() > 1e-3


def test_config_block_size_wins_over_the_family_default_and_a_bad_one_is_refused(
    sdar_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from infill.errors import ModelLoadError

    copy = shutil.copytree(sdar_dir, tmp_path / "SDAR-8", ignore=shutil.ignore_patterns(SENTINEL))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "block_size": 8}))
    loaded = load_model(copy, device="cpu")
    assert isinstance(loaded.model, BlockDiffusionModel) and loaded.model.block_size == 8
    (copy / "config.json").write_text(json.dumps({**config, "block_size": 0}))
    with pytest.raises(ModelLoadError, match=r'"block_size" in .* must be a positive integer'):
        load_model(copy, device="cpu")


def test_doctor_says_a_block_model_decides_its_length_block_by_block(sdar_dir: Path) -> None:
    from infill.engine.length import describe_length

    line = describe_length(load_model(sdar_dir, device="cpu"), False, 0.33)
    assert line.startswith("decided by the model, block by block: blocks of 4 tokens"), line
