"""verify in the reverse direction, for a folder `tfjs-bridge import` wrote:
the truth is the tfjs layers model run in Node (tfjs-node and the pure-JS
backend), and what is checked is each Keras model made from it, in Python
(keras.h5 in tf-keras, model.keras in Keras 3). The inputs, the vacuity
refusal, the comparison (parity.compare) and the report are verify's; only
which side is the truth changes. A result's runtime reads
"tf-keras vs tfjs-node/layers"."""

from __future__ import annotations

import numpy as np

from ..conversion.keras_loader import KERAS3, TF_KERAS, load_keras
from ..core.errors import NodeError
from ..core.quiet_tf import import_tensorflow
from ..folder import artifacts
from ..folder.parity_record import FAIL, PASS
from ..importing.tfjs_import import PYTHON_MODELS, REFERENCE_KIND
from ..runtime.pool import run_on_path
from . import compare
from .truth import CHUNK, Subject, _as_list, _one_or_list

TRUTH_FORMAT = "layers"  # the imported tfjs model: the only format such a folder holds


def is_reverse(subject: Subject) -> bool:
    return subject.reference_kind == REFERENCE_KIND


def result_name(python: str, runtime: str) -> str:
    return f"{python} vs {runtime}"


class PythonModels:
    """The Keras models an imported folder holds, each run on the inputs."""

    def __init__(self, subject: Subject):
        import_tensorflow()
        self.subject = subject
        self.calls, self.output_names = {}, {}
        for python, rel in PYTHON_MODELS.items():
            # What is checked must be what import wrote, not a tampered copy.
            artifacts.check_integrity(subject.model_dir, [rel])
            model = _load(python, subject.model_dir / rel)
            self.calls[python] = model
            self.output_names[python] = _output_names(python, model)

    def __call__(self, xs: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
        """Each Python model's outputs, in its output_names order."""
        out = {}
        for python, model in self.calls.items():
            parts = [
                [
                    np.asarray(y)
                    for y in _as_list(
                        model(_one_or_list([x[i : i + CHUNK] for x in xs]), training=False)
                    )
                ]
                for i in range(0, len(xs[0]), CHUNK)
            ]
            out[python] = [np.concatenate(ys) for ys in zip(*parts, strict=True)]
        return out


def _load(python: str, path):
    return load_keras(path, TF_KERAS if python == "tf-keras" else KERAS3)


def _output_names(python: str, model) -> list[str]:
    if python == "tf-keras":
        return list(model.output_names)
    from ..conversion.keras3 import output_names

    return output_names(model)


def _relabelled(figures: dict) -> dict:
    """parity.compare calls the truth "python" and the checked side "node":
    here the truth is tfjs (Node) and the checked side Keras (Python)."""
    for output in figures.get("outputs", []):
        output["first_outside"] = [
            {"index": f["index"], "tfjs": f["python"], "keras": f["node"]}
            for f in output.get("first_outside", [])
        ]
    return figures


def run_reverse_path(worker, subject, rt, inputs, keras_outputs, names, tol, progress, one_by_one):
    """The tfjs model on one Node runtime (the truth) against every Keras
    model of the folder: one PathResult each."""
    from .verify import PathResult

    xs, labels = inputs
    n = len(xs[0])
    try:
        run = run_on_path(worker, subject.model_dir, TRUTH_FORMAT, xs, subject.signature.names,
                          CHUNK, one_by_one, progress.advance)  # fmt: skip
    except NodeError as err:
        return [PathResult(subject.name, result_name(p, rt.name), FAIL, str(err)) for p in names]
    truth, truth_singles = run.outputs, run.singles
    results = []
    for python, outputs in keras_outputs.items():
        figures = compare.compare(
            truth,
            outputs,
            run.output_names,
            names[python],
            atol=tol["atol"],
            rtol=tol["rtol"],
            labels=labels,
            classifier=subject.classifier,
        )
        figures.update(samples=n, load_ms=run.load_ms, predict_ms=run.predict_ms)
        passed, reason = figures.pop("passed"), figures.pop("reason", "")
        if passed:
            # tfjs at a batch of one (another loop on some backends) must agree too.
            single = compare.compare(
                truth_singles,
                [y[: len(truth_singles[0])] for y in outputs],
                run.output_names,
                names[python],
                atol=tol["atol"],
                rtol=tol["rtol"],
            )
            passed = single["passed"]
            reason = "" if passed else f"one sample at a time: {single['reason']}"
        results.append(
            PathResult(
                subject.name,
                result_name(python, rt.name),
                PASS if passed else FAIL,
                reason,
                _relabelled(figures),
            )
        )
    return results
