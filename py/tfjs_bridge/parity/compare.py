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
) -> dict:
    """Every figure verify reports for one path; result["passed"] sums it up.

    A classifier's first output must also agree on its argmax over the last
    axis at every leading position (each sample, or each timestep of a
    sequence); values within tolerance can still flip a near-tie. A binary
    classifier's one sigmoid probability is a class axis of one: its class
    is p > 0.5 (reported under the same argmax fields)."""
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
        result.update(_argmax_figures(expected[0], got[0], labels))
    argmax_agrees = not checks_argmax or result["argmax_agree"] == result["argmax_total"]
    result["passed"] = result["outside"] == 0 and argmax_agrees
    if result["outside"]:
        result["reason"] = f"{result['outside']} of {result['elements']} values outside tolerance"
    elif not argmax_agrees:
        differ, total = result["argmax_total"] - result["argmax_agree"], result["argmax_total"]
        result["reason"] = (
            f"argmax differs on {differ} samples"
            if expected[0].ndim == 2
            else f"argmax differs at {differ} of {total} positions (sample, timestep, ...)"
        )
    return result


def _classes(y: np.ndarray) -> np.ndarray:
    """The class chosen at each position: argmax, or p > 0.5 for one sigmoid unit."""
    return (y[..., 0] > 0.5).astype(np.int64) if y.shape[-1] == 1 else y.argmax(-1)


def _argmax_figures(e: np.ndarray, g: np.ndarray, labels: np.ndarray | None) -> dict:
    py_classes, node_classes = _classes(e), _classes(g)  # one per sample (per timestep)
    differ = np.argwhere(py_classes != node_classes)[:LOCATIONS_SHOWN]
    out = {
        "argmax_agree": int((py_classes == node_classes).sum()),
        "argmax_total": int(py_classes.size),
        # A sample's index, or [sample, timestep, ...] for sequences.
        "disagreements": [int(i[0]) if len(i) == 1 else list(map(int, i)) for i in differ],
    }
    if labels is not None and labels.shape == py_classes.shape:
        out["accuracy_python"] = float((py_classes == labels).mean())
        out["accuracy_node"] = float((node_classes == labels).mean())
    return out


def _compare_values(name: str, e: np.ndarray, g: np.ndarray, atol: float, rtol: float) -> dict:
    diff = np.abs(g - e)
    # NaN or Inf where Python has the same is agreement; anywhere else, an error.
    same_special = (np.isnan(e) & np.isnan(g)) | (np.isinf(e) & (e == g))
    diff = np.where(same_special, 0.0, diff)
    diff = np.where(np.isnan(diff), np.inf, diff)
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
