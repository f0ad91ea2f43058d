"""--quantize int8: torch's dynamic int8 Linear layers for small models on the CPU (quantize.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

from infill.errors import ModelLoadError
from infill.models import load_model
from infill.models.quantize import check_quantization
from infill_cli.main import main
from lsp.settings import ServerSettings, model_spec
from tests.release_models import bias_towards_x, cli_completion
from tests.release_stable_diffcoder import build_stable_diffcoder_release

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[1]


def _modules(loaded: object) -> list[torch.nn.Module]:
    model = loaded.model  # type: ignore[attr-defined]
    root = getattr(model, "model", None) or getattr(model, "hf_model", None) or model
    assert isinstance(root, torch.nn.Module), type(model)
    return list(root.modules())


def test_int8_keeps_the_bundled_models_top1_on_real_code_and_replaces_every_linear() -> None:
    plain, int8 = load_model(device="cpu"), load_model(device="cpu", quantize="int8")
    assert not any(isinstance(m, DynamicInt8Linear) for m in _modules(plain))
    quantized = [m for m in _modules(int8) if isinstance(m, DynamicInt8Linear)]
    assert quantized and not any(type(m) is torch.nn.Linear for m in _modules(int8))
    # The masked LM's predictions at 15% masked positions of real code (two windows of 512 tokens).
    text = (ROOT / "infill" / "engine" / "block_decoding.py").read_text()
    ids = torch.tensor(plain.tokenizer.encode(text)[:1024]).view(2, 512)
    masked = torch.rand(ids.shape, generator=torch.Generator().manual_seed(0)) < 0.15
    canvas, real = ids.masked_fill(masked, plain.special.mask_id), torch.ones_like(ids)
    reference, approximate = plain.model.logits(canvas, real)[masked], int8.model.logits(canvas, real)[masked]
    agreement = (reference.argmax(-1) == approximate.argmax(-1)).float().mean().item()
    assert agreement >= 0.85, agreement  # 0.93 in scripts/bench_int8_agreement.py (BENCHMARKS.md)
    assert (reference - approximate).abs().max().item() > 0  # it did change the arithmetic


def test_a_block_model_fills_through_the_cli_in_int8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = build_stable_diffcoder_release(tmp_path / "release" / "Stable-DiffCoder-8B-Base")
    x_dir = bias_towards_x(source, tmp_path / "x" / "Stable-DiffCoder-8B-Base")
    completion = cli_completion(x_dir, tmp_path, capsys, "--quantize", "int8")
    assert completion and set(completion) == {"x"}, completion
    loaded = load_model(x_dir, device="cpu", quantize="int8")
    assert isinstance(loaded.model.model.lm_head, DynamicInt8Linear)  # type: ignore[attr-defined]
    assert main(["doctor", "--model", str(x_dir), "--device", "cpu", "--quantize", "int8"]) == 0
    report = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line)
    assert report["quantized"].strip().startswith("int8") and report["test fill"].strip().startswith("'x")


def test_refusals_are_one_line_and_come_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ModelLoadError, match=r"^--quantize int8 is for the CPU; on cuda"):
        check_quantization("int8", torch.device("cuda"))
    with pytest.raises(ModelLoadError, match="Unknown quantization 'int4'"):
        check_quantization("int4", torch.device("cpu"))
    with pytest.raises(ModelLoadError, match="needs the model in float32"):
        load_model(device="cpu", dtype=torch.bfloat16, quantize="int8")
    from infill.models import quantize

    monkeypatch.setattr(quantize, "MAX_PARAMETERS", 1000)
    # Refused from the safetensors headers, before the weights are read.
    monkeypatch.setattr("infill.models.loader.load_masked_lm", lambda *_: pytest.fail("weights were loaded"))
    with pytest.raises(ModelLoadError, match="up to 0B parameters; this one has"):
        load_model(device="cpu", quantize="int8")
    assert quantize.checkpoint_parameters(ROOT / "infill" / "default_model") > 1_000_000
    (tmp_path / "a.py").write_text("x = \n")
    monkeypatch.chdir(tmp_path)
    assert main(["complete", "a.py:1:4", "--device", "cpu", "--quantize", "int8"]) != 0
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "is for models up to 0B parameters" in error, error
    assert "Traceback" not in error


def test_the_server_passes_its_quantize_flag_to_the_model_it_loads() -> None:
    spec = model_spec(ServerSettings(), "/models/x", None, "int8")
    assert spec.quantize == "int8" and model_spec(ServerSettings(), None, None).quantize is None
