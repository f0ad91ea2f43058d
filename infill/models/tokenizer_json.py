"""A model directory's ``tokenizer.json`` read with the tokenizers library alone.

transformers' fast tokenizer is a thin layer over a ``tokenizers.Tokenizer``: it adds the roles (mask, eos,
pad...) named in ``tokenizer_config.json`` and calls the backend for encoding and decoding. Importing
transformers for that layer costs seconds, a large part of a cold ``infill complete``. Where the layer adds
nothing but the roles (our own models, most released ``tokenizer.json`` files), ``TokenizerJson`` is that
layer: the part of ``PreTrainedTokenizerFast``'s API the loader uses, with the same results (tests compare
both on every test tokenizer). Anything more (a tokenizer class whose constructor changes the backend,
``add_bos_token`` flags, a role that is not in the vocabulary) is left to transformers:
``read_tokenizer_json`` returns None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tokenizers import AddedToken, Tokenizer

from infill.models.locate import read_json_object

ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
# tokenizer_config.json classes that take tokenizer.json as it is.
PLAIN_CLASSES = (None, "PreTrainedTokenizerFast", "TokenizersBackend")
# Settings with which transformers changes what tokenizer.json does.
_REWRITING_KEYS = ("add_bos_token", "add_eos_token", "add_prefix_space", "legacy", "split_special_tokens")
VERY_LARGE_INTEGER = int(1e30)  # transformers' "no limit" model_max_length


class FastTokenizer(Protocol):
    """What the loader reads from a tokenizer: ``PreTrainedTokenizerFast`` or ``TokenizerJson``."""

    model_max_length: int
    mask_token_id: int | None
    eos_token_id: int | None
    sep_token_id: int | None
    pad_token_id: int | None
    bos_token_id: int | None
    cls_token_id: int | None
    unk_token_id: int | None

    @property
    def backend_tokenizer(self) -> Tokenizer: ...

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]: ...

    def get_vocab(self) -> dict[str, int]: ...

    def __len__(self) -> int: ...

    def __call__(
        self, text: str, *, add_special_tokens: bool = ..., split_special_tokens: bool = ...
    ) -> Any: ...

    def decode(
        self, token_ids: list[int], skip_special_tokens: bool = ..., clean_up_tokenization_spaces: bool = ...
    ) -> str: ...


class TokenizerJson:
    """A ``tokenizers.Tokenizer`` with its roles; see the module docstring."""

    is_fast = True

    def __init__(self, backend: Tokenizer, roles: dict[str, str], model_max_length: int) -> None:
        # As transformers does: the backend neither pads nor truncates what it encodes.
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self.roles = roles
        self.model_max_length = model_max_length
        ids = {role: backend.token_to_id(token) for role, token in roles.items()}
        self.mask_token_id = ids.get("mask_token")
        self.eos_token_id = ids.get("eos_token")
        self.sep_token_id = ids.get("sep_token")
        self.pad_token_id = ids.get("pad_token")
        self.bos_token_id = ids.get("bos_token")
        self.cls_token_id = ids.get("cls_token")
        self.unk_token_id = ids.get("unk_token")

    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._backend

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return self._backend.get_added_tokens_decoder()

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def __call__(
        self, text: str, *, add_special_tokens: bool = True, split_special_tokens: bool = False
    ) -> dict[str, list[int]]:
        # split_special_tokens: special-token strings in the text are encoded as text.
        self._backend.encode_special_tokens = split_special_tokens
        return {"input_ids": self._backend.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(
        self,
        token_ids: list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool = False,
    ) -> str:
        assert not clean_up_tokenization_spaces, "TokenizerJson never cleans up spaces (read_tokenizer_json)"
        return self._backend.decode(token_ids, skip_special_tokens=skip_special_tokens)


def read_tokenizer_json(model_dir: Path) -> TokenizerJson | None:
    """The directory's tokenizer.json as a ``TokenizerJson``, or None when transformers must build it."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        return None
    config = read_json_object(model_dir / "tokenizer_config.json")
    special_map = read_json_object(model_dir / "special_tokens_map.json")
    if config.get("tokenizer_class") not in PLAIN_CLASSES or config.get("auto_map"):
        return None
    if any(config.get(key) for key in _REWRITING_KEYS) or config.get("clean_up_tokenization_spaces"):
        return None
    backend = Tokenizer.from_file(str(path))
    present = role_tokens(config, special_map)
    extra = [
        token_content(token)
        for key in ("additional_special_tokens", "extra_special_tokens")
        for token in (config.get(key) or special_map.get(key) or [])
    ]
    special = {token.content for token in backend.get_added_tokens_decoder().values() if token.special}
    # transformers would add a missing role or extra special token to the vocabulary, or mark it special.
    if any(token not in special for token in [*present.values(), *extra]):
        return None
    max_length = config.get("model_max_length", VERY_LARGE_INTEGER)
    return TokenizerJson(backend, present, max_length if isinstance(max_length, int) else VERY_LARGE_INTEGER)


def role_tokens(config: dict[str, Any], special_map: dict[str, Any]) -> dict[str, str]:
    """The roles (bos, eos, pad, mask...) tokenizer_config.json names, else special_tokens_map.json: role ->
    token; roles neither names are left out."""
    roles = {role: token_content(config.get(role, special_map.get(role))) for role in ROLES}
    return {role: token for role, token in roles.items() if token is not None}


def token_content(value: object) -> str | None:
    """A role's token: a plain string or an AddedToken-style {"content": ...} object."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None
