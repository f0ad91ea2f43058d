"""Paired comparisons of two models on the same items: mean difference with a t confidence interval.

Both models are scored on the same gaps (or the same masked examples), so the per-item differences carry the
comparison and the item-to-item spread cancels: the interval is ``mean(d) +- t(n-1) * sd(d) / sqrt(n)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist, fmean, stdev
from typing import Literal


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile, Cornish-Fisher expansion (error < 1e-3 for df >= 5, < 1e-5 for df >= 30)."""
    z = NormalDist().inv_cdf(p)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@dataclass(frozen=True)
class PairedComparison:
    """``tuned - base`` on n paired items; ``better`` says which direction is an improvement."""

    base: float
    tuned: float
    difference: float
    low: float
    high: float
    n: int
    level: float
    better: Literal["higher", "lower"]

    @property
    def improved(self) -> bool:
        """The whole interval lies on the better side of zero: a gain beyond noise."""
        return self.low > 0 if self.better == "higher" else self.high < 0

    @property
    def worse(self) -> bool:
        return self.high < 0 if self.better == "higher" else self.low > 0

    def to_dict(self) -> dict:
        return {**asdict(self), "improved": self.improved, "worse": self.worse}


def paired_interval(
    base: Sequence[float],
    tuned: Sequence[float],
    *,
    better: Literal["higher", "lower"] = "higher",
    level: float = 0.95,
) -> PairedComparison:
    """Mean of each and the ``level`` t interval of the mean paired difference ``tuned - base``."""
    if len(base) != len(tuned):
        raise ValueError(f"paired samples differ in length: {len(base)} vs {len(tuned)}")
    if len(base) < 2:
        raise ValueError("a paired interval needs at least two items")
    differences = [t - b for b, t in zip(base, tuned, strict=True)]
    n = len(differences)
    mean = fmean(differences)
    half = t_quantile(0.5 + level / 2, n - 1) * stdev(differences) / math.sqrt(n)
    return PairedComparison(fmean(base), fmean(tuned), mean, mean - half, mean + half, n, level, better)
