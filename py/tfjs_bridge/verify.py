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

from . import data, parity
from .errors import NodeError
from .parity_record import FAIL, PASS, SKIP, record_parity
from .progress import NO_PROGRESS, Progress
from .reference import CHUNK, Reference, Subject, subject_from_folder
from .runtimes import Runtime
from .versions import python_versions
from .workers import on_workers

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
            if rt.format in subject.formats or explicit:
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
) -> VerifyReport:
    pairs, notes = plan(subjects, runtimes, explicit_runtimes)
    # The spec's tolerances unless the caller overrides them.
    tolerances = {
        s.name: {
            "atol": s.atol if atol is None else atol,
            "rtol": s.rtol if rtol is None else rtol,
        }
        for s in subjects
    }
    inputs, references, truth = {}, {}, {}
    for subject in subjects:
        x, labels = data.reference_inputs(subject.data, subject.input_shape, samples)
        inputs[subject.name] = (x, labels)
        references[subject.name] = Reference(subject)
        truth[subject.name] = references[subject.name](x)

    chunks = {s.name: math.ceil(len(inputs[s.name][0]) / CHUNK) for s in subjects}
    results: list[PathResult] = []

    def run(worker, subject: Subject, rt: Runtime) -> None:
        name = subject.name
        results.append(
            _run_path(worker, subject, rt, inputs[name], references[name], truth[name],
                      tolerances[name], progress)
        )  # fmt: skip

    def unavailable(subject: Subject, rt: Runtime, err: NodeError) -> None:
        results.append(PathResult(subject.name, rt.name, SKIP, f"backend {rt.backend}: {err}"))
        progress.advance(chunks[subject.name])

    progress.start(sum(chunks[s.name] for s, _ in pairs), "verify")
    try:
        runtime_info = on_workers(pairs, run, unavailable, timeout=timeout)
    finally:
        progress.close()
    return VerifyReport(
        results=results,
        samples={s.name: len(inputs[s.name][0]) for s in subjects},
        tolerances=tolerances,
        runtimes=runtime_info,
        python=python_versions(),
        notes=notes,
    )


def _run_path(worker, subject, rt, inputs, reference, truth, tol, progress) -> PathResult:
    x, labels = inputs
    if rt.format not in subject.formats:
        progress.advance(math.ceil(len(x) / CHUNK))
        return PathResult(subject.name, rt.name, SKIP, f"the model folder has no {rt.format} model")
    try:
        loaded = worker.load(subject.model_dir, rt.format)
        parts, predict_ms = [], 0.0
        for i in range(0, len(x), CHUNK):
            ys, timing = worker.predict(loaded["handle"], x[i : i + CHUNK])
            parts.append(ys)
            predict_ms += timing["ms"]
            progress.advance()
        # A batch of one can take another code path (the fast RNN loop on the
        # pure-JS and WASM backends): the first few samples go in one by one too.
        singles = [
            worker.predict(loaded["handle"], x[i : i + 1])[0]
            for i in range(min(ONE_BY_ONE, len(x)))
        ]
        worker.dispose(loaded["handle"])
    except NodeError as err:
        return PathResult(subject.name, rt.name, FAIL, str(err))
    expected = reference.for_format(rt.format, truth)
    names = (reference.expected_names(rt.format), loaded["outputs"])
    figures = parity.compare(
        expected,
        _joined(parts),
        *names,
        atol=tol["atol"],
        rtol=tol["rtol"],
        labels=labels,
        classifier=subject.classifier,
    )
    figures.update(samples=len(x), load_ms=loaded["load_ms"], predict_ms=predict_ms)
    passed = figures.pop("passed")
    reason = figures.pop("reason", "")
    if passed:
        one_by_one = parity.compare(
            [e[: len(singles)] for e in expected],
            _joined(singles),
            *names,
            atol=tol["atol"],
            rtol=tol["rtol"],
        )
        passed = one_by_one["passed"]
        reason = "" if passed else f"one sample at a time: {one_by_one['reason']}"
    return PathResult(subject.name, rt.name, PASS if passed else FAIL, reason, figures)


def _joined(calls: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each output's parts from several predict calls, joined along the batch."""
    return [np.concatenate(ys) for ys in zip(*calls, strict=True)]


def verify_models(
    model_dirs: list[Path],
    keras_models: list[Path],
    runtimes: list[Runtime],
    samples: int | None,
    atol: float | None = None,
    rtol: float | None = None,
    explicit_runtimes: bool = False,
    progress: Progress = NO_PROGRESS,
) -> VerifyReport:
    """verify for model folders and for users' own models (.h5, .keras or
    SavedModel folders), each exported to a temporary folder for the run.
    The folders that outlive it learn which of their paths passed (parity.json)."""
    from .export import export_model

    kept = [subject_from_folder(d) for d in model_dirs]  # a bad folder fails before any export
    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-verify-") as tmp:
        exported = []
        for i, source in enumerate(keras_models):
            target = Path(tmp) / f"{i}-{source.stem or 'model'}"
            export_model(source, target, name=source.stem or source.name)
            exported.append(subject_from_folder(target))
        report = verify(
            kept + exported,
            runtimes,
            samples,
            atol=atol,
            rtol=rtol,
            explicit_runtimes=explicit_runtimes,
            progress=progress,
        )
    record_parity(report, kept)
    return report
