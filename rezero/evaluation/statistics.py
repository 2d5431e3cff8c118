"""Accuracies reported with their noise: intervals for shares and means, and paired tests for A against B.

Every question is one unit. A share of right answers gets a Wilson interval; a mean over questions (sampled
accuracy, pass@1 as the share of correct samples per question) gets a percentile bootstrap over questions.
Two systems scored on the same questions are compared pairwise: McNemar's exact test on the discordant
questions, a bootstrap interval for the mean per-question difference, and a sign-flip permutation test.
With several training seeds a question is still one unit: its outcomes are averaged over the seeds before
questions are resampled or their signs flipped. The distributions come from scipy (`binomtest`,
`bootstrap`, `permutation_test`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ROUND_DIGITS = 4  # as_dict rounds to this many decimals: finer digits are below any interval's width here


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval; `n` is the number of units (questions) resampled."""

    estimate: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        """The fields for a metrics file, rounded to 4 decimals."""
        return {
            "estimate": round(self.estimate, ROUND_DIGITS),
            "low": round(self.low, ROUND_DIGITS),
            "high": round(self.high, ROUND_DIGITS),
            "n": self.n,
        }


# -------------------- input checks
def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def _vector(values: Sequence[float], name: str) -> np.ndarray:
    """`values` as a 1-D float array of finite numbers (NaN would silently poison every resample)."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a flat sequence of numbers, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _paired(a: Sequence[float], b: Sequence[float], what: str = "") -> tuple[np.ndarray, np.ndarray]:
    """`a` and `b` as arrays of the same length, at least 2 units (one unit has no spread to resample)."""
    a_array, b_array = _vector(a, f"a{what}"), _vector(b, f"b{what}")
    if len(a_array) != len(b_array):
        raise ValueError(
            f"paired outcomes{what} differ in length: a has {len(a_array)}, b has {len(b_array)}"
        )
    if len(a_array) < 2:
        raise ValueError(f"paired outcomes{what} need at least 2 units, got {len(a_array)}")
    return a_array, b_array


def _strata(
    a: Mapping[Hashable, Sequence[float]], b: Mapping[Hashable, Sequence[float]]
) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
    """Seed → (a, b) arrays, checked: the same seeds on both sides, equal lengths within each seed."""
    only_a = [seed for seed in a if seed not in b]
    only_b = [seed for seed in b if seed not in a]
    if only_a or only_b:
        raise ValueError(f"seeds must match: only in a {only_a}, only in b {only_b}")
    if not a:
        raise ValueError("no seeds given: a and b are empty")
    return {seed: _paired(a[seed], b[seed], f" of seed {seed!r}") for seed in a}


def _average_over_seeds(arrays: Mapping[Hashable, np.ndarray]) -> np.ndarray:
    """Each question's outcome averaged over the seeds, which must hold the same questions in the same order:
    a question answered under three seeds is still one unit."""
    counts = {seed: len(v) for seed, v in arrays.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"every seed must hold the same questions; questions per seed: {counts}")
    return np.mean(list(arrays.values()), axis=0)


def _mean(values: np.ndarray) -> float:
    """The mean, exact for a constant array (summing n copies of 0.1 does not give n·0.1)."""
    return float(values[0]) if np.all(values == values[0]) else float(values.mean())


# -------------------- shares
def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for the share `successes / n`, which stays inside [0, 1] even at 0 or n.

    Example: 9 right answers out of 32 give about (0.156, 0.454) at 95 %.
    """
    _check_confidence(confidence)
    if n <= 0:
        raise ValueError(f"a share needs at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mcnemar_exact(wins: int, losses: int) -> float:
    """Exact two-sided McNemar p for paired right/wrong outcomes of A and B on the same questions.

    `wins` counts questions B got right and A wrong, `losses` the reverse; questions both got right (or
    wrong) say nothing about the difference. Under no difference each discordant question is a fair coin.
    Example: 6 wins and 0 losses give p = 2 · 0.5⁶ = 0.03125; no discordant questions give 1.0.
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses are counts, got wins={wins}, losses={losses}")
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


# -------------------- means over questions (percentile bootstrap)
def _bootstrap_mean(values: np.ndarray, confidence: float, resamples: int, seed: int) -> Interval:
    """Mean of `values` with a percentile bootstrap interval over its units.

    A constant array returns [c, c] directly: every resample has mean c, and scipy's quantiles of a
    constant distribution need not equal c to the last bit.
    """
    _check_confidence(confidence)
    estimate = _mean(values)
    if np.all(values == values[0]):
        return Interval(estimate, estimate, estimate, len(values))
    result = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high), len(values))


def mean_interval(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Mean over questions with a percentile bootstrap interval, questions resampled with replacement.

    For sampled accuracy (pass@1): each question's value is its share of correct samples. Example: values
    of 1 for 16 questions and 0 for 16 give 0.5 with an interval of about (0.33, 0.67).
    """
    array = _vector(values, "values")
    if len(array) < 2:
        raise ValueError(f"a bootstrap interval needs at least 2 units, got {len(array)}")
    return _bootstrap_mean(array, confidence, resamples, seed)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean of `b - a` per question with a percentile bootstrap interval over questions.

    `a[i]` and `b[i]` are the outcomes of the same question, so the pairing removes the questions' own
    difficulty from the noise. Example: B right on every question A got wrong, and both right elsewhere,
    give a constant difference and the degenerate interval [c, c].
    """
    a_array, b_array = _paired(a, b)
    return _bootstrap_mean(b_array - a_array, confidence, resamples, seed)


def mean_over_seeds(
    values: Mapping[Hashable, Sequence[float]],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean over seeds of the mean per-question value, with a bootstrap interval over questions.

    Keys are training seeds; `values[s][i]` is question i's outcome under seed s, the same questions in the
    same order under every seed. A question is one unit however many seeds answered it: its outcomes are
    first averaged over the seeds (they are correlated: every seed continues the same warm start), then the
    questions are resampled with replacement (`mean_interval`). So three seeds of one model give that model's
    one-seed interval, not a narrower one; seed-to-seed noise is only as visible as the number of seeds
    allows (one seed works, and the caller should say so). Example: seeds with constant values 0 and 1 give
    0.5 and the interval [0.5, 0.5]. `n` is the number of questions.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not values:
        raise ValueError("no seeds given")
    per_question = _average_over_seeds({s: _vector(v, f"values of seed {s!r}") for s, v in values.items()})
    if len(per_question) < 2:
        raise ValueError(f"at least 2 questions are needed, got {len(per_question)}")
    return _bootstrap_mean(per_question, confidence, resamples, seed)


def paired_difference_over_seeds(
    a: Mapping[Hashable, Sequence[float]],
    b: Mapping[Hashable, Sequence[float]],
    *,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Mean over seeds of the mean per-question difference `b - a`, with a bootstrap interval over questions
    (`mean_over_seeds` of the differences). `a[s][i]` and `b[s][i]` are the outcomes of question i under
    seed s. Example: seeds with constant differences 0 and 1 give 0.5 and the interval [0.5, 0.5]."""
    differences = {seed_: b_s - a_s for seed_, (a_s, b_s) in _strata(a, b).items()}
    return mean_over_seeds(differences, confidence=confidence, resamples=resamples, seed=seed)


# -------------------- permutation test
def _mean_difference(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_permutation_p(
    a: Mapping[Hashable, Sequence[float]],
    b: Mapping[Hashable, Sequence[float]],
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided p of a sign-flip permutation test of "B and A score the same", one cluster per question.

    Keys are seeds; every seed must hold the same questions in the same order. Each question's outcomes
    are first averaged over seeds (a question answered under three seeds is still one question), then the
    null swaps A and B within each question, i.e. flips the sign of its difference. Exact when 2^questions
    is at most `resamples`, randomised otherwise. Example: B better on 28 of 32 questions and never worse
    gives p < 0.01; all differences zero give 1.0.
    """
    strata = _strata(a, b)
    a_mean = _average_over_seeds({seed: a_s for seed, (a_s, _) in strata.items()})
    b_mean = _average_over_seeds({seed: b_s for seed, (_, b_s) in strata.items()})
    if np.all(b_mean == a_mean):
        return 1.0
    result = stats.permutation_test(
        (b_mean, a_mean),
        _mean_difference,
        permutation_type="samples",
        vectorized=True,
        n_resamples=resamples,
        alternative="two-sided",
        rng=np.random.default_rng(seed),
    )
    return float(result.pvalue)
