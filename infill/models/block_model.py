"""The forward pass of a block-diffusion model (SDAR...): block-causal attention and an exact prefix cache.

A block-diffusion model is autoregressive over blocks of ``block_size`` absolute positions (block i holds
positions i*b .. i*b+b-1) and a masked diffusion model inside a block: a position attends to every position
of its own block and of earlier blocks. So the keys and values of a finished block never change once it is
committed, and a cache of them is exact, not an approximation (contrast the DualCache of bidirectional
models, adapters.py, which the same forward pass serves). The decoding loop (infill/engine/block_decoding.py)
caches the prompt's whole blocks once, decodes each new block against that cache and appends the block once
it is committed, each append riding on the next block's first pass (``block_logits``'s ``pending``).

``logits`` (the ``DenoisingModel`` protocol) is the same computation without a cache, one full block-causal
pass, for callers that ask for arbitrary positions (tests, tools); the engine decodes block models only
through ``block_logits``.
"""

from __future__ import annotations

import torch

from infill.models.adapters import every_position, gather_positions
from infill.models.families import TransferSchedule
from infill.models.qwen2 import KeyValueCache, Qwen2ForCausalLM


class BlockDiffusionModel:
    """A native block-causal decoder (qwen2.py's module), its block size and how its family decodes a block.
    Logits are unshifted: row i is what the hidden state at i predicts. ``shift``: that is the token at i + 1
    (Fast-dLLM v2's token shift; the decoding loop realigns), else the token at i. ``sub_block_size``: a step
    commits only inside the first sub-block of this size that still has masks (Fast-dLLM v2), else anywhere
    in the block. ``steps_within_budget``: a block gets at most as many steps as the request's budget has
    tokens (LLaDA2's generate: a short budget commits several positions a step). ``ends_blocks_at_prompt``:
    blocks are counted back from the prompt's end, not forward from position 0 (the dllm project's BD3LM
    sampler left-pads the prompt to whole blocks): the decoding loop
    passes the ``phase`` that shifts the block grid so that a block ends where the prompt does (qwen2.py's
    ``attention_allowed``). ``schedule``: how a block's positions are shared out over its steps, "even"
    (generate.py's get_num_transfer_tokens) or "linear" (the dllm project's; block_decoding.py)."""

    caches_context = False  # the bidirectional DualCache (step_logits.py) does not apply

    def __init__(
        self,
        model: Qwen2ForCausalLM,
        block_size: int,
        *,
        shift: bool = False,
        sub_block_size: int | None = None,
        steps_within_budget: bool = False,
        ends_blocks_at_prompt: bool = False,
        schedule: TransferSchedule = "even",
    ) -> None:
        self.model = model
        self.block_size = block_size
        self.shift = shift
        self.sub_block_size = sub_block_size
        self.steps_within_budget = steps_within_budget
        self.ends_blocks_at_prompt = ends_blocks_at_prompt
        self.schedule = schedule

    def phase(self, prompt_length: int) -> int:
        """The block grid's shift for a prompt of this length (0 unless blocks end at the prompt)."""
        return -prompt_length % self.block_size if self.ends_blocks_at_prompt else 0

    def logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor | None = None,
        *,
        phase: int = 0,
    ) -> torch.Tensor:
        """(B, K, V) float32 at ``positions (B, K)`` (None: every position) of one block-causal pass over
        ``input_ids (B, T)`` at positions 0..T-1 (right padding only, as the engine's canvases)."""
        with torch.inference_mode():
            hidden = self.model.model(
                input_ids, attention_mask, block_size=self.block_size, block_phase=phase
            ).last_hidden_state
            rows = every_position(input_ids) if positions is None else positions
            return self.model.lm_head(gather_positions(hidden, rows)).float()

    def prefill(self, ids: torch.Tensor, past: KeyValueCache | None = None) -> KeyValueCache | None:
        """The cache of ``past`` extended by ``ids (1, T)``, whole blocks at the positions after it (None
        when there is nothing to cache)."""
        if ids.shape[1] == 0:
            return past
        assert ids.shape[1] % self.block_size == 0, "only whole blocks are cached"
        with torch.inference_mode():
            return self.model.model(ids, past=past, store=True, block_size=self.block_size).cache

    def append_blocks(
        self, ids: torch.Tensor, past: KeyValueCache | None
    ) -> tuple[torch.Tensor, KeyValueCache]:
        """(V,) float32 logits of the last of ``ids (1, T)`` (whole blocks after ``past``'s positions) and
        ``past`` extended by them: a shifted model's prediction of the next block's first token."""
        with torch.inference_mode():
            out = self.model.model(ids, past=past, store=True, block_size=self.block_size)
            assert out.cache is not None
            return self.model.lm_head(out.last_hidden_state[0, -1:]).float()[0], out.cache

    def block_logits(
        self,
        block: torch.Tensor,
        past: KeyValueCache | None,
        pending: torch.Tensor | None = None,
        *,
        phase: int = 0,
    ) -> tuple[torch.Tensor, KeyValueCache | None]:
        """(1, b, V) float32 logits of the block ``block (1, b)`` that follows ``past``'s positions and
        ``pending (1, P)`` (whole blocks not cached yet: the prompt's, or the block committed last), and
        ``past`` extended by ``pending``. One pass does both exactly: under block-causal attention the
        pending blocks' keys see only ``past`` and themselves, never ``block``. ``phase``: see ``phase``."""
        ids = block if pending is None else torch.cat([pending, block], dim=1)
        with torch.inference_mode():
            out = self.model.model(
                ids, past=past, store=pending is not None, block_size=self.block_size, block_phase=phase
            )
            logits = self.model.lm_head(out.last_hidden_state[:, -block.shape[1] :]).float()
        if pending is None or out.cache is None:
            return logits, past
        return logits, out.cache.truncated(out.cache.length - block.shape[1])
