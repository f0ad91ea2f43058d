"""Training configuration: one dataclass, every field overridable from the command line (--field-name).

The resolved config is written beside the checkpoint (``training_config.json``) so a run can be reproduced
and resumed with the same settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args, get_origin, get_type_hints

from infill.errors import TrainingError

Objective = Literal["diffusion", "ar-fim", "block-diffusion"]
DEFAULT_STEPS = 450  # the defaults sweep: 450 steps of every weight at lr 5e-4 (BENCHMARKS.md)
LORA_ABOVE_PARAMETERS = 1_000_000_000
UNBOUNDED_STEPS = 10**9  # a time budget without --max-steps: the budget ends the run


@dataclass
class TrainConfig:
    # What to train on and where the model goes.
    repo: str | None = None  # a git repository (files git tracks)
    from_python_packages: bool = False  # permissively licensed installed distributions instead of a repo
    corpus_archive: str | None = None  # recipe: a corpus archive dir (python -m training.archive) instead
    out: str = "infill-model"
    objective: Objective = "diffusion"  # "ar-fim": the autoregressive fill-in-the-middle peer
    block_size: int = 8  # block diffusion: tokens per block
    # Starting point: a model dir to fine-tune (None = the bundled default), or from scratch.
    base: str | None = None
    from_scratch: bool = False
    # AR-initialised diffusion (Dream / DiffuCoder): start from this AR FIM peer's weights, bidirectional.
    from_ar: str | None = None
    tokenizer: str | None = None  # from scratch: reuse this dir's tokenizer (the AR peer shares it)
    lora: bool | None = None  # None: LoRA for a base of over LORA_ABOVE_PARAMETERS (resolve_lora)
    lora_rank: int = 16
    # Model size when training from scratch.
    vocab_size: int = 8192
    hidden_size: int = 256
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    max_positions: int = 1024
    # Data.
    seq_len: int = 256
    span_fraction: float = 0.6  # share of span-infilling examples (rest: plain MDLM / next-token windows)
    edit_noise: float = 0.0  # share of unmasked canvas positions given a plausible wrong token to undo
    length_states: bool = False  # DreamOn's expand/delete states: the model learns how long a fill is
    heldout_fraction: float | None = None  # None: 0.1 for a repo, 0.05 for python packages
    max_corpus_chars: int = 12_000_000
    max_chars_per_distribution: int = 250_000
    # Optimisation.
    batch_size: int = 8
    grad_accum: int = 1
    max_steps: int | None = None  # None: DEFAULT_STEPS, or as many as a time budget allows
    minutes: float | None = None  # wall-clock budget: the schedule anneals over it and the run ends there
    max_cpu_minutes: float | None = None  # the same in CPU time of this process (equal-compute comparisons)
    lr: float | None = None  # None: 2e-3 from scratch, 5e-4 fine-tuning (1e-3 with LoRA)
    warmup_steps: int = 20
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)
    data_workers: int = 0  # recipe: processes drawing batches ahead (a GPU outruns one Python process)
    compile: bool = False  # torch.compile the encoder stack (~10% faster steps after a minute or two)
    # Evaluation and checkpoints.
    eval_every: int = 100  # held-out loss
    eval_batches: int = 16  # held-out examples: eval_batches x batch_size, the same at every evaluation
    eval_spans: int = 128  # held-out gaps decoded at the end
    eval_name_spans: int = 64  # fine-tuning: held-out gaps that use names the repository defines
    span_eval_every: int = 0  # decode the held-out gaps every N steps too (0: only at the end; slow)
    save_every: int = 50
    keep_checkpoints: int = 2
    resume: bool = False  # continue the interrupted run in ``out`` from its last checkpoint
    force: bool = False  # train again although ``out`` holds a finished or interrupted run
    update: bool = False  # continue the finished model in ``out`` on the files changed since its commit
    compare_base: bool = True  # fine-tuning: also score the base model on the same held-out gaps

    def step_limit(self) -> int:
        """--max-steps when given; else as many as fit the time budget, or DEFAULT_STEPS without one."""
        if self.max_steps is not None:
            return self.max_steps
        return UNBOUNDED_STEPS if self.minutes or self.max_cpu_minutes else DEFAULT_STEPS

    def resolve_lora(self, parameters: int) -> bool:
        """--lora / --no-lora when given; else LoRA only for a base of over LORA_ABOVE_PARAMETERS, whose
        AdamW state (two more copies of every weight) would not fit a laptop. Smaller bases train every
        weight: on the bundled model that gained the most on the repository's names, without costing general
        code beyond noise (BENCHMARKS.md, "Fine-tuning defaults")."""
        if self.lora is None:
            self.lora = parameters > LORA_ABOVE_PARAMETERS
        return self.lora

    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.from_ar:
            return 1e-3
        if self.from_scratch:
            return 2e-3
        return 1e-3 if self.lora else 5e-4

    def validate(self) -> None:
        sources = (self.repo is not None, self.from_python_packages, self.corpus_archive is not None)
        if not any(sources):
            raise TrainingError(
                "nothing to train on: pass --repo PATH, --from-python-packages or --corpus-archive DIR"
            )
        if sum(sources) > 1:
            raise TrainingError(
                "pass one of --repo, --from-python-packages and --corpus-archive, not several"
            )
        if self.objective == "ar-fim" and not self.from_scratch:
            raise TrainingError("the ar-fim model is trained from scratch: add --from-scratch")
        if self.objective == "block-diffusion" and not (self.from_scratch or self.from_ar):
            raise TrainingError("the block-diffusion model is trained --from-scratch or --from-ar PEER")
        if self.objective == "block-diffusion" and not 1 <= self.block_size <= self.seq_len // 12:
            # An example holds its context, its middle (a third of --seq-len at most) and its noisy copy.
            raise TrainingError(f"--block-size must be between 1 and --seq-len / 12 ({self.seq_len // 12})")
        conflicting = self.objective == "ar-fim" or self.from_scratch or self.base or self.lora
        if self.from_ar and conflicting:
            raise TrainingError("--from-ar takes no --from-scratch, --base or --lora")
        if self.seq_len < 32 or self.seq_len > self.max_positions:
            raise TrainingError(f"--seq-len must be between 32 and --max-positions ({self.max_positions})")
        if self.hidden_size % self.num_heads:
            raise TrainingError("--hidden-size must be a multiple of --num-heads")
        if self.step_limit() < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise TrainingError("--max-steps, --batch-size and --grad-accum must be positive")
        if not 0 <= self.edit_noise < 1 or (self.edit_noise and self.objective != "diffusion"):
            raise TrainingError("--edit-noise is a share in [0, 1), for the diffusion objective only")
        if self.length_states and (self.objective != "diffusion" or self.lora):
            raise TrainingError(
                "--length-states is for the diffusion objective without --lora (the new <|expand|> row "
                "must train)"
            )
        if self.eval_batches < 1:
            raise TrainingError("--eval-batches must be positive: the held-out cross-entropy needs examples")
        if self.force and (self.update or self.resume):
            raise TrainingError("--force starts over: it takes no --update or --resume")
        if self.update and (self.repo is None or self.from_scratch or self.from_ar):
            raise TrainingError(
                "--update continues a model fine-tuned on --repo (not --from-scratch or --from-ar)"
            )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.to_json())


# Help for the options whose name does not say it all.
HELP = {
    "repo": "git repository to train on, only files git tracks are read (infill train: current directory)",
    "from_python_packages": "train on permissively licensed installed Python distributions instead of a repo",
    "corpus_archive": "train on a corpus archive (python -m training.archive build/merge) instead of a repo",
    "out": "output model directory (checkpoints in OUT/checkpoints; see --resume, --update, --force)",
    "objective": "diffusion (masked diffusion, the default), ar-fim (the autoregressive FIM peer) or "
    "block-diffusion (BD3-LM: autoregressive over blocks, masked diffusion inside; with --from-ar "
    "block-causal throughout, decoded by the engine with its exact prefix cache; from scratch, its own "
    "decoder)",
    "base": "model directory to fine-tune (default: the bundled model)",
    "from_scratch": "train a new tokenizer and model instead of fine-tuning",
    "tokenizer": "with --from-scratch: reuse the tokenizer of this model directory",
    "lora": "fine-tune LoRA adapters (peft) instead of all weights, merged on save (default: LoRA for a base "
    "of over 1B parameters, all weights below)",
    "span_fraction": "share of span-infilling examples (the rest are plain MDLM / next-token windows)",
    "edit_noise": "diffusion only: share of the unmasked canvas positions of a training example given a "
    "plausible wrong token (another identifier, a swapped operator, a literal off by one, and/or, "
    "True/False) whose original the model learns, for edit mode's in-place scores (0: none)",
    "length_states": "diffusion only: span examples carry DreamOn's expand/delete states (adjacent masks "
    "merged into one <|expand|> target, 0-64 end tokens to delete), so the model decides how long a fill is; "
    "adds <|expand|> to the tokenizer when missing and the written model decodes with expand/delete",
    "from_ar": "start a bidirectional diffusion model from this AR FIM peer's weights (Dream recipe); with "
    "--objective block-diffusion, a block-causal one (Fast-dLLM v2 recipe)",
    "max_steps": f"optimizer steps (default: {DEFAULT_STEPS}; with --minutes or --max-cpu-minutes and no "
    "--max-steps, as many as fit the budget)",
    "minutes": "time budget in minutes of wall time: the learning rate anneals over it and the run stops and "
    "saves at it (default: none)",
    "max_cpu_minutes": "stop and save after this much CPU time of this process (fair on a shared machine)",
    "compile": "torch.compile the encoder stack (faster steps after a one-off compile)",
    "eval_every": "held-out cross-entropy every N steps",
    "eval_batches": "held-out batches for the held-out cross-entropy (per masked token; console, model card "
    "and fine-tuning report score the same examples)",
    "eval_name_spans": "fine-tuning: held-out gaps whose answer uses a name the repository defines",
    "resume": "continue the interrupted run in --out from its last checkpoint",
    "force": "train again from the start although --out holds a finished or interrupted run",
    "update": "continue the finished model in --out on the training files changed since the commit it "
    "was trained on (as many steps as give them the passes the first run gave the repository)",
    "span_eval_every": "also decode the held-out gaps every N steps (0: only at the end)",
    "threads": "torch CPU threads (default: torch's choice)",
    "heldout_fraction": "share of files held out (default: 0.1 for a repo, 0.05 for python packages)",
    "lr": "peak learning rate (default: 2e-3 from scratch, 5e-4 fine-tuning, 1e-3 with LoRA)",
    "data_workers": "processes that draw batches ahead of the optimizer and index the corpus (0: none)",
    "eval_spans": "held-out gaps decoded and scored (exact match, edit similarity); fine-tuning compares the "
    "base on the same gaps and held-out examples (cross-entropy, masked-token accuracy)",
    "compare_base": "when fine-tuning, also score the base model on the same held-out gaps",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(field: dataclasses.Field) -> str:
    """The option's help: its description, then its default unless it has none (None) or says its own."""
    text = HELP.get(field.name, "")
    if field.default is None or "default:" in text:
        return text
    return f"{text} (default: {field.default})".strip()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--field-name`` option per TrainConfig field; defaults stay None so only given flags override."""
    hints = get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        hint = hints[field.name]
        if get_origin(hint) is Literal:
            kind = hint
        else:  # X | None -> X
            kind = next(a for a in get_args(hint) if a is not type(None)) if get_args(hint) else hint
        if kind is bool:
            parser.add_argument(
                _flag(field.name),
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=_help(field),
            )
        elif get_origin(kind) is Literal:
            parser.add_argument(
                _flag(field.name),
                dest=field.name,
                choices=get_args(kind),
                default=None,
                help=_help(field),
            )
        else:
            parser.add_argument(
                _flag(field.name),
                dest=field.name,
                type=kind,
                default=None,
                help=_help(field),
            )


def config_from_args(args: argparse.Namespace, base: TrainConfig | None = None) -> TrainConfig:
    """``base`` (or the defaults) updated with every option given on the command line."""
    config = dataclasses.replace(base) if base is not None else TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        value = getattr(args, field.name, None)
        if value is not None:
            setattr(config, field.name, value)
    return config
