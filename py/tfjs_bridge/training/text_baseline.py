"""A baseline for text models: logistic regression on bag-of-words counts of
a tokenizer's ids, in NumPy alone and with no randomness. It is the
yardstick the spam tokenizer's settings (registry.py's SPAM_TOKENIZER) were
measured with, and `train` scores it beside spam on the same split
(comparison.py); serving never uses it."""

from __future__ import annotations

import numpy as np

from ..folder.tokenizer import PAD_ID


def bag_of_words(ids: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero counts of ``ids`` [N, max_len] as (row index, id) pairs of
    every token position: padding (id 0) dropped, out-of-vocabulary (1) kept."""
    rows, cols = np.nonzero(ids != PAD_ID)
    words = ids[rows, cols].astype(np.int64)
    if words.size and (words.min() < 0 or words.max() >= vocab_size):
        raise ValueError(f"ids outside [0, {vocab_size})")
    return rows, words


def bag_of_words_baseline(
    train_ids: np.ndarray,
    train_labels: np.ndarray,
    test_ids: np.ndarray,
    test_labels: np.ndarray,
    vocab_size: int,
    **options,
) -> float:
    """Test accuracy of bag_of_words_predictions."""
    predicted = bag_of_words_predictions(train_ids, train_labels, test_ids, vocab_size, **options)
    return float(np.mean(predicted == np.asarray(test_labels, dtype=np.int64).ravel()))


def bag_of_words_predictions(
    train_ids: np.ndarray,
    train_labels: np.ndarray,
    test_ids: np.ndarray,
    vocab_size: int,
    *,
    steps: int = 300,
    learning_rate: float = 0.05,
    l2: float = 1e-4,
) -> np.ndarray:
    """Test labels (int64, 1 = positive) predicted by a logistic regression
    on bag-of-words counts.

    NumPy only, float64, full-batch Adam from zero weights for ``steps``
    steps: no randomness at all (so no seed), the same number on every run.
    The count matrix is never built: x @ w is a sum of gathered weights and
    the gradient a ``bincount`` over token positions."""
    train_rows, train_words = bag_of_words(train_ids, vocab_size)
    test_rows, test_words = bag_of_words(test_ids, vocab_size)
    y = np.asarray(train_labels, dtype=np.float64).ravel()
    n = len(y)

    def logits(w, b, rows, words, count):
        return np.bincount(rows, weights=w[words], minlength=count) + b

    params = np.zeros(vocab_size + 1)  # the weights, then the bias
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, steps + 1):
        w, b = params[:-1], params[-1]
        z = logits(w, b, train_rows, train_words, n)
        residual = (1.0 / (1.0 + np.exp(-z)) - y) / n
        grad = np.empty_like(params)
        grad[:-1] = np.bincount(train_words, weights=residual[train_rows], minlength=vocab_size)
        grad[:-1] += l2 * w
        grad[-1] = residual.sum()
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad * grad
        m_hat = m / (1 - beta1**step)
        v_hat = v / (1 - beta2**step)
        params = params - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    z = logits(params[:-1], params[-1], test_rows, test_words, len(test_ids))
    return (z > 0).astype(np.int64)
