"""A model directory's tokenizer as a fast (tokenizers) tokenizer, without running code shipped with it.

Order: ``tokenizer.json`` (loaded directly, never through AutoTokenizer, which follows config.json's
auto_map); else the slow-tokenizer files a family names how to read (Dream's ``vocab.json`` + ``merges.txt`` +
added tokens: a Qwen2 byte-level BPE); else, only for checkpoints that need their own code and only with
trust_remote_code, AutoTokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from infill.errors import ModelLoadError
from infill.models.families import Family
from infill.models.locate import describe_error, read_json_object

# Qwen2's pre-tokenizer split (transformers' Qwen2Tokenizer and Dream's tokenization_dream.py use this regex).
QWEN2_PRETOKENIZE = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""  # noqa: E501
_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def load_tokenizer(
    model_dir: Path, family: Family, *, trust_remote_code: bool
) -> tuple[PreTrainedTokenizerFast, str]:
    """(tokenizer, where it came from, in words for `infill doctor`)."""
    try:
        if (model_dir / "tokenizer.json").is_file():
            tokenizer, source = PreTrainedTokenizerFast.from_pretrained(str(model_dir)), "tokenizer.json"
        elif family.slow_tokenizer == "qwen2" and (model_dir / "vocab.json").is_file():
            tokenizer = qwen2_bpe_from_files(model_dir)
            source = "vocab.json + merges.txt + added tokens (Qwen2 byte-level BPE, no remote code)"
        elif family.backbone == "remote" and trust_remote_code:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=True)
            source = "the checkpoint's own tokenizer code (trust_remote_code)"
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
            source = f"AutoTokenizer ({type(tokenizer).__name__})"
    except ModelLoadError:
        raise
    except Exception as exc:  # transformers raises many types for a broken tokenizer; report them all alike
        raise ModelLoadError(f"Could not load the tokenizer in {model_dir}: {describe_error(exc)}") from exc
    if not getattr(tokenizer, "is_fast", False) or not hasattr(tokenizer, "backend_tokenizer"):
        raise ModelLoadError(f"The tokenizer in {model_dir} is not a fast (tokenizers) tokenizer")
    return tokenizer, source


def qwen2_bpe_from_files(model_dir: Path) -> PreTrainedTokenizerFast:
    """Qwen2's byte-level BPE from ``vocab.json`` + ``merges.txt``, with the added tokens and their special
    flags.

    Added tokens come from tokenizer_config.json ``added_tokens_decoder`` (contents, ids, special flags) and
    ``added_tokens.json`` (ids of any it does not list, special unless named otherwise); the roles (bos, eos,
    pad, mask...) from tokenizer_config.json, else special_tokens_map.json.
    """
    vocab_path, merges_path = model_dir / "vocab.json", model_dir / "merges.txt"
    if not merges_path.is_file():
        raise ModelLoadError(f"{model_dir} has vocab.json but no merges.txt: cannot build its BPE tokenizer")
    bpe = models.BPE.from_file(str(vocab_path), str(merges_path))
    backend = Tokenizer(bpe)
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    config = read_json_object(model_dir / "tokenizer_config.json")
    special_map = read_json_object(model_dir / "special_tokens_map.json")
    added = _added_tokens(model_dir, config)
    for token_id in sorted(added):  # in id order, so each lands on the id the files give it
        content, special = added[token_id]
        token = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False)
        if token_id != backend.get_vocab_size(with_added_tokens=True):
            raise ModelLoadError(
                f"Added token {content!r} in {model_dir} has id {token_id}, but the vocabulary before it "
                f"ends at {backend.get_vocab_size(with_added_tokens=True)}: the tokenizer files disagree"
            )
        if special:
            backend.add_special_tokens([token])
        else:
            backend.add_tokens([token])
    roles = {role: _content(config.get(role, special_map.get(role))) for role in _ROLES}
    extra = config.get("additional_special_tokens", special_map.get("additional_special_tokens")) or []
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **{role: value for role, value in roles.items() if value is not None},
        additional_special_tokens=[_content(t) for t in extra],
        clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
        model_max_length=config.get("model_max_length", 1_000_000_000),
    )


def _added_tokens(model_dir: Path, config: dict[str, Any]) -> dict[int, tuple[str, bool]]:
    added: dict[int, tuple[str, bool]] = {}
    for token_id, token in (config.get("added_tokens_decoder") or {}).items():
        added[int(token_id)] = (str(token["content"]), bool(token.get("special", True)))
    for content, token_id in read_json_object(model_dir / "added_tokens.json").items():
        added.setdefault(int(token_id), (str(content), True))
    return added


def _content(value: object) -> str | None:
    """A role's token: a plain string or an AddedToken-style {"content": ...} object."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None
