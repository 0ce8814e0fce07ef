"""`tfjs-bridge bench`: what each route costs, side by side in one run.

Python routes run in this process; every Node path runs inside one long-lived
worker per backend (runtime/pool.py), timed there (warm-up, then repetitions for a
time budget; medians and p99), so process start is not in the figures; it is
measured apart, as cold start. Only routes that pass the parity check on the
same run are offered as the default (verified) path: run_bench verifies,
times, and records the figures in each folder's parity.json for Node's choice."""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..core.errors import NodeError
from ..core.memory import peak_rss
from ..core.paths import NODE_DIR, PROJECT_ROOT
from ..core.quiet_tf import import_tensorflow, native_stderr_hidden
from ..core.timing import time_calls
from ..core.versions import python_versions
from ..folder import parity_record
from ..folder.artifacts import write_json_atomic
from ..folder.parity_record import PASS
from ..parity.truth import KerasTruth, Subject
from ..parity.verify import record_parity, verify
from ..runtime.node_process import node_env, node_executable
from ..runtime.pool import SharedWorkers, on_workers
from ..runtime.runtimes import PAGE_BACKENDS, Runtime
from ..training import data

PYTHON_BASELINE = "python/tf.function"
VERIFY_SAMPLES = 500  # what run_bench verifies each path on before timing it


@dataclass
class Timing:
    model: str
    route: str
    batch: int
    ms: list[float]
    first_ms: float | None = None

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    @property
    def p99(self) -> float:
        return float(np.percentile(self.ms, 99))

    @property
    def throughput(self) -> float:
        return self.batch / self.p50 * 1000.0

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "route": self.route,
            "batch": self.batch,
            "reps": len(self.ms),
            "p50_ms": self.p50,
            "p99_ms": self.p99,
            "samples_per_s": self.throughput,
            "first_ms": self.first_ms,
        }


@dataclass
class BenchReport:
    batches: list[int] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=list)
    cold_start: dict[str, dict] = field(default_factory=dict)  # what -> figures
    # (model, route) -> `node predict.js --format F` from process start to first prediction
    cold_start_by_path: dict[tuple[str, str], dict] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)  # python | node backend -> bytes
    skipped: dict[str, str] = field(default_factory=dict)  # route -> reason
    training: dict[str, dict] = field(default_factory=dict)
    node: dict[str, dict] = field(default_factory=dict)
    # (model, runtime) -> passed the parity check of the same run (run_bench)
    verified: dict[tuple[str, str], bool] = field(default_factory=dict)
    # what a cold start is made of, as the long-lived workers saw it:
    # node backend -> s from spawn to first answer; (model, route) -> ms to load
    worker_start_s: dict[str, float] = field(default_factory=dict)
    load_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    # (model, route) -> ms of the path's first call, when an earlier caller
    # (convert's verify) made it on the same load: timing then starts warm
    first_call_ms: dict[tuple[str, str], float] = field(default_factory=dict)
    # model -> {"node": ..., "browser_page": ...}: the fastest verified path per
    # deployment target, as Node chooses it from parity.json (target_choices)
    targets: dict[str, dict] = field(default_factory=dict)
    # (model, browser route) -> a page's cold start with the browser already
    # open: the model fetched and loaded (compiled), then its first call (page_cold_starts)
    page_cold_start: dict[tuple[str, str], dict] = field(default_factory=dict)

    def get(self, model: str, route: str, batch: int) -> Timing | None:
        for t in self.timings:
            if (t.model, t.route, t.batch) == (model, route, batch):
                return t
        return None

    def ratio(self, model: str, route: str, batch: int, baseline: str) -> float | None:
        mine, base = self.get(model, route, batch), self.get(model, baseline, batch)
        return mine.throughput / base.throughput if mine and base else None

    def to_json(self) -> dict:
        return {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "timings": [
                {
                    **t.to_json(),
                    "vs_python_tf_function": self.ratio(t.model, t.route, t.batch, PYTHON_BASELINE),
                }
                for t in self.timings
            ],
            "cold_start": self.cold_start,
            "cold_start_by_path": [
                {"model": m, "route": r, **f} for (m, r), f in self.cold_start_by_path.items()
            ],
            "peak_rss": self.peak_rss,
            "skipped": self.skipped,
            "training": self.training,
            "versions": {"python": python_versions(), "node": self.node},
            "verified": [f"{m} {r}" for (m, r), ok in self.verified.items() if ok],
            "targets": self.targets,
            "page_cold_start": [
                {"model": m, "route": r, **f} for (m, r), f in self.page_cold_start.items()
            ],
        }


def python_routes(model, tf):
    """Callables x -> numpy outputs, one per Python route."""
    plain = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    xla = tf.function(lambda x: model(x, training=False), jit_compile=True, reduce_retracing=True)

    def to_numpy(y):
        return [t.numpy() for t in y] if isinstance(y, list | tuple) else y.numpy()

    return {
        "python/tf.function": lambda x: to_numpy(plain(x)),
        "python/xla": lambda x: to_numpy(xla(x)),
        # predict() builds its own data pipeline per call: what most users call.
        "python/predict": lambda x: model.predict(x, batch_size=len(x), verbose=0),
    }


def batch_of(x: np.ndarray, n: int) -> np.ndarray:
    reps = -(-n // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


def bench(
    subjects: list[Subject],
    runtimes: list[Runtime],
    batches: list[int],
    budget_s: float = 1.0,
    log=lambda message: None,
) -> BenchReport:
    """Time the Python routes of each subject, and each runtime on every
    subject that has its format (one Node worker per backend)."""
    tf = import_tensorflow()
    report = BenchReport(batches=list(batches))
    inputs = {
        s.name: data.reference_inputs(s.data, s.input_shape, max(batches), s.model_dir)[0]
        for s in subjects
    }
    for subject in subjects:
        # The model verify takes as the truth, loaded (and sha256-checked) the same way.
        model = KerasTruth(subject).keras_model
        if model is None:
            report.skipped[f"python routes ({subject.name})"] = "its reference is not a Keras model"
            continue
        for route, fn in python_routes(model, tf).items():
            for batch in batches:
                x = tf.constant(batch_of(inputs[subject.name], batch))
                with native_stderr_hidden():  # XLA logs its compilations through absl
                    ms, first = time_calls(lambda fn=fn, x=x: fn(x), budget_s)
                report.timings.append(Timing(subject.name, route, batch, ms, first))
                log(f"{subject.name} {route} batch {batch}: {report.timings[-1].throughput:,.0f}/s")
    report.peak_rss["python"] = peak_rss()
    pairs = [(s, rt) for rt in runtimes for s in subjects if rt.format in s.formats]
    return bench_node(pairs, batches, budget_s, report, log, inputs)


def bench_node(
    pairs: list[tuple[Subject, Runtime]],
    batches: list[int],
    budget_s: float = 1.0,
    report: BenchReport | None = None,
    log=lambda message: None,
    inputs: dict[str, np.ndarray] | None = None,
    shared: SharedWorkers | None = None,
    **bench_fields,
) -> BenchReport:
    """Time each (subject, Node runtime) pair at every batch size, inside one
    long-lived worker per backend, into `report` (a new one when None).
    `inputs`: each subject's samples by name [default: its reference inputs];
    `shared`: workers (and loads) kept from an earlier caller [started here];
    `bench_fields`: the worker's bench fields (warmup, min_reps, max_reps) [its defaults]."""
    if report is None:
        report = BenchReport(batches=list(batches))
    if inputs is None:
        inputs = {}
    for s, _ in pairs:
        if s.name not in inputs:
            inputs[s.name] = data.reference_inputs(
                s.data, s.input_shape, max(batches), s.model_dir
            )[0]

    def run(worker, subject: Subject, rt: Runtime) -> None:
        try:
            _bench_node_path(worker, subject, rt, inputs[subject.name], batches, budget_s, report,
                             log, bench_fields)  # fmt: skip
        except NodeError as err:
            report.skipped[f"{rt.name} ({subject.name})"] = str(err)

    def unavailable(subject: Subject, rt: Runtime, err: NodeError) -> None:
        report.skipped[rt.name] = str(err)

    def finish(worker) -> None:
        report.peak_rss[f"node/{worker.backend}"] = worker.memory()["peak_rss"]
        report.worker_start_s[worker.backend] = worker.start_seconds

    report.node.update(on_workers(pairs, run, unavailable, finish=finish, shared=shared))
    return report


def _bench_node_path(worker, subject, rt, x_all, batches, budget_s, report, log, fields) -> None:
    loaded = worker.load(subject.model_dir, rt.format)
    report.load_ms[(subject.name, rt.name)] = loaded["load_ms"]
    if "first_call_ms" in loaded:  # a load kept from verify (pool.RetainingWorker)
        report.first_call_ms[(subject.name, rt.name)] = loaded["first_call_ms"]
    for batch in batches:
        result, _ = worker.request(
            "bench", [batch_of(x_all, batch)], handle=loaded["handle"], budget_ms=budget_s * 1000,
            **fields,
        )  # fmt: skip
        timing = Timing(subject.name, rt.name, batch, result["ms"], result["first_ms"])
        report.timings.append(timing)
        log(f"{subject.name} {rt.name} batch {batch}: {timing.throughput:,.0f}/s")
    worker.dispose(loaded["handle"])


def cold_start(model_dir: Path, fmt: str | None = None, runs: int = 3) -> dict:
    """Wall time of `node node/predict.js --model DIR [--format F] --value 0`
    (`--text` for a text model, which takes token ids): process start,
    tfjs-node load, model load, one prediction, exit. Without a format,
    predict.js picks the fastest verified path, as users will run it."""
    from ..folder.tokenizer import TOKENIZER_FILE

    times, chosen = [], None
    cmd = [node_executable(), str(NODE_DIR / "predict.js"), "--model", str(model_dir)]
    cmd += ["--format", fmt] if fmt else []
    one = ["--text", "Subject: cold start"] if (model_dir / TOKENIZER_FILE).exists() else None
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(
            [*cmd, *(one or ["--value", "0"]), "--json"], cwd=PROJECT_ROOT, env=node_env(),
            capture_output=True,
            text=True,
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise NodeError(f"node predict.js failed on {model_dir}", proc.stderr)
        chosen = json.loads(proc.stdout.strip().splitlines()[-1])["format"]
    return {"median_s": statistics.median(times), "runs_s": times, "format": chosen}


def time_cold_starts(
    report: BenchReport, subjects: list[Subject], runtimes: list[Runtime], runs: int = 2
) -> None:
    """One-shot runs (node predict.js) pay the load: cold start per path that
    report.verified marks passed, for the paths Node may choose by default."""
    for subject in subjects:
        for rt in runtimes:
            one_shot = rt.default_rank is not None and rt.format in subject.formats
            if one_shot and report.verified.get((subject.name, rt.name)):
                report.cold_start_by_path[(subject.name, rt.name)] = cold_start(
                    subject.model_dir, rt.format, runs=runs
                )


def estimate_cold_starts(report: BenchReport, pairs: list[tuple[Subject, Runtime]]) -> None:
    """A cold start per timed pair without starting a process for it: its
    worker's start (spawn to first answer: Node and the backend), the path's
    load, and its first call (at the first batch size timed, or verify's
    first batch when timing reused verify's load: kernels built, XLA
    compiled), as bench_node measured them. cold_start() measures the whole
    of `node predict.js` instead, at the cost of a load and a first call more."""
    for subject, rt in pairs:
        first = report.get(subject.name, rt.name, report.batches[0])
        first_ms = report.first_call_ms.get((subject.name, rt.name), first and first.first_ms)
        load_ms = report.load_ms.get((subject.name, rt.name))
        start_s = report.worker_start_s.get(rt.backend)
        if first_ms is None or load_ms is None or start_s is None:
            continue
        seconds = start_s + (load_ms + first_ms) / 1000
        report.cold_start_by_path[(subject.name, rt.name)] = {
            "median_s": seconds, "runs_s": [seconds], "format": rt.format, "estimated": True,
        }  # fmt: skip


def target_choices(subjects: list[Subject], browser_batch: int = 1) -> dict[str, dict]:
    """model -> the fastest verified path for a Node process and for a browser
    page, from each folder's parity.json as Node chooses (lib/runtime/choose.js,
    the choice's one owner, through node/scripts/choose-path.js)."""
    from ..runtime.node_process import run_node_json

    dirs = [str(s.model_dir) for s in subjects]
    chosen = run_node_json("scripts/choose-path.js", *dirs, "--browser-batch", str(browser_batch))
    return {s.name: chosen[d] for s, d in zip(subjects, dirs, strict=True)}


def target_lines(targets: dict[str, dict]) -> list[str]:
    """One line per model and target, as bench prints them."""
    lines = []
    for model, chosen in targets.items():
        node, page = chosen["node"], chosen["browser_page"]
        lines.append(f"{model} node process: {node['runtime'] or node['format']} ({node['why']})")
        if page["runtime"] is None:
            lines.append(f"{model} browser page: no verified path ({page['why']})")
        elif page["samples_per_s"] is None:
            lines.append(f"{model} browser page: {page['runtime']} ({page['why']})")
        else:
            lines.append(
                f"{model} browser page: fastest verified path {page['runtime']} "
                f"({page['samples_per_s']:,.0f} samples/s at B={page['batch']})"
            )
    return lines


def page_cold_starts(report: BenchReport) -> None:
    """For each timed browser route: the page's load (fetch, parse or
    compile) and first call at the first batch size, both timed in the page,
    as bench_node measured them. Not the browser's own start: a user's page
    opens in a browser that is already running."""
    for (model, route), load_ms in report.load_ms.items():
        first = report.get(model, route, report.batches[0])
        backend = route.split("/")[0]
        if backend not in PAGE_BACKENDS or first is None or first.first_ms is None:
            continue
        report.page_cold_start[(model, route)] = {
            "load_ms": load_ms, "first_call_ms": first.first_ms, "batch": first.batch,
            "total_s": (load_ms + first.first_ms) / 1000,
        }  # fmt: skip


def training_figures(model_dir: Path, target: float = 0.985) -> dict | None:
    """Epoch times, and time to a test accuracy, from a Python-trained manifest."""
    from ..folder.artifacts import read_manifest

    if not (model_dir / "manifest.json").exists():
        return None
    manifest = read_manifest(model_dir)
    seconds = manifest.get("epoch_seconds") or []
    accuracy = manifest.get("test_accuracy_per_epoch") or []
    reached = next((i for i, a in enumerate(accuracy) if a >= target), None)
    return {
        "epochs": len(seconds),
        "epoch_seconds": seconds,
        "train_seconds": manifest.get("train_seconds"),
        "test_accuracy_per_epoch": accuracy,
        "final_test_accuracy": manifest.get("test", {}).get("accuracy"),
        f"seconds_to_{target}": sum(seconds[: reached + 1]) if reached is not None else None,
        "training": manifest.get("training"),
    }


def node_training_figures(spec_name: str, out: Path, epochs: int = 1) -> dict:
    """One Node (tfjs-node) training run of a registry model: its epoch time."""
    from ..runtime.node_process import run_node_json

    result = run_node_json(
        "train.js", spec_name, "--epochs", str(epochs), "--out", str(out), "--json"
    )
    return {"epochs": epochs, "train_seconds": result["train_seconds"], "test": result["test"]}


def run_bench(
    subjects: list[Subject],
    runtimes: list[Runtime],
    batches: list[int],
    budget_s: float = 1.0,
    node_training: bool = False,
    log=lambda message: None,
) -> BenchReport:
    """What `tfjs-bridge bench` does: verify every path (its parity.json
    records which passed), time every route, time cold starts, and record
    the Node figures in parity.json for Node to pick the fastest verified path."""
    checked = verify(subjects, runtimes, VERIFY_SAMPLES)
    record_parity(checked, subjects)
    report = bench(subjects, runtimes, batches, budget_s, log=log)
    report.verified = {(r.model, r.runtime): r.status == PASS for r in checked.results}
    page_cold_starts(report)
    time_cold_starts(report, subjects, runtimes, runs=2)
    record_speed(report, subjects)
    report.targets = target_choices(subjects)
    for subject in subjects:
        report.cold_start[f"node predict.js {subject.name}"] = cold_start(subject.model_dir)
        figures = training_figures(subject.model_dir)
        if figures and figures.get("final_test_accuracy") is not None:
            report.training[f"{subject.name} python"] = figures
    if node_training:
        with tempfile.TemporaryDirectory() as tmp:
            report.training["gru node"] = node_training_figures("gru", Path(tmp) / "gru")
    return report


def write_bench_report(report: BenchReport, folder: Path) -> list[Path]:
    """folder/bench.json and bench.png."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "bench.json"
    write_json_atomic(json_path, report.to_json())
    return [json_path, plot_bench(report, folder / "bench.png")]


def print_bench(report: BenchReport, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=140)
    batches, verified = report.batches, report.verified
    table = Table(
        title="tfjs-bridge bench: samples/s (× Python tf.function), p50 latency at batch 1"
    )
    for column in [
        "model",
        "route",
        *(f"B={b}" for b in batches),
        "p50 B=1",
        "p99 B=1",
        "verified",
    ]:
        table.add_column(column, justify="left" if column in {"model", "route"} else "right")
    seen = []
    for t in report.timings:
        if (t.model, t.route) not in seen:
            seen.append((t.model, t.route))
    for model, route in seen:
        cells = []
        for b in batches:
            t = report.get(model, route, b)
            ratio = report.ratio(model, route, b, PYTHON_BASELINE)
            cells.append(f"{t.throughput:,.0f} ({ratio:.2f}×)" if t else "")
        one = report.get(model, route, 1)
        mark = "" if route.startswith("python/") else ("✓" if verified.get((model, route)) else "✗")
        table.add_row(
            model, route, *cells,
            f"{one.p50:.2f} ms" if one else "", f"{one.p99:.2f} ms" if one else "", mark,
        )  # fmt: skip
    console.print(table)
    for (model, route), figures in report.cold_start_by_path.items():
        console.print(f"cold start {model} {route}: {figures['median_s']:.2f} s", highlight=False)
    for what, figures in report.cold_start.items():
        console.print(
            f"cold start {what} (default path, {figures['format']}): {figures['median_s']:.2f} s "
            f"(process start to first prediction, median of {len(figures['runs_s'])})",
            highlight=False,
        )
    for (model, route), f in report.page_cold_start.items():
        console.print(
            f"cold start in the page {model} {route}: {f['total_s']:.2f} s (load "
            f"{f['load_ms']:.0f} ms, first call at B={f['batch']} {f['first_call_ms']:.0f} ms; "
            "the browser already open)",
            highlight=False,
        )
    for line in target_lines(report.targets):
        console.print(line, highlight=False)
    for who, rss in report.peak_rss.items():
        console.print(f"peak resident memory {who}: {rss / 2**20:,.0f} MiB")
    for name, f in report.training.items():
        line = f"training {name}: {f['epochs']} epoch(s) in {f['train_seconds']:.1f} s"
        if f.get("epoch_seconds"):
            line += f", median epoch {statistics.median(f['epoch_seconds']):.1f} s"
        if f.get("final_test_accuracy") is not None:
            line += f", test accuracy {100 * f['final_test_accuracy']:.2f} %"
        if f.get("seconds_to_0.985") is not None:
            line += f", 98.5 % after {f['seconds_to_0.985']:.1f} s of epochs"
        if f.get("test"):
            line += f", test {json.dumps(f['test'])}"
        console.print(line, highlight=False)
    for route, reason in report.skipped.items():
        console.print(f"skipped {route}: {reason}", highlight=False)


def plot_bench(report: BenchReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..parity.report import save_figure

    batches = report.batches
    models = list(dict.fromkeys(t.model for t in report.timings))
    routes = list(dict.fromkeys(t.route for t in report.timings))
    fig, axes = plt.subplots(1, len(batches), figsize=(6 * len(batches), 5), squeeze=False)
    width = 0.8 / max(len(models), 1)
    for ax, batch in zip(axes[0], batches, strict=True):
        for i, model in enumerate(models):
            values = [
                (report.get(model, r, batch).throughput if report.get(model, r, batch) else 0)
                for r in routes
            ]
            ax.bar(np.arange(len(routes)) + i * width, values, width, label=model)
        ax.set_xticks(np.arange(len(routes)) + width * (len(models) - 1) / 2)
        ax.set_xticklabels(routes, rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("samples/s (median)")
        ax.set_title(f"batch {batch}")
    axes[0][0].legend(fontsize=7)
    return save_figure(fig, path)


def record_speed(report: BenchReport, subjects: list[Subject]) -> None:
    """Samples/s per Node path and batch, and cold starts, into the parity.json
    of folders that have one, for Node to pick the fastest verified path."""
    for subject in subjects:
        speed: dict[str, dict] = {}
        for t in report.timings:
            if t.model == subject.name and not t.route.startswith("python/"):
                speed.setdefault(t.route, {})[str(t.batch)] = t.throughput
        for (model, route), figures in report.cold_start_by_path.items():
            if model == subject.name:
                speed.setdefault(route, {})[parity_record.COLD_START_KEY] = figures["median_s"]
        parity_record.record_speed(subject.model_dir, speed)
