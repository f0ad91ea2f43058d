"""Repository held-out evaluation: gaps come from held-out files only and are scored per row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tests.test_training_fixtures import SOURCES, make_repo
from training.corpus import corpus_from_git
from training.repo_eval import evaluate_rows, heldout_rows


def test_rows_come_from_heldout_files_and_rebuild_the_file(tmp_path: Path) -> None:
    corpus = corpus_from_git(make_repo(tmp_path / "r", SOURCES), heldout_fraction=0.3)
    rows = heldout_rows(corpus.heldout, 20, seed=0)
    assert len(rows) == 20
    heldout = {f.path: f.text for f in corpus.heldout}
    for row in rows:
        assert row.path in heldout
        assert row.prefix + row.middle + row.suffix in heldout[row.path]
        assert row.middle.strip() and row.kind in ("line", "block")
        if row.kind == "line":
            assert "\n" not in row.middle
    assert {r.kind for r in rows} == {"line", "block"}
    assert rows == heldout_rows(corpus.heldout, 20, seed=0)  # the same gaps every time


def test_scores_count_exact_and_partial_matches(tmp_path: Path) -> None:
    corpus = corpus_from_git(make_repo(tmp_path / "r", SOURCES), heldout_fraction=0.3)
    rows = heldout_rows(corpus.heldout, 10, seed=1)
    answers = {(r.prefix, r.suffix): r.middle for r in rows}

    def right_for_lines(batch: Sequence[tuple[str, str]]) -> list[str]:
        return [answers[row] + "  " for row in batch]  # trailing whitespace is not a difference

    def empty(batch: Sequence[tuple[str, str]]) -> list[str]:
        return ["" for _ in batch]

    lines = sum(r.kind == "line" for r in rows)
    scores = evaluate_rows(rows, {"line": right_for_lines, "block": empty})
    assert scores["rows"] == 10
    assert abs(scores["exact_match"] - lines / 10) < 1e-9
    assert lines / 10 - 1e-9 <= scores["edit_similarity"] < 1.0
