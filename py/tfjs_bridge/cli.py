"""The `tfjs-bridge` command line: parsing and printing only; the work is in
the library modules, which the tests call directly."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from . import __version__
from .conversion.convert import CONVERTIBLE
from .conversion.quantization import MAX_ACCURACY_DROP_PP, QUANTIZATIONS
from .core.errors import BridgeError, UsageError
from .core.progress import NO_PROGRESS, Progress
from .training.distribute import STRATEGIES


class BridgeGroup(click.Group):
    """Turns BridgeError into one line on stderr and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BridgeError as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)


@click.group(cls=BridgeGroup)
@click.version_option(__version__, prog_name="tfjs-bridge")
def main():
    """Train recurrent models in Keras, convert them for TensorFlow.js, and
    check that Node.js (tfjs-node) computes what Python computed."""


@main.command()
def doctor():
    """Check both runtimes: versions, and one TensorFlow build shared by Python and Node."""
    from .doctor import diagnose

    report = diagnose()
    width = max(len(k) for k in report.versions)
    for name, version in report.versions.items():
        click.echo(f"{name:<{width}}  {version if version is not None else '-'}")
    if report.ok:
        click.echo("✓ Python and Node run the same TensorFlow build")
        return
    for problem in report.problems:
        click.echo(f"✗ {problem}", err=True)
    sys.exit(1)


@main.command("build-addon")
@click.option("--force", is_flag=True, help="Rebuild even if the addon is up to date.")
@click.option(
    "--tf-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A tensorflow package folder to link against (default: the installed one).",
)
def build_addon_cmd(force: bool, tf_dir: Path | None):
    """Compile tfjs-node's native addon against the Python TensorFlow (offline)."""
    from .runtime.addon import build_addon

    result = build_addon(tf_dir=tf_dir, force=force, log=click.echo)
    state = "built" if result.rebuilt else "up to date"
    click.echo(f"tfjs-node addon {state}: {result.addon} -> TensorFlow {result.tensorflow_version}")


models_dir_option = click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="TFJS_BRIDGE_MODELS",
    help="Folder holding one folder per model [default: shared_models/].",
)


class ClickProgress:
    """progress.Progress as a click progress bar on `stream`."""

    def __init__(self, stream):
        self.stream = stream
        self.bar = None

    def start(self, total: int, label: str) -> None:
        self.close()
        self.bar = click.progressbar(length=total, label=label, file=self.stream)
        self.bar.__enter__()

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def set_label(self, label: str) -> None:
        if self.bar is not None:
            self.bar.label = label

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextmanager
def terminal_progress():
    """A progress bar when stderr is a terminal, else none. The bar writes to
    a duplicate of stderr taken now: training hides fd 2 while it runs
    (TensorFlow's native logging, tfimport.py), and the bar must still show."""
    if not sys.stderr.isatty():
        yield NO_PROGRESS
        return
    sys.stderr.flush()
    with os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1) as stream:
        progress: Progress = ClickProgress(stream)
        try:
            yield progress
        finally:
            progress.close()


def _note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def _models_root(out: Path | None) -> Path:
    from .core.paths import MODELS_DIR

    return out if out is not None else MODELS_DIR


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None, help="Override the spec's epochs."
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Use at most N train and N test samples.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed for weights and shuffling."
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run from its last completed epoch."
)
@click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="tf.distribute strategy: one device, MirroredStrategy over local devices, or "
    "MultiWorkerMirroredStrategy over TF_CONFIG's cluster.  [default: default; "
    "multi-worker with --workers]",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Start N local multi-worker processes on 127.0.0.1 (sets each one's TF_CONFIG).",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="mirrored without GPUs: logical CPU devices to mirror over.",
)
@click.option(
    "--global-batch",
    type=click.IntRange(min=1),
    default=None,
    help="Samples per optimizer step, split between the replicas [default: the registry's].",
)
@click.option(
    "--record-cluster/--no-record-cluster",
    default=True,
    show_default=True,
    help="Record TF_CONFIG's addresses in the manifest (or only how many tasks).",
)
@models_dir_option
def train(
    models,
    epochs,
    limit,
    seed,
    resume,
    strategy,
    workers,
    replicas,
    global_batch,
    record_cluster,
    out,
):
    """Train registry MODELS (default: all) in tf-keras and save them.

    Examples: tfjs-bridge train gru --epochs 1 --limit 5000;
    tfjs-bridge train gru --resume  (after an interruption);
    tfjs-bridge train gru --workers 2  (multi-worker, two local processes);
    TF_CONFIG=... tfjs-bridge train gru --strategy multi-worker  (one task of a cluster)"""
    from .training import distribute
    from .training.registry import resolve
    from .training.train import train as train_model

    if workers is not None:
        forwarded = [*models, "--seed", str(seed)]
        forwarded += ["--epochs", str(epochs)] if epochs is not None else []
        forwarded += ["--limit", str(limit)] if limit is not None else []
        forwarded += ["--resume"] if resume else []
        forwarded += ["--global-batch", str(global_batch)] if global_batch else []
        forwarded += [] if record_cluster else ["--no-record-cluster"]
        forwarded += ["--out", str(out)] if out is not None else []
        _launch_workers(models, workers, strategy, forwarded)
        return
    dist = distribute.plan(strategy or "default", replicas, record_cluster, global_batch)
    root = _models_root(out)
    for spec in resolve(models):
        with terminal_progress() as progress:
            manifest = train_model(
                spec, root, epochs=epochs, limit=limit, seed=seed, resume=resume, log=_note,
                progress=progress, distribution=dist,
            )  # fmt: skip
        if not dist.chief:
            continue  # the chief reports
        if manifest.get("resumed_from_epoch"):
            click.echo(f"{spec.name}: resumed after epoch {manifest['resumed_from_epoch']}")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in manifest["test"].items())
        click.echo(
            f"{spec.name}: {manifest['epochs']} epochs in {manifest['train_seconds']:.1f} s; "
            f"test {shown} -> {root / spec.name}"
        )


def _launch_workers(models, workers: int, strategy: str | None, forwarded: list[str]) -> None:
    """`train --workers N`: this process runs no TensorFlow; it starts N
    multi-worker processes of the same command and reports each one's exit."""
    from .training import distribute

    if strategy not in (None, "multi-worker"):
        raise UsageError(
            f"--workers starts multi-worker processes; it cannot be --strategy {strategy}"
        )
    if os.environ.get("TF_CONFIG"):
        raise UsageError("--workers sets each local worker's TF_CONFIG: unset TF_CONFIG first")
    from .training.registry import resolve

    resolve(models)  # an unknown model fails here, not in N workers
    exits = distribute.run_local_workers(forwarded, workers)
    for status in exits:
        click.echo(
            status.describe()
            + (f": {status.last_line}" if status.code and status.last_line else "")
        )
    failed = [s for s in exits if s.code != 0]
    if failed:
        raise BridgeError(
            f"{len(failed)} of {workers} workers failed ({failed[0].describe()}): "
            "rerun with --resume to continue from the last completed epoch"
        )


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*CONVERTIBLE, "all"]),
    default="all",
    show_default=True,
    help="layers: keras.h5 -> tfjs_layers/; graph: saved_model/ -> tfjs_graph/; "
    "onnx: keras.h5 -> onnx/ with tf2onnx (needs `make onnx`; not part of all).",
)
@click.option(
    "--quantize",
    type=click.Choice(list(QUANTIZATIONS)),
    default=None,
    help="Store the tfjs models' weights as float16, or affine-quantized to 1 or 2 bytes "
    "(the converter's own options); verify then judges them by a budget.",
)
@models_dir_option
def convert(models, fmt, quantize, out):
    """Convert trained MODELS (default: all) with tensorflowjs_converter.

    Examples: tfjs-bridge convert gru --format layers;
    tfjs-bridge convert gru --quantize float16  (half the download)"""
    from .conversion.convert import DEFAULT_FORMATS
    from .conversion.convert import convert as convert_model
    from .training.registry import resolve

    formats = DEFAULT_FORMATS if fmt == "all" else (fmt,)
    root = _models_root(out)
    for spec in resolve(models):
        manifest = convert_model(root / spec.name, formats, log=_note, quantize=quantize)
        for f in formats:
            done = manifest["conversions"][f]
            size = ""
            if done.get("quantize"):
                size = (
                    f", {done['quantize']} weights: {done['weight_bytes']:,} bytes, "
                    f"{done['float32_weight_bytes']:,} as float32"
                )
            tool = f"{done['converter']} {done['converter_version']}"
            click.echo(
                f"{spec.name}: {f} -> {root / spec.name / done['output']} "
                f"({len(done['files'])} files, {tool}{size})"
            )


@main.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("out_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Model name in the manifest [default: from PATH].")
@models_dir_option
def import_cmd(path: Path, out_dir: Path | None, name: str | None, out: Path | None):
    """Bring a TensorFlow.js layers model back to Keras, checked the other way.

    PATH is a model.json (or its folder) as tfjs's model.save writes it, in
    Node (model.json + weights.bin) or a browser (model.json +
    model.weights.bin), any number of shards. OUT_DIR [default:
    shared_models/NAME] gets the tfjs model (the truth for verify),
    keras.h5 (tf-keras), model.keras (Keras 3) and a manifest; then
    `tfjs-bridge verify --model-dir OUT_DIR` checks both Keras models
    against the tfjs model run in Node. A folder node/train.js wrote
    (tfjs_layers/ + manifest.json), without OUT_DIR, gets its keras.h5 in place.
    Example: tfjs-bridge import my-model/model.json models/my-model"""
    from .conversion.convert import import_layers_model
    from .folder import artifacts
    from .folder.formats import LAYERS
    from .importing.tfjs_import import _default_name, find_model_json, import_tfjs

    trained_in_node = (path / artifacts.MANIFEST).is_file() and LAYERS.path(path).is_file()
    if out_dir is None and trained_in_node:
        click.echo(f"wrote {import_layers_model(path)}")
        return
    if out_dir is None:
        out_dir = _models_root(out) / (name or _default_name(find_model_json(path)))
    manifest = import_tfjs(path, out_dir, name)
    click.echo(f"{manifest['model']}: tfjs layers model -> {out_dir} (keras.h5, model.keras)")
    for note in manifest["notes"]:
        click.echo(f"note: {note}")


@main.command()
@click.option(
    "--check", is_flag=True, help="Fail if node/registry.json or node/vocabulary.json is stale."
)
def registry(check: bool):
    """List the registry models and write what Node knows of Python's
    definitions: node/registry.json and node/vocabulary.json."""
    from .contract import check_contract, write_contract
    from .training.registry import MODELS

    for spec in MODELS.values():
        click.echo(f"{spec.name:<10} {spec.description}")
    if check:
        check_contract()
        return
    for path in write_contract():
        click.echo(f"wrote {path}")


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="Model name in the manifest [default: OUT_DIR's name].")
def export(source: Path, out_dir: Path, name: str | None):
    """Turn your own Keras model into a model folder for every Node path.

    SOURCE is a tf-keras .h5, a Keras 3 .keras file or a SavedModel folder;
    OUT_DIR gets keras.h5, saved_model/, tfjs_layers/, tfjs_graph/ and a manifest.
    Example: tfjs-bridge export my_model.keras models/my_model"""
    from .conversion.export import export_model

    manifest = export_model(source, out_dir, name)
    made = ", ".join(sorted(manifest.get("conversions", {})))
    click.echo(f"{manifest['model']}: {manifest['source']['kind']} -> {out_dir} ({made})")
    for note in manifest["notes"]:
        click.echo(f"note: {note}")


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    help="A Node path (tfjs-node/layers), a backend (tfjs-wasm), a browser path "
    "(chromium-webgl/layers), backend (chromium-webgl) or browser (chromium, firefox; "
    "`make browser`); repeatable [default: every Node path].",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Reference inputs per model.",
)
@click.option("--full", is_flag=True, help="The whole test set (10,000 MNIST images).")
@click.option(
    "--atol", type=click.FloatRange(min=0), default=None, help="Override the spec's atol."
)
@click.option(
    "--rtol", type=click.FloatRange(min=0), default=None, help="Override the spec's rtol."
)
@click.option(
    "--input-range",
    "input_ranges",
    multiple=True,
    help="An input's valid domain, NAME=LO:HI (token ids in [LO, HI)); repeatable.",
)
@click.option(
    "--inputs",
    "inputs_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Your own inputs for the one model verified: .npy, or .npz by input name.",
)
@click.option(
    "--keras-model",
    "keras_models",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Your own model (.h5, .keras or SavedModel folder), exported to a temporary folder.",
)
@click.option(
    "--model-dir",
    "model_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A model folder written by `tfjs-bridge export`.",
)
@click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write report.json and errors.png here.",
)
@click.option(
    "--max-accuracy-drop",
    type=click.FloatRange(min=0),
    default=None,
    help="Quantized models (convert --quantize): the test accuracy they may lose, in "
    f"percentage points [default: {MAX_ACCURACY_DROP_PP}].",
)
@models_dir_option
def verify(
    models, runtimes, samples, full, atol, rtol, input_ranges, inputs_file, keras_models,
    model_dirs, report_dir, max_accuracy_drop, out,
):  # fmt: skip
    """Check that every Node path computes what Python computes for MODELS.

    The same inputs go through Python (the original Keras model) and each Node
    path; names, shapes and dtypes must match exactly and every value within
    atol + rtol*|python|; classifiers must agree on every argmax. Inputs are
    made within each input's domain (token ids for an Embedding, padded
    samples for a mask) unless --inputs gives them; inputs that cannot tell
    paths apart are refused. Exit 0 only when every path passes.

    Examples: tfjs-bridge verify gru --full;
    tfjs-bridge verify --keras-model my_model.keras --report reports/mine;
    tfjs-bridge verify gru --full --max-accuracy-drop 0.2  (after convert --quantize)"""
    from .folder.signature import parse_ranges
    from .parity.report import print_table, write_report
    from .parity.verify import verify_models
    from .runtime.runtimes import resolve_runtimes
    from .training.registry import resolve

    ranges = parse_ranges(input_ranges)
    chosen = resolve_runtimes(runtimes)
    root = _models_root(out)
    dirs = (
        [root / spec.name for spec in resolve(models)]
        if models or not (keras_models or model_dirs)
        else []
    )
    with terminal_progress() as progress:
        report = verify_models(
            [*dirs, *model_dirs],
            list(keras_models),
            chosen,
            None if full else samples,
            atol=atol,
            rtol=rtol,
            explicit_runtimes=bool(runtimes),
            progress=progress,
            ranges=ranges,
            inputs_file=inputs_file,
            max_accuracy_drop=max_accuracy_drop,
        )
    print_table(report)
    if report_dir is not None:
        for path in write_report(report, report_dir):
            click.echo(f"wrote {path}")
    if not report.ok:
        bad = [f"{r.model} {r.runtime}" for r in report.results if r.status != "pass"]
        raise BridgeError(
            f"{len(bad)} of {len(report.results)} paths did not pass: {', '.join(bad)}"
        )


class BatchSizes(click.ParamType):
    """--batch 1,32,256: positive integers, comma-separated."""

    name = "sizes"

    def convert(self, value, param, ctx) -> list[int]:
        if isinstance(value, list):
            return value
        try:
            sizes = [int(b) for b in value.split(",")]
        except ValueError:
            sizes = []
        if not sizes or any(b <= 0 for b in sizes):
            raise UsageError(f"--batch wants positive integers like 1,32,256, got '{value}'")
        return sizes


@main.command()
@click.argument("models", nargs=-1)
@click.option(
    "--batch", "batches", type=BatchSizes(), default="1,32,256", show_default=True,
    help="Batch sizes.",
)  # fmt: skip
@click.option(
    "--runtime", "runtimes", multiple=True,
    help="Node or browser paths or backends to time (as in verify) [default: every Node path].",
)  # fmt: skip
@click.option(
    "--budget", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
    help="Seconds of timed repetitions per route and batch (after warm-up).",
)  # fmt: skip
@click.option("--node-training", is_flag=True, help="Also time one Node training epoch of gru.")
@click.option("--serve", is_flag=True,
              help="Instead: load the Node service and a Python (FastAPI) baseline with "
              "autocannon at concurrency 1, 16, 64; writes serve.json.")  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="--serve: seconds of load per server and concurrency.")  # fmt: skip
@click.option("--long-duration", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, help="--serve: seconds at the highest concurrency.")  # fmt: skip
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="--serve: the Node service's worker processes [its default].")  # fmt: skip
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write bench.json and bench.png here "
              "(--serve: serve.json, by default in reports/serve).")  # fmt: skip
@models_dir_option
@click.pass_context
def bench(ctx, models, batches, runtimes, budget, node_training, serve, duration, long_duration,
          workers, report_dir, out):  # fmt: skip
    """Time every route side by side: Python baselines and every Node path.

    Paths are verified first (500 samples); the fastest verified one becomes
    each model's default in Node (parity.json). With --serve, the Node
    service (node/serve.js) and a Python baseline (FastAPI + uvicorn, the
    model in a tf.function) serve each model and are loaded in turn with
    single-sample requests; every answer is checked. Examples:
    tfjs-bridge bench gru --batch 1,32,256 --report reports/bench;
    tfjs-bridge bench gru --serve --duration 10 --long-duration 60"""
    from .bench.routes import print_bench, run_bench, write_bench_report
    from .parity.truth import subject_from_folder
    from .runtime.runtimes import resolve_runtimes
    from .training.registry import resolve

    options = ("batches", "runtimes", "budget", "node_training", "duration", "long_duration",
               "workers")  # fmt: skip
    given = {
        name
        for name in options
        if ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
    }
    if serve:
        flags = {"batches": "--batch", "runtimes": "--runtime", "budget": "--budget",
                 "node_training": "--node-training"}  # fmt: skip
        mixed = sorted(flags[n] for n in given & set(flags))
        if mixed:
            raise UsageError(f"bench --serve takes no {', '.join(mixed)}")
        _bench_serve(models, duration, long_duration, workers, report_dir, out)
        return
    if given & {"duration", "long_duration", "workers"}:
        raise UsageError("--duration, --long-duration and --workers go with --serve")
    chosen = resolve_runtimes(runtimes)
    root = _models_root(out)
    subjects = [subject_from_folder(root / spec.name) for spec in resolve(models)]
    report = run_bench(
        subjects, chosen, batches, budget, node_training=node_training,
        log=lambda m: click.echo(m, err=True),
    )  # fmt: skip
    print_bench(report)
    if report_dir is not None:
        for path in write_bench_report(report, report_dir):
            click.echo(f"wrote {path}")


def _bench_serve(models, duration, long_duration, workers, report_dir, out) -> None:
    from .bench.service_load import REPORT_DIR, print_serve_bench, run_serve_bench
    from .training.registry import resolve

    root = _models_root(out)
    with terminal_progress() as progress:
        report = run_serve_bench(
            [root / spec.name for spec in resolve(models)], duration=duration,
            long_duration=long_duration, workers=workers, report_dir=report_dir or REPORT_DIR,
            progress=progress,
            log=lambda m: click.echo(m, err=True),
        )  # fmt: skip
    print_serve_bench(report)
    click.echo(f"wrote {report['path']}")
    if not report["ok"]:
        bad = [name for name, m in report["models"].items() if not m["ok"]]
        raise BridgeError(f"bench --serve: {', '.join(bad)} did not pass (see {report['path']})")


@main.command(context_settings={"show_default": True})
@click.argument("models", nargs=-1, required=True, metavar="[NAME=]MODEL_DIR...")
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, help="0: any free port.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes, each with every model [serve.js's default].")  # fmt: skip
@click.option("--max-batch", type=click.IntRange(min=1), default=32,
              help="Samples per batch at most.")  # fmt: skip
@click.option("--max-wait-ms", type=click.IntRange(min=0), default=0,
              help="How long a batch that is not full may wait for more requests.")  # fmt: skip
@click.option("--batching", type=click.Choice(["auto", "padded", "unpadded"]), default="auto",
              help="auto: batches at their own size where that changes no answer's bits "
              "(checked at load), else padded to --max-batch.")  # fmt: skip
@click.option("--queue-limit", type=click.IntRange(min=1), default=1024,
              help="Samples waiting at most; beyond, 429.")  # fmt: skip
@click.option("--timeout-ms", type=click.IntRange(min=1), default=10000,
              help="A request's deadline; beyond, 504.")  # fmt: skip
@click.option("--format", "fmt", default=None,
              help="Run every model in this format [each's fastest verified path].")  # fmt: skip
def serve(models, host, port, workers, max_batch, max_wait_ms, batching, queue_limit, timeout_ms,
          fmt):  # fmt: skip
    """Serve model folders over HTTP with TensorFlow Serving's REST API
    (node/serve.js, which this becomes: signals go straight to it).

    POST /v1/models/NAME:predict with {"instances": ...} or {"inputs": ...}
    (or an .npy/.npz body); GET /v1/models/NAME[/metadata], /healthz,
    /readyz, /metrics. Example: tfjs-bridge serve shared_models/gru --port 8501"""
    from .core.paths import NODE_DIR
    from .runtime.node_process import node_executable

    args = [node_executable(), str(NODE_DIR / "serve.js"), "--host", host, "--port", str(port),
            "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
            "--batching", batching, "--queue-limit", str(queue_limit),
            "--timeout-ms", str(timeout_ms)]  # fmt: skip
    if workers:
        args += ["--workers", str(workers)]
    if fmt:
        args += ["--format", fmt]
    for model in models:
        args += ["--model", model]
    sys.stdout.flush()
    os.execv(args[0], args)


@main.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, help="0: any free port.")
@models_dir_option
def demo(host, port, out):
    """Serve a page that runs the converted models in your browser, with tfjs:
    draw a digit (gru), forecast a sine (lstm_sine), paste a mail (spam);
    the backend (webgl, wasm, cpu) is switchable in the page. Becomes
    node/demo.js. Example: tfjs-bridge demo --port 8080, then open
    http://127.0.0.1:8080/"""
    from .core.paths import NODE_DIR
    from .runtime.node_process import node_executable

    args = [node_executable(), str(NODE_DIR / "demo.js"), "--models", str(_models_root(out)),
            "--host", host, "--port", str(port)]  # fmt: skip
    sys.stdout.flush()
    os.execv(args[0], args)


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="A .npy [N, *input_shape], or an .npz of arrays by input name.")  # fmt: skip
@click.option("--output", "output_path", required=True, type=click.Path(path_type=Path),
              help="Output .npy (several outputs: OUTPUT with _NAME).")  # fmt: skip
@click.option("--runtime", default=None, help="A Node path [default: the fastest verified one].")
@click.option("--allow-nonfinite", is_flag=True, help="Run inputs holding NaN or ±Inf.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None,
              help="Seconds to wait for Node [TFJS_BRIDGE_NODE_TIMEOUT, 600].")  # fmt: skip
def predict(model_dir, input_path, output_path, runtime, allow_nonfinite, timeout):
    """Run a model folder on a Node path, .npy in, .npy out.

    Example: tfjs-bridge predict shared_models/lstm_sine --input x.npy --output y.npy"""
    from .folder.checked_inputs import load_inputs
    from .folder.npy import save_array
    from .parity.truth import subject_from_folder
    from .runtime.runtimes import RUNTIMES
    from .runtime.worker_process import NodeWorker

    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime '{runtime}' (known: {', '.join(RUNTIMES)})")
    subject = subject_from_folder(model_dir)  # a missing folder or manifest fails here
    xs = load_inputs(input_path, subject.signature, allow_nonfinite)
    rt = RUNTIMES.get(runtime)
    with NodeWorker(rt.backend if rt else "tensorflow", timeout=timeout) as worker:
        loaded = worker.load(model_dir, rt.format if rt else None)
        ys, _ = worker.predict(loaded["handle"], xs, subject.signature.names)
    names = loaded["outputs"]
    targets = (
        [output_path]
        if len(ys) == 1
        else [output_path.with_name(f"{output_path.stem}_{n}{output_path.suffix}") for n in names]
    )
    for target, y in zip(targets, ys, strict=True):
        save_array(target, y)
        click.echo(f"wrote {target} {y.dtype}{list(y.shape)}")
    click.echo(f"ran {loaded['format']} on {worker.backend} ({loaded['why']})")


if __name__ == "__main__":
    main()
