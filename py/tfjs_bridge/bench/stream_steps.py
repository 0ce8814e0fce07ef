"""`tfjs-bridge bench --stream`: one stream, side by side in one run, on the
same model folder: tfjs-node's stream step (node/scripts/bench-stream.js, the
folder's layers model; on array ops and on TensorFlow's ops, and which one
Node chooses) against re-running the prefix, and Python Keras's own
stream, the model's stateful twin (batch 1, stateful=True, same weights)
called on one step at a time, by `predict_on_batch` and by a `tf.function`
with a fixed signature. Every step's output is read back on both sides (a
user needs the value); the first pass of every stepper is a warm-up, not
timed (it traces and compiles)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conversion.keras_loader import load_keras
from ..conversion.stateful import reset_states, stepping_twin
from ..core.errors import BridgeError, NodeError, UsageError
from ..core.quiet_tf import import_tensorflow
from ..folder import artifacts
from ..runtime.node_process import run_node

NODE_BENCH = "scripts/bench-stream.js"
SEED = 24


@dataclass
class Stepper:
    """Keras's stream: step(x [1, 1, ...]) -> that step's output (numpy),
    carrying the state; reset() starts again from zero. prepare(x) makes a
    step what step() takes best (a tensor for a tf.function), before the
    clock starts, as Node's steps are tensors made before they are timed."""

    name: str
    step: Callable[[object], np.ndarray]
    reset: Callable[[], None]
    prepare: Callable[[np.ndarray], object] = lambda x: x


def keras_steppers(model) -> list[Stepper]:
    """The two ways Python steps a stateful model, each on its own stateful
    twin of `model` (so they never share a state)."""
    tf = import_tensorflow()
    by_batch = stepping_twin(model)
    compiled = stepping_twin(model)
    step_shape = (1, 1, *compiled.inputs[0].shape[2:])
    dtype = compiled.inputs[0].dtype
    call = tf.function(lambda x: compiled(x, training=False),
                       input_signature=[tf.TensorSpec(step_shape, dtype)])  # fmt: skip
    return [
        Stepper("Python stateful, predict_on_batch",
                lambda x: np.asarray(by_batch.predict_on_batch(x)),
                lambda: reset_states(by_batch)),
        Stepper("Python stateful, tf.function", lambda x: call(x).numpy(),
                lambda: reset_states(compiled), tf.constant),
    ]  # fmt: skip


def stepped_outputs(stepper: Stepper, x: np.ndarray) -> np.ndarray:
    """x [1, T, ...] fed one step at a time from the zero state: every step's output [T, ...]."""
    stepper.reset()
    steps = [stepper.prepare(x[:, t : t + 1]) for t in range(x.shape[1])]
    return np.stack([stepper.step(step)[0] for step in steps])


def time_steps(stepper: Stepper, x: np.ndarray, reps: int) -> list[float]:
    """ms per step over `reps` passes of x's steps, each from the zero state,
    after one untimed pass (tracing, compiling, caches)."""
    steps = [stepper.prepare(x[:, t : t + 1]) for t in range(x.shape[1])]
    times: list[float] = []
    for rep in range(reps + 1):
        stepper.reset()
        for step in steps:
            started = time.perf_counter()
            stepper.step(step)
            if rep:
                times.append((time.perf_counter() - started) * 1000)
    return times


def summary(ms: list[float]) -> dict:
    """p50, p99 and count, picked as bench-stream.js picks them."""
    ordered = sorted(ms)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50_ms": pick(0.5), "p99_ms": pick(0.99), "n": len(ordered)}


def sequence_of(model_dir: Path, steps: int) -> np.ndarray:
    """One seeded sequence [1, steps, ...] within the model's input range (its manifest)."""
    [spec] = artifacts.read_manifest(model_dir)["signature"]["inputs"]
    if spec.get("kind") == "tokens":
        raise UsageError(f"bench --stream: {model_dir.name} takes token ids, not benched yet")
    low = 0.0 if spec.get("low") is None else spec["low"]
    high = 1.0 if spec.get("high") is None else spec["high"]
    shape = (1, steps, *spec["shape"][1:])
    return np.random.default_rng(SEED).uniform(low, high, shape).astype(np.float32)


def node_figures(model_dir: Path, steps: int, reps: int) -> dict:
    """bench-stream.js on the folder's layers model: its one result."""
    out = run_node(NODE_BENCH, "--model", str(model_dir.resolve()), "--steps", str(steps),
                   "--reps", str(reps))  # fmt: skip
    try:
        report = json.loads(out)
    except json.JSONDecodeError:
        raise NodeError(f"node {NODE_BENCH} printed no JSON result", out) from None
    [result] = report["results"].values()
    return {**result, "tfjs_node": report["tfjs_node"], "backend": report["backend"]}


def bench_model(model_dir: Path, steps: int, reps: int, log=lambda message: None) -> dict:
    """Every figure of one model folder: Node's, then Python's, one after the
    other (a model Node cannot stream fails before any progress line of its own)."""
    x = sequence_of(model_dir, steps)
    node = node_figures(model_dir, steps, reps)
    log(f"{model_dir.name}: tfjs-node stream and prefix timed ({steps} steps x {reps})")
    model = load_keras(model_dir / artifacts.KERAS_H5)
    python = {}
    for stepper in keras_steppers(model):
        log(f"{model_dir.name}: {stepper.name}")
        python[stepper.name] = summary(time_steps(stepper, x, reps))
    steps_node = {  # Node's choice of ops for one stream (lib/layers/stream.js), then each kind
        "tfjs-node stream step": node["stream_step"],
        "tfjs-node stream step, array ops": node["stream_step_array"],
        "tfjs-node stream step, TensorFlow ops (direct)": node["stream_step_direct"],
    }
    prefix = node[f"prefix_{steps}_steps"]
    compiled = python["Python stateful, tf.function"]["p50_ms"]
    step = node["stream_step"]["p50_ms"]
    return {
        **steps_node,
        f"tfjs-node re-running the {steps}-step prefix": prefix,
        **python,
        "ratios": {
            "stream step / prefix": step / prefix["p50_ms"],
            **{f"stream step / {name}": step / p["p50_ms"] for name, p in python.items()},
            "array ops step / TensorFlow ops step": node["stream_step_array"]["p50_ms"]
            / node["stream_step_direct"]["p50_ms"],
        },
        # issue #24: one stream's step <= Python's stateful step in a tf.function
        "target": {
            "met": step <= compiled,
            "stream_step_p50_ms": step,
            "tf_function_p50_ms": compiled,
            "stream_over_tf_function": step / compiled,
        },
        "stream_step_ops": node["stream_step_ops"],
        "macs_per_step": node["macs_per_step"],
        "streams_stepped_together": node["streams_stepped_together"],
        "tfjs_node": node["tfjs_node"],
    }


def run_stream_bench(model_dirs: list[Path], steps: int = 100, reps: int = 5,
                     log=lambda message: None) -> dict:  # fmt: skip
    """`bench --stream`: the figures of every folder, in one run."""
    tf = import_tensorflow()
    if steps < 1 or reps < 1:
        raise UsageError("bench --stream: --steps and --reps take positive integers")
    for model_dir in model_dirs:  # every folder checked before any is timed
        if not model_dir.is_dir():
            raise BridgeError(f"bench --stream: no model folder {model_dir}")
        if not (model_dir / artifacts.KERAS_H5).is_file():
            raise UsageError(f"bench --stream: {model_dir} has no {artifacts.KERAS_H5}")
        sequence_of(model_dir, 1)  # refuses token-id models
    models = {m.name: bench_model(m, steps, reps, log) for m in model_dirs}
    return {
        "steps": steps,
        "reps": reps,
        "tensorflow": tf.__version__,
        "load_average": list(os.getloadavg()),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "models": models,
    }


def print_stream_bench(report: dict, echo=print) -> None:
    """One table per model: p50 / p99 per step, the ratios, issue #24's
    target, and many streams stepped together on each kind of ops."""
    echo(f"one stream, batch 1, {report['steps']} steps x {report['reps']} passes "
         f"(load average {report['load_average'][0]:.1f} on {report['cpus']} cores)")  # fmt: skip
    for name, figures in report["models"].items():
        ops = figures["stream_step_ops"]
        echo(f"\n{name} ({figures['macs_per_step']} multiply-adds a step; one stream: "
             f"{ops['ops']} ops, {ops['why']})")  # fmt: skip
        for path, f in figures.items():
            if isinstance(f, dict) and "p50_ms" in f:
                echo(f"  {path:<52} p50 {f['p50_ms']:8.3f} ms   p99 {f['p99_ms']:8.3f} ms")
        for what, ratio in figures["ratios"].items():
            echo(f"  {what:<66} {ratio:6.3f}")
        target = figures["target"]
        verdict = "met" if target["met"] else "not met"
        echo(f"  one stream's step <= Python's stateful step (tf.function): {verdict} "
             f"({target['stream_step_p50_ms']:.3f} against {target['tf_function_p50_ms']:.3f} ms, "
             f"{target['stream_over_tf_function']:.2f}x)")  # fmt: skip
        for batch, f in figures["streams_stepped_together"].items():
            echo(f"  {batch:>4} streams stepped together: array ops {f['array']['steps_per_s']:>8} "
                 f"steps/s, TensorFlow ops {f['tensor']['steps_per_s']:>8} steps/s "
                 f"(Node's choice: {f['chosen']})")  # fmt: skip
