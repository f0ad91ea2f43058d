"""Fine-tuning runs a user can read and repeat: one held-out number, gaps on the repository's own names, a
repeat that is a no-op, --update, --resume after a real interrupt, and files others can read."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_training_fixtures import git, make_repo
from tests.test_training_trainer import TINY
from training.config import TrainConfig
from training.corpus import corpus_from_git
from training.repo_names import defined_names, name_gaps
from training.trainer import train

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def _module(i: int) -> str:
    """Module i defines its own helpers and calls those of its two neighbours (so every held-out module
    uses names that training modules define), and mentions one in a comment (not a use)."""
    name, prev, nxt = WORDS[i], WORDS[i - 1], WORDS[(i + 1) % len(WORDS)]
    return (
        f'"""Widgets, part {name}."""\n'
        f"from pkg import mod_{prev}, mod_{nxt}\n\n"
        f"WIDGET_LIMIT_{name.upper()} = {i + 3}\n\n\n"
        f"def make_widget_{name}(size):\n"
        f"    # make_widget_{prev} is the one before\n"
        f"    base = mod_{prev}.make_widget_{prev}(size)\n"
        f"    return base + mod_{nxt}.make_widget_{nxt}(size) + WIDGET_LIMIT_{name.upper()}\n\n\n"
        f"class {name.title()}Registry:\n"
        f"    def register_{name}(self, item):\n"
        f"        self.registered_{name} = make_widget_{name}(item)\n"
        f"        return self.registered_{name}\n"
    )


NAMED_SOURCES = {f"pkg/mod_{w}.py": _module(i) for i, w in enumerate(WORDS)}
# The tiny model and run of the trainer tests, as command-line flags; a few more held-out examples and gaps.
TINY_RUN = [
    *(item for key, value in TINY.items() for item in (f"--{key.replace('_', '-')}", str(value))),
    *("--eval-batches", "2", "--eval-spans", "3", "--save-every", "100", "--eval-every", "100"),
]


def test_names_the_repository_defines_and_gaps_on_their_uses(tmp_path: Path) -> None:
    corpus = corpus_from_git(make_repo(tmp_path / "r", NAMED_SOURCES), heldout_fraction=0.25)
    assert corpus.train and corpus.heldout
    names = defined_names(corpus.train)
    trained = [p.removeprefix("pkg/mod_").removesuffix(".py") for p in corpus.manifest["train_files"]]
    for word in trained:
        for name in (
            f"make_widget_{word}",
            f"{word.title()}Registry",
            f"register_{word}",
            f"registered_{word}",
        ):
            assert name in names, name
        assert f"WIDGET_LIMIT_{word.upper()}" in names
    assert not names & {"size", "item", "base", "self"}  # parameters, locals: not the repository's names
    gaps = name_gaps(corpus.train, corpus.heldout, 50)
    assert len(gaps) >= 2
    texts = {f.path: f.text for f in corpus.heldout}
    for gap in gaps:
        row = gap.row
        assert row.prefix + row.middle + row.suffix in texts[row.path]  # cut from a held-out file
        assert row.middle.startswith(gap.name) and gap.name in names and "\n" not in row.middle
        assert not row.prefix.endswith("# ")  # a use in code, not the mention in a comment
    assert name_gaps(corpus.train, corpus.heldout, 50) == gaps  # seeded: the same gaps for every model


def test_weights_get_the_umask_mode_within_what_the_directory_allows(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from training.file_modes import share_files

    previous = os.umask(0o022)
    try:
        for dir_mode, expected in ((0o755, 0o644), (0o750, 0o640), (0o700, 0o600)):
            directory = tmp_path / f"d{dir_mode:o}"
            directory.mkdir(mode=dir_mode)
            save_file({"w": torch.zeros(2)}, str(directory / "model.safetensors"))
            share_files(directory)
            assert stat.S_IMODE((directory / "model.safetensors").stat().st_mode) == expected, dir_mode
    finally:
        os.umask(previous)


@pytest.fixture(scope="module")
def named_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("named") / "repo", NAMED_SOURCES)


@pytest.fixture(scope="module")
def tiny_base(named_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("base") / "base"
    common = {"save_every": 100, "eval_every": 100, **TINY}
    config = TrainConfig(repo=str(named_repo), out=str(out), from_scratch=True, max_steps=2, **common)
    train(config)
    return out


def _cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    from infill_cli.main import main

    code = main(["train", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


def test_one_held_out_number_a_verdict_and_a_repeat_that_is_a_no_op(
    named_repo: Path, tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "tuned"
    args = [
        "--repo",
        str(named_repo),
        "--base",
        str(tiny_base),
        "--out",
        str(out),
        "--max-steps",
        "2",
        *TINY_RUN,
    ]
    previous = os.umask(0o027)
    try:
        code, printed, err = _cli(args, capsys)
    finally:
        os.umask(previous)
    assert code == 0, err
    # The console, the model card and the report (printed and JSON) give the same held-out number.
    (console,) = re.findall(r"^heldout_cross_entropy (\d+\.\d{4}) \(per masked token", printed, re.M)
    (card,) = re.findall(
        r"^\| heldout_cross_entropy \| (\d+\.\d{4}) \|$", (out / "README.md").read_text(), re.M
    )
    (row,) = re.findall(r"^heldout_cross_entropy\s+\d+\.\d{4}\s+(\d+\.\d{4})\s", printed, re.M)
    report = json.loads((out / "finetune_report.json").read_text())
    assert console == card == row == f"{report['metrics']['heldout_cross_entropy']['tuned']:.4f}"
    assert report["heldout_examples"] == 4  # --eval-batches 2 x --batch-size 2
    # A small base trains every weight by default, and the written config says what was resolved.
    assert json.loads((out / "training_config.json").read_text())["lora"] is False
    assert "(LoRA)" not in (out / "README.md").read_text()
    # Gaps on the repository's own names are scored beside the general ones; the report ends with the verdict.
    assert report["name_gaps"] >= 2 and "names_edit_similarity" in report["metrics"]
    knows = report["metrics"]["names_cross_entropy"]  # the names' tokens, scored in place for both models
    assert knows["n"] == report["name_gaps"] and knows["base"] != knows["tuned"]
    verdict = printed.splitlines()[-2]  # the last line says where the report was written
    assert verdict.startswith("tuned ") and "on repository names" in verdict and "on general code" in verdict
    assert "(edit similarity of the fills, paired 95% interval); " in verdict
    assert "names' tokens" in verdict and f"{knows['difference']:+.3f}" in verdict
    # Progress shows steps, tokens per second and the time left.
    assert "tok/s=" in err and "left=" in err and "2/2" in err
    # Written with the user's umask (0027), not safetensors' 0600.
    for name in ("model.safetensors", "README.md", "finetune_report.json", "config.json"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o640, name

    # The same command again: nothing loaded or trained, and it says so.
    weights, log = _mtime(out / "model.safetensors"), (out / "train_log.jsonl").read_text()
    code, printed, err = _cli(args, capsys)
    assert code == 0 and printed.startswith(f"{out} is up to date: trained 2 steps on commit ")
    assert "tuned " in printed.splitlines()[-1]  # with the report it finished with
    assert _mtime(out / "model.safetensors") == weights and (out / "train_log.jsonl").read_text() == log
    assert "loading" not in err

    # Other settings: an error that names the choices; --force trains again from the start.
    code, _, err = _cli([*args, "--max-steps", "3"], capsys)
    assert code != 0 and "--update" in err and "--force" in err and "Traceback" not in err
    code, printed, _ = _cli([*args, "--max-steps", "3", "--force"], capsys)
    assert code == 0 and "steps 3," in printed
    steps = [
        r["step"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r
    ]
    assert steps == [1, 2, 3]


def test_update_trains_on_what_changed_since_the_commit(
    named_repo: Path, tiny_base: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    repo = make_repo(tmp_path / "repo", NAMED_SOURCES)
    out = tmp_path / "tuned"
    args = ["--repo", str(repo), "--base", str(tiny_base), "--out", str(out), "--max-steps", "4", *TINY_RUN]
    assert _cli(args, capsys)[0] == 0
    first = json.loads((out / "run_complete.json").read_text())
    code, printed, _ = _cli([*args, "--update"], capsys)
    assert code == 0 and "is up to date: trained 4 steps" in printed
    changed = json.loads((out / "training_manifest.json").read_text())["train_files"][0]
    (repo / changed).write_text((repo / changed).read_text() + "\n\ndef brand_new_helper(x):\n    return x\n")
    git(repo, "commit", "-qam", "a new helper")

    code, printed, err = _cli([*args, "--update"], capsys)
    assert code == 0, err
    assert f"updating from commit {first['commit'][:12]}: 1 training files changed" in err
    assert json.loads((out / "training_manifest.json").read_text())["train_files"] == [changed]
    report = json.loads((out / "finetune_report.json").read_text())
    assert report["base"] == str(out / "previous_model")  # compared with the model it continued
    assert (out / "previous_model" / "model.safetensors").is_file()
    done = json.loads((out / "run_complete.json").read_text())
    assert done["commit"] != first["commit"] and 1 <= done["steps"] <= 4 and done["basis"] == first["basis"]
    # Up to date now, with --update or without.
    for extra in (["--update"], []):
        code, printed, err = _cli([*args, *extra], capsys)
        assert code == 0 and "is up to date" in printed, err
    # A commit that touches only held-out files leaves nothing to train on.
    heldout = json.loads((out / "training_manifest.json").read_text())["heldout_files"][0]
    (repo / heldout).write_text((repo / heldout).read_text() + "\n# more\n")
    git(repo, "commit", "-qam", "a comment")
    code, printed, _ = _cli([*args, "--update"], capsys)
    assert code == 0 and "is up to date: no training file changed since commit" in printed


def _log_steps(out: Path) -> list[int]:
    return [
        r["step"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r
    ]


def test_resume_after_a_real_interrupt_continues_from_the_checkpoint(
    named_repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "infill_cli.main", "train", "--repo", str(named_repo), "--out", str(out),
        "--from-scratch", *TINY_RUN, "--save-every", "2", "--eval-spans", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    # Output to files, not pipes: nothing reads a pipe while we wait, and a full one blocks the trainer.
    stdout_path, stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with (
        stdout_path.open("w") as stdout,
        stderr_path.open("w") as stderr,
        subprocess.Popen([*command, "--max-steps", "1000000"], env=env, stdout=stdout, stderr=stderr) as proc,
    ):
        # The event: some checkpoint is written. Not step_2 by name: on an idle machine the trainer is
        # hundreds of steps further before a poll sees it, and only the last few checkpoints are kept.
        while proc.poll() is None and not any((out / "checkpoints").glob("step_*/trainer_state.json")):
            time.sleep(0.05)
        assert proc.poll() is None, stderr_path.read_text()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=300)
    printed, err = stdout_path.read_text(), stderr_path.read_text()
    assert proc.returncode == 130, err
    assert "add --resume to the same command to continue" in printed
    stopped = json.loads((out / "training_state.json").read_text())["step"]
    assert stopped >= 2 and (out / "checkpoints" / f"step_{stopped}" / "trainer_state.json").is_file()
    assert _log_steps(out) == list(range(1, stopped + 1))

    again = [*command, "--max-steps", str(stopped + 2)]
    refused = subprocess.run(again, env=env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and not (out / "run_complete.json").exists()
    assert f"holds an interrupted run (checkpoint at step {stopped}): --resume continues it" in refused.stderr
    assert "Traceback" not in refused.stderr

    resumed = subprocess.run([*again, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming from step {stopped}" in resumed.stderr
    assert _log_steps(out) == list(range(1, stopped + 3))  # continued after the checkpoint, nothing redone
