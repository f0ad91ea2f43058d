"""The fast load path (infill/models/modernbert.py, tokenizer_json.py) against transformers: the same logits,
the same tokenizer answers, and a cold `infill complete` that imports neither transformers nor the grammars
its file does not need."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM, PreTrainedTokenizerFast

from infill.models import BUNDLED_MODEL_DIR, load_model
from infill.models.modernbert import ModernBertConfig as NativeConfig
from infill.models.modernbert import load_modernbert
from infill.models.tokenizer_json import TokenizerJson, read_tokenizer_json
from infill.models.weights import checked_model

# Variants of the architecture: local (sliding) layers that matter at this length, biases, untied head,
# another activation, a transformers 4 config (thetas as top-level keys).
CONFIGS: dict[str, dict[str, Any]] = {
    "global": {"global_attn_every_n_layers": 1},
    "local layers": {"global_attn_every_n_layers": 2, "local_attention": 8},
    "biases": {"norm_bias": True, "attention_bias": True, "mlp_bias": True, "classifier_bias": True},
    "untied": {"tie_word_embeddings": False, "decoder_bias": False},
    "tanh gelu": {"hidden_activation": "gelu_pytorch_tanh", "classifier_activation": "gelu_pytorch_tanh"},
}


def _save(tmp_path: Path, name: str, **changes: Any) -> tuple[Path, ModernBertForMaskedLM]:
    torch.manual_seed(len(name))
    config = ModernBertConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=64,
        pad_token_id=0,
        **changes,
    )
    model = ModernBertForMaskedLM(config).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a forgotten one shows
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    out = tmp_path / name.replace(" ", "-")
    model.save_pretrained(str(out), safe_serialization=True)
    return out, model


def _native(model_dir: Path) -> torch.nn.Module:
    config = json.loads((model_dir / "config.json").read_text())
    loaded = load_modernbert(model_dir, config, torch.device("cpu"), torch.float32)
    assert loaded is not None, "the native path refused a config it should cover"
    return checked_model(loaded, model_dir)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_native_logits_equal_transformers(name: str, tmp_path: Path) -> None:
    model_dir, reference = _save(tmp_path, name, **CONFIGS[name])
    native = _native(model_dir)
    assert type(native).__module__ == "infill.models.modernbert"
    ids = torch.randint(1, 97, (2, 24))
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0  # a padded row
    ids[1, 17:] = 0
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).logits
        got = native(input_ids=ids, attention_mask=mask).logits
        hidden = native.model(input_ids=ids, attention_mask=mask)[0]
        expected_hidden = reference.model(input_ids=ids, attention_mask=mask)[0]
    assert got.shape == expected.shape == (2, 24, 97)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(hidden[real], expected_hidden[real], atol=2e-5, rtol=1e-5)


def test_a_larger_modernbert_loads_natively_and_matches_transformers(slow_model_dir: Path) -> None:
    """6 layers, hidden 256, window 1024: alternating global and local attention over real code."""
    from transformers import AutoModelForMaskedLM

    loaded = load_model(slow_model_dir, device="cpu")
    native = loaded.model.model  # type: ignore[attr-defined]
    assert type(native).__module__ == "infill.models.modernbert"
    reference = AutoModelForMaskedLM.from_pretrained(str(slow_model_dir)).eval()
    ids = torch.tensor([loaded.tokenizer.encode("def add(a, b):\n    return a + b\n" * 6)])
    with torch.inference_mode():
        torch.testing.assert_close(native(ids).logits, reference(input_ids=ids).logits, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "change",
    [
        {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        {"hidden_activation": "quick_gelu"},
        {"architectures": ["ModernBertForSequenceClassification"]},
    ],
)
def test_configs_the_native_path_does_not_cover_go_to_transformers(
    change: dict[str, Any], modernbert_dir: Path, tmp_path: Path
) -> None:
    config = {**json.loads((modernbert_dir / "config.json").read_text()), **change}
    assert NativeConfig.from_json(config) is None
    if "architectures" in change:
        return
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    for path in modernbert_dir.iterdir():
        (model_dir / path.name).write_bytes(path.read_bytes())
    (model_dir / "config.json").write_text(json.dumps(config))
    loaded = load_model(model_dir, device="cpu")
    assert type(loaded.model.model).__module__.startswith("transformers.")  # type: ignore[attr-defined]


def _tokenizer_dirs(request: pytest.FixtureRequest) -> dict[str, Path]:
    dirs = {"bundled": BUNDLED_MODEL_DIR}
    for fixture in ("modernbert_dir", "roberta_dir", "dream_dir"):
        dirs[fixture] = request.getfixturevalue(fixture)
    dirs.update(request.getfixturevalue("release_dirs"))
    return {name: path for name, path in dirs.items() if (path / "tokenizer.json").is_file()}


TEXTS = [
    "def add(a, b):\n    return a + b\n",
    "x = '<|mask|>' + \"<mask>\" + '<|endoftext|>' + '[MASK]'  # special strings stay text",
    "naïve = 'ü€😀'\r\n\tif x:\n  pass",
    "",
]


def test_tokenizer_json_answers_as_transformers_does(request: pytest.FixtureRequest) -> None:
    dirs = _tokenizer_dirs(request)
    light_dirs = {name: path for name, path in dirs.items() if read_tokenizer_json(path) is not None}
    assert {"bundled", "modernbert_dir"} <= set(light_dirs), light_dirs
    for name, path in light_dirs.items():
        light = read_tokenizer_json(path)
        assert isinstance(light, TokenizerJson)
        reference = PreTrainedTokenizerFast.from_pretrained(str(path))
        assert len(light) == len(reference), name
        assert light.get_vocab() == reference.get_vocab(), name
        assert light.model_max_length == reference.model_max_length, name
        for role in ("mask", "eos", "sep", "pad", "bos", "cls", "unk"):
            assert getattr(light, f"{role}_token_id") == getattr(reference, f"{role}_token_id"), (name, role)
        assert {i: (t.content, t.special) for i, t in light.added_tokens_decoder.items()} == {
            i: (t.content, t.special) for i, t in reference.added_tokens_decoder.items()
        }, name
        for text in TEXTS:
            for special in (False, True):
                for split in (False, True):
                    kwargs = {"add_special_tokens": special, "split_special_tokens": split}
                    ids = light(text, **kwargs)["input_ids"]
                    assert ids == reference(text, **kwargs)["input_ids"], (name, text, kwargs)
                    assert light.decode(ids) == reference.decode(
                        ids, skip_special_tokens=False, clean_up_tokenization_spaces=False
                    )


def test_a_tokenizer_transformers_would_change_is_left_to_transformers(tmp_path: Path) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_bytes((BUNDLED_MODEL_DIR / name).read_bytes())
    assert read_tokenizer_json(tmp_path) is not None
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    for change in (
        {"add_bos_token": True},
        {"tokenizer_class": "LlamaTokenizerFast"},
        {"mask_token": "<nope>"},
    ):
        (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, **change}))
        assert read_tokenizer_json(tmp_path) is None, change


# What a completion in a Python file with the bundled model does not need (tqdm comes with torch itself).
HEAVY = ("transformers", "torch._dynamo", "sympy", "accelerate", "tree_sitter_go", "tree_sitter_javascript")


def test_a_cold_complete_imports_only_what_it_needs(tmp_path: Path) -> None:
    source = tmp_path / "stats.py"
    source.write_text("def mean(xs):\n    total = sum(xs)\n    return \n")
    code = (
        f"import sys\nHEAVY = {HEAVY!r}\n"
        "from infill_cli.main import main\n"
        f"code = main(['complete', {str(source)!r} + ':3:12', '--device', 'cpu'])\n"
        "heavy = [m for m in HEAVY if m in sys.modules]\n"
        "print('HEAVY', code, ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "HEAVY 0 ", out.stdout
