"""The ``<|expand|>`` token that length states (training/length_states.py) train: added when missing.

A model trained with ``--length-states`` predicts ``<|expand|>`` at a masked position that stands for two
tokens. A tokenizer (ours, or a base model's) without it gains it as a special added token, and the model's
embedding matrix (tied or not: the LM head follows) one row, initialised to the mean of the existing rows so
its first logits are neutral rather than random. The row then learns from the expand targets.
"""

from __future__ import annotations

import torch
from tokenizers import AddedToken
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from training.length_states import EXPAND_TOKEN


def transformers_model(model: torch.nn.Module) -> PreTrainedModel:
    """The transformers model inside ``model`` (training.diffusion_decoder wraps base decoders)."""
    inner = getattr(model, "transformers_model", None)
    return inner() if callable(inner) else model  # type: ignore[return-value]


def ensure_expand_token(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Add ``<|expand|>`` to ``tokenizer`` and a row for it to ``model`` when the tokenizer lacks it.

    True when something was added. An id already inside the model's embedding (a padding row past the
    tokenizer) is reused and re-initialised; otherwise the embedding grows by exactly the rows needed."""
    if EXPAND_TOKEN in tokenizer.get_vocab():
        return False
    tokenizer.add_tokens([AddedToken(EXPAND_TOKEN, special=True, normalized=False)], special_tokens=True)
    expand_id = tokenizer.convert_tokens_to_ids(EXPAND_TOKEN)
    hf = transformers_model(model)
    embeddings = hf.get_input_embeddings()
    rows = embeddings.weight.shape[0]
    if expand_id >= rows:
        hf.resize_token_embeddings(expand_id + 1, mean_resizing=False)
        embeddings = hf.get_input_embeddings()
    with torch.no_grad():
        embeddings.weight[expand_id] = embeddings.weight[: min(rows, expand_id)].mean(0)
        head = hf.get_output_embeddings()
        if head is not None and head.weight.data_ptr() != embeddings.weight.data_ptr():
            head.weight[expand_id] = head.weight[: min(rows, expand_id)].mean(0)
            if getattr(head, "bias", None) is not None:
                head.bias[expand_id] = head.bias[: min(rows, expand_id)].mean()
    return True
