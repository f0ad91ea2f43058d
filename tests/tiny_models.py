"""Tiny randomly initialised model directories of every supported kind, built on disk (no downloads).

Each builder writes a Hugging Face layout directory: config.json, model.safetensors, tokenizer files.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    ModernBertConfig,
    ModernBertForMaskedLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    RobertaConfig,
    RobertaForMaskedLM,
)

from training.tokenizer import train_code_tokenizer

CODE_SAMPLES = [
    "def add(a, b):\n    return a + b\n",
    "def greet(name):\n    print('hello', name)\n    return name\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n",
    "function add(a, b) {\n  return a + b;\n}\nconst x = add(1, 2);\n",
    'fn main() {\n    let x = 5;\n    println!("{}", x);\n}\n',
    'func main() {\n\tfmt.Println("hi")\n}\n',
    "int main(void) {\n    return 0;\n}\n",
    "public class A {\n    public static void main(String[] args) {}\n}\n",
    "import os\nimport sys\n\nprint(os.getcwd(), sys.argv)\n",
] * 20


def _save(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def build_modernbert(
    out: Path, seed: int = 0, max_positions: int = 512, hidden_size: int = 32, num_layers: int = 2
) -> Path:
    """Our default architecture: ModernBERT masked LM with the project's code tokenizer (tiny by default;
    larger sizes make decoding slow on purpose)."""
    torch.manual_seed(seed)
    tokenizer = train_code_tokenizer(CODE_SAMPLES, vocab_size=400)
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=max(2, hidden_size // 64),
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.eos_token_id,
        global_attn_every_n_layers=1,
        local_attention=64,
    )
    return _save(ModernBertForMaskedLM(config), tokenizer, out)


def _bert_style_tokenizer() -> PreTrainedTokenizerFast:
    """RoBERTa/CodeBERT-style: <s> ... </s> around every sequence, <mask>, no end-of-span token."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CODE_SAMPLES, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        clean_up_tokenization_spaces=False,
    )


def build_roberta(out: Path, seed: int = 0) -> Path:
    """A generic HF masked LM with a mask token (CodeBERT-style)."""
    torch.manual_seed(seed)
    tokenizer = _bert_style_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return _save(RobertaForMaskedLM(config), tokenizer, out)


def build_dream(out: Path, seed: int = 0) -> Path:
    """A Dream-family directory: Qwen2 weights, config as Dream ships it (remote-code auto_map included)."""
    torch.manual_seed(seed)
    tok = train_code_tokenizer(CODE_SAMPLES, vocab_size=400)
    # Dream's tokenizer: <|endoftext|> is eos and pad, <|mask|> is the mask token.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok.backend_tokenizer,
        mask_token="<|mask|>",
        pad_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
    )
    qwen = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    _save(Qwen2ForCausalLM(qwen), tokenizer, out)
    config = json.loads((out / "config.json").read_text())
    config.update(
        {
            "model_type": "Dream",
            "architectures": ["DreamModel"],
            "auto_map": {
                "AutoConfig": "configuration_dream.DreamConfig",
                "AutoModel": "modeling_dream.DreamModel",
            },
            "mask_token_id": tokenizer.mask_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def build_x_model(out: Path, seed: int = 0) -> Path:
    """The tiny ModernBERT with its output bias pushed to the token "x": wherever the rest of the stack lets
    it, it fills "xxxx", so `value = ` completes to an identifier (valid) and `value = 1 <|fill|>` can only be
    filled with invalid code. Deterministic, for tests that must see a valid or an invalid fill every time.
    " x" is favoured a little less: where only a token starting with a blank may come (after a healed trailing
    blank, `value = |`), the fill still starts with "x"."""
    build_modernbert(out, seed=seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(out))
    (x_id,) = tokenizer.encode("x", add_special_tokens=False)
    (blank_x_id,) = tokenizer.encode(" x", add_special_tokens=False)
    return push_bias_towards_x(out, "decoder.bias", x_id, blank_x_id)


def push_bias_towards_x(model_dir: Path, bias: str, x_id: int, blank_x_id: int) -> Path:
    """The output bias tensor ``bias`` of ``model_dir/model.safetensors`` raised for "x" (+30) and a little
    less for " x" (+25), in place."""
    return push_bias(model_dir, bias, {x_id: 30.0, blank_x_id: 25.0})


def push_bias(model_dir: Path, bias: str, raise_by: dict[int, float]) -> Path:
    """The output bias tensor ``bias`` of ``model_dir/model.safetensors`` raised per token id, in place."""
    from safetensors.torch import load_file, save_file

    weights = load_file(model_dir / "model.safetensors")
    for token_id, amount in raise_by.items():
        weights[bias][token_id] += amount
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    return model_dir


def build_preferring_model(out: Path, preferred: dict[str, float], seed: int = 0) -> Path:
    """The tiny ModernBERT with its output bias raised for the given token texts (each must be one token):
    wherever a position is masked, it picks among them by their raise (+30 each makes them near-equally
    likely; +31 makes one the sure favourite), and any other token there is one it reliably rejects."""
    build_modernbert(out, seed=seed)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(out))
    raise_by: dict[int, float] = {}
    for text, amount in preferred.items():
        (token_id,) = tokenizer.encode(text, add_special_tokens=False)
        raise_by[token_id] = amount
    return push_bias(out, "decoder.bias", raise_by)


def build_edit_model(out: Path) -> Path:
    """The tiny ModernBERT biased towards the tokens of `    return a + b` (tests/conftest.py EDIT_CLEAN_LINE;
    +30 each, " b" +31): it is sure of
    that line as written, rejects any other token there (e.g. a planted " x") and puts " b" in its place."""
    preferred = {"   ": 30.0, " return": 30.0, " a": 30.0, " +": 30.0, " b": 31.0, "\n": 30.0}
    return build_preferring_model(out, preferred)
