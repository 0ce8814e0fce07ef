"""`tfjs-bridge bench` as three library calls: the route bench (bench_routes:
every route timed side by side), the service under load (bench_serve,
`bench --serve`) and one stream against Python's stateful step
(bench_stream, `bench --stream`). Each takes the command's options as they
are given and returns what the CLI prints."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BridgeError, UsageError
from ..core.paths import models_root
from ..core.progress import NO_PROGRESS, Progress
from ..parity.truth import subject_from_folder
from ..runtime.runtimes import resolve_runtimes
from ..training.registry import resolve
from .routes import BenchReport, run_bench, write_bench_report
from .service_load import REPORT_DIR, run_serve_bench
from .stream_steps import run_stream_bench

# The options only one of the three benches takes: parameter name -> flag.
ROUTE_OPTIONS = {"batches": "--batch", "runtimes": "--runtime", "budget": "--budget",
                 "node_training": "--node-training"}  # fmt: skip
SERVE_OPTIONS = {"duration": "--duration", "long_duration": "--long-duration",
                 "workers": "--workers"}  # fmt: skip
STREAM_OPTIONS = {"steps": "--steps", "reps": "--reps"}
# bench --stream's models by default: a GRU over 28 features and an LSTM over
# one (lstm and gru_keras stream too; rnn_stack and spam hold a Bidirectional).
STREAMING_MODELS = ("gru", "lstm_sine")


def options_for(serve: bool, options: dict, given: set[str], stream: bool = False) -> dict:
    """The `bench` command's options (by parameter name) that the chosen
    bench takes; another bench's, if the user set any (`given`), are a
    usage error."""
    if serve and stream:
        raise UsageError("bench takes --serve or --stream, not both")
    if serve or stream:
        mine = "--serve" if serve else "--stream"
        others = {**ROUTE_OPTIONS, **(STREAM_OPTIONS if serve else SERVE_OPTIONS)}
        mixed = sorted(others[n] for n in given & set(others))
        if mixed:
            raise UsageError(f"bench {mine} takes no {', '.join(mixed)}")
    elif given & set(SERVE_OPTIONS):
        raise UsageError("--duration, --long-duration and --workers go with --serve")
    elif given & set(STREAM_OPTIONS):
        raise UsageError("--steps and --reps go with --stream")
    kept = STREAM_OPTIONS if stream else SERVE_OPTIONS if serve else ROUTE_OPTIONS
    other = {**ROUTE_OPTIONS, **SERVE_OPTIONS, **STREAM_OPTIONS}.keys() - kept.keys()
    return {name: value for name, value in options.items() if name not in other}


@dataclass
class RouteBench:
    report: BenchReport
    written: list[Path]  # bench.json and bench.png, when asked for


def bench_routes(
    models: tuple[str, ...] | list[str],
    runtimes: tuple[str, ...] | list[str] = (),
    batches: list[int] = (1, 32, 256),
    budget: float = 1.0,
    node_training: bool = False,
    report_dir: Path | None = None,
    out: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> RouteBench:
    """`bench MODELS`: verify and time every route of the registry MODELS
    (none: all) in the models folder `out`; writes report_dir/bench.json and
    bench.png if report_dir is given."""
    chosen = resolve_runtimes(runtimes)
    streamed = [rt.name for rt in chosen if rt.stream]
    if streamed:  # it would time the whole layers model under the stream path's name
        raise UsageError(f"bench does not time stream paths yet ({', '.join(streamed)}): "
                         "bench --stream times one stream (docs/streaming.md)")  # fmt: skip
    root = models_root(out)
    subjects = [subject_from_folder(root / spec.name) for spec in resolve(models)]
    report = run_bench(subjects, chosen, list(batches), budget, node_training=node_training,
                       log=log)  # fmt: skip
    written = write_bench_report(report, report_dir) if report_dir is not None else []
    return RouteBench(report, written)


def bench_serve(
    models: tuple[str, ...] | list[str],
    duration: float = 10.0,
    long_duration: float = 60.0,
    workers: int | None = None,
    report_dir: Path | None = None,
    out: Path | None = None,
    progress: Progress = NO_PROGRESS,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """`bench --serve MODELS`: the Node service and the Python baseline under
    load (service_load.run_serve_bench); the report, written to
    report_dir/serve.json [default: reports/serve]."""
    root = models_root(out)
    return run_serve_bench(
        [root / spec.name for spec in resolve(models)], duration=duration,
        long_duration=long_duration, workers=workers, report_dir=report_dir or REPORT_DIR,
        progress=progress, log=log,
    )  # fmt: skip


def bench_stream(
    models: tuple[str, ...] | list[str],
    steps: int = 100,
    reps: int = 5,
    report_dir: Path | None = None,
    out: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """`bench --stream MODELS`: one stream on tfjs-node against re-running the
    prefix and against Python's stateful step, per registry model (none: the
    ones that stream); the report, also written to report_dir/stream.json if given."""
    root = models_root(out)
    specs = resolve(models or STREAMING_MODELS)
    report = run_stream_bench([root / spec.name for spec in specs], steps=steps, reps=reps,
                              log=log)  # fmt: skip
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        path = report_dir / "stream.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        report["path"] = str(path)
    return report


def check_serve_report(report: dict) -> None:
    """A BridgeError naming the models that did not pass `bench --serve`, if any."""
    bad = [name for name, m in report["models"].items() if not m["ok"]]
    if bad:
        raise BridgeError(f"bench --serve: {', '.join(bad)} did not pass (see {report['path']})")
