"""`tfjs-bridge bench` as two library calls: the route bench (bench_routes:
every route timed side by side) and the service under load (bench_serve,
`bench --serve`). Each takes the command's options as they are given and
returns what the CLI prints."""

from __future__ import annotations

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

# The options only one of the two benches takes: parameter name -> flag.
ROUTE_OPTIONS = {"batches": "--batch", "runtimes": "--runtime", "budget": "--budget",
                 "node_training": "--node-training"}  # fmt: skip
SERVE_OPTIONS = {"duration": "--duration", "long_duration": "--long-duration",
                 "workers": "--workers"}  # fmt: skip


def options_for(serve: bool, options: dict, given: set[str]) -> dict:
    """The `bench` command's options (by parameter name) that the chosen
    bench takes; the other bench's, if the user set any (`given`), are a
    usage error."""
    if serve:
        mixed = sorted(ROUTE_OPTIONS[n] for n in given & set(ROUTE_OPTIONS))
        if mixed:
            raise UsageError(f"bench --serve takes no {', '.join(mixed)}")
    elif given & set(SERVE_OPTIONS):
        raise UsageError("--duration, --long-duration and --workers go with --serve")
    other = ROUTE_OPTIONS if serve else SERVE_OPTIONS
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
                         "node node/scripts/bench-stream.js does (docs/streaming.md)")  # fmt: skip
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


def check_serve_report(report: dict) -> None:
    """A BridgeError naming the models that did not pass `bench --serve`, if any."""
    bad = [name for name, m in report["models"].items() if not m["ok"]]
    if bad:
        raise BridgeError(f"bench --serve: {', '.join(bad)} did not pass (see {report['path']})")
