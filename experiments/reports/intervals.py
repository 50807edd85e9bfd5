"""Confidence intervals the report's views share."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["mean_ci95"]


def mean_ci95(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (NaN with fewer than two values)."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return float(array.mean()) if array.size else math.nan, math.nan
    half_width = stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size)
    return float(array.mean()), float(half_width)
