"""What verify can still check of a path on a model that is ill-conditioned
at its inputs (conditioning.py): the model on the first k steps of every
sequence. A rounding difference needs steps to grow, so a short prefix is
well-conditioned, and a wrong weight shows there from the second step on.

k is halved from T until Keras's own move under one-ulp input nudges stays
within STEADY x the tolerance on the whole prefix; the path must then agree
with Keras within the tolerance on it. The truth on a prefix: a Keras model
whose time axis is free takes it as it is; one fixed to T steps is rebuilt
from its config with the time axis freed (the same weights). The path on a
prefix: a stream path steps any length; the layers model is loaded with its
time axis freed (runtime/free_time.py); a model with a free time axis runs a
prefix on every path. The graph, SavedModel, ONNX and TFLite models of a
fixed time axis are unrolled to T steps: their check is `unavailable`."""

from __future__ import annotations

import numpy as np

from ..core.errors import NodeError, first_line
from ..runtime.free_time import FreeTimeLoading
from ..runtime.pool import run_on_path
from ..runtime.streams import StreamFeeding
from . import compare
from .conditioning import NUDGES, nudged
from .truth import Computed, keras_call, run_chunked

# Keras's one-ulp move on a checked prefix is at most this fraction of the
# tolerance: a path whose rounding grows up to 10x as fast still lands within.
STEADY = 0.1
# One step from a zero state never multiplies the recurrent kernel.
MIN_STEPS = 2
PASS, MISMATCH, UNAVAILABLE = "pass", "mismatch", "unavailable"
CHECK = "prefix"


def free_time_config(config, least_rank: int = 3):
    """A Keras model config with the time axis of every input (and build)
    shape freed, [batch, T, ...] -> [batch, None, ...], and no RNN unrolled
    (unrolling needs a fixed T). `least_rank` 2 (token ids [batch, T]) frees
    the inputs' [batch, T] and an Embedding's input_length too, but no
    layer's build shape of rank 2: that is [batch, features] (a Dense's)."""
    if isinstance(config, dict):
        out = {k: free_time_config(v, least_rank) for k, v in config.items()}
        for key in ("batch_input_shape", "batch_shape", "input_shape"):
            shape = out.get(key)
            least = least_rank if key != "input_shape" else 3
            if isinstance(shape, list | tuple) and len(shape) >= least:
                out[key] = [shape[0], None, *shape[2:]]
        if least_rank == 2 and out.get("input_length") is not None:
            out["input_length"] = None
        if out.get("unroll") is True:
            out["unroll"] = False
        return out
    if isinstance(config, list | tuple):
        return [free_time_config(v, least_rank) for v in config]
    return config


def free_time_twin(model):
    """The same Keras model (tf-keras or Keras 3) with a free time axis: a
    model of one input of token ids [batch, T] has its T freed too."""
    from ..conversion.keras_loader import CUSTOM_OBJECTS

    (first, *others) = model.inputs
    tokens = not others and len(first.shape) == 2 and "int" in str(first.dtype)
    config = free_time_config(model.get_config(), 2 if tokens else 3)
    twin = type(model).from_config(config, custom_objects=CUSTOM_OBJECTS)
    twin.set_weights(model.get_weights())
    return twin


def _widened(ys) -> list[np.ndarray]:
    """float16 outputs as float32, as KerasTruth gives them (Node has no float16)."""
    out = [np.asarray(y) for y in ys]
    return [y.astype(np.float32) if y.dtype.kind in "fV" and y.dtype.itemsize < 4 else y
            for y in out]  # fmt: skip


class PrefixCheck:
    """One model's prefix check: the steady prefix is found once (on the
    first path that asks), then each ill-conditioned path is run on it."""

    def __init__(self, truth, xs: list[np.ndarray], signature, relative: float):
        self.truth, self.xs, self.signature, self.relative = truth, xs, signature, relative
        self._found = None

    def _truth_call(self):
        """(call on a prefix, None) or (None, why not)."""
        if len(self.signature.inputs) != 1 or self.xs[0].ndim < 2:
            return None, "a prefix check takes a model with one sequence input"
        if self.signature.inputs[0].shape[0] is None:
            return self.truth, None
        model = getattr(self.truth, "keras_model", None)
        if model is None:
            return None, "the truth is not a Keras model, which alone can be rebuilt for prefixes"
        try:
            twin = free_time_twin(model)
        except Exception as exc:  # any Keras refusal: the check is unavailable, said why
            return None, f"Keras cannot rebuild the model with a free time axis ({first_line(exc)})"
        call = keras_call(twin, self.signature.names)
        return (lambda xs: _widened(run_chunked(call, xs))), None

    def steady(self, tol: dict) -> dict:
        """The longest halving of T whose Keras move is within STEADY x tol:
        {"steps", "of_steps", "keras_moves", "tried", "expected"} or {"why"}."""
        if self._found is not None:
            return self._found
        call, why = self._truth_call()
        steps = self.xs[0].shape[1] if self.xs[0].ndim >= 2 else 0
        self._found = {"why": why} if why else {"why": None, "of_steps": steps, "tried": {}}
        k = steps // 2
        while call is not None and k >= MIN_STEPS:
            prefix = [x[:, :k] for x in self.xs]
            try:
                expected = call(prefix)
                moved = [call(nudged(prefix, self.signature, self.relative, seed))
                         for seed in range(NUDGES)]  # fmt: skip
            except Exception as exc:  # Keras refusing a length: unavailable, said why
                self._found = {"why": f"Keras cannot run {k} steps ({first_line(exc)})"}
                return self._found
            move, ratio = _move(expected, moved, tol)
            self._found["tried"][str(k)] = move
            if ratio <= STEADY:
                self._found.update(steps=k, keras_moves=move, expected=expected)
                return self._found
            k //= 2
        if not self._found["why"]:
            self._found["why"] = (
                f"Keras moves beyond {STEADY} x the tolerance under a one-ulp input change "
                f"even on the first {max(k * 2, MIN_STEPS)} steps"
            )
        return self._found

    def check(self, worker, subject, rt, fmt: str, index: int, tol: dict, chunk: int,
              singles: int) -> dict:  # fmt: skip
        """The path `rt` (running `fmt`) on the steady prefix against Keras,
        in batches and the first `singles` samples one at a time: figures
        and "verdict" pass | mismatch | unavailable, with a "reason"."""
        found = self.steady(tol)
        out = {"check": CHECK, "samples": int(len(self.xs[0]))}
        out.update({k: v for k, v in found.items() if k not in ("expected", "why")})
        if found["why"]:
            return {**out, "verdict": UNAVAILABLE, "reason": found["why"]}
        fixed = self.signature.inputs[0].shape[0] is not None
        if rt.stream and not isinstance(worker, StreamFeeding):
            worker = StreamFeeding(worker)
        elif fixed and fmt == "layers" and not rt.stream:
            worker = FreeTimeLoading(worker)
        elif fixed and not rt.stream:
            why = f"the {fmt} model is unrolled to {found['of_steps']} steps: it runs no prefix"
            return {**out, "verdict": UNAVAILABLE, "reason": why}
        prefix = [x[:, : found["steps"]] for x in self.xs]
        try:
            run = run_on_path(worker, subject.model_dir, fmt, prefix, subject.signature.names,
                              chunk, singles, lambda: None)  # fmt: skip
        except NodeError as err:
            why = f"the path did not run {found['steps']} steps ({first_line(err)})"
            return {**out, "verdict": UNAVAILABLE, "reason": why}
        # with its inputs: a stream path's truth is computed from them (every prefix)
        c = self.truth.comparisons(rt.name, fmt, run, Computed(found["expected"], prefix))[index]
        names = (c.expected_names, c.got_names)
        figures = compare.compare(c.expected, c.got, *names, tol["atol"], tol["rtol"],
                                  classifier=subject.classifier,
                                  ties_excused=tol.get("ties_excused", False))  # fmt: skip
        for key in ("max_abs", "max_rel", "outside", "elements"):
            if key in figures:
                out[key] = figures[key]
        alone = compare.compare(c.expected_singles, c.got_singles, *names, tol["atol"], tol["rtol"])
        out["singles_max_abs"] = alone.get("max_abs")
        if figures["passed"] and not alone["passed"]:  # a batch of one can take another code path
            figures = {**alone, "reason": f"one sample at a time: {alone['reason']}"}
        verdict = PASS if figures["passed"] else MISMATCH
        where = (f"the first {found['steps']} of {found['of_steps']} steps, {out['samples']} "
                 f"samples")  # fmt: skip
        if verdict == PASS:
            said = f"max |err| {figures['max_abs']:.1e} (Keras moves by {found['keras_moves']:.1e})"
        else:
            said = figures.get("reason", "")
            if "max_abs" in figures:
                said += f", max |err| {figures['max_abs']:.1e}"
        return {**out, "verdict": verdict, "reason": f"{where}: {said}"}


def _move(expected, moved, tol) -> tuple[float, float]:
    """(largest |move|, largest move / (atol + rtol |expected|)) over every
    output and nudge."""
    largest = ratio = 0.0
    for side in moved:
        for e, m in zip(expected, side, strict=True):
            e, m = e.astype(np.float64), m.astype(np.float64)
            gap = compare._gap(e, m)
            if gap.size:
                largest = max(largest, float(gap.max()))
                ratio = max(ratio, float((gap / (tol["atol"] + tol["rtol"] * np.abs(
                    np.nan_to_num(e)))).max()))  # fmt: skip
    return largest, ratio
