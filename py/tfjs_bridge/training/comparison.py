"""Two classifiers compared on the same test items: the difference of their
accuracies and its paired bootstrap interval (Efron's percentile bootstrap).

Paired: each resample draws test items with replacement and scores both
classifiers on the same draw, so the items both get right (or both get
wrong) add no noise; only the items they disagree on move the difference."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0  # a fixed seed: the same interval for the same predictions


def paired_bootstrap_ci(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The percentile interval at `level` of accuracy(a) - accuracy(b), from
    `resamples` paired resamples of the test items. correct_a and correct_b
    say, item by item, whether each classifier was right."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two equal, non-empty 1-D arrays, got {a.shape} and {b.shape}")
    # Per item, +1 (only a right), -1 (only b right) or 0: the difference of
    # a resample's accuracies is the mean of its items' values.
    per_item = a.astype(np.int64) - b.astype(np.int64)
    rng = np.random.default_rng(seed)
    differences = np.empty(resamples)
    for start in range(0, resamples, 1000):  # 1000 resamples at a time: bounded memory
        count = min(1000, resamples - start)
        draws = rng.integers(0, a.size, size=(count, a.size))
        differences[start : start + count] = per_item[draws].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    return float(low), float(high)


def accuracy_comparison(
    predicted: np.ndarray, baseline_predicted: np.ndarray, labels: np.ndarray
) -> dict:
    """A model's and a baseline's test accuracy on the same labels, their
    difference and its paired bootstrap 95 % interval (manifest keys)."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    right = np.asarray(predicted).astype(np.int64).ravel() == labels
    baseline_right = np.asarray(baseline_predicted).astype(np.int64).ravel() == labels
    low, high = paired_bootstrap_ci(right, baseline_right)
    return {
        "baseline_accuracy": float(baseline_right.mean()),
        "difference": float(right.mean() - baseline_right.mean()),
        "difference_ci95": [low, high],
        # the items they disagree on: all that moves the difference
        "only_model_right": int(np.sum(right & ~baseline_right)),
        "only_baseline_right": int(np.sum(baseline_right & ~right)),
    }
