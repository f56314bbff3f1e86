"""Confidence intervals for the report: bootstrap over episodes, paired differences on seeds.

Every interval is a 95% bootstrap interval (``scipy.stats.bootstrap``, BCa, 2000
resamples, a fixed random state so a report is reproducible) of either the mean or the
interquartile mean (IQM: the mean of the middle 50%, Agarwal et al. 2021, robust to a few
outlying episodes).  A sample whose values are all equal has the degenerate interval
``(v, v)``; a sample of one has ``(nan, nan)``.  Rates of rare events (collisions,
off-road) get Wilson score intervals instead (:func:`wilson`), which do not collapse to a
point when no episode had the event.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the values between the 25th and 75th percentiles."""
    return stats.trim_mean(x, 0.25, axis=axis)


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 3) -> str:
        if not np.isfinite(self.value):
            return "-"
        if not np.isfinite(self.low):
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap(values: Sequence[float], statistic: str = "mean") -> Estimate:
    """The statistic (``mean`` or ``iqm``) of ``values`` with its 95% bootstrap interval.
    Non-finite values are dropped (a metric an episode could not measure)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    fn = {"mean": np.mean, "iqm": iqm}[statistic]
    if len(x) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    value = float(fn(x, axis=-1))
    if len(x) == 1:
        return Estimate(value, float("nan"), float("nan"), 1)
    if np.all(x == x[0]):
        return Estimate(value, value, value, len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the fallback below
        res = stats.bootstrap(
            (x,),
            fn,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="BCa",
            random_state=np.random.default_rng(SEED),
            vectorized=True,
        )
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (
        np.isfinite(low) and np.isfinite(high)
    ):  # BCa undefined (e.g. nearly constant): percentile
        res = stats.bootstrap(
            (x,),
            fn,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            random_state=np.random.default_rng(SEED),
            vectorized=True,
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return Estimate(value, low, high, len(x))


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> Estimate:
    """A rate with its 95% Wilson score interval.  Used for the shares of episodes that end in
    a collision or off the road: a bootstrap of 0 events in n gives the useless interval
    (0, 0), Wilson gives (0, ~3.8/n)."""
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    p = successes / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return Estimate(p, max(0.0, c - h), min(1.0, c + h), n)


@dataclass(frozen=True)
class Paired:
    """``a`` against ``b`` on the seeds both ran: mean difference ``a - b`` with its interval,
    and the share of seeds each wins (ties counted apart)."""

    difference: Estimate
    a_wins: float
    b_wins: float
    ties: float
    n: int


def paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    """Compare two agents seed by seed (dicts seed -> value) on their shared seeds."""
    seeds = sorted(set(a) & set(b))
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    d = d[np.isfinite(d)]
    n = len(d)
    if n == 0:
        return Paired(bootstrap([]), float("nan"), float("nan"), float("nan"), 0)
    return Paired(
        bootstrap(d), float(np.mean(d > 0)), float(np.mean(d < 0)), float(np.mean(d == 0)), n
    )
