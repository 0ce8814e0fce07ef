"""`tfjs-bridge verify`: the same inputs through Python and through every Node
path (runtimes.py), compared by parity.compare. Node runs in one long-lived
worker per backend (worker.py), so a path is timed and checked, not started."""

from __future__ import annotations

import importlib.metadata
import json
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np

from . import data, parity
from .artifacts import write_json_atomic
from .errors import NodeError
from .reference import CHUNK, Reference, Subject
from .runtimes import Runtime
from .versions import python_versions
from .worker import NodeWorker

ONE_BY_ONE = 4  # samples also predicted in batches of one, on every path


@dataclass
class PathResult:
    model: str
    runtime: str
    status: str  # pass | fail | skip
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
        return bool(self.results) and all(r.status == "pass" for r in self.results)

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
    progress: bool = False,
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
    bar = click.progressbar(
        length=sum(chunks[s.name] for s, _ in pairs),
        label="verify",
        file=sys.stderr,
    )
    if not progress:
        bar.is_hidden = True
    results: list[PathResult] = []
    runtime_info: dict[str, dict] = {}
    with bar:
        for backend in dict.fromkeys(rt.backend for _, rt in pairs):
            todo = [(s, rt) for s, rt in pairs if rt.backend == backend]
            try:
                worker = NodeWorker(backend, timeout=timeout)
            except NodeError as err:
                for subject, rt in todo:
                    results.append(
                        PathResult(subject.name, rt.name, "skip", f"backend {backend}: {err}")
                    )
                    bar.update(chunks[subject.name])
                continue
            with worker:
                runtime_info[backend] = worker.info
                for subject, rt in todo:
                    results.append(
                        _run_path(
                            worker,
                            subject,
                            rt,
                            inputs[subject.name],
                            references[subject.name],
                            truth[subject.name],
                            tolerances[subject.name],
                            bar,
                        )
                    )
    return VerifyReport(
        results=results,
        samples={s.name: len(inputs[s.name][0]) for s in subjects},
        tolerances=tolerances,
        runtimes=runtime_info,
        python=python_versions(),
        notes=notes,
    )


def _run_path(worker, subject, rt, inputs, reference, truth, tol, bar) -> PathResult:
    x, labels = inputs
    if rt.format not in subject.formats:
        bar.update(math.ceil(len(x) / CHUNK))
        return PathResult(
            subject.name, rt.name, "skip", f"the model folder has no {rt.format} model"
        )
    try:
        loaded = worker.load(subject.model_dir, rt.format)
        parts, predict_ms = [], 0.0
        for i in range(0, len(x), CHUNK):
            ys, timing = worker.predict(loaded["handle"], x[i : i + CHUNK])
            parts.append(ys)
            predict_ms += timing["ms"]
            bar.update(1)
        # A batch of one can take another code path (the fast RNN loop on the
        # pure-JS and WASM backends): the first few samples go in one by one too.
        singles = [
            worker.predict(loaded["handle"], x[i : i + 1])[0]
            for i in range(min(ONE_BY_ONE, len(x)))
        ]
        worker.dispose(loaded["handle"])
    except NodeError as err:
        return PathResult(subject.name, rt.name, "fail", str(err))
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
    return PathResult(subject.name, rt.name, "pass" if passed else "fail", reason, figures)


def _joined(calls: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Each output's parts from several predict calls, joined along the batch."""
    return [np.concatenate(ys) for ys in zip(*calls, strict=True)]


PARITY_FILE = "parity.json"


def record_parity(report: VerifyReport, subjects: list[Subject]) -> list[Path]:
    """Write each model folder's parity.json: which Node paths passed, on how
    many samples. node/lib/choose.js runs only paths recorded as passed."""
    written = []
    for subject in subjects:
        path = subject.model_dir / PARITY_FILE
        old = json.loads(path.read_text()) if path.exists() else {}
        mine = [r for r in report.results if r.model == subject.name]
        if not mine:
            continue
        results = old.get("results", {})
        for r in mine:
            results[r.runtime] = {
                "status": r.status,
                "reason": r.reason,
                "samples": r.figures.get("samples"),
                "max_abs": r.figures.get("max_abs"),
            }
        record = {
            **old,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "results": results,
        }
        write_json_atomic(path, record)
        written.append(path)
    return written
