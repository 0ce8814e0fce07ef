"""Comparing a Node path's outputs with Python's, in order: output names,
then shapes and dtypes, then values within |node - python| <= atol + rtol*|python|.
Pure numpy, so the rules themselves are unit-tested."""

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
    """Every figure verify reports for one path; result["passed"] sums it up."""
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
    if classifier and expected[0].ndim == 2:
        py_digits = expected[0].argmax(-1)
        node_digits = got[0].argmax(-1)
        result["argmax_agree"] = int((py_digits == node_digits).sum())
        result["argmax_total"] = len(py_digits)
        result["disagreements"] = np.flatnonzero(py_digits != node_digits)[
            :LOCATIONS_SHOWN
        ].tolist()
        if labels is not None:
            result["accuracy_python"] = float((py_digits == labels).mean())
            result["accuracy_node"] = float((node_digits == labels).mean())
    result["passed"] = result["outside"] == 0 and result.get("argmax_agree") == result.get(
        "argmax_total"
    )
    if not result["passed"]:
        result["reason"] = (
            f"{result['outside']} of {result['elements']} values outside tolerance"
            if result["outside"]
            else f"argmax differs on {result['argmax_total'] - result['argmax_agree']} samples"
        )
    return result


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
