"""Adapts a Hugging Face fast tokenizer to the engine's TextTokenizer protocol."""

from __future__ import annotations

import json
import logging
import re

from transformers import PreTrainedTokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

logger = logging.getLogger(__name__)

_METASPACE = "\u2581"
_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class HFTextTokenizer:
    """Plain token ids for text: no special tokens added, and special-token strings in user text stay text.

    ``token_text`` is the exact text one token contributes. For byte-level BPE (GPT-2/Qwen/our code
    tokenizer) a token is a byte string; a token holding only part of a multi-byte UTF-8 character has no
    text of its own, so each incomplete byte sequence becomes U+FFFD (what ``decode`` prints for it too).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerFast) -> None:
        self.hf = tokenizer
        self._added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
        self._piece_of_id = {i: piece for piece, i in tokenizer.get_vocab().items()}
        decoders = _decoder_types(tokenizer)
        self._byte_level = "ByteLevel" in decoders
        # SentencePiece style (XLM-R, Llama): "▁" stands for a space, <0x0A> for a raw byte.
        self._metaspace = "Metaspace" in decoders or "ByteFallback" in decoders
        self._byte_of_char = {c: b for b, c in bytes_to_unicode().items()}
        # token healing asks for the same few thousand ids over and over
        self._text_of_id: dict[int, str] = {}

    def encode(self, text: str) -> list[int]:
        # split_special_tokens: code that happens to contain "<|mask|>" must not become a mask position.
        return list(self.hf(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def token_text(self, token_id: int) -> str:
        text = self._text_of_id.get(token_id)
        if text is None:
            text = self._text_of_id[token_id] = self._uncached_token_text(token_id)
        return text

    def _uncached_token_text(self, token_id: int) -> str:
        if token_id in self._added:
            return self._added[token_id]
        piece = self._piece_of_id.get(token_id)
        if piece is None:
            return ""
        if self._byte_level and all(c in self._byte_of_char for c in piece):
            return bytes(self._byte_of_char[c] for c in piece).decode("utf-8", errors="replace")
        if self._metaspace:
            byte = _BYTE_FALLBACK.fullmatch(piece)
            if byte:
                return bytes([int(byte.group(1), 16)]).decode("utf-8", errors="replace")
            return piece.replace(_METASPACE, " ")
        # WordPiece and others: decoding one id is the best context-free answer those schemes give.
        return self.hf.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)

    @property
    def vocab_size(self) -> int:
        # len() counts added tokens (mask, pad, end of span...), which .vocab_size leaves out.
        return len(self.hf)


def _decoder_types(tokenizer: PreTrainedTokenizerFast) -> set[str]:
    """Types of the backend decoder and of the parts of a Sequence decoder ("ByteLevel", "Metaspace"...)."""
    decoder = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {str(part.get("type")) for part in parts}
