"""Inputs that exercise a model, for verify: made once in Python with a fixed
seed, within each input's domain (folder/signature.py), different from sample to
sample, and for masked inputs padded to many lengths (post- and pre-padding,
and one sample padded throughout) so that the masked code paths are compared
too. And the other half of the promise: a description of what was fed and
of what the truth computed on it, and a refusal when either cannot tell two
paths apart (every sample the same, token ids that are all one id, or a
model that gives the same outputs, within tolerance, for every sample): a
check that can only pass is worse than none."""

from __future__ import annotations

import numpy as np

from ..folder.signature import FREE_AXIS, InputSpec, Signature

PROBE_SEED = 20261125


def _shape(spec: InputSpec, samples: int) -> tuple[int, ...]:
    return (samples, *(d if d is not None else FREE_AXIS for d in spec.shape))


def _padding_lengths(rng, samples: int, steps: int) -> np.ndarray:
    """How many steps of each sample are real: the first quarter of the
    samples whole, then every length from 0 (padded throughout) to steps - 1
    and random ones; the rest of each sample is padding."""
    lengths = rng.integers(0, steps + 1, size=samples)
    lengths[: max(1, samples // 4)] = steps
    head = max(1, samples // 4)
    cycle = np.arange(steps)  # 0 .. steps - 1: every padded length, 0 included
    lengths[head : head + len(cycle)] = cycle[: max(0, samples - head)]
    return lengths


def _pad(x: np.ndarray, lengths: np.ndarray, value: float, rng) -> np.ndarray:
    """Padding after the real steps for half the samples, before for the others."""
    steps = x.shape[1]
    pre = rng.random(len(x)) < 0.5
    for i, length in enumerate(lengths):
        if length < steps:
            padded = slice(0, steps - length) if pre[i] else slice(length, steps)
            x[i, padded] = value
    return x


def probe_input(spec: InputSpec, samples: int, rng) -> np.ndarray:
    shape = _shape(spec, samples)
    masked = spec.mask_value is not None and len(shape) >= 2
    if spec.kind == "tokens":
        # With mask_zero, 0 is padding: the real ids start at 1.
        low = max(int(spec.low), 1) if masked else int(spec.low)
        # In the input's own dtype: a float input that feeds an Embedding
        # (folder/signature.py) gets whole ids as floats.
        x = rng.integers(low, int(spec.high), size=shape, dtype=np.int64).astype(spec.dtype)
    else:
        x = rng.uniform(spec.low, spec.high, size=shape).astype(np.float32)
    if masked:
        lengths = _padding_lengths(rng, samples, shape[1])
        x = _pad(x, lengths, spec.mask_value, rng)
    return x


def probe_inputs(signature: Signature, samples: int | None) -> list[np.ndarray]:
    """One array per input, in the signature's order (256 samples by default)."""
    rng = np.random.default_rng(PROBE_SEED)
    return [probe_input(spec, samples or 256, rng) for spec in signature.inputs]


def _padded_fraction(x: np.ndarray, spec: InputSpec) -> float | None:
    if spec.mask_value is None or x.ndim < 2:
        return None
    steps = x == spec.mask_value
    if x.ndim > 2:  # Masking: a step is padding when every feature is the mask value
        steps = steps.reshape(*x.shape[:2], -1).all(axis=-1)
    return float(steps.mean())


def describe(xs: list[np.ndarray], signature: Signature) -> list[dict]:
    """What was fed, per input: dtype, min, max, distinct samples, padded steps."""
    out = []
    for x, spec in zip(xs, signature.inputs, strict=True):
        flat = x.reshape(len(x), -1)
        out.append(
            {
                "name": spec.name,
                "dtype": str(x.dtype),
                "shape": list(x.shape),
                "min": float(x.min()) if x.size else None,
                "max": float(x.max()) if x.size else None,
                "distinct_samples": int(len(np.unique(flat, axis=0))) if x.size else 0,
                "distinct_values": int(len(np.unique(x))) if spec.kind == "tokens" else None,
                "padded_fraction": _padded_fraction(x, spec),
            }
        )
    return out


def vacuity(described: list[dict], signature: Signature) -> str | None:
    """Why these inputs cannot tell paths apart, or None when they can."""
    for d, spec in zip(described, signature.inputs, strict=True):
        if d["shape"][0] > 1 and d["distinct_samples"] <= 1:
            return f"input {d['name']}: all {d['shape'][0]} samples are the same"
        if spec.kind == "tokens" and (d["distinct_values"] or 0) <= 1:
            return f"input {d['name']}: every token id is {d['min']:g}"
    return None


def describe_outputs(ys: list[np.ndarray], names: list[str]) -> list[dict]:
    """What the truth computed, per output: over how many samples, how many
    distinct ones, and the spread (the largest range, across samples, of
    any one output value)."""
    out = []
    for y, name in zip(ys, names, strict=True):
        y = np.asarray(y)
        flat = y.reshape(len(y), -1).astype(np.float64) if y.ndim else y.reshape(1, 1)
        # the finite values only: NaN or ±Inf in some samples say nothing of the others
        finite = np.ma.masked_invalid(flat)
        spread = (finite.max(axis=0) - finite.min(axis=0)).max() if finite.count() else None
        out.append(
            {
                "name": name,
                "samples": int(len(flat)),
                "distinct_samples": int(len(np.unique(flat, axis=0))) if flat.size else 0,
                "spread": None if spread is None else float(spread),
                "max_abs": float(np.abs(finite).max()) if finite.count() else None,
            }
        )
    return out


def output_vacuity(described: list[dict], atol: float, rtol: float) -> str | None:
    """Why the truth's outputs cannot tell paths apart, or None when they
    can: every output the same for every sample, or varying by no more than
    the tolerance (a path that ignored its inputs would pass). One output
    that varies is enough: it exercises what computes it."""
    if not described or described[0]["samples"] < 2:
        return None
    said = []
    for d in described:
        if d["spread"] is None:
            said.append(f"{d['name']} no finite value")
            continue
        if d["distinct_samples"] > 1 and d["spread"] > atol + rtol * d["max_abs"]:
            return None
        said.append(f"{d['name']} {d['distinct_samples']} distinct, spread {d['spread']:.1e}")
    return f"over {described[0]['samples']} samples: {'; '.join(said)}"
