"""Comparing a Node path's outputs with Python's, in order: output names,
then shapes and dtypes, then values within |node - python| <= atol + rtol*|python|,
and for classifiers the class chosen (argmax) at every position. Pure numpy,
so the rules themselves are unit-tested."""

from __future__ import annotations

import numpy as np

LOCATIONS_SHOWN = 5
# |error| bins: 0, then decades from 1e-12 up; the last bin takes everything larger.
HISTOGRAM_EDGES = [0.0, *(10.0**e for e in range(-12, 1)), 1e300]


def compare(
    expected: list[np.ndarray],
    got: list[np.ndarray],
    expected_names: list[str],
    got_names: list[str],
    atol: float,
    rtol: float,
    labels: np.ndarray | None = None,
    classifier: bool = False,
    ties_excused: bool = False,
) -> dict:
    """Every figure verify reports for one path; result["passed"] sums it up.

    A classifier's first output must also agree on its argmax over the last
    axis at every leading position (each sample, or each timestep of a
    sequence); values within tolerance can still flip a near-tie. With
    `ties_excused` (a truth computed at reduced precision, judged at its
    tolerance), a flip where the truth's top two values are closer than
    their tolerances added is counted apart (argmax_ties), not against the
    path: a float16 truth's own rounding (~1e-3) orders such a tie by chance,
    and a path computing more precisely may order it either way. A binary classifier's one sigmoid
    probability is a class axis of one: its class is p > 0.5 (reported under
    the same argmax fields)."""
    result: dict = {"atol": atol, "rtol": rtol, "passed": False}
    if list(got_names) != list(expected_names):
        result["reason"] = f"output names {list(got_names)} != Python's {list(expected_names)}"
        return result
    if len(got) != len(expected):
        result["reason"] = f"{len(got)} outputs != Python's {len(expected)}"
        return result
    for name, e, g in zip(expected_names, expected, got, strict=True):
        if g.shape != e.shape or g.dtype != e.dtype:
            result["reason"] = (
                f"output {name}: {g.dtype}{list(g.shape)} != Python's {e.dtype}{list(e.shape)}"
            )
            return result

    outputs = []
    for name, e, g in zip(expected_names, expected, got, strict=True):
        outputs.append(
            _compare_values(name, e.astype(np.float64), g.astype(np.float64), atol, rtol)
        )
    result["outputs"] = outputs
    result["elements"] = sum(o["elements"] for o in outputs)
    result["outside"] = sum(o["outside"] for o in outputs)
    result["max_abs"] = max(o["max_abs"] for o in outputs)
    result["max_rel"] = max(o["max_rel"] for o in outputs)
    # A class axis to take the argmax over, and at least one position to take it at.
    checks_argmax = classifier and expected[0].ndim >= 2
    if checks_argmax:
        tie_tol = (atol, rtol) if ties_excused else None
        result.update(_argmax_figures(expected[0], got[0], labels, tie_tol))
    argmax_agrees = not checks_argmax or (
        result["argmax_agree"] + result["argmax_ties"] == result["argmax_total"]
    )
    result["passed"] = result["outside"] == 0 and argmax_agrees
    if result["outside"]:
        result["reason"] = f"{result['outside']} of {result['elements']} values outside tolerance"
    elif not argmax_agrees:
        total = result["argmax_total"]
        differ = total - result["argmax_agree"] - result["argmax_ties"]
        result["reason"] = (
            f"argmax differs on {differ} samples"
            if expected[0].ndim == 2
            else f"argmax differs at {differ} of {total} positions (sample, timestep, ...)"
        )
    return result


def _classes(y: np.ndarray) -> np.ndarray:
    """The class chosen at each position: argmax, or p > 0.5 for one sigmoid unit."""
    return (y[..., 0] > 0.5).astype(np.int64) if y.shape[-1] == 1 else y.argmax(-1)


def _tied(e: np.ndarray, atol: float, rtol: float) -> np.ndarray:
    """Positions whose top two classes the tolerance spans: the two values
    closer than their tolerances added (one sigmoid: p within its tolerance
    of 0.5)."""
    e = np.nan_to_num(e.astype(np.float64))
    if e.shape[-1] == 1:
        p = e[..., 0]
        return np.abs(p - 0.5) <= atol + rtol * np.abs(p)
    top2 = np.sort(e, axis=-1)[..., -2:]
    tol = atol + rtol * np.abs(top2)
    return top2[..., 1] - top2[..., 0] <= tol.sum(axis=-1)


def _argmax_figures(
    e: np.ndarray, g: np.ndarray, labels: np.ndarray | None, tie_tol: tuple | None
) -> dict:
    py_classes, node_classes = _classes(e), _classes(g)  # one per sample (per timestep)
    flipped = py_classes != node_classes
    ties = flipped & _tied(e, *tie_tol) if tie_tol else np.zeros_like(flipped)
    differ = np.argwhere(flipped & ~ties)[:LOCATIONS_SHOWN]
    out = {
        "argmax_agree": int((py_classes == node_classes).sum()),
        "argmax_ties": int(ties.sum()),  # flipped where the tolerance spans the top two
        "argmax_total": int(py_classes.size),
        # A sample's index, or [sample, timestep, ...] for sequences.
        "disagreements": [int(i[0]) if len(i) == 1 else list(map(int, i)) for i in differ],
    }
    if labels is not None and labels.shape == py_classes.shape:
        out["accuracy_python"] = float((py_classes == labels).mean())
        out["accuracy_node"] = float((node_classes == labels).mean())
    return out


def _gap(e: np.ndarray, g: np.ndarray) -> np.ndarray:
    """|g - e|, where NaN or Inf where e has the same is agreement (0), and
    anywhere else an error (inf)."""
    with np.errstate(invalid="ignore"):  # inf - inf: judged just below
        diff = np.abs(g - e)
    same_special = (np.isnan(e) & np.isnan(g)) | (np.isinf(e) & (e == g))
    diff = np.where(same_special, 0.0, diff)
    return np.where(np.isnan(diff), np.inf, diff)


def _compare_values(name: str, e: np.ndarray, g: np.ndarray, atol: float, rtol: float) -> dict:
    diff = _gap(e, g)
    bad = diff > atol + rtol * np.abs(np.nan_to_num(e))
    scale = np.abs(e)
    meaningful = scale >= max(atol, 1e-30)  # relative error means little on near-zeros
    out = {
        "name": name,
        "shape": list(e.shape),
        "elements": int(e.size),
        "outside": int(bad.sum()),
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "max_rel": float((diff[meaningful] / scale[meaningful]).max()) if meaningful.any() else 0.0,
        "first_outside": [
            {
                "index": list(map(int, idx)),
                "python": float(e[tuple(idx)]),
                "node": float(g[tuple(idx)]),
            }
            for idx in np.argwhere(bad)[:LOCATIONS_SHOWN]
        ],
        "abs_error_histogram": {
            "edges": HISTOGRAM_EDGES,
            "counts": np.histogram(np.minimum(diff, 1e299), bins=HISTOGRAM_EDGES)[0].tolist(),
        },
    }
    if e.ndim == 3:  # (batch, timesteps, features): return_sequences
        out["max_abs_per_timestep"] = diff.max(axis=(0, 2)).tolist()
    return out


# -- the truth's own precision and conditioning ---------------------------------------

# Machine epsilon of each dtype a Keras dtype policy computes in.
EPSILON = {"float64": 2.0**-52, "float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
# A value is judged on an ill-conditioned model only where Keras moves by at
# most this fraction of the tolerance when its inputs move by one ulp: a path
# whose arithmetic differs from Keras's by up to ~100 ulps still lands within
# tolerance there.
WELL_CONDITIONED = 0.01
# Below this fraction of judged values, what is left is too little to judge.
MIN_JUDGED = 0.1


def precision_tolerance(dtype: str, depth: int, atol: float, rtol: float) -> tuple[float, float]:
    """(atol, rtol) for a truth that computes in `dtype` in `depth` layers.
    Each such layer rounds what it computes to that dtype, about one epsilon
    relative at most, so a path computing the same function more precisely
    may differ by depth x epsilon, relative to a value (and absolutely near
    zero). Never tighter than the given tolerance."""
    floor = max(depth, 1) * EPSILON[dtype] if dtype != "float32" else 0.0
    return max(atol, floor), max(rtol, floor)


def conditioning(
    expected: list[np.ndarray],
    got: list[np.ndarray],
    moved: list[np.ndarray],
    atol: float,
    rtol: float,
    relative: float,
    classifier: bool = False,
    min_judged: float = MIN_JUDGED,
) -> dict:
    """A path outside tolerance, judged against how far the truth itself
    moves: `moved` is the truth on inputs moved by `relative` (one ulp of its
    precision; each value the larger of its moves). Where Keras's own move
    exceeds the tolerance, no path with another summation order can agree,
    so a difference there says nothing; the path is judged on the values
    where Keras moves by at most WELL_CONDITIONED x the tolerance, and
    refused when fewer than `min_judged` of the values (or none) are.

    Returns the figures and "verdict": None when the truth is well-conditioned
    (the plain comparison stands), else pass | mismatch | refused, with a
    "reason"."""
    e = [x.astype(np.float64) for x in expected]
    g = [x.astype(np.float64) for x in got]
    m = [x.astype(np.float64) for x in moved]
    tol = [atol + rtol * np.abs(np.nan_to_num(x)) for x in e]
    keras = [_gap(a, b) for a, b in zip(e, m, strict=True)]
    path = [_gap(a, b) for a, b in zip(e, g, strict=True)]
    judged = [k <= WELL_CONDITIONED * t for k, t in zip(keras, tol, strict=True)]
    elements = sum(x.size for x in e)
    out = {
        "input_change": relative,
        "keras_moves": max(float(k.max()) if k.size else 0.0 for k in keras),
        "keras_outside": int(sum((k > t).sum() for k, t in zip(keras, tol, strict=True))),
        "elements": elements,
        "judged": int(sum(j.sum() for j in judged)),
        "outside_judged": int(
            sum((p[j] > t[j]).sum() for p, t, j in zip(path, tol, judged, strict=True))
        ),
        "verdict": None,
    }
    if out["keras_outside"] == 0:
        return out
    # The class chosen is judged where every value of its position is.
    differ = 0
    if classifier and e[0].ndim >= 2:
        where = judged[0].all(axis=-1)
        differ = int((_classes(e[0]) != _classes(g[0]))[where].sum())
        out["argmax_judged"], out["argmax_differ_judged"] = int(where.sum()), differ
    moves = (
        f"Keras moves by up to {out['keras_moves']:.2g} when its inputs move by a relative "
        f"{relative:.1e}, "
        f"beyond the tolerance at {out['keras_outside']} of {elements} values"
    )
    out["moves"] = moves
    if out["outside_judged"] or differ:
        what = (
            f"{out['outside_judged']} of the {out['judged']} values"
            if out["outside_judged"]
            else f"the argmax at {differ} of {out['argmax_judged']} positions"
        )
        out["verdict"] = "mismatch"
        out["reason"] = (
            f"{what} where Keras is well-conditioned differ beyond tolerance "
            f"(ill-conditioned elsewhere: {moves})"
        )
    elif not out["judged"] or out["judged"] < min_judged * elements:
        out["verdict"] = "refused"
        out["reason"] = (
            f"refused: the model is ill-conditioned at these inputs: {moves}; only "
            f"{out['judged']} values are well-conditioned enough to judge"
        )
    else:
        out["verdict"] = "pass"
        out["reason"] = (
            f"ill-conditioned: judged on the {out['judged']} of {elements} values where "
            f"Keras is well-conditioned ({moves})"
        )
    return out
