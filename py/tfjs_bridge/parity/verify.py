"""`tfjs-bridge verify`: the same inputs through Python and through every Node
path (runtime/runtimes.py), against the model's truth (truth.py), compared
by compare.py. Node runs in one long-lived worker per backend
(runtime/pool.py), so a path is timed and checked, not started.
verify_models also takes users' own Keras files and records what passed in
each model folder's parity.json (folder/parity_record.py).

Each path gets one verdict from a closed set (parity_record.STATUSES): pass;
mismatch (other numbers, or an error while running); unsupported (the path
cannot hold the model: its format could not be made, or Node has no class or
kernel for a part of it), decided before comparing; refused (the inputs, or
what the truth computes on them, cannot tell paths apart); ill-conditioned
(the truth itself moves beyond the tolerance under a one-ulp input change:
judged by a step check instead, prefixes.py); skip (not run). A model is
verified when no path mismatches, no step check mismatches, and at least
one path is proven: passes, or is ill-conditioned with its step check passing."""

from __future__ import annotations

import importlib.metadata
import math
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..conversion import quantization
from ..core.errors import NodeError, UsageError
from ..core.progress import NO_PROGRESS, Progress
from ..core.versions import python_versions
from ..folder.parity_record import (
    ILL_CONDITIONED,
    MISMATCH,
    PASS,
    REFUSED,
    SKIP,
    STATUSES,
    UNSUPPORTED,
    record_results,
)
from ..folder.signature import Signature
from ..runtime.pool import SharedWorkers, on_workers, run_on_path
from ..runtime.runtimes import STREAM_RUNTIMES, Runtime
from ..runtime.streams import StreamFeeding
from ..training import data
from . import compare, probes
from .conditioning import Conditioning
from .prefixes import PrefixCheck
from .truth import CHUNK, Subject, Truth, subject_from_folder, truth_for

ONE_BY_ONE = 4  # samples also predicted in batches of one, on every path


@dataclass
class PathResult:
    model: str
    runtime: str
    status: str  # parity_record.STATUSES: pass | mismatch | unsupported | refused | ... | skip
    reason: str = ""
    figures: dict = field(default_factory=dict)

    @property
    def step_check(self) -> str | None:
        """An ill-conditioned path's step check verdict: pass | mismatch | unavailable."""
        return self.figures.get("step_check", {}).get("verdict")

    @property
    def proven(self) -> bool:
        """It passes, or the outputs cannot tell and its step check passes."""
        return self.status == PASS or (self.status == ILL_CONDITIONED and self.step_check == PASS)

    @property
    def failed(self) -> bool:
        """It mismatches, on its outputs or in its step check."""
        return self.status == MISMATCH or (
            self.status == ILL_CONDITIONED and self.step_check == MISMATCH
        )

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
    # what the truth computed on it (probes.describe_outputs), per model
    outputs: dict[str, list[dict]] = field(default_factory=dict)

    def verdicts(self) -> dict[str, dict[str, int]]:
        """model -> how many of its paths got each verdict."""
        counts: dict[str, dict[str, int]] = {}
        for r in self.results:
            mine = counts.setdefault(r.model, dict.fromkeys(STATUSES, 0))
            mine[r.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        """Every model verified: no path fails (PathResult.failed), at least
        one is proven (PathResult.proven)."""
        models = dict.fromkeys(r.model for r in self.results)
        mine = {m: [r for r in self.results if r.model == m] for m in models}
        return bool(models) and all(
            not any(r.failed for r in rs) and any(r.proven for r in rs) for rs in mine.values()
        )

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
            "outputs": self.outputs,
            "verdicts": self.verdicts(),
            "results": [r.to_json() for r in self.results],
        }


def plan(
    subjects: list[Subject], truths: dict[str, Truth], runtimes: list[Runtime], explicit: bool
) -> tuple[list, list[str]]:
    """(subject, runtime) pairs to run. Without an explicit --runtime, paths
    whose format a model folder lacks are left out, with a note; those whose
    format it cannot hold (subject.unsupported) are kept, for their verdict."""
    pairs, notes = [], []
    for subject in subjects:
        for rt in runtimes + (stream_paths(runtimes) if subject.stateful and not explicit else []):
            why = truths[subject.name].skips(rt.format)
            if why:
                notes.append(f"{subject.name}: {why}, {rt.name} not run")
            elif rt.format in subject.formats or rt.format in subject.unsupported or explicit:
                pairs.append((subject, rt))
            else:
                notes.append(f"{subject.name}: no {rt.format} model, {rt.name} not run")
    return pairs, notes


def stream_paths(runtimes: list[Runtime]) -> list[Runtime]:
    """The stream paths of the backends runtimes name: where a stateful
    model (parity/stateful.py) runs as it is used, verified by default (with
    the ops Node chooses; the path with array ops forced is named only)."""
    backends = {rt.name.split("/")[0] for rt in runtimes}
    return [rt for name, rt in STREAM_RUNTIMES.items()
            if name.split("/")[0] in backends and rt not in runtimes
            and rt.stream_ops == "auto"]  # fmt: skip


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
    shared: SharedWorkers | None = None,
    chunk: int = CHUNK,
) -> VerifyReport:
    """Every (subject, runtime) pair on the same inputs. `ranges` overrides
    input domains by input name; `feeds` gives a subject's inputs outright;
    `shared` keeps the workers and their loads for a later caller; `chunk`:
    samples per Node call (a batch size an XLA path compiles for)."""
    # The spec's tolerances unless the caller overrides them.
    tolerances = {
        s.name: {
            "atol": s.atol if atol is None else atol,
            "rtol": s.rtol if rtol is None else rtol,
            **({"max_accuracy_drop": max_accuracy_drop} if max_accuracy_drop is not None else {}),
        }
        for s in subjects
    }
    inputs, truths, python_side, fed, computed, refused = {}, {}, {}, {}, {}, {}
    conditioned, prefixes = {}, {}
    for subject in subjects:
        name = subject.name
        truths[name] = truth_for(subject)
        if atol is None and rtol is None:  # a tolerance given outright is taken as given
            tolerances[name].update(at_precision(truths[name].precision, tolerances[name]))
        xs, labels = inputs_for(subject, samples, ranges or {}, (feeds or {}).get(name))
        inputs[name] = (xs, labels)
        conditioned[name] = Conditioning(truths[name], xs, subject.signature)
        prefixes[name] = PrefixCheck(truths[name], xs, subject.signature,
                                     conditioned[name].relative)  # fmt: skip
        fed[name] = probes.describe(xs, subject.signature)
        why = probes.vacuity(fed[name], subject.signature)
        if why:
            refused[name] = f"refused: the inputs cannot tell paths apart ({why})"
            continue
        if not subject.formats:  # no format to run (each unsupported, or absent): no truth needed
            continue
        python_side[name] = truths[name].python_side(xs)
        # Judged on what the model computes too: inputs that differ can still
        # all give one output (uniform floats cast to token 0, a saturated head).
        computed[name] = probes.describe_outputs(*_truth_outputs(truths[name], python_side[name]))
        tol = tolerances[name]
        why = probes.output_vacuity(computed[name], tol["atol"], tol["rtol"])
        if why:
            refused[name] = f"refused: the model's outputs cannot tell paths apart ({why})"
    pairs, notes = plan(subjects, truths, runtimes, explicit_runtimes)
    # results in the plan's order, whichever verdict came first
    order = {(s.name, name): i for i, (s, rt) in enumerate(pairs)
             for name in truths[s.name].result_names(rt.name)}  # fmt: skip
    results: list[PathResult] = []
    for verdict, why_not in ((UNSUPPORTED, lambda s, rt: s.unsupported.get(rt.format)),
                             (REFUSED, lambda s, rt: refused.get(s.name))):  # fmt: skip
        results += [
            PathResult(s.name, name, verdict, why_not(s, rt))
            for s, rt in pairs
            if why_not(s, rt)
            for name in truths[s.name].result_names(rt.name)
        ]
        pairs = [(s, rt) for s, rt in pairs if not why_not(s, rt)]

    chunks = {s.name: math.ceil(len(inputs[s.name][0][0]) / chunk) for s in subjects}

    def run(worker, subject: Subject, rt: Runtime) -> None:
        name = subject.name
        results.extend(
            run_path(worker, subject, rt, inputs[name], truths[name], python_side.get(name),
                     tolerances[name], progress, conditioned[name], chunk, prefixes[name])
        )  # fmt: skip

    def unavailable(subject: Subject, rt: Runtime, err: NodeError) -> None:
        for name in truths[subject.name].result_names(rt.name):
            results.append(PathResult(subject.name, name, SKIP, f"backend {rt.backend}: {err}"))
        progress.advance(chunks[subject.name])

    progress.start(sum(chunks[s.name] for s, _ in pairs), "verify")
    try:
        runtime_info = on_workers(pairs, run, unavailable, timeout=timeout, shared=shared)
    finally:
        progress.close()
    results.sort(key=lambda r: order.get((r.model, r.runtime), len(order)))
    return VerifyReport(
        results=results,
        samples={s.name: len(inputs[s.name][0][0]) for s in subjects},
        tolerances=tolerances,
        runtimes=runtime_info,
        python=python_versions(),
        notes=notes,
        inputs=fed,
        outputs=computed,
    )


def _truth_outputs(truth: Truth, python_side) -> tuple[list[np.ndarray], list[str]]:
    """What the truth computed and the outputs' names; for several Python
    models (an imported folder: python_side by model), the first one's."""
    if isinstance(python_side, dict):
        python, outputs = next(iter(python_side.items()))
        return outputs, truth.output_names[python]
    return python_side, truth.output_names


# What Node says when a path cannot hold a model, rather than computing it
# wrongly: (pattern, the verdict's reason from its groups). Any other error
# while loading or running is a mismatch: a failure, never passed over.
NODE_UNSUPPORTED = (
    (re.compile(r"Unknown layer: (\w+)"), "layer {0}: tfjs-layers has no class for it"),
    (re.compile(r"cannot stream: (.+)"), "{0}"),  # node/lib/layers/stream.js
    # an option of a tfjs-bridge layer it does not compute (node/lib/layers/attention.js)
    (re.compile(r"tfjs-bridge cannot run (.+)"), "{0}"),
    # with no input missing ("[]"): a missing one would be a feeding bug, a mismatch
    (re.compile(r"Cannot compute the outputs .*Consider providing the following inputs: \[\]",
                re.S),
     "the graph model keeps dynamic ops (a While loop) the tfjs graph executor cannot run"),
    (re.compile(r"(?:Op is not supported|Unsupported op)\W+(\w+)"),
     "op {0}: tfjs has no kernel for it"),
    (re.compile(r"Kernel '(\w+)' not registered for backend '(\w+)'"),
     "op {0}: the {1} backend has no kernel for it"),
    # tfjs-node's SavedModel loader maps no float16 (or other) signature dtype
    (re.compile(r"Unsupported tensor DataType: (\w+)"),
     "the SavedModel's signature has a dtype tfjs-node has no tensor for ({0})"),
)  # fmt: skip


# What Node says when the folder lacks a file the path needs (not the model's
# fault, nothing computed): a skip, with the command that makes it.
NODE_SKIPS = (
    # node/lib/browser/litert_webgpu.js: LiteRT.js on WebGPU takes static batches only
    re.compile(r"(no \.tflite converted at a static batch.*)"),
)


def node_verdict(err: NodeError) -> tuple[str, str]:
    """(status, reason) for a path whose Node side raised `err`."""
    text = str(err)
    for pattern in NODE_SKIPS:
        found = pattern.search(text)
        if found:
            return SKIP, found.group(1).splitlines()[0]
    for pattern, reason in NODE_UNSUPPORTED:
        found = pattern.search(text)
        if found:
            return UNSUPPORTED, reason.format(*found.groups())
    return MISMATCH, text


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


def at_precision(precision: tuple[str, int], tol: dict) -> dict:
    """The tolerance for a truth computing at `precision` (dtype, layers),
    and what the report says of it; nothing to change at float32."""
    dtype, depth = precision
    if dtype == "float32":
        return {}
    atol, rtol = compare.precision_tolerance(dtype, depth, tol["atol"], tol["rtol"])
    layers = f"{depth} layer{'s' if depth > 1 else ''}"
    said = (f"{dtype} precision, tol {max(atol, rtol):.1e} = {layers} x {dtype}'s epsilon "
            f"{compare.EPSILON[dtype]:.1e}")  # fmt: skip
    # a class flipped within this tolerance is the truth's rounding (compare.compare)
    return {"atol": atol, "rtol": rtol, "spec": {"atol": tol["atol"], "rtol": tol["rtol"]},
            "precision": dtype, "precision_layers": depth, "said": said,
            "ties_excused": True}  # fmt: skip


def run_path(worker, subject, rt, inputs, truth: Truth, python_side, tol, progress,
             conditioned: Conditioning | None = None, chunk: int = CHUNK,
             prefixes: PrefixCheck | None = None):  # fmt: skip
    """One path of one model: Node runs it (chunks, then the first samples
    one at a time), and each comparison its truth names is judged: outputs
    within tolerance (or, for quantized weights, within budget), then the
    batch of one against the same samples in a batch. Outside tolerance,
    `conditioned` judges by how far the truth itself moves; where it moves
    too far to tell, the path is ill-conditioned and `prefixes` checks it on
    a well-conditioned prefix instead. One PathResult each."""
    xs, labels = inputs
    n = len(xs[0])
    fmt = truth.node_format(rt.format)
    if rt.stream:  # the layers model fed to streams in chunks (runtime/streams.py)
        worker = StreamFeeding(worker, truth.stream_feed(xs), rt.stream_ops)
    if fmt not in subject.formats:
        progress.advance(math.ceil(n / chunk))
        return [PathResult(subject.name, rt.name, SKIP, f"the model folder has no {fmt} model")]
    try:
        run = run_on_path(worker, subject.model_dir, fmt, xs, subject.signature.names, chunk,
                          ONE_BY_ONE, progress.advance)  # fmt: skip
    except NodeError as err:
        status, reason = node_verdict(err)
        names = truth.result_names(rt.name)
        return [PathResult(subject.name, name, status, reason) for name in names]
    results = []
    conversion = subject.quantized.get(fmt)

    def steady(found, c, index, singles=False):  # outside tolerance: is the truth that unsteady?
        if conditioned is None or conversion:  # a quantized path has its budget instead
            return None
        return conditioned.judge(found, c, rt.name, fmt, run, index, tol, subject.classifier,
                                 singles)  # fmt: skip

    for index, c in enumerate(truth.comparisons(rt.name, fmt, run, python_side)):
        names = (c.expected_names, c.got_names)
        figures = compare.compare(c.expected, c.got, *names, atol=tol["atol"], rtol=tol["rtol"],
                                  labels=labels, classifier=subject.classifier,
                                  ties_excused=tol.get("ties_excused", False))  # fmt: skip
        figures.update(samples=n, load_ms=run.load_ms, predict_ms=run.predict_ms)
        if rt.stream:  # which ops stepped the streams, per batch size (Node's choice)
            figures["stream_ops"] = dict(worker.ops_seen)
        passed, reason = figures.pop("passed"), figures.pop("reason", "")
        expected_singles = c.expected_singles
        if conversion:  # quantized weights: judged by a budget (quantization.py), not by 1e-5
            passed, reason = quantization.judge(
                figures, c.expected, conversion, tol.get("max_accuracy_drop")
            )
            # one at a time must still agree with the path's own batches
            expected_singles = [g[: len(c.got_singles[0])] for g in c.got]
        status = PASS if passed else MISMATCH
        step_check = (prefixes, worker, subject, rt, fmt, index, tol, chunk)  # _step_checked's
        if not passed:
            status, reason = steady(figures, c, index) or (status, reason)
            if status != MISMATCH and "conditioning" in figures:  # the outputs cannot tell
                status, reason = _step_checked(figures, figures["conditioning"], *step_check)
        if status == PASS:
            single = compare.compare(expected_singles, c.got_singles, *names, atol=tol["atol"],
                                     rtol=tol["rtol"])  # fmt: skip
            if not single["passed"]:
                status, why = steady(single, c, index, singles=True) or (MISMATCH, single["reason"])
                if "conditioning" in single:
                    figures["conditioning_singles"] = single["conditioning"]
                if status == REFUSED and "conditioning" in single:  # one at a time, it cannot tell
                    status, why = _step_checked(figures, single["conditioning"], *step_check)
                if status != PASS or not reason:  # "refused: one sample at a time: ..."
                    verdict = f"{status}: " if why.startswith(f"{status}: ") else ""
                    reason = f"{verdict}one sample at a time: {why.removeprefix(verdict)}"
        if "said" in tol:  # reduced precision: every verdict says at which tolerance
            reason = f"{reason} (at {tol['said']})" if reason else f"pass at {tol['said']}"
            figures["precision"] = tol["precision"]
        results.append(PathResult(subject.name, c.name, status, reason, c.relabel(figures)))
    return results


def _step_checked(figures, found, prefixes, worker, subject, rt, fmt, index, tol, chunk):
    """(ILL_CONDITIONED, reason) for a path whose outputs Keras itself
    cannot pin down (`found`: compare.conditioning's figures): the step
    check's figures go into figures["step_check"], and the reason says both."""
    if prefixes is None:
        step = {"check": None, "verdict": "unavailable", "reason": "no step check asked for"}
    else:
        step = prefixes.check(worker, subject, rt, fmt, index, tol, chunk, ONE_BY_ONE)
    figures["step_check"] = step
    moves = found["moves"]
    return ILL_CONDITIONED, (
        f"ill-conditioned: {moves}; {step['check'] or 'step'} check {step['verdict']}: "
        f"{step['reason']}"
    )


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
    trust_lambda: bool = False,
    shared: SharedWorkers | None = None,
    chunk: int = CHUNK,
) -> VerifyReport:
    """verify for model folders and for users' own models (.h5, .keras or
    SavedModel folders), each exported to a temporary folder for the run.
    The folders that outlive it learn which of their paths passed (parity.json).
    `inputs_file` (.npy or .npz by input name) replaces the generated inputs
    of the one model verified. `trust_lambda`: load Keras models holding
    Lambda layers, whose code comes from the file (refused otherwise).
    `shared`, `chunk`: see verify()."""
    from ..conversion.export import export_model
    from ..folder.checked_inputs import load_inputs

    if inputs_file is not None and len(model_dirs) + len(keras_models) != 1:
        raise UsageError("--inputs gives one model's inputs: verify one model with it")
    kept = [subject_from_folder(d) for d in model_dirs]  # a bad folder fails before any export
    for subject in kept:
        subject.trust_lambda = trust_lambda
    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-verify-") as tmp:
        exported = []
        for i, source in enumerate(keras_models):
            target = Path(tmp) / f"{i}-{source.stem or 'model'}"
            export_model(source, target, name=source.stem or source.name, trust_lambda=trust_lambda)
            exported.append(subject_from_folder(target))
            exported[-1].trust_lambda = trust_lambda
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
            shared=shared,
            chunk=chunk,
        )
    record_parity(report, kept)
    return report


def record_parity(report: VerifyReport, subjects: list[Subject]) -> list[Path]:
    """Write each model folder's verify results into its parity.json: which
    Node paths passed, on how many samples."""
    written = []
    for subject in subjects:
        mine = {
            r.runtime: {
                "status": r.status,
                "reason": r.reason,
                "samples": r.figures.get("samples"),
                "max_abs": r.figures.get("max_abs"),
                # an ill-conditioned path's step check verdict (PathResult.step_check)
                **(
                    {"step_check": r.figures["step_check"]["verdict"]}
                    if "step_check" in r.figures
                    else {}
                ),  # fmt: skip
            }
            for r in report.results
            if r.model == subject.name
        }
        if mine:
            written.append(record_results(subject.model_dir, mine))
    return written
