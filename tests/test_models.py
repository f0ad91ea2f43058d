"""infill.models: loading every tiny model kind, special ids, adapters and every refusal."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2ForCausalLM

from infill.errors import DeviceError, ModelLoadError
from infill.models import (
    MODEL_ENV_VAR,
    LoadedModel,
    load_model,
    locate,
    resolve_device,
    resolve_model_dir,
)
from infill.models.decoders import decoder_config
from infill.models.families import family_named

CODE = "def add(a, b):\n\treturn a + b\n\nclass Point:\n    x = 1  # note\n"
KINDS = {"modernbert_dir": "masked_lm", "roberta_dir": "masked_lm", "dream_dir": "decoder"}


@pytest.fixture(scope="module")
def loaded_models(modernbert_dir: Path, roberta_dir: Path, dream_dir: Path) -> dict[str, LoadedModel]:
    dirs = {"modernbert_dir": modernbert_dir, "roberta_dir": roberta_dir, "dream_dir": dream_dir}
    return {name: load_model(path, device="cpu") for name, path in dirs.items()}


def _batch(loaded: LoadedModel, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and attention mask."""
    rows = [loaded.tokenizer.encode(t) for t in texts]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), loaded.special.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _edit_config(model_dir: Path, **changes: object) -> None:
    path = model_dir / "config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


# --- every kind loads and scores every position ---


@pytest.mark.parametrize("fixture", list(KINDS))
def test_each_kind_loads_and_gives_batch_logits(fixture: str, loaded_models: dict[str, LoadedModel]) -> None:
    loaded = loaded_models[fixture]
    ids, mask = _batch(loaded, [CODE, "x = 1\n"])
    logits = loaded.model.logits(ids, mask)
    assert loaded.kind == KINDS[fixture]
    assert logits.shape == (2, ids.shape[1], loaded.tokenizer.vocab_size)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert loaded.device == torch.device("cpu") and loaded.dtype == torch.float32
    assert loaded.max_positions == 512
    assert not loaded.model.model.training  # eval mode: dropout off, results deterministic


def test_explicit_dtype_is_used(modernbert_dir: Path) -> None:
    loaded = load_model(modernbert_dir, device="cpu", dtype=torch.bfloat16)
    ids, mask = _batch(loaded, [CODE])
    assert loaded.dtype == torch.bfloat16
    assert next(loaded.model.model.parameters()).dtype == torch.bfloat16
    assert loaded.model.logits(ids, mask).dtype == torch.float32


@pytest.mark.parametrize("fixture", list(KINDS))
def test_padded_batch_matches_unpadded_runs(fixture: str, loaded_models: dict[str, LoadedModel]) -> None:
    loaded = loaded_models[fixture]
    texts = [CODE, "x = 1\n", "for i in range(3):\n    print(i)\n"]
    ids, mask = _batch(loaded, texts)
    batched = loaded.model.logits(ids, mask)
    for i, text in enumerate(texts):
        alone_ids, alone_mask = _batch(loaded, [text])
        alone = loaded.model.logits(alone_ids, alone_mask)[0]
        assert torch.allclose(batched[i, : alone.shape[0]], alone, atol=1e-4), fixture


def test_left_padding_gives_the_same_dream_logits(loaded_models: dict[str, LoadedModel]) -> None:
    loaded = loaded_models["dream_dir"]
    row = torch.tensor(loaded.tokenizer.encode(CODE))
    ids = torch.full((1, len(row) + 4), loaded.special.pad_id)
    ids[0, 4:] = row
    mask = torch.zeros_like(ids)
    mask[0, 4:] = 1
    alone = loaded.model.logits(row[None], torch.ones_like(row[None]))
    assert torch.allclose(loaded.model.logits(ids, mask)[0, 4:], alone[0], atol=1e-4)


# --- special tokens ---


def _id(loaded: LoadedModel, token: str) -> int:
    return loaded.tokenizer.hf.convert_tokens_to_ids(token)  # type: ignore[attr-defined]


def test_special_tokens_of_our_modernbert(loaded_models: dict[str, LoadedModel]) -> None:
    loaded = loaded_models["modernbert_dir"]
    special = loaded.special
    assert special.mask_id == _id(loaded, "<|mask|>")
    assert special.end_of_span_id == _id(loaded, "<|endofspan|>")
    assert special.pad_id == _id(loaded, "<|pad|>")
    assert special.prefix_ids == () and special.suffix_ids == ()
    assert _id(loaded, "<|fim_middle|>") in special.banned_ids


def test_special_tokens_of_roberta(loaded_models: dict[str, LoadedModel]) -> None:
    loaded = loaded_models["roberta_dir"]
    special = loaded.special
    assert special.mask_id == _id(loaded, "<mask>")
    assert special.end_of_span_id == _id(loaded, "</s>")
    assert special.pad_id == _id(loaded, "<pad>")
    assert special.prefix_ids == (_id(loaded, "<s>"),)
    assert special.suffix_ids == (_id(loaded, "</s>"),)
    assert {_id(loaded, "<s>"), _id(loaded, "<unk>")} <= set(special.banned_ids)


def test_special_tokens_of_dream(loaded_models: dict[str, LoadedModel], dream_dir: Path) -> None:
    loaded = loaded_models["dream_dir"]
    special = loaded.special
    config = json.loads((dream_dir / "config.json").read_text())
    assert special.mask_id == _id(loaded, "<|mask|>") == config["mask_token_id"]
    assert special.end_of_span_id == _id(loaded, "<|endoftext|>")
    # A leading bos gives the first real token a predecessor to be predicted from (Dream's shift).
    assert special.prefix_ids == (config["bos_token_id"],) and special.suffix_ids == ()


@pytest.mark.parametrize("fixture", list(KINDS))
def test_banned_ids_hold_mask_and_pad_but_never_end_of_span(
    fixture: str, loaded_models: dict[str, LoadedModel]
) -> None:
    special = loaded_models[fixture].special
    assert special.mask_id in special.banned_ids
    assert special.end_of_span_id not in special.banned_ids
    # Dream pads with its end-of-text token, which must stay committable to end a span.
    if special.pad_id != special.end_of_span_id:
        assert special.pad_id in special.banned_ids


# --- Dream: bidirectional attention and realigned shift ---


def test_dream_attention_is_bidirectional(loaded_models: dict[str, LoadedModel]) -> None:
    loaded = loaded_models["dream_dir"]
    ids, mask = _batch(loaded, [CODE])
    changed = ids.clone()
    changed[0, -1] = loaded.special.mask_id if ids[0, -1] != loaded.special.mask_id else 0
    before, after = loaded.model.logits(ids, mask), loaded.model.logits(changed, mask)
    # Position 0 holds raw row 0 and position 1 holds raw row 0 too: both see the last token.
    assert not torch.allclose(before[0, 0], after[0, 0], atol=1e-5)
    assert not torch.allclose(before[0, 1], after[0, 1], atol=1e-5)


def test_dream_logits_are_the_shifted_bidirectional_qwen2_forward(
    loaded_models: dict[str, LoadedModel], dream_dir: Path
) -> None:
    loaded = loaded_models["dream_dir"]
    ids, mask = _batch(loaded, [CODE])
    config = json.loads((dream_dir / "config.json").read_text())
    reference = Qwen2ForCausalLM(decoder_config(family_named("dream"), config))
    reference.load_state_dict(load_file(str(dream_dir / "model.safetensors")), strict=True)
    reference.eval()
    seq = ids.shape[1]
    # An explicit all-visible 4D additive mask: bidirectional by construction, independent of is_causal flags.
    visible = torch.zeros((1, 1, seq, seq))
    with torch.no_grad():
        raw = reference(input_ids=ids, attention_mask=visible, use_cache=False).logits
        causal = Qwen2ForCausalLM.from_pretrained(
            str(dream_dir), config=decoder_config(family_named("dream"), config)
        )
        causal.config.is_causal = True
        causal_raw = causal(input_ids=ids, use_cache=False).logits
    got = loaded.model.logits(ids, mask)
    assert torch.allclose(got[:, 1:], raw[:, :-1], atol=1e-5)  # token AT i predicted from state i-1
    assert torch.allclose(got[:, 0], raw[:, 0], atol=1e-5)
    assert not torch.allclose(raw, causal_raw, atol=1e-4)  # the reference really is not causal


def test_dream_loads_without_running_its_remote_code(dream_dir: Path) -> None:
    config = json.loads((dream_dir / "config.json").read_text())
    for target in config["auto_map"].values():
        assert not (dream_dir / (target.split(".")[0] + ".py")).exists()
    loaded = load_model(dream_dir, device="cpu", trust_remote_code=False)
    assert loaded.kind == "decoder" and loaded.family == "dream"
    assert not any("modeling_dream" in name or "configuration_dream" in name for name in sys.modules)


# --- remote code ---

_REMOTE_CONFIG_CODE = """
from transformers import PretrainedConfig


class TinyDiffConfig(PretrainedConfig):
    model_type = "tinydiff"

    def __init__(self, vocab_size=400, hidden_size=16, max_sequence_length=128, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_sequence_length = max_sequence_length
        super().__init__(**kwargs)
"""

_REMOTE_MODEL_CODE = """
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .configuration_tinydiff import TinyDiffConfig


class TinyDiffModel(PreTrainedModel):
    config_class = TinyDiffConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.head = torch.nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def forward(self, input_ids, attention_mask=None, **kwargs):
        hidden = self.embed(input_ids)
        hidden = hidden + hidden.mean(dim=1, keepdim=True)  # every position sees the whole sequence
        return MaskedLMOutput(logits=self.head(hidden))
"""


def _remote_dir(modernbert_dir: Path, out: Path, with_code: bool) -> Path:
    """A LLaDA-style directory: unknown model_type, auto_map to code shipped beside the weights."""
    out.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(modernbert_dir / name, out / name)
    vocab = json.loads((modernbert_dir / "config.json").read_text())["vocab_size"]
    config = {
        "model_type": "tinydiff",
        "architectures": ["TinyDiffModel"],
        "auto_map": {
            "AutoConfig": "configuration_tinydiff.TinyDiffConfig",
            "AutoModel": "modeling_tinydiff.TinyDiffModel",
        },
        "vocab_size": vocab,
        "hidden_size": 16,
        "max_sequence_length": 128,
        "mask_token_id": json.loads((modernbert_dir / "tokenizer.json").read_text())["added_tokens"][1]["id"],
    }
    (out / "config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    weights = {
        "embed.weight": torch.randn(vocab, 16),
        "head.weight": torch.randn(vocab, 16),
        "head.bias": torch.zeros(vocab),
    }
    save_file(weights, str(out / "model.safetensors"))
    if with_code:
        (out / "configuration_tinydiff.py").write_text(_REMOTE_CONFIG_CODE)
        (out / "modeling_tinydiff.py").write_text(_REMOTE_MODEL_CODE)
    return out


def test_unknown_architecture_needs_trust_remote_code(modernbert_dir: Path, tmp_path: Path) -> None:
    remote = _remote_dir(modernbert_dir, tmp_path / "remote", with_code=False)
    with pytest.raises(ModelLoadError, match="--trust-remote-code"):
        load_model(remote, device="cpu")


def test_remote_code_runs_when_the_caller_opts_in(modernbert_dir: Path, tmp_path: Path) -> None:
    remote = _remote_dir(modernbert_dir, tmp_path / "remote", with_code=True)
    loaded = load_model(remote, device="cpu", trust_remote_code=True)
    ids, mask = _batch(loaded, [CODE])
    assert loaded.kind == "remote"
    assert loaded.max_positions == 128
    assert loaded.special.mask_id == _id(loaded, "<|mask|>")
    assert loaded.model.logits(ids, mask).shape == (1, ids.shape[1], loaded.tokenizer.vocab_size)


def test_autoregressive_fim_peer_is_not_a_diffusion_model(dream_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(dream_dir, tmp_path / "ar")
    _edit_config(model_dir, model_type="qwen2", architectures=["Qwen2ForCausalLM"], infill_format="psm")
    _refused(model_dir, "autoregressive fill-in-the-middle model")


def test_unsupported_model_without_remote_code_is_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "gpt")
    _edit_config(model_dir, model_type="gpt2", architectures=["GPT2LMHeadModel"])
    with pytest.raises(ModelLoadError, match="infill runs masked LMs and the Dream"):
        load_model(model_dir, device="cpu", trust_remote_code=True)


# --- refusals: one readable line each ---


def _refused(model: Path | str, match: str) -> None:
    with pytest.raises(ModelLoadError, match=match) as info:
        load_model(model, device="cpu")
    assert "\n" not in str(info.value)


def test_pickle_only_weights_are_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "pickled")
    state = load_file(str(model_dir / "model.safetensors"))
    (model_dir / "model.safetensors").unlink()
    torch.save(state, model_dir / "pytorch_model.bin")
    _refused(model_dir, r"only pickle weights \(pytorch_model.bin\)")


def test_missing_path_is_refused(tmp_path: Path) -> None:
    _refused(tmp_path / "nope", "Model directory not found")


def test_file_instead_of_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("x")
    _refused(tmp_path / "model.txt", "is a file, not a directory")


def test_dir_without_config_is_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "m")
    (model_dir / "config.json").unlink()
    _refused(model_dir, "no config.json")


def test_unparsable_config_is_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "m")
    (model_dir / "config.json").write_text("{not json")
    _refused(model_dir, "Unreadable config.json")


def test_dir_without_tokenizer_is_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "m")
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "tokenizer_config.json").unlink()
    _refused(model_dir, "No tokenizer files")


def test_dir_without_weights_is_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "m")
    (model_dir / "model.safetensors").unlink()
    _refused(model_dir, r"No weights \(\*.safetensors\)")


@pytest.mark.parametrize("fixture", ["modernbert_dir", "dream_dir"])
def test_corrupt_weights_are_refused(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    model_dir = _copy(request.getfixturevalue(fixture), tmp_path / "m")
    weights = model_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    _refused(model_dir, "Could not load the (dream )?model")


def test_weights_of_another_architecture_are_refused(
    modernbert_dir: Path, roberta_dir: Path, tmp_path: Path
) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "m")
    shutil.copy(roberta_dir / "model.safetensors", model_dir / "model.safetensors")
    _refused(model_dir, "do not match its config.json")


# --- where the model comes from ---


def test_explicit_model_beats_env_var(
    modernbert_dir: Path, roberta_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MODEL_ENV_VAR, str(roberta_dir))
    assert resolve_model_dir(modernbert_dir) == modernbert_dir.resolve()
    assert resolve_model_dir() == roberta_dir.resolve()
    assert load_model(device="cpu").name == roberta_dir.name


def test_env_var_pointing_nowhere_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MODEL_ENV_VAR, str(tmp_path / "gone"))
    with pytest.raises(ModelLoadError, match=f"from {MODEL_ENV_VAR}"):
        resolve_model_dir()


def test_missing_bundled_default_says_how_to_choose_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "BUNDLED_MODEL_DIR", tmp_path / "default_model")
    with pytest.raises(ModelLoadError, match=f"pass --model DIR or set {MODEL_ENV_VAR}"):
        load_model(device="cpu")


def test_bundled_default_is_used_when_present(modernbert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setattr(locate, "BUNDLED_MODEL_DIR", modernbert_dir)
    assert resolve_model_dir() == modernbert_dir


def test_generation_defaults_come_from_generation_config(
    modernbert_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model_dir = _copy(modernbert_dir, tmp_path / "m")
    infill = {"strategy": "blocks", "steps": 16, "block_size": 8, "sparkle": True}
    (model_dir / "generation_config.json").write_text(json.dumps({"infill": infill, "do_sample": False}))
    loaded = load_model(model_dir, device="cpu")
    assert loaded.generation_defaults == {"strategy": "blocks", "steps": 16, "block_size": 8}
    assert "sparkle" in caplog.text


# --- devices ---


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFILL_DEVICE", raising=False)
    with pytest.raises(DeviceError, match="no CUDA device is available"):
        resolve_device("cuda")
    with pytest.raises(DeviceError):
        resolve_device("cuda:1")
    monkeypatch.setenv("INFILL_DEVICE", "cuda")
    with pytest.raises(DeviceError):
        resolve_device()
    assert resolve_device("auto") == torch.device("cpu")


def test_device_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFILL_DEVICE", "cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(DeviceError, match="Unknown device 'tpu'"):
        resolve_device("tpu")


# --- the text side ---


@pytest.mark.parametrize("fixture", list(KINDS))
@pytest.mark.parametrize(
    "text", ["def add(a, b):\n\treturn a + b\n", "  x=1;\r\n\ty = 'zz' # ~`!@\n\n", CODE]
)
def test_token_text_concatenates_to_the_text(
    fixture: str, text: str, loaded_models: dict[str, LoadedModel]
) -> None:
    tokenizer = loaded_models[fixture].tokenizer
    ids = tokenizer.encode(text)
    assert "".join(tokenizer.token_text(i) for i in ids) == text
    assert tokenizer.decode(ids) == text


def test_token_text_of_multibyte_text_is_sane(loaded_models: dict[str, LoadedModel]) -> None:
    tokenizer = loaded_models["modernbert_dir"].tokenizer
    text = 'name = "héllo wörld 你好 🙂"\n'
    ids = tokenizer.encode(text)
    pieces = [tokenizer.token_text(i) for i in ids]
    assert tokenizer.decode(ids) == text
    # Whole characters come out exactly; bytes of a split character become U+FFFD, never mojibake.
    assert "".join(pieces).replace("\ufffd", "") == "".join(c for c in text if c.isascii())
    assert all(all(c.isascii() or c == "\ufffd" for c in piece) for piece in pieces)


@pytest.mark.parametrize("fixture", list(KINDS))
def test_encode_adds_no_special_tokens_and_keeps_special_strings_as_text(
    fixture: str, loaded_models: dict[str, LoadedModel]
) -> None:
    loaded = loaded_models[fixture]
    ids = loaded.tokenizer.encode("x = '<|mask|><mask>'")
    assert loaded.special.mask_id not in ids
    assert not set(ids) & set(loaded.special.prefix_ids + loaded.special.suffix_ids)
    assert loaded.tokenizer.vocab_size == len(loaded.tokenizer.hf)  # type: ignore[attr-defined]
    assert loaded.tokenizer.token_text(loaded.special.mask_id) in ("<|mask|>", "<mask>")


def test_token_text_of_a_sentencepiece_style_tokenizer() -> None:
    """Metaspace ("▁" = space) with byte fallback (<0x0A>), as Llama/XLM-R-style tokenizers decode."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from infill.models.text_tokenizer import HFTextTokenizer

    pieces = ["<unk>", "\u2581", *(f"<0x{b:02X}>" for b in range(256)), *(chr(c) for c in range(33, 127))]
    vocab = {p: i for i, p in enumerate(pieces)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", byte_fallback=True))
    backend.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    tokenizer = HFTextTokenizer(PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>"))
    text = "def f(x):\n\treturn x  # é\n"
    ids = tokenizer.encode(text)
    texts = [tokenizer.token_text(i) for i in ids]
    assert tokenizer.decode(ids) == text
    assert "\n" in texts and "\t" in texts  # raw bytes come back as their characters
    assert "".join(texts).replace("\ufffd", "") == text.replace("é", "")


def test_tokenizer_larger_than_the_model_is_refused(modernbert_dir: Path, tmp_path: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    model_dir = _copy(modernbert_dir, tmp_path / "m")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(model_dir))
    tokenizer.add_tokens(["<|never_trained|>"])
    tokenizer.save_pretrained(str(model_dir))
    _refused(model_dir, "has 401 tokens but the model only 400")
