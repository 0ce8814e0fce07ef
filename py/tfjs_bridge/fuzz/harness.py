"""The fuzz run: each drawn model through the real user path, then one fault.

For each spec (space.py): the model is built and saved in its source format
(build.py) in a temporary folder, and verified exactly as
`tfjs-bridge verify --keras-model FILE --runtime ...` verifies it
(`parity.verify.verify_models(model_dirs=[], keras_models=[file], ...)`).
Each path's verdict is recorded; an exception out of verify is recorded as
the model's `crash` (an unexpected exception type) or `error` (a one-line
BridgeError, but no verdict), with the step it came from and its one line.

The folder verify exports is kept (a copy made as export_model returns: the
run itself is not changed) and, when one of its tfjs formats passed, one
fault is placed in that format's weights (faults.py) and that format's
paths are verified again: each must not pass. A fault that passes is the
worst finding a fuzz run can make.

Models run in job processes (jobs.py), one model at a time each, killed
after a time limit. Node runs in one long-lived worker per backend within
each verify call, and the converter in one long-lived process per job
(conversion/converter_process.py)."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..core.errors import BridgeError, first_line, unexpected
from ..core.versions import python_versions
from ..folder.formats import FORMATS
from ..folder.parity_record import PASS, SKIP, STATUSES
from ..runtime.runtimes import RUNTIMES, STREAM_RUNTIMES, optional_missing
from . import build, faults, space
from .jobs import MODEL_TIMEOUT, run_jobs

SAMPLES = 16  # probe samples per model: enough to tell paths apart, few enough to be cheap
# Every model runs on these; XLA and the pure-JS backend on a subset (EVERY_XLA, EVERY_CPU).
BASE_RUNTIMES = ("tfjs-node/layers", "tfjs-node/graph", "tfjs-node/saved_model")
XLA_RUNTIMES = ("tfjs-node/saved_model_xla",)
CPU_RUNTIMES = ("tfjs-cpu/layers", "tfjs-cpu/graph")
EVERY_XLA = 4  # models 0, 4, 8, ... also on the XLA path
EVERY_CPU = 3  # models 0, 3, 6, ... also on the pure-JS CPU backend
STATEFUL_RUNTIMES = ("tfjs-node/stream",)  # a stateful model's own path, besides those
FAULT_FORMATS = ("layers", "graph")  # where a fault is placed: the tfjs weight shards

# What a model gets instead of verdicts: an unexpected exception (or its job
# process died); a one-line error (BridgeError) but no verdict; no answer in time.
CRASH, ERROR, HANG = "crash", "error", "hang"


@dataclass
class Outcome:
    """What one model got."""

    spec: dict
    verdicts: dict[str, str] = field(default_factory=dict)  # runtime -> status
    reasons: dict[str, str] = field(default_factory=dict)  # runtime -> reason (not pass)
    failure: dict | None = None  # {"kind": crash | error, "step", "message"}
    fault: dict | None = None  # {"placed", ...Fault, "results": {runtime: status}, "caught"}
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # its job's, its Node workers' and its conversions'

    @property
    def id(self) -> str:
        return self.spec["id"]

    @property
    def uncaught(self) -> bool:
        """An injected fault that verify passed (not one it failed to run on)."""
        f = self.fault or {}
        return bool(f.get("placed") and not f["caught"] and not f.get("error"))

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "verdicts": self.verdicts,
            "reasons": self.reasons,
            "failure": self.failure,
            "fault": self.fault,
            "seconds": round(self.seconds, 2),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "features": space.features(self.spec),
            "spec": self.spec,
        }


@dataclass
class FuzzReport:
    seed: int
    count: int
    samples: int
    outcomes: list[Outcome]
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    jobs: int = 1

    @property
    def command(self) -> str:
        """The command that reruns these models."""
        first = self.outcomes[0].spec["index"] if self.outcomes else 0
        start = f" --start {first}" if first else ""
        return f"tfjs-bridge fuzz --seed {self.seed} --count {self.count}{start} --jobs {self.jobs}"

    def of_kind(self, kind: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.failure and o.failure["kind"] == kind]

    @property
    def crashes(self) -> list[Outcome]:
        return self.of_kind(CRASH)

    @property
    def hangs(self) -> list[Outcome]:
        return self.of_kind(HANG)

    @property
    def errors(self) -> list[Outcome]:
        return self.of_kind(ERROR)

    @property
    def generator_bugs(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failure and o.failure["step"] == "build"]

    @property
    def uncaught(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.uncaught]

    @property
    def outside_closed_set(self) -> list[Outcome]:
        return [o for o in self.outcomes if any(v not in STATUSES for v in o.verdicts.values())]

    @property
    def ok(self) -> bool:
        """No crash, no model without a verdict, no injected fault that passed."""
        return not (
            self.crashes or self.hangs or self.errors or self.uncaught or self.outside_closed_set
        )

    def to_json(self) -> dict:
        from .tables import coverage, verdict_counts

        return {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": self.command,
            "seed": self.seed,
            "count": self.count,
            "samples": self.samples,
            "ok": self.ok,
            "machine": machine(),
            "versions": python_versions(),
            "seconds": round(self.seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "seconds_per_model": round(self.seconds / max(1, len(self.outcomes)), 2),
            "cpu_seconds_per_model": round(self.cpu_seconds / max(1, len(self.outcomes)), 2),
            "model_cpu_seconds": percentiles(
                [o.cpu_seconds for o in self.outcomes if not o.failure]
            ),
            "model_seconds": percentiles([o.seconds for o in self.outcomes if not o.failure]),
            "jobs": self.jobs,
            "converter": "one long-lived tensorflowjs_converter process per job",
            "verdicts": verdict_counts(self.outcomes),
            "crashes": [summary(o) for o in self.crashes],
            "hangs": [summary(o) for o in self.hangs],
            "errors": [summary(o) for o in self.errors],
            "uncaught_faults": [summary(o) for o in self.uncaught],
            "coverage": coverage([o.spec for o in self.outcomes]),
            "models": [o.to_json() for o in self.outcomes],
        }


def percentiles(values: list[float]) -> dict:
    """Median, 90th percentile and maximum (of the models that got verdicts)."""
    if not values:
        return {}
    ordered = sorted(values)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"median": round(at(0.5), 1), "p90": round(at(0.9), 1), "max": round(ordered[-1], 1)}


def summary(o: Outcome) -> dict:
    return {"id": o.id, "failure": o.failure, "fault": o.fault, "spec": o.spec}


def machine() -> dict:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def runtimes_for(index: int, stateful: bool = False) -> list:
    """The paths model `index` is verified on, those installed; a stateful
    model on a stream path too (fed in chunks as Keras is: parity/stateful.py)."""
    names = list(BASE_RUNTIMES)
    if index % EVERY_XLA == 0:
        names += XLA_RUNTIMES
    if index % EVERY_CPU == 0:
        names += CPU_RUNTIMES
    chosen = [RUNTIMES[n] for n in names if not optional_missing(RUNTIMES[n])]
    return chosen + ([STREAM_RUNTIMES[n] for n in STATEFUL_RUNTIMES] if stateful else [])


@contextlib.contextmanager
def kept_exports(into: Path):
    """Copies of the folders verify exports (source path -> copy), made as
    export_model returns; its result and exceptions pass through unchanged.
    Also the sources whose export raised."""
    from ..conversion import export as export_module

    kept: dict[Path, Path] = {}
    raised: set[Path] = set()
    original = export_module.export_model

    def tee(source, out_dir, *args, **kwargs):
        try:
            manifest = original(source, out_dir, *args, **kwargs)
        except BaseException:
            raised.add(Path(source))
            raise
        target = into / Path(out_dir).name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(out_dir, target, ignore=shutil.ignore_patterns("saved_model_xla"))
        kept[Path(source)] = target
        return manifest

    export_module.export_model = tee
    try:
        yield kept, raised
    finally:
        export_module.export_model = original


def _failure(exc: BaseException, step: str) -> dict:
    if isinstance(exc, BridgeError):
        return {"kind": ERROR, "step": step, "message": first_line(exc)}
    return {"kind": CRASH, "step": step, "message": unexpected(exc)}


def run_model(
    spec: dict, work: Path, samples: int = SAMPLES, step: Callable[[str], None] = lambda s: None
) -> Outcome:
    """One model: build, verify through the user path, then one fault;
    step(name) as each step starts."""
    from ..parity.verify import verify_models

    started, cpu0 = time.monotonic(), job_cpu_seconds()
    outcome = Outcome(spec)
    folder = work / spec["id"]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        try:
            path = build.build_and_save(spec, folder)
        except Exception as exc:  # a spec that does not build: the generator's bug
            outcome.failure = {"kind": CRASH, "step": "build", "message": unexpected(exc)}
            return outcome
        step("export and verify")
        runtimes = runtimes_for(spec["index"], bool(spec.get("stateful")))
        exports = folder / "exported"
        exports.mkdir()
        with kept_exports(exports) as (kept, raised):
            try:
                report = verify_models([], [path], runtimes, samples, explicit_runtimes=True)
            except Exception as exc:
                outcome.failure = _failure(exc, "export" if path in raised else "verify")
                return outcome
        for r in report.results:
            outcome.verdicts[r.runtime] = r.status
            if r.status != PASS:
                outcome.reasons[r.runtime] = first_line(r.reason) if r.reason else ""
        exported = kept.get(path)
        if exported is None:  # verify no longer exports through export_model: do it here
            from ..conversion.export import export_model

            exported = exports / "model"
            export_model(path, exported, name=path.stem or path.name)
        step("fault")
        outcome.fault = fault_check(spec, exported, runtimes, outcome.verdicts, samples)
        if outcome.fault.get("error"):  # verify itself failed on the faulted copy
            outcome.failure = outcome.fault["error"]
    finally:
        outcome.seconds = time.monotonic() - started
        outcome.cpu_seconds = job_cpu_seconds() - cpu0
        shutil.rmtree(folder, ignore_errors=True)
    return outcome


def fault_check(spec, exported: Path, runtimes, verdicts: dict, samples: int) -> dict:
    """One fault in one tfjs format whose paths all passed, and that format's
    verdicts on it: each must not be pass."""
    from ..parity.verify import verify_models

    by_format = {f: [rt for rt in runtimes if rt.format == f] for f in FAULT_FORMATS}
    passing = [
        f
        for f, paths in by_format.items()
        if paths and all(verdicts.get(rt.name) == PASS for rt in paths)
    ]
    if spec["index"] % 2:
        passing.reverse()  # odd models try the graph format first
    if not passing:
        return {"placed": False, "why": "no tfjs format passed: nothing to break"}
    why = []
    for fmt in passing:
        target = exported.with_name(f"faulty-{fmt}")
        # The faulted format alone, with the truth; the graph format's output
        # names come from saved_model/ (truth.py), which the layers format does
        # not need (loading it costs a second per model).
        others = [
            FORMATS[f].folder
            for f in FORMATS
            if f != fmt and (f != "saved_model" or fmt != "graph")
        ]
        shutil.copytree(exported, target, ignore=shutil.ignore_patterns("parity.json", *others))
        try:
            fault = faults.inject(target, fmt, samples)
        except faults.NoFault as exc:
            why.append(str(exc))
            continue
        except Exception as exc:
            return {"placed": False, "why": f"placing the fault: {unexpected(exc)}"}
        try:
            report = verify_models([target], [], by_format[fmt], samples, explicit_runtimes=True)
        except Exception as exc:
            return {
                "placed": True,
                **fault.to_json(),
                "results": {},
                "caught": False,
                "error": _failure(exc, "fault verify"),
            }
        results = {r.runtime: r.status for r in report.results}
        # caught: every path ran and is not proven (a skip, not run, catches nothing;
        # an ill-conditioned path whose step check passes is proven)
        caught = bool(results) and all(not r.proven and r.status != SKIP for r in report.results)
        return {"placed": True, **fault.to_json(), "results": results, "caught": caught}
    return {"placed": False, "why": "; ".join(why)}


def job_cpu_seconds() -> float:
    """This process's CPU time, its ended children's, and its converter process's."""
    from ..conversion.converter_process import INSTALLED

    return cpu_seconds() + sum(p.cpu_seconds() for p in INSTALLED)


def cpu_seconds() -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return mine.ru_utime + mine.ru_stime + children.ru_utime + children.ru_stime


def run_fuzz(
    seed: int,
    count: int,
    samples: int = SAMPLES,
    start: int = 0,
    log: Callable[[str], None] | None = None,
    jobs: int = 1,
    timeout: float = MODEL_TIMEOUT,
) -> FuzzReport:
    """Models start .. start+count-1 of `seed`, each verified and faulted,
    `jobs` at a time (jobs.py: each job a process with its own converter
    process and Node workers; the work of one model is mostly one thread)."""
    specs = [space.draw_spec(seed, i) for i in range(start, start + count)]
    report = FuzzReport(seed, count, samples, [], jobs=jobs)
    began, cpu0 = time.monotonic(), cpu_seconds()

    def done(outcome: Outcome) -> None:
        report.outcomes.append(outcome)
        if log is not None:
            log(line(outcome))

    with tempfile.TemporaryDirectory(prefix="tfjs-bridge-fuzz-") as tmp:
        run_jobs(specs, jobs, Path(tmp), samples, done, timeout)
    report.outcomes.sort(key=lambda o: o.spec["index"])
    report.seconds = time.monotonic() - began
    report.cpu_seconds = cpu_seconds() - cpu0  # the jobs' and their children's: all have ended
    return report


def line(o: Outcome) -> str:
    """One line per model for the terminal."""
    if o.failure:
        what = f"{o.failure['kind'].upper()} at {o.failure['step']}: {o.failure['message']}"
    else:
        counts = {}
        for status in o.verdicts.values():
            counts[status] = counts.get(status, 0) + 1
        what = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        f = o.fault or {}
        if f.get("placed"):
            what += f"; fault in {f['format']} {'caught' if f['caught'] else 'NOT CAUGHT'}"
    feats = " ".join(x.split("=", 1)[1] for x in space.features(o.spec) if x.startswith("layer="))
    cost = f"{o.seconds:.0f} s" + (f", {o.cpu_seconds:.0f} CPU-s" if o.cpu_seconds else "")
    return f"{o.id} [{o.spec['source']}, {o.spec['structure']}, {feats}] {what} ({cost})"
