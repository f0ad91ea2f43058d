"""Writing a trained model as a directory the loader reads, with model card, eval numbers and loss curve."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from infill.models.families import END_OF_SPAN_TOKEN, EXPAND_TOKEN, FAMILY_KEY
from training.block_decoder import is_block_decoder
from training.config import TrainConfig
from training.corpus import Corpus
from training.finetune_report import HELDOUT_CE
from training.model_factory import SHIFTED_DECODER, is_shifted_decoder, merged

logger = logging.getLogger(__name__)

MAX_SHARD_SIZE = "14MB"
INFILL_MASKED = "infill-masked"  # the family (infill.models.families) of our ModernBERT models
# Sampler defaults stored with the weights: left-to-right blocks decode code best (measured probe).
# The bundled model's decoding settings (chosen in BENCHMARKS.md, "Decoding speed on the request path"): every
# model the trainer writes decodes the way the shipped default does, so a fine-tuned model is as fast.
DIFFUSION_DECODE_DEFAULTS = {
    "strategy": "blocks",
    "block_size": 8,
    "steps": 32,
    "block_steps": 2,
    "threshold": 0.9,
    "cache_refresh": 32,
    # Trained with end-of-span tails as long as the middle, our models write about as much as their canvas
    # holds: a span grows from a third of its budget (BENCHMARKS.md, "How long a fill is").
    "canvas_share": 0.33,
}
# A model trained with length states decides its length by expand/delete decoding (infill/engine/
# expand_delete.py): DreamOn's eval-generator keys (models/expand_delete.py) beside infill's shared ones,
# greedy, one token committed per step as the authors do.
EXPAND_DELETE_DECODE_DEFAULTS = {
    "infill": {"strategy": "entropy", "steps": 128, "temperature": 0.0},
    "min_gen_len": 4,
    "max_gen_len": 64,
    "number_transfer_tokens": 1,
    "pad_eos_to_right": True,
    "delete_eos_token": True,
}


def export_model_dir(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, out: Path, config: TrainConfig
) -> None:
    """Weights (safetensors, shards <= 14 MB), tokenizer, config.json and generation_config.json."""
    for stale in out.glob("model*.safetensors*"):
        stale.unlink()
    plain = merged(model)
    plain.save_pretrained(str(out), safe_serialization=True, max_shard_size=MAX_SHARD_SIZE)
    tokenizer.save_pretrained(str(out))
    config_path = out / "config.json"
    model_config = json.loads(config_path.read_text())
    if config.objective == "ar-fim":
        model_config["infill_format"] = "psm"
        generation = {"eos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    elif EXPAND_TOKEN in tokenizer.get_vocab():  # our families decode it with expand/delete (families.py)
        generation = json.loads(json.dumps(EXPAND_DELETE_DECODE_DEFAULTS))
    else:
        generation = {"infill": dict(DIFFUSION_DECODE_DEFAULTS)}
    if is_block_decoder(plain):
        # Its family (config.json "infill_family" and "block_size", saved with the weights) decodes it block
        # by block with the family's own defaults.
        model_config["mask_token_id"] = tokenizer.mask_token_id
        generation = {}
    elif config.objective == "block-diffusion":
        # The engine decodes one canvas; this model needs block-by-block decoding (training.block_diffusion).
        model_config.update({"infill_format": "block-diffusion", "infill_block_size": config.block_size})
    vocab = tokenizer.get_vocab()
    ours = END_OF_SPAN_TOKEN in vocab and config.objective == "diffusion" and FAMILY_KEY not in model_config
    if EXPAND_TOKEN in vocab and ours and not is_shifted_decoder(plain):
        # Our masked models are otherwise detected as plain masked LMs, whose family decodes no expansion.
        model_config[FAMILY_KEY] = INFILL_MASKED
    if is_shifted_decoder(plain):
        # The family entry (infill.models.families) loads it bidirectional with shifted logits.
        model_config.update({FAMILY_KEY: SHIFTED_DECODER, "mask_token_id": tokenizer.mask_token_id})
    config_path.write_text(json.dumps(model_config, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")


def write_loss_curve(log_path: Path, png_path: Path) -> None:
    """Training loss (the MDLM loss, 1/t-weighted) and, where evaluated, the held-out cross-entropy per masked
    token (unweighted: the run's one held-out number) against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses, eval_steps, eval_losses = [], [], [], []
    for line in log_path.read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            steps.append(record["step"])
            losses.append(record["loss"])
        elif "eval" in record and record["eval"].get(HELDOUT_CE) is not None:
            eval_steps.append(record["eval"]["step"])
            eval_losses.append(record["eval"][HELDOUT_CE])
    fig, ax = plt.subplots(figsize=(7, 4))
    if len(losses) >= 20:  # a moving average reads better than the raw, noisy per-step losses
        k = max(5, len(losses) // 50)
        smooth = [
            sum(losses[max(0, i - k + 1) : i + 1]) / len(losses[max(0, i - k + 1) : i + 1])
            for i in range(len(losses))
        ]
        ax.plot(steps, losses, alpha=0.25, color="tab:blue")
        ax.plot(steps, smooth, color="tab:blue", label="train (smoothed)")
    else:
        ax.plot(steps, losses, color="tab:blue", label="train")
    if eval_losses:
        ax.plot(eval_steps, eval_losses, "o-", color="tab:orange", label=f"{HELDOUT_CE} (per masked token)")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def _model_kind(out: Path, config: TrainConfig) -> str:
    """What the card calls the model, from the config.json just exported."""
    model_config = json.loads((out / "config.json").read_text())
    architecture = (model_config.get("architectures") or ["?"])[0].removesuffix("ForMaskedLM")
    architecture = architecture.replace("ModernBert", "ModernBERT")
    if config.objective == "ar-fim":
        return "autoregressive FIM peer (Qwen2, PSM)"
    if config.objective == "block-diffusion":
        return f"block diffusion (BD3-LM, {architecture}, blocks of {config.block_size})"
    if model_config.get(FAMILY_KEY) == SHIFTED_DECODER:
        return "masked diffusion (Qwen2-shaped decoder, bidirectional, Dream's shifted logits)"
    return f"masked diffusion ({architecture})"


def _init_lines(init: dict, block: bool) -> list[str]:
    """The AR phase of an AR-initialised model (``block``: a block decoder): its compute belongs to this
    model's total."""
    if not init:
        return []
    steps, tokens = init.get("ar_phase_step", "?"), init.get("ar_phase_tokens")
    cpu = init.get("ar_phase_cpu_s")
    return [
        f"AR phase (counted in this model's compute): the autoregressive FIM peer `{init['init_from_ar']}`, "
        f"{steps} steps, {f'{tokens:,}' if tokens is not None else '?'} tokens"
        + (f", {cpu / 60:.1f} CPU-minutes" if cpu else "")
        + "; its weights started this model, with attention made "
        + ("block-causal (blocks of absolute positions)" if block else "bidirectional")
        + " and a one-position logit shift (the hidden state at i-1 predicts the token at i).",
        "",
    ]


def _objective_text(config: TrainConfig) -> str:
    parts = [config.objective]
    if config.length_states:
        parts.append("with DreamOn's length states (expand/delete)")
    if config.edit_noise:
        parts.append(f"with edit noise {config.edit_noise:g}")
    return ", ".join(parts)


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def write_model_card(
    out: Path,
    config: TrainConfig,
    corpus: Corpus,
    state: dict,
    origin: str,
    evals: dict[str, float | None],
    parameters: int,
    init: dict | None = None,
) -> None:
    """README.md: what the model is, what data (with licences) went into it, how long it trained, how good."""
    manifest = corpus.manifest
    source = manifest["source"]
    kind = _model_kind(out, config)
    lines = [
        f"# {out.name}",
        "",
        f"{'An' if kind[0] in 'aeiou' else 'A'} {kind} code-infilling model trained by the infill training "
        f"pipeline, {origin}.",
        "",
        "## Training",
        "",
        _table(
            [
                ("parameters", f"{parameters:,}"),
                ("steps", str(state["step"])),
                ("tokens seen", f"{state['tokens']:,}"),
                ("wall time", f"{state['elapsed_s'] / 60:.1f} min"),
                ("CPU time of the training process", f"{state.get('cpu_s', 0.0) / 60:.1f} min"),
                ("sequence length", str(config.seq_len)),
                ("batch", f"{config.batch_size} x {config.grad_accum}"),
                ("learning rate", str(config.learning_rate())),
                ("span-infilling share", str(config.span_fraction)),
                ("objective", _objective_text(config)),
            ]
        ),
        "",
        "Full resolved settings: `training_config.json`. Loss curve: `loss_curve.png`.",
        "",
        *_init_lines(init or {}, config.objective == "block-diffusion"),
        "## Held-out evaluation",
        "",
        f"Held-out files (split by file, never by chunk). `{HELDOUT_CE}`: cross-entropy per masked token of "
        f"{config.eval_batches * config.batch_size} held-out examples (the number `infill train` prints and "
        "`finetune_report.json` compares); span exact match and edit similarity on line and block gaps cut "
        "from them.",
        "",
        _table([(k, "n/a" if v is None else f"{v:.4f}") for k, v in evals.items()]),
        "",
        "## Data",
        "",
    ]
    if source["kind"] == "git":
        lines += [
            f"Files tracked by git in `{source['repo']}` at commit `{source['commit']}` (ignored files are "
            "never read; likely secrets, generated, minified, vendored and duplicate files skipped)."
        ]
    elif source["kind"] == "archive":
        lines += _archive_data_lines(source)
    else:
        lines += [
            "Python files of installed distributions whose licence metadata is permissive "
            "(MIT, BSD, Apache-2.0, PSF, ISC...). Distributions used:",
            "",
            "| distribution | version | licence | characters |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {d['name']} | {d['version']} | {d['license']} | {d['chars']:,} |"
            for d in source["distributions_used"]
            if d["chars"]
        ]
        rejected = ", ".join(f"{d['name']} ({d['license']})" for d in source["distributions_rejected"])
        lines += ["", f"Rejected (not permissive or unknown licence): {rejected or 'none'}."]
    lines += [
        "",
        _table(
            [
                ("files", str(manifest["files"])),
                ("train files", str(len(manifest["train_files"]))),
                ("held-out files", str(len(manifest["heldout_files"]))),
                ("train characters", f"{manifest['train_chars']:,}"),
                ("languages", ", ".join(f"{k} {v}" for k, v in manifest["languages"].items())),
                ("skipped", ", ".join(f"{k} {v}" for k, v in manifest["skipped"].items()) or "none"),
            ]
        ),
        "",
        "Every file used and held out is listed in `training_manifest.json`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def _archive_data_lines(source: dict) -> list[str]:
    """The data section for a corpus archive: every origin with its licence, files and characters."""
    origins = [o for o in source["origins"] if o.get("chars")]
    lines = [
        "A corpus archive (`python -m training.archive`): permissively licensed packages from PyPI and npm "
        "(licence metadata and shipped licence files both checked), and the installed distributions and "
        "standard library of the machine that trained it (licence metadata), filtered and de-duplicated "
        f"across all of them. Records file sha256 `{source.get('records_sha256')}`. Origins used:",
        "",
        "| origin | licence | files | characters |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {o['origin']} | {o['license']} | {o['files']:,} | {o['chars']:,} |" for o in origins]
    rejected = "; ".join(f"{r['origin']} ({r['reason']})" for r in source.get("rejected", []))
    return [*lines, "", f"Rejected: {rejected or 'none'}."]
