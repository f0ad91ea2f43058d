"""Open-dCoder (masked diffusion on Qwen2.5-Coder-0.5B) against a forward pass written from the authors' code.

Open-dLLM's ``_mdm_sample`` runs the Qwen2 model bidirectionally (``is_causal=False``) over prefix + masks +
suffix and shifts the logits by one (``cat([logits[:, :1], logits[:, :-1]])``: position i is predicted by the
hidden state at i - 1, position 0 keeps its own). The reference is test_block_diffusion.py's plain-loop Qwen2
forward pass over the checkpoint's tensors with every key allowed, then that shift; the loaded model's
logits must equal it, and differ from the causal or unshifted reading.

Greedy generation is compared with ``_mdm_sample``'s ``alg == "p2"`` branch written here (``sample_tokens``
with temperature 0 and top-p: the proposal's probability after the top-p cut; at step i of S every span
position ranked by it, the ``floor(m * (1 - (i + 1) / S))`` least confident masked again, committed ones
included, the other masked ones committed), with infill's own inputs passed to it: the ids infill never
commits and, at span positions at or before committed content, end of span (their logits -inf). infill's
default rule (threshold) decodes something else.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lsprotocol import types

from infill.engine.engine import InfillEngine
from infill.engine.sampler import denoise
from infill.engine.types import DecodeConfig
from infill.models import load_model
from infill.models.adapters import DecoderAdapter
from infill_cli.main import main
from tests.release_models import bias_towards_x, cli_completion
from tests.release_open_dcoder import build_open_dcoder_release
from tests.test_block_diffusion import CODE, Reference
from tests.test_lsp_support import LspSession, inline_params, serve_argv

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def dcoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_open_dcoder_release(tmp_path_factory.mktemp("odc") / "open-dcoder-0.5B")


def test_the_checkpoint_loads_as_a_shifted_bidirectional_decoder(dcoder_dir: Path) -> None:
    loaded = load_model(dcoder_dir, device="cpu")
    assert loaded.family == "open-dcoder" and loaded.kind == "decoder"
    assert isinstance(loaded.model, DecoderAdapter) and loaded.model.shift
    assert loaded.tokenizer.decode([loaded.special.mask_id]) in ("[MASK]", "")
    assert loaded.special.prefix_ids == () and loaded.special.suffix_ids == ()  # prefix + masks + suffix


@pytest.mark.parametrize(
    ("causal", "shifted", "matches"),
    [(False, True, True), (True, True, False), (False, False, False)],
    ids=["bidirectional-shifted", "causal", "unshifted"],
)
def test_logits_equal_mdm_sample_s_reading_of_the_canvas(
    dcoder_dir: Path, causal: bool, shifted: bool, matches: bool
) -> None:
    loaded = load_model(dcoder_dir, device="cpu")
    prefix, suffix = CODE.split("factor = 3")
    canvas = [
        *loaded.tokenizer.encode(prefix),
        *[loaded.special.mask_id] * 5,
        *loaded.tokenizer.encode(suffix),
    ]
    length = len(canvas)
    allowed = torch.ones(length, length, dtype=torch.bool)
    raw = Reference(dcoder_dir).logits(canvas, allowed.tril() if causal else allowed)
    reference = torch.cat([raw[:1], raw[:-1]]) if shifted else raw
    ids = torch.tensor([canvas])
    ours = loaded.model.logits(ids, torch.ones_like(ids))[0]
    difference = (ours - reference).abs().max().item()
    assert (difference <= 1e-4) if matches else (difference > 1e-3), difference


def test_doctor_names_the_family_and_fills(dcoder_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--model", str(dcoder_dir), "--device", "cpu"]) == 0
    report = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    assert report["model family"].strip().startswith("open-dcoder: Open-dCoder")
    assert "prefix + masks + suffix" in report["canvas"]
    assert not report["test fill"].strip().startswith("FAILED")


# --- p2 decoding --------------------------------------------------------------------------------------------

STEPS, SPAN = 8, 20


def p2_sample(
    reference: Reference,
    canvas: list[int],
    mask_id: int,
    steps: int,
    banned: list[int],
    end: int,
    top_p: float,
) -> tuple[list[int], list[int], int]:
    """_mdm_sample with alg "p2", temperature 0: the canvas decoded, the step that last committed each
    position (-1: never), and how many committed tokens were masked again on the way."""
    x = torch.tensor(canvas)
    fixed = x != mask_id
    span = int((~fixed).sum())
    taken_back = 0
    committed_at = torch.full_like(x, -1)
    for i in range(steps):
        mask_index = x == mask_id
        if not mask_index.any():
            break
        allowed = torch.ones(len(x), len(x), dtype=torch.bool)
        raw = reference.logits(x.tolist(), allowed)
        logits = torch.cat([raw[:1], raw[:-1]])
        logits[:, banned] = float("-inf")
        content = ~fixed & ~mask_index & (x != end)
        early = ~fixed & (content.flip(0).cumsum(0).flip(0) > 0)  # infill: no end of span before content
        logits[early, end] = float("-inf")
        # sample_tokens: top_p_logits (cut where the mass before a token is above top_p), then the max.
        sorted_logits, order = torch.sort(logits, descending=True)
        remove = torch.cumsum(sorted_logits.softmax(-1), -1) > top_p
        remove[:, 1:] = remove[:, :-1].clone()
        remove[:, 0] = False
        cut = torch.zeros_like(remove).scatter(-1, order, remove)
        confidence, x0 = logits.masked_fill(cut, torch.finfo(logits.dtype).min).softmax(-1).max(-1)
        full_confidence = torch.where(fixed, float("inf"), confidence)
        to_mask_count = int((torch.tensor(float(span)) * (1.0 - (i + 1) / steps)).floor())
        to_mask = torch.zeros_like(fixed)
        to_mask[torch.argsort(full_confidence)[:to_mask_count]] = True
        taken_back += int((to_mask & ~mask_index).sum())
        x[to_mask] = mask_id
        keep = mask_index & ~to_mask
        x[keep] = x0[keep]
        committed_at[keep] = i
        committed_at[to_mask] = -1
    return x.tolist(), committed_at.tolist(), taken_back


@pytest.mark.parametrize(
    ("strategy", "top_p"),
    # 0.2: a cut that bites on this tiny vocabulary's flat distributions (at 0.95 it changes no ranking here).
    [("p2", 0.95), ("p2", 0.2), ("threshold", 0.95)],
)
def test_greedy_p2_generation_equals_the_authors_sampler(
    dcoder_dir: Path, strategy: str, top_p: float
) -> None:
    loaded = load_model(dcoder_dir, device="cpu")
    special = loaded.special
    assert loaded.generation_defaults == {"strategy": "p2", "steps": 64, "temperature": 0.6, "top_p": 0.95}
    assert InfillEngine(loaded).default_config().strategy == "p2"
    prefix, suffix = CODE.split("factor = 3")
    prefix_ids = loaded.tokenizer.encode(prefix)
    canvas = [*prefix_ids, *[special.mask_id] * SPAN, *loaded.tokenizer.encode(suffix)]
    banned = sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id})
    expected, committed_at, taken_back = p2_sample(
        Reference(dcoder_dir), canvas, special.mask_id, STEPS, banned, special.end_of_span_id, top_p
    )
    assert taken_back > 0  # the rule took committed tokens back: not a plain commit-only schedule
    assert special.end_of_span_id not in expected  # so infill's span tail never came into play
    ids = torch.tensor([canvas])
    editable = ids == special.mask_id
    config = DecodeConfig(strategy=strategy, steps=STEPS, temperature=0.0, top_p=top_p)
    out = denoise(loaded.model, ids, editable, torch.ones_like(ids), special, config)
    ours = out.ids[0].tolist()
    assert len(set(ours[len(prefix_ids) : len(prefix_ids) + SPAN])) >= 3  # not one token repeated
    # The same tokens, each committed (for the last time) at the same step: the same path, not only the end.
    same = ours == expected and out.commit_step[0].tolist() == committed_at
    assert same == (strategy == "p2")
    if strategy == "p2":
        assert out.forward_passes == STEPS


# --- the CLI and the server, on a checkpoint biased towards "x" ---------------------------------------------


@pytest.fixture(scope="module")
def x_dcoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # bias_towards_x reads a tied head's "x" dimension; with these random weights (seed 10) it carries.
    source = build_open_dcoder_release(tmp_path_factory.mktemp("odc10") / "open-dcoder-0.5B", seed=10)
    return bias_towards_x(source, tmp_path_factory.mktemp("x_odc") / "open-dcoder-0.5B")


def test_complete_and_rewrite_fill_with_the_p2_default(
    x_dcoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    completion = cli_completion(x_dcoder_dir, tmp_path, capsys)
    assert completion and set(completion) == {"x"}, completion
    hole = tmp_path / "hole.py"
    hole.write_text("def scale(values):\n    factor = <|fill|>\n    return [v * factor for v in values]\n")
    monkeypatch.chdir(tmp_path)
    argv = ["--model", str(x_dcoder_dir), "--max-tokens", "6", "--device", "cpu"]
    assert main(["rewrite", "--in-place", "hole.py", *argv]) == 0
    written = hole.read_text()
    assert written.startswith("def scale(values):\n    factor = x")
    assert written.endswith("\n    return [v * factor for v in values]\n")


def test_the_server_completes_with_the_p2_default(x_dcoder_dir: Path, tmp_path: Path) -> None:
    session = LspSession(serve_argv(x_dcoder_dir, tmp_path / "server.log"))
    try:
        session.initialize({"maxTokens": 6})
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses), "Open-dCoder loaded")
        uri = "file:///odc.py"
        text = CODE + "\n\nresult = \n"
        session.open(uri, text)
        params = inline_params(uri, text.count("\n") - 1, len("result = "))
        result = session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
        assert isinstance(result, types.InlineCompletionList) and result.items
        assert all(isinstance(i.insert_text, str) and set(i.insert_text) == {"x"} for i in result.items)
    finally:
        session.close()
