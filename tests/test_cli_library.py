"""What the commands call, called directly (the CLI only parses and prints):
the `train` launcher (training/launcher.py), `predict`'s Node session
(parity/predict.py), the Node programs `serve` and `demo` become
(runtime/services.py), `bench`'s two benches (bench/commands.py), `verify`
(parity/commands.py), `convert`'s summary line; and the CLI's one line per
failure (console.py): a BridgeError as itself, anything unexpected with the
command and the exception, Ctrl-C with 130, --debug with the traceback.

Fast except test_predict_runs_a_folder_on_node (trains the 2-sample seed
LSTM and runs Node)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge.bench import commands as bench_commands
from tfjs_bridge.cli import main
from tfjs_bridge.core.errors import BridgeError, UsageError, unexpected
from tfjs_bridge.core.paths import MODELS_DIR, NODE_DIR
from tfjs_bridge.parity import commands as verify_commands
from tfjs_bridge.parity import predict as predict_session
from tfjs_bridge.runtime import services
from tfjs_bridge.runtime.node_process import node_executable
from tfjs_bridge.training import launcher
from tfjs_bridge.training.distribute import WorkerExit
from tfjs_bridge.training.registry import MODELS

# --- train: the local multi-worker launcher ------------------------------------


def test_worker_args_forward_every_option_given():
    assert launcher.worker_args(("gru",), launcher.TrainOptions()) == ["gru", "--seed", "0"]
    options = launcher.TrainOptions(
        epochs=2, limit=500, seed=7, resume=True, global_batch=64, record_cluster=False,
        out=Path("/tmp/m"),
    )  # fmt: skip
    assert launcher.worker_args(("gru", "lstm"), options) == [
        "gru", "lstm", "--seed", "7", "--epochs", "2", "--limit", "500", "--resume",
        "--global-batch", "64", "--no-record-cluster", "--out", "/tmp/m",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "models, strategy, environ, error, message",
    [
        (("gru",), "mirrored", {}, UsageError, "cannot be --strategy mirrored"),
        (("gru",), "default", {}, UsageError, "cannot be --strategy default"),
        (("gru",), None, {"TF_CONFIG": "{}"}, UsageError, "unset TF_CONFIG first"),
        (("nope",), "multi-worker", {}, UsageError, "unknown model 'nope'"),
    ],
)
def test_check_launch_refuses_before_any_worker_starts(models, strategy, environ, error, message):
    with pytest.raises(error, match=message):
        launcher.check_launch(models, strategy, environ)
    launcher.check_launch(("gru",), "multi-worker", {})  # fine
    launcher.check_launch((), None, {"TF_CONFIG": ""})  # an empty TF_CONFIG is unset


def _fake_workers(monkeypatch, exits):
    calls = []

    def run_local_workers(args, workers):
        calls.append((args, workers))
        return exits

    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(launcher.distribute, "run_local_workers", run_local_workers)
    return calls


def test_run_workers_says_each_exit(monkeypatch):
    exits = [WorkerExit(0, 0, False, "done"), WorkerExit(1, 0, False, "")]
    calls = _fake_workers(monkeypatch, exits)
    said = []
    result = launcher.run_workers(("gru",), 2, None, launcher.TrainOptions(epochs=1), said.append)
    assert result == exits
    assert calls == [(["gru", "--seed", "0", "--epochs", "1"], 2)]
    assert said == ["worker 0 (chief): exit 0", "worker 1: exit 0"]


def test_run_workers_fails_after_saying_every_exit(monkeypatch):
    exits = [WorkerExit(0, 1, False, "ValueError: boom"), WorkerExit(1, None, True, "")]
    _fake_workers(monkeypatch, exits)
    said = []
    with pytest.raises(BridgeError) as caught:
        launcher.run_workers(("gru",), 2, "multi-worker", say=said.append)
    assert said == [
        "worker 0 (chief): exit 1: ValueError: boom",
        "worker 1: stopped by the launcher",
    ]
    assert str(caught.value) == (
        "2 of 2 workers failed (worker 0 (chief): exit 1): "
        "rerun with --resume to continue from the last completed epoch"
    )


def test_train_models_yields_what_the_chief_trained(monkeypatch, tmp_path):
    trained = []

    def fake_train(spec, root, **kwargs):
        trained.append((spec.name, root, kwargs["epochs"], kwargs["distribution"].name))
        return {"epochs": 1, "test": {}}

    monkeypatch.setattr(launcher, "train_model", fake_train)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    options = launcher.TrainOptions(epochs=3, out=tmp_path)
    done = list(launcher.train_models(("lstm", "gru"), options))
    assert [(d.spec.name, d.folder) for d in done] == [
        ("lstm", tmp_path / "lstm"), ("gru", tmp_path / "gru"),
    ]  # fmt: skip
    assert trained == [("lstm", tmp_path, 3, "default"), ("gru", tmp_path, 3, "default")]
    # A worker that is not the chief trains, and reports nothing.
    cluster = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    assert list(launcher.train_models(("lstm",), options, "multi-worker")) == []
    assert trained[-1] == ("lstm", tmp_path, 3, "multi-worker")
    assert launcher.TrainOptions().root == MODELS_DIR


# --- predict: one folder on a Node path ------------------------------------------


def test_output_paths_name_each_output():
    assert predict_session.output_paths(Path("d/y.npy"), ["a", "b"]) == [
        Path("d/y_a.npy"), Path("d/y_b.npy"),
    ]  # fmt: skip


def test_predict_refuses_an_unknown_runtime(tmp_path):
    with pytest.raises(UsageError, match="unknown runtime 'gpu'"):
        predict_session.predict(tmp_path, tmp_path / "x.npy", tmp_path / "y.npy", runtime="gpu")


@pytest.fixture(scope="module")
def seed_lstm(tmp_path_factory):
    from tfjs_bridge.conversion.convert import convert
    from tfjs_bridge.training.train import train

    root = tmp_path_factory.mktemp("models")
    train(MODELS["lstm"], root)  # the seed's 2 samples, 10 epochs: seconds
    convert(root / "lstm", ("layers",))
    return root / "lstm"


def test_predict_runs_a_folder_on_node(node_runtime, seed_lstm, tmp_path):
    import tf_keras

    x = np.float32([[[1.0]], [[2.0]], [[3.0]]])
    np.save(tmp_path / "x.npy", x)
    done = predict_session.predict(
        seed_lstm, tmp_path / "x.npy", tmp_path / "y.npy", runtime="tfjs-node/layers"
    )
    assert (done.format, done.backend) == ("layers", "tensorflow")
    [(path, y)] = done.written
    assert path == tmp_path / "y.npy" and y.shape == (3, 1) and y.dtype == np.float32
    np.testing.assert_array_equal(np.load(path), y)
    keras = tf_keras.models.load_model(seed_lstm / "keras.h5", compile=False).predict(x, verbose=0)
    np.testing.assert_allclose(y, keras, atol=1e-5, rtol=1e-5)


# --- serve and demo: the Node programs they become ------------------------------


def test_serve_command_spells_out_every_flag():
    node = node_executable()
    assert services.serve_command(["a=m/a", "m/b"]) == [
        node, str(NODE_DIR / "serve.js"), "--host", "127.0.0.1", "--port", "8501",
        "--max-batch", "32", "--max-wait-ms", "0", "--batching", "auto",
        "--queue-limit", "1024", "--timeout-ms", "10000", "--model", "a=m/a", "--model", "m/b",
    ]  # fmt: skip
    args = services.serve_command(
        ["m"], host="0.0.0.0", port=0, workers=3, max_batch=8, max_wait_ms=5,
        batching="padded", queue_limit=9, timeout_ms=100, fmt="graph",
        max_sequences=0, stream_idle_ms=50, max_stream_batch=7, http_processes=2,
    )  # fmt: skip
    assert args[2:] == [
        "--host", "0.0.0.0", "--port", "0", "--max-batch", "8", "--max-wait-ms", "5",
        "--batching", "padded", "--queue-limit", "9", "--timeout-ms", "100",
        "--workers", "3", "--format", "graph", "--http-processes", "2", "--max-sequences", "0",
        "--stream-idle-ms", "50", "--max-stream-batch", "7", "--model", "m",
    ]  # fmt: skip


def test_demo_command():
    assert services.demo_command(Path("/m"), "0.0.0.0", 0) == [
        node_executable(), str(NODE_DIR / "demo.js"), "--models", "/m",
        "--host", "0.0.0.0", "--port", "0",
    ]  # fmt: skip
    assert services.demo_command(Path("/m"), examples=Path("/e.json"))[-2:] == [
        "--examples", "/e.json",
    ]  # fmt: skip


def test_demo_writes_the_examples_then_becomes_node(monkeypatch, tmp_path):
    became = []
    monkeypatch.setattr(services.os, "execv", lambda path, argv: became.append(argv))
    result = CliRunner().invoke(main, ["demo", "--port", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    [argv] = became
    examples = Path(argv[argv.index("--examples") + 1])
    assert json.loads(examples.read_text()) == {}  # no demo model in tmp_path
    examples.unlink()


def test_serve_becomes_node(monkeypatch):
    became = []
    monkeypatch.setattr(services.os, "execv", lambda path, argv: became.append(argv))
    result = CliRunner().invoke(main, ["serve", "m/gru", "--port", "0", "--workers", "2"])
    assert result.exit_code == 0, result.output
    [argv] = became
    expected = services.serve_command(["m/gru"], port=0, workers=2)
    assert argv[1:] == [str(NODE_DIR / "serve.js"), *expected[2:]]


# --- bench: the route bench and the service under load -----------------------


@pytest.mark.parametrize(
    "serve, given, message",
    [
        (True, {"batches", "budget"}, "bench --serve takes no --batch, --budget"),
        (True, {"node_training"}, "bench --serve takes no --node-training"),
        (False, {"workers"}, "--duration, --long-duration and --workers go with --serve"),
        (False, {"duration", "batches"}, "go with --serve"),
    ],
)
def test_bench_options_of_the_other_bench_are_refused(serve, given, message):
    with pytest.raises(UsageError, match=message):
        bench_commands.options_for(serve, {}, given)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--serve", "--batch", "2", "--node-training"],
         "bench --serve takes no --batch, --node-training"),
        (["--duration", "5"], "--duration, --long-duration and --workers go with --serve"),
    ],
)  # fmt: skip
def test_bench_refuses_the_other_benchs_options_on_the_command_line(args, message):
    result = CliRunner().invoke(main, ["bench", "gru", *args])
    assert (result.exit_code, result.stderr) == (2, f"error: {message}\n")


def test_bench_options_for_each_bench():
    options = {"models": ("gru",), "batches": [1], "runtimes": (), "budget": 1.0,
               "node_training": False, "duration": 10.0, "long_duration": 60.0,
               "workers": None, "report_dir": None, "out": None}  # fmt: skip
    routes = bench_commands.options_for(False, options, {"batches"})
    assert set(routes) == {"models", "batches", "runtimes", "budget", "node_training",
                           "report_dir", "out"}  # fmt: skip
    serve = bench_commands.options_for(True, options, {"duration"})
    assert set(serve) == {"models", "duration", "long_duration", "workers", "report_dir", "out"}


def test_bench_routes_benches_the_registry_folders(monkeypatch, tmp_path):
    seen = {}

    def run_bench(subjects, runtimes, batches, budget, node_training, log):
        seen.update(subjects=subjects, runtimes=[r.name for r in runtimes], batches=batches,
                    budget=budget, node_training=node_training)  # fmt: skip
        return "report"

    monkeypatch.setattr(bench_commands, "subject_from_folder", lambda folder: folder)
    monkeypatch.setattr(bench_commands, "run_bench", run_bench)
    written = tmp_path / "written"
    monkeypatch.setattr(bench_commands, "write_bench_report", lambda r, d: [d / "bench.json"])
    done = bench_commands.bench_routes(
        ("gru",), ("tfjs-node/layers",), [1, 8], 0.5, True, report_dir=written, out=tmp_path
    )
    assert done.report == "report" and done.written == [written / "bench.json"]
    assert seen == {"subjects": [tmp_path / "gru"], "runtimes": ["tfjs-node/layers"],
                    "batches": [1, 8], "budget": 0.5, "node_training": True}  # fmt: skip
    assert bench_commands.bench_routes(("gru",), out=tmp_path).written == []


def test_bench_serve_loads_the_registry_folders(monkeypatch, tmp_path):
    seen = {}

    def run_serve_bench(model_dirs, **kwargs):
        seen.update(model_dirs=model_dirs, **kwargs)
        return {"models": {}, "ok": True}

    monkeypatch.setattr(bench_commands, "run_serve_bench", run_serve_bench)
    bench_commands.bench_serve(("gru", "lstm"), 1.0, 2.0, 3, out=tmp_path)
    assert seen["model_dirs"] == [tmp_path / "gru", tmp_path / "lstm"]
    assert (seen["duration"], seen["long_duration"], seen["workers"]) == (1.0, 2.0, 3)
    assert seen["report_dir"] == bench_commands.REPORT_DIR  # the default


def test_check_serve_report():
    bench_commands.check_serve_report({"models": {"gru": {"ok": True}}, "path": "s.json"})
    report = {"models": {"gru": {"ok": False}, "lstm": {"ok": True}}, "path": "s.json"}
    with pytest.raises(BridgeError, match=r"^bench --serve: gru did not pass \(see s.json\)$"):
        bench_commands.check_serve_report(report)


# --- verify ---------------------------------------------------------------------


def test_verify_command_resolves_what_to_verify(monkeypatch, tmp_path):
    calls = []

    def verify_models(model_dirs, keras_models, runtimes, samples, **kwargs):
        calls.append((model_dirs, keras_models, [r.name for r in runtimes], samples, kwargs))
        return "report"

    monkeypatch.setattr(verify_commands, "verify_models", verify_models)
    done = verify_commands.verify_command(out=tmp_path)  # nothing named: every registry model
    assert calls[-1][0] == [tmp_path / name for name in MODELS] and done.written == []
    verify_commands.verify_command(model_dirs=(tmp_path / "mine",), samples=None)
    assert calls[-1][:2] == ([tmp_path / "mine"], []) and calls[-1][3] is None
    verify_commands.verify_command(
        ("gru",), ("tfjs-node/graph",), keras_models=(Path("m.h5"),), input_ranges=("x=0:5",),
        out=tmp_path,
    )  # fmt: skip
    model_dirs, keras_models, runtimes, samples, kwargs = calls[-1]
    assert (model_dirs, keras_models, runtimes, samples) == (
        [tmp_path / "gru"], [Path("m.h5")], ["tfjs-node/graph"], 500,
    )  # fmt: skip
    assert kwargs["ranges"] == {"x": (0.0, 5.0)} and kwargs["explicit_runtimes"] is True


def _report(*results):
    from tfjs_bridge.parity.verify import PathResult, VerifyReport

    return VerifyReport(
        results=[PathResult(model, runtime, status) for model, runtime, status in results],
        samples={}, tolerances={}, runtimes={}, python={},
    )  # fmt: skip


def test_check_verified():
    verify_commands.check_verified(_report(("gru", "tfjs-node/layers", "pass")))
    report = _report(("gru", "a", "pass"), ("gru", "b", "mismatch"))
    with pytest.raises(BridgeError, match=r"^1 of 2 paths did not pass: gru b$"):
        verify_commands.check_verified(report)


# --- convert's line --------------------------------------------------------------


def test_conversion_summary():
    from tfjs_bridge.conversion.convert import conversion_summary

    done = {"files": {"a": 1, "b": 2}, "converter": "tensorflowjs_converter",
            "converter_version": "4.22.0", "quantize": None}  # fmt: skip
    assert conversion_summary(done) == "2 files, tensorflowjs_converter 4.22.0"
    done.update(quantize="float16", weight_bytes=2000, float32_weight_bytes=4000)
    assert conversion_summary(done) == (
        "2 files, tensorflowjs_converter 4.22.0, float16 weights: 2,000 bytes, 4,000 as float32"
    )


# --- one line per failure ------------------------------------------------------


def _raising(exc):
    def command(*args, **kwargs):
        raise exc

    return command


def test_unexpected_is_one_line():
    assert unexpected(KeyError(0)) == "unexpected KeyError: 0"
    assert unexpected(RuntimeError()) == "unexpected RuntimeError"
    assert unexpected(ValueError("first\nsecond")) == "unexpected ValueError: first"


def test_an_unexpected_exception_is_one_line_naming_command_and_model(monkeypatch):
    monkeypatch.delenv("TFJS_BRIDGE_DEBUG", raising=False)
    monkeypatch.setattr(verify_commands, "verify_command", _raising(KeyError(0)))
    result = CliRunner().invoke(main, ["verify", "gru"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: verify gru: unexpected KeyError: 0 (run with --debug for the traceback)\n"
    )
    assert result.stdout == ""


def test_an_unexpected_exception_names_the_folder_when_there_is_no_model_name(monkeypatch):
    monkeypatch.delenv("TFJS_BRIDGE_DEBUG", raising=False)
    monkeypatch.setattr(predict_session, "predict", _raising(RuntimeError("worker gone")))
    args = ["predict", "m/gru", "--input", "x.npy", "--output", "y.npy"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr == (
        "error: predict m/gru: unexpected RuntimeError: worker gone "
        "(run with --debug for the traceback)\n"
    )


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(monkeypatch, how):
    monkeypatch.delenv("TFJS_BRIDGE_DEBUG", raising=False)
    monkeypatch.setattr(verify_commands, "verify_command", _raising(RuntimeError("boom")))
    if how == "flag":
        result = CliRunner().invoke(main, ["--debug", "verify", "gru"])
    else:
        result = CliRunner().invoke(main, ["verify", "gru"], env={"TFJS_BRIDGE_DEBUG": "1"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert 'cli.py", line' in result.stderr and "in verify" in result.stderr  # where it came from
    assert result.stderr.endswith("    raise exc\nRuntimeError: boom\n")
    assert "run with --debug" not in result.stderr


def test_a_bridge_error_stays_its_own_line_and_code(monkeypatch):
    monkeypatch.delenv("TFJS_BRIDGE_DEBUG", raising=False)
    monkeypatch.setattr(verify_commands, "verify_command", _raising(UsageError("bad call")))
    result = CliRunner().invoke(main, ["verify", "gru"])
    assert (result.exit_code, result.stderr) == (2, "error: bad call\n")
    result = CliRunner().invoke(main, ["--debug", "verify", "gru"])
    assert result.exit_code == 2 and result.stderr.startswith("Traceback")
    assert result.stderr.endswith("error: bad call\n")


def test_ctrl_c_is_one_line_and_130(monkeypatch):
    monkeypatch.setattr(verify_commands, "verify_command", _raising(KeyboardInterrupt()))
    result = CliRunner().invoke(main, ["verify", "gru"])
    assert (result.exit_code, result.stderr) == (130, "error: verify gru: interrupted\n")


def test_click_usage_errors_are_still_clicks():
    result = CliRunner().invoke(main, ["verify", "--samples", "0"])
    assert result.exit_code == 2 and "Invalid value for '--samples'" in result.stderr
