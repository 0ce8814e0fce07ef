"""A model folder's tflite/model.tflite run in Python's TFLite interpreter
(TensorFlow's own, tf.lite.Interpreter), by the SavedModel's signature names:
the LiteRT path, python-tflite/tflite (runtimes.py). TfliteWorker answers as
a Node worker does (load, predict, dispose), in this process, so verify runs
it through pool.on_workers and judges it by the same rules as every path.

The file is checked against manifest.json's sha256 before it is read, as
every Node path checks its files. The batch dimension is resized to the
inputs' before tensors are allocated (the converter keeps it dynamic)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..conversion.tflite_export import interpreter
from ..core.errors import BridgeError
from ..core.memory import status_kib
from ..core.quiet_tf import native_stderr_hidden
from ..core.timing import time_calls
from ..folder import artifacts
from ..folder.formats import TFLITE

SIGNATURE = "serving_default"


class TfliteModel:
    """``m = TfliteModel(folder); ys = m.predict({"input": x})``: outputs by name."""

    def __init__(self, model_dir: Path):
        path = TFLITE.path(model_dir)
        if not path.exists():
            raise BridgeError(f"{path}: not found: run `{TFLITE.made_by}` for this model")
        artifacts.check_integrity(model_dir, [f"{TFLITE.folder}/{TFLITE.entry}"])
        self.interpreter = interpreter(path)
        runner = self.interpreter.get_signature_runner(SIGNATURE)
        # name -> tensor index; set_tensor and get_tensor copy, so no view into
        # the interpreter's memory outlives a call and blocks a later resize.
        self.inputs = {k: d["index"] for k, d in runner.get_input_details().items()}
        self.outputs = {k: d["index"] for k, d in runner.get_output_details().items()}
        self._batch = None

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if sorted(inputs) != sorted(self.inputs):
            raise BridgeError(
                f"tflite: inputs {sorted(inputs)} given, the model takes {sorted(self.inputs)}"
            )
        batch = len(next(iter(inputs.values())))
        if batch != self._batch:
            for name, index in self.inputs.items():
                self.interpreter.resize_tensor_input(index, [batch, *inputs[name].shape[1:]])
            with native_stderr_hidden():  # "INFO: Created TensorFlow Lite XNNPACK delegate"
                self.interpreter.allocate_tensors()
            self._batch = batch
        for name, index in self.inputs.items():
            self.interpreter.set_tensor(index, inputs[name])
        self.interpreter.invoke()
        return {name: self.interpreter.get_tensor(index) for name, index in self.outputs.items()}


class TfliteWorker:
    """NodeWorker's interface (worker_process.py) over TfliteModel, in-process."""

    backend = "python-tflite"

    def __init__(self, timeout: float | None = None):  # nothing to wait for: no process
        from ..core.quiet_tf import import_tensorflow

        tf = import_tensorflow()
        self.info = {"backend": self.backend, "runtime": "tf.lite.Interpreter",
                     "tensorflow": tf.__version__}  # fmt: skip
        self._models: dict[int, TfliteModel] = {}
        self.start_seconds = 0.0

    def load(self, model_dir, fmt: str | None) -> dict:
        if fmt != TFLITE.name:
            raise BridgeError(f"python-tflite runs the tflite format, not {fmt}")
        started = time.perf_counter()
        model = TfliteModel(Path(model_dir))
        handle = len(self._models) + 1
        self._models[handle] = model
        load_ms = (time.perf_counter() - started) * 1000
        return {"handle": handle, "outputs": list(model.outputs), "load_ms": load_ms}

    def predict(self, handle: int, xs, names: list[str] | None = None):
        model = self._models[handle]
        arrays = [xs] if isinstance(xs, np.ndarray) else list(xs)
        if len(arrays) == 1 and len(model.inputs) == 1:
            feeds = {next(iter(model.inputs)): arrays[0]}
        else:
            feeds = dict(zip(names or list(model.inputs), arrays, strict=True))
        started = time.perf_counter()
        ys = model.predict(feeds)
        return list(ys.values()), {"ms": (time.perf_counter() - started) * 1000}

    def request(self, op: str, arrays=(), timeout: float | None = None, **args):
        """The worker protocol's `bench` and `memory` (as node/worker.js answers
        them): bench times calls of one batch as timeCalls does, first call
        apart, `warmup` calls, then at least `min_reps` and at most `max_reps`
        within `budget_ms`."""
        if op == "memory":
            return self.memory(), []
        if op != "bench":
            raise BridgeError(f"python-tflite answers bench and memory, not {op}")
        model, xs = args["handle"], list(arrays)
        warmup, budget = args.get("warmup", 3), args.get("budget_ms", 2000) / 1000
        min_reps, max_reps = args.get("min_reps", 5), args.get("max_reps", 200)

        def once() -> float:
            return self.predict(model, xs, args.get("inputs"))[1]["ms"]

        times, first = time_calls(once, budget, warmup, min_reps, max_reps, reports_ms=True)
        return {"first_ms": first, "ms": times}, []

    def memory(self) -> dict:
        """This process's resident memory, in bytes: the interpreter runs in it."""
        return {"peak_rss": status_kib("self", "VmHWM") * 1024,
                "rss": status_kib("self", "VmRSS") * 1024}  # fmt: skip

    def dispose(self, handle: int) -> None:
        self._models.pop(handle, None)

    def close(self) -> None:
        self._models.clear()

    def __enter__(self) -> TfliteWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
