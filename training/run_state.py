"""Is the run in OUT finished, interrupted or new? Decided from small files, before any model is loaded.

A run that ends by its steps or time budget (not by a signal) writes ``run_complete.json``: its fingerprint
(the settings that shape the model, the training and held-out files, the base model's weights), the commit it
trained on, its steps and tokens. Then, for the same ``out``:
  same fingerprint            the model is up to date: nothing is loaded or trained (``--force`` redoes it)
  other settings or data      an error that names the choices: ``--update``, ``--resume`` or ``--force``
  a checkpoint, unfinished    an interrupted run: ``--resume`` continues it, ``--force`` starts over
``--update`` continues the finished model on the training files that changed since its commit: the model is
first copied to ``OUT/previous_model`` (the base of the update and of its report), and the update trains as
many steps as give the changed code the passes over it that the first run gave the whole repository.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from infill.errors import TrainingError
from training.config import TrainConfig
from training.corpus import Corpus

DONE_FILE = "run_complete.json"
PREVIOUS_DIR = "previous_model"
LOG_FILE = "train_log.jsonl"
# How to run, not what to train: changing these leaves the model the same.
NOT_THE_MODEL = frozenset({"out", "resume", "force", "update", "threads", "data_workers", "compile"})
MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "*.json", "README.md", "*.txt")


@dataclass
class RunPlan:
    up_to_date: str | None = None  # the message when nothing needs training
    checkpoint: Path | None = None  # resume from here
    done: dict | None = None  # the finished run's record (up to date, or the start of an update)
    note: str | None = None  # what an update will do, for the console


def latest_checkpoint(out: Path) -> Path | None:
    steps = sorted(
        (int(p.name.removeprefix("step_")), p)
        for p in (out / "checkpoints").glob("step_*")
        if (p / "trainer_state.json").is_file()
    )
    return steps[-1][1] if steps else None


def fingerprint(config: TrainConfig, corpus: Corpus, base_dir: Path | None) -> str:
    """sha256 of what the model is made from: settings, every file's path and text, the base's weights."""
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in NOT_THE_MODEL}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for split, files in (("train", corpus.train), ("heldout", corpus.heldout)):
        for source in sorted(files, key=lambda f: f.path):
            digest.update(f"\0{split}\0{source.path}\0".encode())
            digest.update(source.text.encode("utf-8", "surrogatepass"))
    if base_dir is not None:
        digest.update(str(base_dir.resolve()).encode())
        for weights in sorted(base_dir.glob("*.safetensors")):
            stat = weights.stat()
            digest.update(f"\0{weights.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def read_done(directory: Path) -> dict | None:
    path = directory / DONE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_done(out: Path, record: dict) -> None:
    """Atomically, so an interrupted write never leaves a run that looks finished."""
    staging = out / f".{DONE_FILE}.tmp"
    staging.write_text(json.dumps({**record, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
    os.replace(staging, out / DONE_FILE)


def _interrupted(out: Path, checkpoint: Path, what: str) -> TrainingError:
    step = json.loads((checkpoint / "trainer_state.json").read_text())["step"]
    return TrainingError(
        f"{out} holds {what} (checkpoint at step {step}): --resume continues it, --force starts over"
    )


def plan_run(config: TrainConfig, out: Path, corpus: Corpus, fp: str) -> RunPlan:
    """What this invocation does with ``out``; errors say which flag to add. ``--force`` clears the way."""
    if config.force:
        for stale in ("checkpoints", PREVIOUS_DIR):
            shutil.rmtree(out / stale, ignore_errors=True)
        for stale in (DONE_FILE, LOG_FILE):
            (out / stale).unlink(missing_ok=True)
        return RunPlan()
    if config.update:
        return _plan_update(config, out, corpus, fp)
    done, checkpoint = read_done(out), latest_checkpoint(out)
    if done is not None and done["fingerprint"] == fp:
        return RunPlan(up_to_date=_up_to_date(out, done), done=done)
    if checkpoint is not None and config.resume:
        return RunPlan(checkpoint=checkpoint)
    if done is not None:
        raise TrainingError(
            f"{out} holds a model trained on other data or settings (commit {done['commit'][:12]}): --update "
            "continues it on the files changed since, --resume continues its training with these settings, "
            "--force trains it again from the start"
        )
    if checkpoint is not None:
        raise _interrupted(out, checkpoint, "an interrupted run")
    return RunPlan()


def _up_to_date(out: Path, done: dict) -> str:
    return (
        f"{out} is up to date: trained {done['steps']} steps on commit {done['commit'][:12]} with these "
        "settings and files (--force trains it again)"
    )


def _plan_update(config: TrainConfig, out: Path, corpus: Corpus, fp: str) -> RunPlan:
    """Narrow ``corpus.train`` to the changed files and point ``config`` at the previous model."""
    previous = out / PREVIOUS_DIR
    done = read_done(out)
    if done is not None and done["fingerprint"] == fp:
        return RunPlan(up_to_date=_up_to_date(out, done), done=done)
    started = done is None and read_done(previous) is not None  # an update was interrupted: same start
    start = read_done(previous) if started else done
    if start is None or config.repo is None:
        raise TrainingError(
            f"--update continues a finished fine-tuning run on a repository and {out} holds none: "
            "run the same command without --update first"
        )
    changed = changed_paths(Path(config.repo), start["commit"])
    train = [f for f in corpus.train if f.path in changed]
    if not train:
        return RunPlan(
            up_to_date=f"{out} is up to date: no training file changed since commit {start['commit'][:12]}",
            done=done or start,
        )
    checkpoint = latest_checkpoint(out) if started else None
    if checkpoint is not None and not config.resume:
        raise _interrupted(out, checkpoint, "an interrupted update")
    if not started:
        _snapshot(out, previous)
    basis = start["basis"]
    chars = sum(len(f.text) for f in train)
    steps = min(config.step_limit(), max(1, math.ceil(basis["steps"] * chars / max(1, basis["train_chars"]))))
    corpus.train = train
    corpus.manifest = {
        **corpus.manifest,
        "train_files": sorted(f.path for f in train),
        "train_chars": chars,
        "update_of_commit": start["commit"],
    }
    config.base = str(previous)  # LoRA, if asked, adapts the merged previous model
    config.max_steps, config.warmup_steps = steps, min(config.warmup_steps, max(1, steps // 10))
    note = (
        f"updating from commit {start['commit'][:12]}: {len(train)} training files changed ({chars:,} "
        f"characters), {steps} steps from {previous}"
    )
    return RunPlan(checkpoint=checkpoint, done=start, note=note)


def changed_paths(repo: Path, commit: str) -> set[str]:
    """Tracked paths whose content differs between ``commit`` and the working tree (staged or not)."""
    root = ["git", "-C", str(repo)]
    if subprocess.run([*root, "cat-file", "-e", f"{commit}^{{commit}}"], capture_output=True).returncode:
        raise TrainingError(
            f"commit {commit[:12]}, which the model was trained on, is not in {repo} (rebased, or another "
            "clone?): --force trains the model again"
        )
    listed = subprocess.run(
        [*root, "diff", "--name-only", "-z", "--no-renames", commit], capture_output=True, check=True
    ).stdout
    return {p.decode("utf-8", "surrogateescape") for p in listed.split(b"\0") if p}


def _snapshot(out: Path, previous: Path) -> None:
    """Copy the finished model (weights, config, tokenizer, card, its run record) to ``previous`` and move its
    training log there; its checkpoints and completion mark go: the update starts a new run in ``out``."""
    shutil.rmtree(previous, ignore_errors=True)
    previous.mkdir()
    for pattern in MODEL_FILES:
        for path in out.glob(pattern):
            shutil.copy2(path, previous / path.name)
    if (out / LOG_FILE).is_file():
        os.replace(out / LOG_FILE, previous / LOG_FILE)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    (out / DONE_FILE).unlink()
