"""The fine-tuning report: paired intervals computed right, every field present, printed for people."""

from __future__ import annotations

import math

import pytest

from training.finetune_report import METRICS, build_report, format_report
from training.paired import paired_interval, t_quantile


def test_t_quantiles_match_the_table() -> None:
    # Student's t, two-sided 95%: df 9, 30, 127 (printed tables / scipy.stats.t.ppf).
    for df, expected in ((9, 2.262157), (30, 2.042272), (127, 1.978817)):
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-4)


def test_paired_interval_on_a_known_sample() -> None:
    base = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.00]
    deltas = [0.05, 0.15, -0.05, 0.10, 0.20, 0.00, 0.10, 0.25, 0.05, 0.15]
    tuned = [b + d for b, d in zip(base, deltas, strict=True)]
    result = paired_interval(base, tuned)
    # By hand: mean 0.10, sample sd 0.0882, t(0.975, 9) = 2.2622, half width 2.2622 * 0.0882 / sqrt(10).
    mean = sum(deltas) / 10
    sd = math.sqrt(sum((d - mean) ** 2 for d in deltas) / 9)
    half = 2.262157 * sd / math.sqrt(10)
    assert result.difference == pytest.approx(0.10)
    assert (result.low, result.high) == (
        pytest.approx(mean - half, abs=1e-4),
        pytest.approx(mean + half, abs=1e-4),
    )
    assert result.base == pytest.approx(0.55) and result.tuned == pytest.approx(0.65)
    assert result.improved and not result.worse and result.n == 10
    # Lower is better (a loss): the same numbers are a significant worsening.
    as_loss = paired_interval(base, tuned, better="lower")
    assert as_loss.worse and not as_loss.improved
    # A sample whose differences straddle zero is within noise either way.
    noisy = paired_interval([0.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0])
    assert noisy.low < 0 < noisy.high and not noisy.improved and not noisy.worse


def test_paired_interval_refuses_unpaired_samples() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        paired_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least two"):
        paired_interval([1.0], [2.0])


def test_report_has_every_metric_with_its_interval_and_prints() -> None:
    n = 6
    base = {
        "heldout_cross_entropy": [4.0, 4.2, 3.9, 4.1, 4.3, 4.0],
        "masked_token_accuracy": [0.2] * n,
        "edit_similarity": [0.1, 0.3, 0.2, 0.2, 0.1, 0.3],
        "exact_match": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    }
    tuned = {
        "heldout_cross_entropy": [3.5, 3.8, 3.4, 3.7, 3.7, 3.5],
        "masked_token_accuracy": [0.25, 0.3, 0.26, 0.22, 0.3, 0.28],
        "edit_similarity": [0.1, 0.3, 0.2, 0.2, 0.1, 0.3],
        "exact_match": [0.0, 1.0, 1.0, 0.0, 0.0, 0.0],
    }
    report = build_report(base, tuned, base_dir="base", tuned_dir="tuned", source="repo")
    assert set(report["metrics"]) == {name for name, _, _ in METRICS if not name.startswith("names_")}
    for numbers in report["metrics"].values():
        assert {"base", "tuned", "difference", "low", "high", "n", "level", "improved", "worse"} <= set(
            numbers
        )
        assert numbers["low"] <= numbers["difference"] <= numbers["high"] and numbers["n"] == n
    assert report["improved"] == ["heldout_cross_entropy", "masked_token_accuracy"]
    assert report["heldout_examples"] == report["heldout_gaps"] == n
    text = format_report(report)
    assert "heldout_cross_entropy" in text and "better" in text and "within noise" in text
    assert "-0.4833" in text  # the loss difference, signed
    # No gap used a repository name: those rows are left out, and the last line says so.
    assert report["name_gaps"] == 0 and "names_edit_similarity" not in report["metrics"]
    assert text.splitlines()[-1] == (
        "tuned on repository names: too few held-out gaps to compare; does not beat base on general code "
        "beyond noise (+0.000 [+0.000, +0.000]) (edit similarity of the fills, paired 95% interval)"
    )


def test_the_last_line_says_where_the_tuned_model_wins_beyond_noise() -> None:
    general = [0.20, 0.30, 0.10, 0.40, 0.25, 0.35]
    base = {
        "heldout_cross_entropy": [3.0] * 6,
        "masked_token_accuracy": [0.4] * 6,
        "edit_similarity": general,
        "exact_match": [0.0] * 6,
        "names_edit_similarity": [0.10, 0.20, 0.15, 0.05, 0.10, 0.20],
        "names_exact_match": [0.0] * 6,
        "names_recalled": [0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    }
    tuned = {
        **base,
        "edit_similarity": [
            g + d for g, d in zip(general, [0.05, -0.05, 0.02, -0.02, 0.01, -0.01], strict=True)
        ],
        "names_edit_similarity": [0.30, 0.45, 0.35, 0.20, 0.30, 0.50],
        "names_recalled": [1.0, 1.0, 1.0, 0.0, 1.0, 1.0],
    }
    report = build_report(base, tuned, base_dir="b", tuned_dir="t", source="r")
    assert report["name_gaps"] == 6 and "names_recalled" in report["improved"]
    last = format_report(report).splitlines()[-1]
    names = report["metrics"]["names_edit_similarity"]
    assert last.startswith(
        f"tuned beats base on repository names by {names['difference']:+.3f} "
        f"[{names['low']:+.3f}, {names['high']:+.3f}]; does not beat base on general code beyond noise ("
    )
    worse = build_report(tuned, base, base_dir="b", tuned_dir="t", source="r")
    assert "is worse than base on repository names by -0.217" in format_report(worse).splitlines()[-1]
    # With the names' tokens scored in place, the line also says what the model learned of them.
    knows = {"names_cross_entropy": [3.0, 3.2, 2.9, 3.1, 3.3, 3.0], "names_token_accuracy": [0.2] * 6}
    learned = {**knows, "names_cross_entropy": [2.5, 2.8, 2.4, 2.7, 2.7, 2.5]}
    report = build_report(base | knows, tuned | learned, base_dir="b", tuned_dir="t", source="r")
    assert format_report(report).splitlines()[-1].endswith(
        "(edit similarity of the fills, paired 95% interval); it predicts the names' tokens better "
        "(cross-entropy -0.483 [-0.562, -0.404])"
    )
