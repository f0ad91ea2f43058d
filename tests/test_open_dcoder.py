"""Open-dCoder (masked diffusion on Qwen2.5-Coder-0.5B) against a forward pass written from the authors' code.

Open-dLLM's ``_mdm_sample`` runs the Qwen2 model bidirectionally (``is_causal=False``) over prefix + masks +
suffix and shifts the logits by one (``cat([logits[:, :1], logits[:, :-1]])``: position i is predicted by the
hidden state at i - 1, position 0 keeps its own). The reference is test_block_diffusion.py's plain-loop Qwen2
forward pass over the checkpoint's tensors with every key allowed, then that shift; the loaded model's
logits must equal it, and differ from the causal or unshifted reading. Its p2 sampler is not infill's: only
the logits are compared, not generations.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infill.models import load_model
from infill.models.adapters import DecoderAdapter
from infill_cli.main import main
from tests.release_open_dcoder import build_open_dcoder_release
from tests.test_block_diffusion import CODE, Reference

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
