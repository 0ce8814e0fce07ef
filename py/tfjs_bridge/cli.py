"""The `tfjs-bridge` commands: parsing and printing only (its own pieces in console.py)."""

from __future__ import annotations

from pathlib import Path

import click

from . import __version__, console
from .console import BatchSizes, BridgeGroup, echo_err, echo_note, echo_wrote
from .conversion.convert import CONVERTIBLE, FORMAT_HELP, STATIC_BATCH_HELP
from .conversion.keras_loader import TRUST_LAMBDA_HELP
from .conversion.quantization import ACCURACY_DROP_HELP, QUANTIZATIONS, QUANTIZE_HELP
from .core.paths import models_root
from .fuzz.jobs import MODEL_TIMEOUT
from .runtime.runtimes import RUNTIME_HELP
from .runtime.services import BATCHING, BATCHING_HELP
from .training.distribute import STRATEGIES, STRATEGY_HELP


@click.group(cls=BridgeGroup)
@click.version_option(__version__, prog_name="tfjs-bridge")
@click.option("--debug", is_flag=True, help=console.DEBUG_HELP)
def main(debug: bool):
    """Train recurrent models in Keras, convert them for TensorFlow.js, and
    check that Node.js (tfjs-node) computes what Python computed."""


@main.command()
def doctor():
    """Check both runtimes: versions, and one TensorFlow build shared by Python and Node."""
    from .doctor import diagnose

    report = diagnose()
    console.echo_lines(report.lines())
    console.echo_lines((f"✗ {problem}" for problem in report.problems), err=True)
    if not report.ok:
        raise SystemExit(1)


@main.command("build-addon")
@click.option("--force", is_flag=True, help="Rebuild even if the addon is up to date.")
@click.option("--tf-dir", type=console.PATH, help="A tensorflow package folder to link against "
              "(default: the installed one).")  # fmt: skip
def build_addon_cmd(force: bool, tf_dir: Path | None):
    """Compile tfjs-node's native addon against the Python TensorFlow (offline)."""
    from .runtime.addon import build_addon

    result = build_addon(tf_dir=tf_dir, force=force, log=click.echo)
    click.echo(f"tfjs-node addon {'built' if result.rebuilt else 'up to date'}: {result.addon}"
               f" -> TensorFlow {result.tensorflow_version}")  # fmt: skip


@main.command()
@click.argument("models", nargs=-1)
@click.option("--epochs", type=console.AT_LEAST_1, help="Override the spec's epochs.")
@click.option("--limit", type=console.AT_LEAST_1, help="Use at most N train and N test samples.")
@click.option("--seed", default=0, show_default=True, help="Seed for weights and shuffling.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its last completed epoch.")  # fmt: skip
@click.option("--strategy", type=click.Choice(STRATEGIES), help=STRATEGY_HELP)
@click.option("--workers", type=console.AT_LEAST_1, help="Start N local multi-worker processes on "
              "127.0.0.1 (sets each one's TF_CONFIG).")  # fmt: skip
@click.option("--replicas", type=console.AT_LEAST_1, default=2, show_default=True,
              help="mirrored without GPUs: logical CPU devices to mirror over.")  # fmt: skip
@click.option("--global-batch", type=console.AT_LEAST_1, help="Samples per optimizer step, split "
              "between the replicas [default: the registry's].")  # fmt: skip
@click.option("--record-cluster/--no-record-cluster", default=True, show_default=True,
              help="Record TF_CONFIG's addresses in the manifest "
              "(or only how many tasks).")  # fmt: skip
@console.models_dir_option
def train(models, strategy, workers, replicas, **options):
    """Train registry MODELS (default: all) in tf-keras and save them.

    Examples: tfjs-bridge train gru --epochs 1 --limit 5000; train gru --resume
    (after an interruption); train gru --workers 2 (two local processes);
    TF_CONFIG=... tfjs-bridge train gru --strategy multi-worker (one task)"""
    from .training import launcher

    options = launcher.TrainOptions(**options)
    if workers is not None:  # this process only starts them
        return launcher.run_workers(models, workers, strategy, options, say=click.echo)
    for done in launcher.train_models(models, options, strategy, replicas, log=echo_note,
                                      progress=console.terminal_progress):  # fmt: skip
        console.echo_lines(done.lines())


@main.command()
@click.argument("models", nargs=-1)
@click.option("--format", "fmt", type=click.Choice([*CONVERTIBLE, "all"]), default="all",
              show_default=True, help=FORMAT_HELP)  # fmt: skip
@click.option("--quantize", type=click.Choice(list(QUANTIZATIONS)), help=QUANTIZE_HELP)
@click.option("--static-batch", "static_batch", default=None, metavar="B[,B...]",
              help=STATIC_BATCH_HELP)  # fmt: skip
@click.option("--verify/--no-verify", "check", default=True, show_default=True,
              help="Then check the folders: a quick verify of the default Node paths and a "
              "brief timing of each, recorded in parity.json (docs/parity.md).")  # fmt: skip
@console.models_dir_option
def convert(models, fmt, quantize, static_batch, check, out):
    """Convert trained MODELS (default: all) with tensorflowjs_converter.

    Examples: tfjs-bridge convert gru --format layers;
    tfjs-bridge convert gru --quantize float16  (half the download)"""
    from .conversion.convert import DEFAULT_FORMATS, convert_models, parse_static_batches
    from .training.registry import resolve

    formats = DEFAULT_FORMATS if fmt == "all" else (fmt,)
    statics = parse_static_batches(static_batch)
    console.echo_lines(
        convert_models(resolve(models), formats, models_root(out), quantize, echo_note, statics)
    )
    if check:
        from .bench.first_figures import check_converted

        check_converted(models, out, say=click.echo)


@main.command("import")
@click.argument("path", type=console.PATH)
@click.argument("out_dir", required=False, type=console.DIR)
@click.option("--name", default=None, help="Model name in the manifest [default: from PATH].")
@console.models_dir_option
def import_cmd(path: Path, out_dir: Path | None, name: str | None, out: Path | None):
    """Bring a TensorFlow.js layers model back to Keras, checked the other way.

    PATH: a model.json (or its folder) as tfjs's model.save writes it in Node
    or a browser, any number of shards. OUT_DIR [default: shared_models/NAME]
    gets the tfjs model (verify's truth), keras.h5 (tf-keras), model.keras
    (Keras 3) and a manifest; `tfjs-bridge verify --model-dir OUT_DIR` then
    checks both against the tfjs model in Node. A folder node/train.js wrote,
    without OUT_DIR, gets its keras.h5 in place.
    Example: tfjs-bridge import my-model/model.json models/my-model"""
    from .importing.command import import_command

    console.echo_lines(import_command(path, out_dir, name, models_root(out)))


@main.command()
@click.option("--check", is_flag=True,
              help="Fail if node/registry.json or node/vocabulary.json is stale.")  # fmt: skip
def registry(check: bool):
    """List the registry models; write node/registry.json and node/vocabulary.json."""
    from .contract import check_contract, write_contract
    from .training.registry import MODELS

    for spec in MODELS.values():
        click.echo(f"{spec.name:<10} {spec.description}")
    if check:
        return check_contract()
    echo_wrote(write_contract())


@main.command()
@click.argument("source", type=console.PATH)
@click.argument("out_dir", type=console.DIR)
@click.option("--name", help="Model name in the manifest [default: OUT_DIR's name].")
@click.option("--trust-lambda", is_flag=True, help=TRUST_LAMBDA_HELP)
def export(source: Path, out_dir: Path, name: str | None, trust_lambda: bool):
    """Turn your own Keras model into a model folder for every Node path.

    SOURCE is a tf-keras .h5, a Keras 3 .keras file or a SavedModel folder;
    OUT_DIR gets keras.h5, saved_model/, tfjs_layers/, tfjs_graph/ and a manifest.
    Example: tfjs-bridge export my_model.keras models/my_model"""
    from .conversion.export import export_model

    manifest = export_model(source, out_dir, name, trust_lambda=trust_lambda)
    made = ", ".join(sorted(manifest.get("conversions", {})))
    click.echo(f"{manifest['model']}: {manifest['source']['kind']} -> {out_dir} ({made})")
    for line in manifest["notes"]:
        click.echo(f"note: {line}")


@main.command()
@click.argument("models", nargs=-1)
@click.option("--runtime", "runtimes", multiple=True, help=RUNTIME_HELP)
@click.option("--samples", type=console.AT_LEAST_1, default=500, show_default=True,
              help="Reference inputs per model.")  # fmt: skip
@click.option("--full", is_flag=True, help="The whole test set (10,000 MNIST images).")
@click.option("--atol", type=click.FloatRange(min=0), help="Override the spec's atol.")
@click.option("--rtol", type=click.FloatRange(min=0), help="Override the spec's rtol.")
@click.option("--input-range", "input_ranges", multiple=True, help="An input's valid domain, "
              "NAME=LO:HI (token ids in [LO, HI)); repeatable.")  # fmt: skip
@click.option("--inputs", "inputs_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Your own inputs for the one model verified: .npy, or .npz by "
              "input name.")  # fmt: skip
@click.option("--keras-model", "keras_models", multiple=True, type=console.PATH,
              help="Your own model (.h5, .keras or SavedModel folder), exported to a "
              "temporary folder.")  # fmt: skip
@click.option("--model-dir", "model_dirs", multiple=True, type=console.DIR,
              help="A model folder written by `tfjs-bridge export`.")  # fmt: skip
@click.option(
    "--report", "report_dir", type=console.DIR, help="Write report.json and errors.png here."
)
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), help=ACCURACY_DROP_HELP)
@click.option("--trust-lambda", is_flag=True, help=TRUST_LAMBDA_HELP)
@click.option("--require", "required", multiple=True, help="A path (or backend) that must "
              "pass for every model, beyond the rule above; repeatable.")  # fmt: skip
@console.models_dir_option
def verify(full, samples, **options):
    """Check that every Node path computes what Python computes for MODELS.

    The same inputs through Python (the original model) and each Node path:
    names, shapes, dtypes exact, values within atol + rtol*|python|, every
    argmax of a classifier. Inputs are made within each input's domain unless
    --inputs gives them; inputs that cannot tell paths apart are refused.
    Verdicts: pass, mismatch, unsupported, refused, ill-conditioned (Keras
    itself moves beyond the tolerance: checked on a short prefix of steps
    instead) or skip; exit 0 when no path mismatches (nor its prefix check)
    and at least one passes or has its prefix check pass (and every --require
    path does).

    Examples: tfjs-bridge verify gru --full; verify --keras-model my_model.keras
    --report reports/mine; verify gru --full --max-accuracy-drop 0.2 (quantized)"""
    from .parity.commands import check_verified, verify_command
    from .parity.report import print_table

    with console.terminal_progress() as progress:
        done = verify_command(samples=None if full else samples, progress=progress, **options)
    print_table(done.report)
    echo_wrote(done.written)
    check_verified(done.report, options["required"])


@main.command()
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which models: model I of seed S is always the same.")  # fmt: skip
@click.option(
    "--count", type=console.AT_LEAST_1, default=300, show_default=True, help="Models to run."
)
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True,
              help="The first model's index (rerun one: --start I --count 1).")  # fmt: skip
@click.option("--samples", type=console.AT_LEAST_1, default=16, show_default=True,
              help="Probe inputs per model.")  # fmt: skip
@click.option("--jobs", type=console.AT_LEAST_1, default=1, show_default=True,
              help="Models verified at a time, each in its own process.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=1), default=MODEL_TIMEOUT, show_default=True,
              help="Seconds one model may take, all steps, before it is a hang.")  # fmt: skip
@click.option("--report", "report_dir", type=console.DIR, default="reports/fuzz", show_default=True,
              help="Write fuzz.json and table.md here.")  # fmt: skip
def fuzz(**options):
    """Verify seeded random Keras RNN models, each through the user path
    (verify --keras-model), then again with one weight fault in one path.

    Exits 1 if a model crashed or got no verdict, or an injected fault
    passed. Example: tfjs-bridge fuzz --seed 0 --count 40"""
    from .fuzz.commands import check_fuzz, fuzz_command, summary

    done = fuzz_command(log=click.echo, **options)
    echo_wrote(done.written)
    click.echo(summary(done.report))
    check_fuzz(done.report)


@main.command()
@click.argument("models", nargs=-1)
@click.option("--batch", "batches", type=BatchSizes(), default="1,32,256", show_default=True,
              help="Batch sizes.")  # fmt: skip
@click.option("--runtime", "runtimes", multiple=True, help="Node or browser paths or backends "
              "to time (as in verify) [default: every Node path].")  # fmt: skip
@click.option("--budget", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds of timed repetitions per route and batch (after warm-up).")  # fmt: skip
@click.option("--node-training", is_flag=True, help="Also time one Node training epoch of gru.")
@click.option("--serve", is_flag=True,
              help="Instead: load the Node service and a Python (FastAPI) baseline with "
              "autocannon at concurrency 1, 16, 64; writes serve.json.")  # fmt: skip
@click.option("--duration", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="--serve: seconds of load per server and concurrency.")  # fmt: skip
@click.option("--long-duration", type=click.FloatRange(min=0.1), default=60.0,
              show_default=True, help="--serve: seconds at the highest concurrency.")  # fmt: skip
@click.option("--workers", type=console.AT_LEAST_1,
              help="--serve: the Node service's worker processes [its default].")  # fmt: skip
@click.option("--stream", is_flag=True,
              help="Instead: one stream, a step at a time, on tfjs-node against re-running "
              "the prefix and against Python's stateful model (predict_on_batch, "
              "tf.function) [default models: gru, lstm_sine].")  # fmt: skip
@click.option("--steps", type=console.AT_LEAST_1, default=100, show_default=True,
              help="--stream: steps per pass, and the prefix's length.")  # fmt: skip
@click.option("--reps", type=console.AT_LEAST_1, default=5, show_default=True,
              help="--stream: timed passes (after one untimed).")  # fmt: skip
@click.option("--report", "report_dir", type=console.DIR, help="Write bench.json and bench.png "
              "here (--serve: serve.json, by default in reports/serve; --stream: "
              "stream.json).")  # fmt: skip
@console.models_dir_option
def bench(serve, stream, **options):
    """Time every route side by side: Python baselines and every Node path.

    Paths are verified first (500 samples); the fastest verified one becomes
    each model's default in Node (parity.json). --serve: the Node service and
    a Python baseline (FastAPI, the model in a tf.function) under
    single-sample load, every answer checked. --stream: one stream stepped
    on tfjs-node and by the model's stateful twin in Keras. Examples:
    tfjs-bridge bench gru --batch 1,32,256 --report reports/bench;
    tfjs-bridge bench gru --serve --duration 10 --long-duration 60;
    tfjs-bridge bench --stream gru --steps 100"""
    from .bench import commands, routes, service_load, stream_steps

    given = console.given_options()
    options = commands.options_for(serve, options, given, stream=stream)  # refuses the others'
    if stream:
        report = commands.bench_stream(**options, log=echo_err)
        stream_steps.print_stream_bench(report, echo=click.echo)
        if "path" in report:
            click.echo(f"wrote {report['path']}")
        return
    if not serve:
        done = commands.bench_routes(**options, log=echo_err)
        routes.print_bench(done.report)
        echo_wrote(done.written)
        return
    with console.terminal_progress() as progress:
        report = commands.bench_serve(**options, progress=progress, log=echo_err)
    service_load.print_serve_bench(report)
    click.echo(f"wrote {report['path']}")
    commands.check_serve_report(report)


@main.command(context_settings={"show_default": True})
@click.argument("models", nargs=-1, required=True, metavar="[NAME=]MODEL_DIR...")
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8501, help="0: any free port.")
@click.option("--workers", type=console.AT_LEAST_1,
              help="Worker processes, each with every model [serve.js's default].")  # fmt: skip
@click.option("--max-batch", type=console.AT_LEAST_1, default=32, help="Samples per batch at most.")
@click.option("--max-wait-ms", type=click.IntRange(min=0), default=0,
              help="How long a batch that is not full may wait for more requests.")  # fmt: skip
@click.option("--batching", type=click.Choice(BATCHING), default="auto", help=BATCHING_HELP)
@click.option("--queue-limit", type=console.AT_LEAST_1, default=1024,
              help="Samples waiting at most; beyond, 429.")  # fmt: skip
@click.option("--timeout-ms", type=console.AT_LEAST_1, default=10000,
              help="A request's deadline; beyond, 504.")  # fmt: skip
@click.option("--format", "fmt",
              help="Run every model in this format [each's fastest verified path].")  # fmt: skip
@click.option("--max-sequences", type=click.IntRange(min=0),
              help=":stream's live sequences per model at most; 0: no :stream [1024].")  # fmt: skip
@click.option("--stream-idle-ms", type=console.AT_LEAST_1,
              help="A sequence without a step that long is freed [60000].")  # fmt: skip
@click.option("--max-stream-batch", type=console.AT_LEAST_1,
              help="Steps (one per sequence) per batched step at most [256].")  # fmt: skip
@click.option("--http-processes", type=console.AT_LEAST_1,
              help="HTTP processes on the port, around one set of batchers [1].")  # fmt: skip
def serve(models, **options):
    """Serve model folders over HTTP with TensorFlow Serving's REST API.

    Becomes node/serve.js (signals go straight to it). POST
    /v1/models/NAME:predict with {"instances": ...} or {"inputs": ...} (or an
    .npy/.npz body); POST /v1/models/NAME:stream, one step of a sequence
    (docs/streaming.md); GET /v1/models/NAME[/metadata], /healthz, /readyz, /metrics.
    Example: tfjs-bridge serve shared_models/gru --port 8501"""
    from .runtime import services

    services.become(services.serve_command(models, **options))


@main.command(context_settings={"show_default": True})
@click.option("--host", default="127.0.0.1", help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, help="0: any free port.")
@console.models_dir_option
def demo(host, port, out):
    """Serve a page that runs the converted models in your browser (node/demo.js):
    draw a digit (gru), forecast a sine (lstm_sine), paste a mail (spam); the
    backend is switchable; each panel has real test examples with Keras's
    answers, computed here first. Example: tfjs-bridge demo --port 8080"""
    from .runtime import services
    from .training.demo_examples import cached_demo_examples

    root = models_root(out)
    click.echo("demo: Keras's answers for the page's test examples ...")
    path = cached_demo_examples(root)  # computed once per set of models
    services.become(services.demo_command(root, host, port, path))


@main.command()
@click.argument("model_dir", type=console.DIR)
@click.option("--input", "input_path", required=True, type=console.PATH,
              help="A .npy [N, *input_shape], or an .npz of arrays by input name.")  # fmt: skip
@click.option("--output", "output_path", required=True, type=console.PATH,
              help="Output .npy (several outputs: OUTPUT with _NAME).")  # fmt: skip
@click.option("--runtime", help="A Node path [default: the fastest verified one].")
@click.option("--allow-nonfinite", is_flag=True, help="Run inputs holding NaN or ±Inf.")
@click.option("--timeout", type=click.FloatRange(min=0.1),
              help="Seconds to wait for Node [TFJS_BRIDGE_NODE_TIMEOUT, 600].")  # fmt: skip
def predict(**options):
    """Run a model folder on a Node path, .npy in, .npy out. Example:
    tfjs-bridge predict shared_models/lstm_sine --input x.npy --output y.npy"""
    from .parity.predict import predict as run_predict

    done = run_predict(**options)
    echo_wrote(f"{target} {y.dtype}{list(y.shape)}" for target, y in done.written)
    click.echo(f"ran {done.format} on {done.backend} ({done.why})")


if __name__ == "__main__":
    main()
