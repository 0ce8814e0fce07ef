"""How far the truth itself moves when its inputs move by one ulp of the
precision it computes in: what no other implementation can be asked to beat.

A path outside tolerance may be wrong, or the model may be ill-conditioned
at the inputs (a chaotic RNN over many steps turns a rounding difference
into a different answer). Keras on inputs nudged by one ulp tells the two
apart (compare.conditioning judges by it). It costs two more runs of the
truth, so it is measured only for a model one of whose paths is outside
tolerance, once per model."""

from __future__ import annotations

import numpy as np

from ..folder.signature import Signature
from . import compare
from .compare import EPSILON

NUDGES = 2  # independent nudges; each value keeps the larger move


def nudged(xs: list[np.ndarray], signature: Signature, relative: float, seed: int) -> list:
    """The float inputs each moved by `relative` (random signs); token ids,
    zeros and padding (an input's mask value) stay exactly as they were."""
    rng = np.random.default_rng(seed)
    out = []
    for x, spec in zip(xs, signature.inputs, strict=True):
        if spec.kind == "tokens" or x.dtype.kind != "f":
            out.append(x)
            continue
        signs = rng.choice(np.array([-1.0, 1.0], x.dtype), size=x.shape)
        moved = (x * (1 + relative * signs)).astype(x.dtype)
        if spec.mask_value is not None:
            moved = np.where(x == spec.mask_value, x, moved)
        out.append(moved)
    return out


class Conditioning:
    """The truth on nudged inputs, measured the first time a path asks."""

    def __init__(self, truth, xs: list[np.ndarray], signature: Signature):
        self.truth, self.xs, self.signature = truth, xs, signature
        dtype = truth.precision[0]
        # one ulp at the precision the truth computes in; at least float32's
        self.relative = max(EPSILON.get(dtype, EPSILON["float32"]), EPSILON["float32"])
        self._sides = None

    @property
    def available(self) -> bool:
        """Float inputs to nudge, and a truth Python computes."""
        return self.truth.measures_conditioning and any(
            s.kind != "tokens" for s in self.signature.inputs
        )

    def sides(self) -> list:
        """The truth's python_side for each nudge (computed once)."""
        if self._sides is None:
            self._sides = [
                self.truth.python_side(nudged(self.xs, self.signature, self.relative, seed))
                for seed in range(NUDGES)
            ]
        return self._sides

    def moved(self, runtime: str, fmt: str, run, index: int, expected: list[np.ndarray]):
        """(moved, moved_singles) for the index-th comparison of a path: per
        value, the nudged truth farther from `expected`, ordered and named
        as that comparison orders its expected side."""
        best = best_singles = None
        for side in self.sides():
            c = self.truth.comparisons(runtime, fmt, run, side)[index]
            if best is None:
                best, best_singles = list(c.expected), list(c.expected_singles)
                continue
            for i, e in enumerate(expected):
                far = np.abs(c.expected[i].astype(np.float64) - e) > np.abs(
                    best[i].astype(np.float64) - e
                )
                best[i] = np.where(far, c.expected[i], best[i])
                n = len(c.expected_singles[i])
                best_singles[i] = np.where(far[:n], c.expected_singles[i], best_singles[i])
        return best, best_singles

    def judge(self, figures: dict, c, runtime: str, fmt: str, run, index: int, tol: dict,
              classifier: bool, singles: bool = False) -> tuple[str, str] | None:  # fmt: skip
        """(verdict, reason) for a comparison outside tolerance, judged by
        how far the truth moves (compare.conditioning, its figures kept in
        figures["conditioning"]); None when the plain verdict stands: names,
        shapes or dtypes differ, nothing to nudge, or the truth is steady.
        `singles`: the batch-of-one check of a path whose batches passed;
        any steady value is then enough to judge it by (the batches were
        the full check)."""
        if not self.available or not figures.get("outputs"):
            return None
        moved, moved_singles = self.moved(runtime, fmt, run, index, c.expected)
        expected, got = (c.expected_singles, c.got_singles) if singles else (c.expected, c.got)
        moved = moved_singles if singles else moved
        least = 0.0 if singles else compare.MIN_JUDGED
        found = compare.conditioning(expected, got, moved, tol["atol"], tol["rtol"], self.relative,
                                     classifier, least)  # fmt: skip
        figures["conditioning"] = found
        if found["verdict"] is None:
            return None
        return found["verdict"], found["reason"]
