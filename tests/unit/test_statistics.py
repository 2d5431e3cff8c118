"""The statistics behind reported accuracies (rezero/evaluation/statistics.py), checked against hand-computed
values."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from rezero.evaluation.statistics import (
    Interval,
    mcnemar_exact,
    mean_interval,
    mean_over_seeds,
    paired_difference,
    paired_difference_over_seeds,
    paired_permutation_p,
    wilson_interval,
)

Z95 = norm.ppf(0.975)


def hand_wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's formula written out: centre (k + z²/2)/(n + z²), half-width z·√(k(n−k)/n + z²/4)/(n + z²)."""
    centre = (k + z**2 / 2) / (n + z**2)
    half = z * math.sqrt(k * (n - k) / n + z**2 / 4) / (n + z**2)
    return centre - half, centre + half


def normal_interval(values: list[float]) -> tuple[float, float]:
    """mean ± z·sd/√n, which a percentile bootstrap of a mean over 32 units should land close to."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return mean - Z95 * sd / math.sqrt(n), mean + Z95 * sd / math.sqrt(n)


class TestWilsonInterval:
    def test_nine_of_thirty_two_matches_the_hand_formula(self):
        low, high = wilson_interval(9, 32)
        assert (low, high) == pytest.approx(hand_wilson(9, 32), abs=1e-12)
        assert (low, high) == pytest.approx((0.1556, 0.4537), abs=1e-4)

    def test_none_right_starts_at_zero_and_all_right_ends_at_one(self):
        low, high = wilson_interval(0, 32)
        assert low == pytest.approx(0.0, abs=1e-12)
        assert high == pytest.approx(hand_wilson(0, 32)[1])
        low, high = wilson_interval(32, 32)
        assert low == pytest.approx(hand_wilson(32, 32)[0])
        assert high == pytest.approx(1.0, abs=1e-12)

    def test_a_higher_confidence_gives_a_wider_interval(self):
        low95, high95 = wilson_interval(9, 32)
        low99, high99 = wilson_interval(9, 32, confidence=0.99)
        assert low99 < low95 and high99 > high95
        assert (low99, high99) == pytest.approx(hand_wilson(9, 32, norm.ppf(0.995)))

    @pytest.mark.parametrize(
        ("successes", "n", "message"),
        [(0, 0, "at least one trial"), (33, 32, r"\[0, n=32\]"), (-1, 32, r"\[0, n=32\]")],
    )
    def test_impossible_counts_are_rejected(self, successes, n, message):
        with pytest.raises(ValueError, match=message):
            wilson_interval(successes, n)


class TestMcnemarExact:
    @pytest.mark.parametrize(
        ("wins", "losses", "p"),
        [
            (6, 0, 2 * 0.5**6),  # 0.03125: only 6–0 and 0–6 are as extreme
            (0, 6, 2 * 0.5**6),  # two-sided: symmetric in wins and losses
            (5, 1, 2 * (1 + 6) / 64),  # 0.21875: 6–0, 5–1 and their mirrors
            (0, 0, 1.0),  # no discordant question, no evidence
            (3, 3, 1.0),
        ],
    )
    def test_exact_p_matches_the_binomial_by_hand(self, wins, losses, p):
        assert mcnemar_exact(wins, losses) == pytest.approx(p, abs=1e-15)

    def test_negative_counts_are_rejected(self):
        with pytest.raises(ValueError, match="counts"):
            mcnemar_exact(-1, 2)


class TestPairedDifference:
    def test_a_constant_difference_gives_the_degenerate_interval_exactly(self):
        result = paired_difference([0.0] * 32, [1.0] * 32)
        assert result == Interval(1.0, 1.0, 1.0, 32)

    def test_a_constant_non_binary_difference_is_exact_too(self):
        result = paired_difference([0.0] * 32, [0.1] * 32)
        assert (result.estimate, result.low, result.high) == (0.1, 0.1, 0.1)

    def test_a_mixed_case_contains_the_mean_and_is_near_the_normal_interval(self):
        a = [0.0] * 16 + [1.0] * 16
        b = (
            [1.0] * 12 + [0.0] * 4 + [1.0] * 14 + [0.0] * 2
        )  # differences: twelve +1, four 0, fourteen 0, two −1
        differences = [y - x for x, y in zip(a, b, strict=True)]
        result = paired_difference(a, b)
        assert result.estimate == pytest.approx(10 / 32)
        assert min(differences) <= result.low < result.estimate < result.high <= max(differences)
        assert (result.low, result.high) == pytest.approx(normal_interval(differences), abs=0.03)
        assert result.n == 32

    def test_the_same_seed_gives_the_same_interval(self):
        a, b = [0.0, 1.0, 0.5, 0.25] * 8, [1.0, 1.0, 0.0, 0.75] * 8
        assert paired_difference(a, b, seed=7) == paired_difference(a, b, seed=7)

    def test_mismatched_or_too_few_units_are_rejected_with_the_counts(self):
        with pytest.raises(ValueError, match="a has 3, b has 2"):
            paired_difference([0, 1, 1], [1, 0])
        with pytest.raises(ValueError, match="at least 2 units, got 1"):
            paired_difference([0], [1])


class TestMeanInterval:
    def test_half_right_gives_a_half_with_about_the_normal_interval(self):
        values = [1.0] * 16 + [0.0] * 16
        result = mean_interval(values)
        assert result.estimate == 0.5
        assert (result.low, result.high) == pytest.approx(normal_interval(values), abs=0.03)

    def test_shares_of_correct_samples_are_averaged_per_question(self):
        result = mean_interval([0.25, 0.5, 0.75, 1.0] * 8)
        assert result.estimate == pytest.approx(0.625)
        assert 0.25 <= result.low < 0.625 < result.high <= 1.0

    def test_as_dict_rounds_to_four_decimals(self):
        assert Interval(1 / 3, 0.123456, 0.987654, 9).as_dict() == {
            "estimate": 0.3333,
            "low": 0.1235,
            "high": 0.9877,
            "n": 9,
        }


class TestPairedDifferenceOverSeeds:
    def test_two_seeds_with_constant_differences_zero_and_one_give_exactly_a_half(self):
        a = {0: [1.0] * 32, 1: [0.0] * 32}
        b = {0: [1.0] * 32, 1: [1.0] * 32}
        assert paired_difference_over_seeds(a, b) == Interval(0.5, 0.5, 0.5, 32)

    def test_a_single_seed_is_the_plain_paired_bootstrap(self):
        a = [0.0] * 16 + [1.0] * 16
        b = [1.0] * 12 + [0.0] * 4 + [1.0] * 14 + [0.0] * 2
        assert paired_difference_over_seeds({0: a}, {0: b}) == paired_difference(a, b)

    def test_the_same_seed_gives_the_same_interval(self):
        a = {0: [0.0, 1.0] * 16, 1: [1.0, 0.0] * 16}
        b = {0: [1.0, 1.0] * 16, 1: [1.0, 1.0] * 16}
        assert paired_difference_over_seeds(a, b, seed=3) == paired_difference_over_seeds(a, b, seed=3)

    def test_seeds_present_on_one_side_only_are_named(self):
        with pytest.raises(ValueError, match=r"only in a \[2\], only in b \[3\]"):
            paired_difference_over_seeds({1: [0, 1], 2: [0, 1]}, {1: [1, 1], 3: [1, 1]})


class TestMeanOverSeeds:
    def test_three_seeds_of_one_model_give_that_models_one_seed_interval(self):
        # The same warm start evaluated under three seeds is still 32 questions, not 96: the interval must
        # not narrow (resampling each seed's copy independently would narrow it by about sqrt(3)).
        one = [1.0] * 9 + [0.0] * 23
        assert mean_over_seeds({42: one, 43: one, 44: one}) == mean_interval(one)

    def test_the_estimate_is_the_mean_over_seeds_and_questions_are_the_units(self):
        values = {"s1": [1.0, 1.0, 0.0, 0.0], "s2": [1.0, 0.0, 0.0, 0.0]}  # per seed 0.5 and 0.25
        result = mean_over_seeds(values)
        assert result.estimate == pytest.approx(0.375) and result.n == 4
        assert result == mean_interval([1.0, 0.5, 0.0, 0.0])  # each question averaged over the seeds

    def test_seeds_with_different_question_counts_are_rejected(self):
        with pytest.raises(ValueError, match="questions per seed"):
            mean_over_seeds({0: [0, 1], 1: [0, 1, 1]})


class TestPairedPermutationP:
    def test_a_large_consistent_gain_is_significant(self):
        a = {0: [0.0] * 32, 1: [0.0] * 32}
        b = {0: [1.0] * 28 + [0.0] * 4, 1: [1.0] * 30 + [0.0] * 2}
        assert paired_permutation_p(a, b) < 0.01

    def test_no_difference_at_all_gives_one(self):
        outcomes = {0: [1.0, 0.0] * 16, 1: [0.0, 1.0] * 16}
        assert paired_permutation_p(outcomes, outcomes) == 1.0

    def test_gains_and_losses_that_cancel_give_a_p_near_one(self):
        a = {0: [0.0] * 16 + [1.0] * 16}
        b = {0: [1.0] * 16 + [0.0] * 16}  # +1 on half the questions, −1 on the other half
        assert paired_permutation_p(a, b) > 0.95

    def test_differences_are_averaged_over_seeds_per_question_before_flipping(self):
        # Seed 0 gains on question 0 and seed 1 loses it: the question's mean difference is 0, and so is
        # every other one, so there is nothing to test.
        a = {0: [0.0, 1.0], 1: [1.0, 1.0]}
        b = {0: [1.0, 1.0], 1: [0.0, 1.0]}
        assert paired_permutation_p(a, b) == 1.0

    def test_seeds_with_different_question_counts_are_rejected(self):
        with pytest.raises(ValueError, match="questions per seed"):
            paired_permutation_p({0: [0, 1], 1: [0, 1, 1]}, {0: [1, 1], 1: [1, 1, 1]})
