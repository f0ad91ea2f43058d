"""LLaDA2.x (block diffusion on Ling 2.0's mixture of experts) against an implementation written here from the
authors' published code.

The reference below is plain per-head, per-token and per-expert loops over the checkpoint's tensors, read
with safetensors (no file of the checkpoint is imported, nothing of infill's modules or decoding is used):
the forward pass of the release's modeling_llada2_moe.py (fused query_key_value, RMSNorm on each query and
key head, RoPE on the first half of each head's dimensions, grouped-query attention; the first layer a SwiGLU
MLP, the others LLaDA2MoeSparseMoeBlock: a float32 sigmoid router choosing experts group-limited by the
scores plus expert_bias and weighting them by the normalised unbiased scores times routed_scaling_factor,
plus the shared expert) and the decoding loop of its ``LLaDA2MoeModelLM.generate``, greedy, with its
defaults (block_length 32, steps 32, threshold 0.95, minimal_topk 1): every step is a pass over the whole
sequence up to the current block under the block-diagonal causal mask (no cache), and decoding stops after
the block in which eos appears. Matching it also checks that infill's prefix cache is exact. One input of
infill's own is passed to it explicitly: the ids infill never commits (their logits -inf); and its single
eos_id is generalised to a set (infill also stops at its end of span). The comparison is shown to fail for a
bidirectional reference, for wrong block sizes and for two wrong readings of the router.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lsprotocol import types
from safetensors import safe_open

from infill.engine.block_decoding import BlockDecodeOutput, PrefixCaches, block_denoise
from infill.engine.types import DecodeConfig
from infill.errors import ModelLoadError
from infill.models import load_model
from infill.models.base import SpecialTokens
from infill.models.block_model import BlockDiffusionModel
from infill.models.families import family_named
from infill.models.llada2_moe import load_llada2_moe
from infill_cli.main import main
from tests.release_llada2 import build_llada2_release
from tests.release_models import SENTINEL, bias_towards_x, cli_completion
from tests.test_lsp_support import LspSession, inline_params, serve_argv

pytestmark = pytest.mark.usefixtures("one_thread")
BLOCK, STEPS, THRESHOLD = 32, 32, 0.95  # generate's defaults, the family's recipe
CODE = (
    "def scale(values):\n    factor = 3\n    return [v * factor for v in values]\n\n\n"
    "def total(values):\n    result = 0\n    for v in values:\n        result += v\n    return result\n"
)


@pytest.fixture(scope="module")
def llada2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_llada2_release(tmp_path_factory.mktemp("llada2") / "LLaDA2.0-mini")


@pytest.fixture(scope="module")
def x_llada2_dir(llada2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bias_towards_x(llada2_dir, tmp_path_factory.mktemp("x_llada2") / "LLaDA2.0-mini")


# --- the reference: modeling_llada2_moe.py's forward and generate, written from their code ------------------


class Reference:
    """``router``: "release" (theirs), or a wrong reading to show the comparison can fail: "unbiased"
    (experts chosen without expert_bias) or "biased-weights" (weighted by the biased scores)."""

    def __init__(self, model_dir: Path, router: str = "release") -> None:
        self.c = json.loads((model_dir / "config.json").read_text())
        self.router = router
        self.w: dict[str, torch.Tensor] = {}
        for shard in sorted(model_dir.glob("*.safetensors")):
            with safe_open(str(shard), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    self.w[name] = f.get_tensor(name).float()

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["rms_norm_eps"]))

    def _mlp(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        gate = torch.nn.functional.silu(x @ self.w[prefix + "gate_proj.weight"].T)
        return (gate * (x @ self.w[prefix + "up_proj.weight"].T)) @ self.w[prefix + "down_proj.weight"].T

    def _moe(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        """LLaDA2MoeSparseMoeBlock, one token (H,) at a time."""
        c = self.c
        scores = torch.sigmoid(x @ self.w[prefix + "gate.weight"].T)  # (E,)
        biased = scores + self.w[prefix + "gate.expert_bias"]
        ranked = scores if self.router == "unbiased" else biased
        per_group = c["num_experts"] // c["n_group"]
        group_score = [
            sum(sorted(ranked[g * per_group : (g + 1) * per_group].tolist(), reverse=True)[:2])
            for g in range(c["n_group"])
        ]
        groups = sorted(range(c["n_group"]), key=lambda g: -group_score[g])[: c["topk_group"]]
        eligible = [e for e in range(c["num_experts"]) if e // per_group in groups]
        chosen = sorted(eligible, key=lambda e: -ranked[e].item())[: c["num_experts_per_tok"]]
        weighted = biased if self.router == "biased-weights" else scores
        weights = [weighted[e] for e in chosen]
        if len(chosen) > 1:
            total = sum(weights) + 1e-20
            weights = [wt / total for wt in weights]
        out = sum(
            wt * c["routed_scaling_factor"] * self._mlp(x, f"{prefix}experts.{e}.")
            for wt, e in zip(weights, chosen, strict=True)
        )
        return out + self._mlp(x, prefix + "shared_experts.")

    def logits(self, ids: list[int], allowed: torch.Tensor) -> torch.Tensor:
        """(T, V) logits of ``ids`` at positions 0..T-1, query t attending to key s where allowed[t, s]."""
        c, w = self.c, self.w
        heads, kv_heads, dim = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
        rotary = int(dim * c["partial_rotary_factor"])
        length = len(ids)
        inv_freq = 1.0 / (c["rope_theta"] ** (torch.arange(0, rotary, 2).float() / rotary))
        angles = torch.arange(length).float()[:, None] * inv_freq[None, :]
        cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

        def rope(x: torch.Tensor) -> torch.Tensor:  # (T, D): the first ``rotary`` dims rotated, the rest kept
            part = x[:, :rotary]
            half = torch.cat([-part[:, rotary // 2 :], part[:, : rotary // 2]], -1)
            return torch.cat([part * cos + half * sin, x[:, rotary:]], -1)

        h = w["model.word_embeddings.weight"][torch.tensor(ids)]
        for layer in range(c["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            x = self._rms(h, w[p + "input_layernorm.weight"])
            qkv = (x @ w[p + "attention.query_key_value.weight"].T).view(length, heads + 2 * kv_heads, dim)
            q, k, v = qkv[:, :heads], qkv[:, heads : heads + kv_heads], qkv[:, heads + kv_heads :]
            q = self._rms(q, w[p + "attention.query_layernorm.weight"])
            k = self._rms(k, w[p + "attention.key_layernorm.weight"])
            outs = []
            for head in range(heads):
                kv = head // (heads // kv_heads)
                scores = rope(q[:, head]) @ rope(k[:, kv]).T / dim**0.5
                scores = scores.masked_fill(~allowed, float("-inf"))
                outs.append(scores.softmax(-1) @ v[:, kv])
            h = h + torch.cat(outs, -1) @ w[p + "attention.dense.weight"].T
            x = self._rms(h, w[p + "post_attention_layernorm.weight"])
            if layer < c["first_k_dense_replace"]:
                h = h + self._mlp(x, p + "mlp.")
            else:
                h = h + torch.stack([self._moe(token, p + "mlp.") for token in x])
        return self._rms(h, w["model.norm.weight"]) @ w["lm_head.weight"].T

    @staticmethod
    def allowed(length: int, block_length: int, bidirectional: bool = False) -> torch.Tensor:
        """generate's block_diffusion_attention_mask: tril over blocks, repeated per position."""
        if bidirectional:
            return torch.ones(length, length, dtype=torch.bool)
        blocks = torch.arange(length) // block_length
        return blocks[None, :] <= blocks[:, None]

    def generate(
        self,
        prompt: list[int],
        gen_length: int,
        mask_id: int,
        eos_ids: set[int],
        banned: list[int],
        *,
        block_length: int = BLOCK,
        bidirectional: bool = False,
    ) -> list[int]:
        """LLaDA2MoeModelLM.generate, greedy: the new tokens, cut after the first eos."""
        steps = min(STEPS, gen_length // 1)  # minimal_topk 1
        num_blocks = (len(prompt) + gen_length + block_length - 1) // block_length
        x = prompt + [mask_id] * (num_blocks * block_length - len(prompt))
        base, remainder = divmod(block_length, steps)
        schedule = [base + (1 if s < remainder else 0) for s in range(steps)]
        for block in range(len(prompt) // block_length, num_blocks):
            end = (block + 1) * block_length
            for step in range(steps):
                active = torch.tensor(x[end - block_length : end]) == mask_id
                if not active.any():
                    break
                logits = self.logits(x[:end], self.allowed(end, block_length, bidirectional))[-block_length:]
                logits[:, banned] = float("-inf")
                probs = logits.softmax(-1)
                x0 = logits.argmax(-1)
                confidence = torch.where(active, probs.gather(-1, x0[:, None])[:, 0], -torch.inf)
                high = confidence > THRESHOLD
                if high.sum() >= schedule[step]:
                    transfer = high
                else:
                    transfer = torch.zeros_like(high)
                    transfer[torch.topk(confidence, min(schedule[step], int(active.sum()))).indices] = True
                for i in transfer.nonzero()[:, 0].tolist():
                    x[end - block_length + i] = int(x0[i])
            if any(t in eos_ids for t in x[len(prompt) : end]):
                break
        new = x[len(prompt) : len(prompt) + gen_length]
        first = next((i for i, t in enumerate(new) if t in eos_ids), None)
        return new if first is None else new[: first + 1]


# --- logits -------------------------------------------------------------------------------------------------


def _raw_model(model_dir: Path, block_size: int = BLOCK, budget: bool = True) -> BlockDiffusionModel:
    """The native module without the loader's stop-token fold on its LM head (raw logits); ``budget``: the
    family's cap of a block's steps at the budget (generate's ``min(steps, gen_length // minimal_topk)``)."""
    config = json.loads((model_dir / "config.json").read_text())
    model, report = load_llada2_moe(
        model_dir, config, torch.device("cpu"), torch.float32,
        weight_names=family_named("llada2").weight_names,
    )  # fmt: skip
    assert not report["missing_keys"] and not report["unexpected_keys"], report
    return BlockDiffusionModel(model.eval(), block_size, steps_within_budget=budget)


def _prompt(model_dir: Path) -> list[int]:
    return load_model(model_dir, device="cpu").tokenizer.encode(CODE)


def test_the_release_loads_natively_with_generates_recipe(llada2_dir: Path) -> None:
    loaded = load_model(llada2_dir, device="cpu")
    assert loaded.family == "llada2" and loaded.kind == "decoder"
    assert isinstance(loaded.model, BlockDiffusionModel) and loaded.model.block_size == BLOCK
    assert loaded.model.shift is False and loaded.model.sub_block_size is None
    assert loaded.tokenizer.decode([loaded.special.mask_id]) in ("<|mask|>", "")
    assert loaded.tokenizer.token_text(loaded.special.mask_id) == "<|mask|>"
    assert loaded.tokenizer.token_text(loaded.special.end_of_span_id) == "<|endoftext|>"
    assert loaded.generation_defaults == {"block_steps": 32, "threshold": 0.95, "temperature": 0.0}
    assert loaded.model.steps_within_budget
    assert not (llada2_dir / SENTINEL).exists()  # no file of the checkpoint ran


@pytest.mark.parametrize(
    ("reference_block", "bidirectional", "router", "matches"),
    [
        (BLOCK, False, "release", True),
        (BLOCK, True, "release", False),
        (16, False, "release", False),
        (64, False, "release", False),
        (BLOCK, False, "unbiased", False),
        (BLOCK, False, "biased-weights", False),
    ],
    ids=[
        "block-causal-32",
        "bidirectional",
        "block-size-16",
        "block-size-64",
        "unbiased-choice",
        "biased-weights",
    ],
)
def test_logits_equal_the_reference_only_with_its_attention_blocks_and_router(
    llada2_dir: Path, reference_block: int, bidirectional: bool, router: str, matches: bool
) -> None:
    ids = _prompt(llada2_dir)[: 3 * BLOCK]
    assert len(ids) > 2 * BLOCK
    reference = Reference(llada2_dir, router).logits(
        ids, Reference.allowed(len(ids), reference_block, bidirectional)
    )
    model = _raw_model(llada2_dir)
    ours = model.logits(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))[0]
    difference = (ours - reference).abs().max().item()
    if not matches:
        assert difference > 1e-3, difference
        return
    assert difference <= 1e-4, difference
    # The same logits through the prefix cache: one block prefilled, the second appended in the pass that
    # reads the rest.
    first = model.prefill(torch.tensor([ids[:BLOCK]]))
    rest = torch.tensor([ids[2 * BLOCK :]])
    cached, grown = model.block_logits(rest, first, torch.tensor([ids[BLOCK : 2 * BLOCK]]))
    assert grown is not None and grown.length == 2 * BLOCK
    assert (cached[0] - reference[2 * BLOCK :]).abs().max().item() <= 1e-4


# --- greedy generation --------------------------------------------------------------------------------------


def _decode(
    model: BlockDiffusionModel,
    prompt: list[int],
    length: int,
    special: SpecialTokens,
    stops: torch.Tensor | None = None,
    caches: PrefixCaches | None = None,
) -> BlockDecodeOutput:
    config = DecodeConfig(block_steps=STEPS, threshold=THRESHOLD, temperature=0.0)
    return block_denoise(model, prompt, length, special, config, stop_ids=stops, caches=caches)


def test_greedy_generation_equals_generate_and_stops_after_the_block_of_eos(llada2_dir: Path) -> None:
    special = load_model(llada2_dir, device="cpu").special
    model, reference = _raw_model(llada2_dir), Reference(llada2_dir)
    prompt = _prompt(llada2_dir)[: BLOCK + 11]  # one whole block, then 11 prompt tokens spill into the next
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    ends = {special.end_of_span_id}
    free = _decode(model, prompt, 40, special)
    expected = reference.generate(prompt, 40, special.mask_id, ends, banned)
    assert free.ids[: len(expected)] == expected
    assert len(expected) == 40 and len(set(expected)) >= 3  # a real sequence, not one repeated token
    assert free.forward_passes == (BLOCK - 11) + BLOCK  # one position per step, 32 steps per block

    # An id in the middle of the second new block as generate's eos: both stop after the block holding it.
    stop = next(t for i, t in enumerate(free.ids) if i >= BLOCK - 11 + 4 and t not in free.ids[:i])
    stopped = _decode(model, prompt, 40, special, stops=torch.tensor([stop]))
    expected_stop = reference.generate(prompt, 40, special.mask_id, {*ends, stop}, banned)
    cut = stopped.ids.index(stop) + 1
    assert stopped.ids[:cut] == expected_stop

    # infill's module with the wrong block size, and generate with bidirectional attention or blocks of 16,
    # decode something else.
    assert _decode(_raw_model(llada2_dir, 16), prompt, 40, special).ids[:40] != expected
    for wrong in ({"bidirectional": True}, {"block_length": 16}):
        assert reference.generate(prompt, 40, special.mask_id, ends, banned, **wrong) != expected, wrong


def test_a_budget_under_a_block_takes_fewer_steps_as_generate_does(llada2_dir: Path) -> None:
    """gen_length 12: generate's steps are min(32, 12), so each step commits the top 3 (then 2) positions."""
    special = load_model(llada2_dir, device="cpu").special
    prompt = _prompt(llada2_dir)[: BLOCK + 11]
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    expected = Reference(llada2_dir).generate(prompt, 12, special.mask_id, {special.end_of_span_id}, banned)
    ours = _decode(_raw_model(llada2_dir), prompt, 12, special)
    assert ours.ids[:12] == expected and len(set(expected)) >= 3
    assert ours.forward_passes <= 8  # 21 masked positions: 3 a step for 7 steps (none above 0.95 here)
    uncapped = _decode(_raw_model(llada2_dir, budget=False), prompt, 12, special)
    assert uncapped.forward_passes == BLOCK - 11  # one position a step: another schedule
    assert uncapped.ids[:12] != expected


def test_the_prefix_cache_is_reused_between_calls_and_changes_nothing(llada2_dir: Path) -> None:
    special, model = load_model(llada2_dir, device="cpu").special, _raw_model(llada2_dir)
    prompt = _prompt(llada2_dir)[: 2 * BLOCK + 3]
    caches = PrefixCaches()
    first = _decode(model, prompt, 8, special, caches=caches)
    assert first.cached_positions == 0 and len(caches) == 1
    typed = [*prompt, prompt[5]]  # the next keystroke: the same blocks and one token more
    again = _decode(model, typed, 8, special, caches=caches)
    assert again.cached_positions == 2 * BLOCK
    assert again.ids == _decode(model, typed, 8, special).ids


def test_an_unsupported_router_is_refused_by_name(llada2_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(llada2_dir, tmp_path / "softmax", ignore=shutil.ignore_patterns(SENTINEL))
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "score_function": "softmax"}))
    with pytest.raises(ModelLoadError, match=r"not one infill runs natively \(score_function='softmax'\)"):
        load_model(copy, device="cpu")
    (copy / "config.json").write_text(json.dumps({**config, "n_group": 3}))
    with pytest.raises(ModelLoadError, match="8 experts in 3 groups"):
        load_model(copy, device="cpu")


# --- the CLI, doctor and the server -------------------------------------------------------------------------


def test_doctor_names_the_family_and_the_cli_fills_holes(
    x_llada2_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--model", str(x_llada2_dir), "--device", "cpu"]) == 0
    report = {
        k.strip(): v.strip()
        for k, v in (line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    }
    assert report["model family"].startswith("llada2: LLaDA2.x")
    assert report["mask token"].endswith("'<|mask|>'") and report["end of span"].endswith("'<|endoftext|>'")
    assert "blocks of 32" in report["canvas"] and report["canvas"].startswith("suffix + ")
    assert report["test fill"].startswith("'x")

    completion = cli_completion(x_llada2_dir, tmp_path, capsys)
    assert completion and set(completion) == {"x"}, completion
    (tmp_path / "hole.py").write_text("def scale(values):\n    factor = <|fill|>\n    return values\n")
    monkeypatch.chdir(tmp_path)
    argv = ["--model", str(x_llada2_dir), "--max-tokens", "6", "--device", "cpu"]
    assert main(["rewrite", "--in-place", "hole.py", *argv]) == 0
    written = (tmp_path / "hole.py").read_text()
    head, tail = "def scale(values):\n    factor = ", "\n    return values\n"
    assert written.startswith(head) and written.endswith(tail)
    filled = written[len(head) : len(written) - len(tail)]
    assert filled and set(filled) == {"x"}, written
    assert not (x_llada2_dir / SENTINEL).exists()


def test_the_server_completes_with_llada2(x_llada2_dir: Path, tmp_path: Path) -> None:
    session = LspSession(serve_argv(x_llada2_dir, tmp_path / "server.log"))
    try:
        session.initialize({"maxTokens": 6})
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses), "LLaDA2 loaded")
        uri = "file:///llada2.py"
        text = CODE + "\n\nanswer = \n"
        session.open(uri, text)
        line = text.count("\n") - 1
        result = session.request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, len("answer = "))
        )
        assert isinstance(result, types.InlineCompletionList) and result.items
        assert all(isinstance(i.insert_text, str) and set(i.insert_text) == {"x"} for i in result.items)
    finally:
        session.close()
