"""`tfjs-bridge verify`: the same inputs through Python and through every Node
path (runtimes.py), compared by parity.compare. Node runs in one long-lived
worker per backend (workers.py), so a path is timed and checked, not started.
verify_models also takes users' own Keras files and records what passed in
each model folder's parity.json (parity_record.py)."""

from __future__ import annotations

import importlib.metadata
import math
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..conversion import quantization
from ..core.errors import NodeError, UsageError
from ..core.progress import NO_PROGRESS, Progress
from ..core.versions import python_versions
from ..folder.parity_record import FAIL, PASS, SKIP, record_parity
from ..folder.signature import Signature
from ..importing.tfjs_import import PYTHON_MODELS
from ..runtime.pool import on_workers, run_on_path
from ..runtime.runtimes import Runtime
from ..training import data
from . import compare, probes
from .reverse import TRUTH_FORMAT, PythonModels, is_reverse, result_name, run_reverse_path
from .truth import CHUNK, Reference, Subject, subject_from_folder

ONE_BY_ONE = 4  # samples also predicted in batches of one, on every path


@dataclass
class PathResult:
    model: str
    runtime: str
    status: str  # parity_record.STATUSES: pass | fail | skip
    reason: str = ""
    figures: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "runtime": self.runtime,
            "status": self.status,
            "reason": self.reason,
            **self.figures,
        }


@dataclass
class VerifyReport:
    results: list[PathResult]
    samples: dict[str, int]
    tolerances: dict[str, dict]
    runtimes: dict[str, dict]
    python: dict[str, str]
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, list[dict]] = field(default_factory=dict)  # what was fed (probes.describe)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == PASS for r in self.results)

    def to_json(self) -> dict:
        return {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "ok": self.ok,
            "samples": self.samples,
            "tolerances": self.tolerances,
            "versions": {
                "python": self.python,
                "converter": {"tensorflowjs": importlib.metadata.version("tensorflowjs")},
                "node": self.runtimes,
            },
            "notes": self.notes,
            "inputs": self.inputs,
            "results": [r.to_json() for r in self.results],
        }


def plan(
    subjects: list[Subject], runtimes: list[Runtime], explicit: bool
) -> tuple[list, list[str]]:
    """(subject, runtime) pairs to run. Without an explicit --runtime, paths
    whose format a model folder lacks are left out, with a note."""
    pairs, notes = [], []
    for subject in subjects:
        for rt in runtimes:
            if is_reverse(subject) and rt.format != TRUTH_FORMAT:
                # an imported folder: its truth is the tfjs layers model, run in Node
                notes.append(f"{subject.name}: imported from tfjs, {rt.name} not run")
            elif rt.format in subject.formats or explicit:
                pairs.append((subject, rt))
            else:
                notes.append(f"{subject.name}: no {rt.format} model, {rt.name} not run")
    return pairs, notes


def verify(
    subjects: list[Subject],
    runtimes: list[Runtime],
    samples: int | None,
    atol: float | None = None,
    rtol: float | None = None,
    explicit_runtimes: bool = False,
    progress: Progress = NO_PROGRESS,
    timeout: float | None = None,
    ranges: dict[str, tuple[float, float]] | None = None,
    feeds: dict[str, list[np.ndarray]] | None = None,
    max_accuracy_drop: float | None = None,
) -> VerifyReport:
    """Every (subject, runtime) pair on the same inputs. `ranges` overrides
    input domains by input name; `feeds` gives a subject's inputs outright."""
    pairs, notes = plan(subjects, runtimes, explicit_runtimes)
    # The spec's tolerances unless the caller overrides them.
    tolerances = {
        s.name: {
            "atol": s.atol if atol is None else atol,
            "rtol": s.rtol if rtol is None else rtol,
            **({"max_accuracy_drop": max_accuracy_drop} if max_accuracy_drop is not None else {}),
        }
        for s in subjects
    }
    inputs, references, truth, fed, refused = {}, {}, {}, {}, {}
    for subject in subjects:
        xs, labels = inputs_for(subject, samples, ranges or {}, (feeds or {}).get(subject.name))
        inputs[subject.name] = (xs, labels)
        fed[subject.name] = probes.describe(xs, subject.signature)
        why = probes.vacuity(fed[subject.name], subject.signature)
        if why:
            refused[subject.name] = f"refused: the inputs cannot tell paths apart ({why})"
            continue
        references[subject.name] = (
            PythonModels(subject) if is_reverse(subject) else Reference(subject)
        )
        truth[subject.name] = references[subject.name](xs)
    results: list[PathResult] = [
        PathResult(s.name, name, FAIL, refused[s.name])
        for s, rt in pairs
        if s.name in refused
        for name in _result_names(s, rt)
    ]
    pairs = [(s, rt) for s, rt in pairs if s.name not in refused]

    chunks = {s.name: math.ceil(len(inputs[s.name][0][0]) / CHUNK) for s in subjects}

    def run(worker, subject: Subject, rt: Runtime) -> None:
        name = subject.name
        if is_reverse(subject):  # truth[name]: each Keras model's outputs
            results.extend(
                run_reverse_path(worker, subject, rt, inputs[name], truth[name],
                                 references[name].output_names, tolerances[name], progress,
                                 ONE_BY_ONE)
            )  # fmt: skip
            return
        results.append(
            _run_path(worker, subject, rt, inputs[name], references[name], truth[name],
                      tolerances[name], progress)
        )  # fmt: skip

    def unavailable(subject: Subject, rt: Runtime, err: NodeError) -> None:
        for name in _result_names(subject, rt):
            results.append(PathResult(subject.name, name, SKIP, f"backend {rt.backend}: {err}"))
        progress.advance(chunks[subject.name])

    progress.start(sum(chunks[s.name] for s, _ in pairs), "verify")
    try:
        runtime_info = on_workers(pairs, run, unavailable, timeout=timeout)
    finally:
        progress.close()
    return VerifyReport(
        results=results,
        samples={s.name: len(inputs[s.name][0][0]) for s in subjects},
        tolerances=tolerances,
        runtimes=runtime_info,
        python=python_versions(),
        notes=notes,
        inputs=fed,
    )


def _result_names(subject: Subject, rt: Runtime) -> list[str]:
    """One result per path; an imported folder's path checks each of its Keras models."""
    return [result_name(p, rt.name) for p in PYTHON_MODELS] if is_reverse(subject) else [rt.name]


def inputs_for(subject: Subject, samples, ranges, given) -> tuple[list[np.ndarray], object]:
    """(one array per input, labels or None): the user's own (--inputs), the
    registry data set's real inputs, or inputs made to exercise the model
    within each input's domain (probes.py)."""
    signature: Signature = subject.signature
    if ranges:
        signature = signature.with_ranges(ranges)
    if given is not None:
        return given, None
    if subject.data is not None and len(signature.inputs) == 1 and not ranges:
        x, labels = data.reference_inputs(
            subject.data, subject.input_shape, samples, subject.model_dir
        )
        return [x], labels
    return probes.probe_inputs(signature, samples), None


def _run_path(worker, subject, rt, inputs, reference, truth, tol, progress) -> PathResult:
    xs, labels = inputs
    n = len(xs[0])
    names_in = subject.signature.names
    if rt.format not in subject.formats:
        progress.advance(math.ceil(n / CHUNK))
        return PathResult(subject.name, rt.name, SKIP, f"the model folder has no {rt.format} model")
    try:
        run = run_on_path(worker, subject.model_dir, rt.format, xs, names_in, CHUNK, ONE_BY_ONE,
                          progress.advance)  # fmt: skip
    except NodeError as err:
        return PathResult(subject.name, rt.name, FAIL, str(err))
    expected = reference.for_format(rt.format, truth)
    names = (reference.expected_names(rt.format), run.output_names)
    figures = compare.compare(
        expected,
        run.outputs,
        *names,
        atol=tol["atol"],
        rtol=tol["rtol"],
        labels=labels,
        classifier=subject.classifier,
    )
    figures.update(samples=n, load_ms=run.load_ms, predict_ms=run.predict_ms)
    passed = figures.pop("passed")
    reason = figures.pop("reason", "")
    conversion = subject.quantized.get(rt.format)
    if conversion:  # quantized weights: judged by a budget (quantization.py), not by 1e-5
        passed, reason = quantization.judge(
            figures, expected, conversion, tol.get("max_accuracy_drop")
        )
        expected = run.outputs  # one at a time must still agree with its own batches
    if passed:
        one_by_one = compare.compare(
            [e[: len(run.singles[0])] for e in expected],
            run.singles,
            *names,
            atol=tol["atol"],
            rtol=tol["rtol"],
        )
        passed = one_by_one["passed"]
        reason = "" if passed else f"one sample at a time: {one_by_one['reason']}"
    return PathResult(subject.name, rt.name, PASS if passed else FAIL, reason, figures)


def verify_models(
    model_dirs: list[Path],
    keras_models: list[Path],
    runtimes: list[Runtime],
    samples: int | None,
    atol: float | None = None,
    rtol: float | None = None,
    explicit_runtimes: bool = False,
    progress: Progress = NO_PROGRESS,
    ranges: dict[str, tuple[float, float]] | None = None,
    inputs_file: Path | None = None,
    max_accuracy_drop: float | None = None,
) -> VerifyReport:
    """verify for model folders and for users' own models (.h5, .keras or
    SavedModel folders), each exported to a temporary folder for the run.
    The folders that outlive it learn which of their paths passed (parity.json).
    `inputs_file` (.npy or .npz by input name) replaces the generated inputs
    of the one model verified."""
    from ..conversion.export import export_model
    from ..folder.checked_inputs import load_inputs

    if inputs_file is not None and len(model_dirs) + len(keras_models) != 1:
        raise UsageError("--inputs gives one model's inputs: verify one model with it")
    kept = [subject_from_folder(d) for d in model_dirs]  # a bad folder fails before any export
    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-verify-") as tmp:
        exported = []
        for i, source in enumerate(keras_models):
            target = Path(tmp) / f"{i}-{source.stem or 'model'}"
            export_model(source, target, name=source.stem or source.name)
            exported.append(subject_from_folder(target))
        feeds = None
        if inputs_file is not None:
            (subject,) = kept + exported
            feeds = {subject.name: load_inputs(inputs_file, subject.signature)}
        report = verify(
            kept + exported,
            runtimes,
            samples,
            atol=atol,
            rtol=rtol,
            explicit_runtimes=explicit_runtimes,
            progress=progress,
            ranges=ranges,
            feeds=feeds,
            max_accuracy_drop=max_accuracy_drop,
        )
    record_parity(report, kept)
    return report
