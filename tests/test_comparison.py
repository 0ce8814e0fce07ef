"""The paired bootstrap that says whether spam beats its baseline
(training/comparison.py): known cases, fixed seeds, and the unpaired
bootstrap as the negative control (on the same predictions it cannot tell
the difference from noise)."""

import numpy as np
import pytest

from tfjs_bridge.training.comparison import accuracy_comparison, paired_bootstrap_ci


def test_identical_classifiers_give_a_zero_interval():
    right = np.arange(500) % 7 != 0
    assert paired_bootstrap_ci(right, right) == (0.0, 0.0)


def test_a_known_case_matches_the_binomial_interval():
    # a is right on all 1,000 items, b wrong on 20 of them: each resample's
    # difference is Binomial(1000, 0.02) / 1000, so the 95 % interval is about
    # 0.02 +- 1.96 * sqrt(0.02 * 0.98 / 1000) = [0.0113, 0.0287].
    a = np.ones(1000, bool)
    b = np.ones(1000, bool)
    b[::50] = False
    low, high = paired_bootstrap_ci(a, b)
    assert low == pytest.approx(0.0113, abs=0.0015)
    assert high == pytest.approx(0.0287, abs=0.0015)
    # Swapped, the interval is mirrored (the same draws, negated).
    swapped = paired_bootstrap_ci(b, a)
    assert swapped == pytest.approx((-high, -low), abs=1e-12)


def test_a_fixed_seed_gives_the_same_interval():
    rng = np.random.default_rng(5)
    a, b = rng.random(300) < 0.9, rng.random(300) < 0.85
    assert paired_bootstrap_ci(a, b) == paired_bootstrap_ci(a, b)
    # Another seed: the same interval within a few items (its ends are k / 300).
    other = paired_bootstrap_ci(a, b, seed=1)
    assert other == pytest.approx(paired_bootstrap_ci(a, b), abs=3 / 300)
    low, high = paired_bootstrap_ci(a, b, level=0.5)
    wide_low, wide_high = paired_bootstrap_ci(a, b, level=0.99)
    assert wide_low < low < high < wide_high


def unpaired_bootstrap_ci(a, b, resamples=10_000, seed=0):
    """The wrong bootstrap for one test set: each classifier's items drawn
    independently, as if they had been scored on different mails."""
    rng = np.random.default_rng(seed)
    draws_a = rng.integers(0, a.size, size=(resamples, a.size))
    draws_b = rng.integers(0, b.size, size=(resamples, b.size))
    differences = a[draws_a].mean(axis=1) - b[draws_b].mean(axis=1)
    return tuple(np.quantile(differences, [0.025, 0.975]))


def test_pairing_is_what_separates_the_difference_from_noise():
    # 1,200 items: both wrong on the same 20, a also right on 10 that b gets
    # wrong (a 0.83-point gain). Paired, the interval is above 0; drawn
    # independently (the negative control), the 20 shared errors count as
    # noise twice and the interval takes in 0.
    a = np.ones(1200, bool)
    a[:20] = False
    b = a.copy()
    b[100:110] = False
    low, high = paired_bootstrap_ci(a, b)
    assert 0 < low < 10 / 1200 < high
    unpaired_low, unpaired_high = unpaired_bootstrap_ci(a, b)
    assert unpaired_low < 0 < unpaired_high


def test_accuracy_comparison_counts_the_disagreements():
    labels = np.array([1, 0, 1, 1, 0, 0, 1, 0] * 50)
    model = labels.copy()
    baseline = labels.copy()
    baseline[:8] = 1 - baseline[:8]  # 8 the baseline gets wrong
    model[8] = 1 - model[8]  # 1 the model gets wrong
    got = accuracy_comparison(model.astype(np.float32).reshape(-1, 1), baseline, labels)
    assert got["baseline_accuracy"] == pytest.approx(392 / 400)
    assert got["difference"] == pytest.approx(7 / 400)
    assert (got["only_model_right"], got["only_baseline_right"]) == (8, 1)
    low, high = got["difference_ci95"]
    assert low < 7 / 400 < high


@pytest.mark.parametrize(
    "a, b", [(np.ones(3, bool), np.ones(4, bool)), (np.ones((2, 2), bool),) * 2, ([], [])]
)
def test_mismatched_inputs_are_refused(a, b):
    with pytest.raises(ValueError, match="equal, non-empty 1-D"):
        paired_bootstrap_ci(a, b)
