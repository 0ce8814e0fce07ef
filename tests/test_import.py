"""`tfjs-bridge import`: any tfjs layers model back to Keras, and verify the
other way round (the truth: the tfjs model run in Node; checked: keras.h5 in
tf-keras and model.keras in Keras 3). The models are made in Node with
tf.layers (node/scripts/create-tfjs-models.js: the architectures of tfjs's
e2e create_save_predict suite, and a few more), plus the tfjs team's own
saved e2e model (tests/fixtures/tfjs_e2e_layers_model). Every mapping that
verify checks has a negative control: the same import with that mapping
made wrong fails verify."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tfjs_bridge.cli import main
from tfjs_bridge.core.errors import BridgeError
from tfjs_bridge.core.paths import NODE_DIR, PROJECT_ROOT
from tfjs_bridge.importing import command, keras3_writer, reading, translation
from tfjs_bridge.runtime.node_process import node_env
from tfjs_bridge.training.registry import MODELS

FIXTURE = Path(__file__).parent / "fixtures" / "tfjs_e2e_layers_model"
E2E_MODELS = ["mlp", "cnn", "depthwise_cnn", "simple_rnn", "gru", "bidirectional_lstm",
              "time_distributed_lstm", "one_dimensional", "functional_merge"]  # fmt: skip
EXTRA_MODELS = ["bidirectional_gru_sum", "bidirectional_gru_mul", "bidirectional_gru_ave",
                "masked_lstm", "hard_sigmoid_dense"]  # fmt: skip
TRUTHS = ["tfjs-node/layers", "tfjs-cpu/layers"]
SAMPLES = 64  # CI-sized; every model here is small
TOLERANCE = 1e-5  # the spec's (tfjs's own e2e epsilon was 5e-3)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _create(out: Path, *args) -> Path:
    """Models made and saved by tfjs in Node."""
    subprocess.run(
        ["node", str(NODE_DIR / "scripts" / "create-tfjs-models.js"), str(out), *map(str, args)],
        cwd=PROJECT_ROOT, env=node_env(), check=True, capture_output=True,
    )  # fmt: skip
    return out


def _verify(dirs, report: Path, runtimes=TRUTHS, inputs=None) -> dict:
    """verify's results by (model, runtime); the exit code is checked by the caller."""
    args = [a for d in dirs for a in ("--model-dir", d)]
    args += [a for rt in runtimes for a in ("--runtime", rt)]
    args += ["--inputs", inputs] if inputs else ["--samples", SAMPLES]
    result = _run("verify", *args, "--report", report)
    saved = json.loads((report / "report.json").read_text())
    return result, {(r["model"], r["runtime"]): r for r in saved["results"]}


@pytest.fixture(scope="module")
def made(node_runtime, tmp_path_factory):
    """Every model of the e2e suite and the extras, saved by tfjs-node's file:// handler."""
    root = tmp_path_factory.mktemp("tfjs_models")
    models = [a for m in E2E_MODELS + EXTRA_MODELS for a in ("--model", m)]
    return _create(root, *models)


@pytest.fixture(scope="module")
def imported(made, tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    for name in E2E_MODELS + EXTRA_MODELS:
        command.import_tfjs(made / name, root / name)
    return root


def test_import_works_after_training_turned_op_determinism_on(made, tmp_path):
    # train() enables TensorFlow's op determinism for its process; the
    # converter then built the CNN's initial weights with unseeded random ops
    # in a graph of its own and failed ("Random ops require a seed"), in CI,
    # where the suites that train ran first.
    from tensorflow.python.framework import config

    from tfjs_bridge.core.quiet_tf import import_tensorflow

    import_tensorflow().config.experimental.enable_op_determinism()
    command.import_tfjs(made / "cnn", tmp_path / "cnn")
    assert (tmp_path / "cnn" / "keras.h5").exists()
    assert config.is_op_determinism_enabled()  # as it was


def test_e2e_suite_models_import_and_pass_verify_on_every_path(imported, tmp_path):
    """tfjs's create_save_predict models: tf-keras and Keras 3 both within
    1e-5 of the tfjs model on tfjs-node and on the pure-JS backend."""
    dirs = [imported / name for name in E2E_MODELS + EXTRA_MODELS]
    result, results = _verify(dirs, tmp_path)
    assert result.exit_code == 0, result.output
    for name in E2E_MODELS + EXTRA_MODELS:
        for truth in TRUTHS:
            for python in ("tf-keras", "keras3"):
                r = results[(name, f"{python} vs {truth}")]
                assert r["status"] == "pass" and r["max_abs"] <= TOLERANCE, r
    manifest = json.loads((imported / "gru" / "manifest.json").read_text())
    assert manifest["reference"] == {"kind": "tfjs", "file": "tfjs_layers/model.json"}
    # sha256 of everything: the tfjs model as it was saved, both Keras files
    assert {"tfjs_layers/model.json", "tfjs_layers/weights.bin", "keras.h5", "model.keras"} <= set(
        manifest["files"]
    )
    assert manifest["signature"]["inputs"][0]["kind"] == "tokens"  # Embedding: token ids


def test_tfjs_teams_saved_e2e_model_imports_and_matches_their_golden_output(node_runtime, tmp_path):
    """load_predict_data/layers_model (Embedding -> GRU going backwards, saved
    by tfjs in 2020) through the CLI, verified, and its Keras models give the
    tfjs team's own expected output for their input."""
    import keras
    import tf_keras

    out = tmp_path / "e2e"
    result = _run("import", FIXTURE, out)
    assert result.exit_code == 0, result.output
    result, results = _verify([out], tmp_path / "report")
    assert result.exit_code == 0, result.output
    assert len(results) == 4
    x = np.array([[86, 11, 62, 40, 36, 75, 82, 94, 67, 75]], np.int32)
    expected = [
        -0.003578941337764263,
        0.0028922036290168762,
        -0.002957976423203945,
        0.00955402385443449,
    ]  # fmt: skip  (load_predict_test.ts)
    for model in (
        tf_keras.models.load_model(out / "keras.h5", compile=False),
        keras.saving.load_model(out / "model.keras", compile=False),
    ):
        np.testing.assert_allclose(np.asarray(model(x))[0], expected, atol=1e-6)
    # verify's input contract and its vacuity refusal hold the other way round too
    np.save(tmp_path / "floats.npy", np.zeros((8, 10), np.float32))
    result = _run("verify", "--model-dir", out, "--inputs", tmp_path / "floats.npy")
    assert result.exit_code == 1 and "int32" in result.output, result.output
    np.save(tmp_path / "same.npy", np.full((8, 10), 7, np.int32))
    result, results = _verify([out], tmp_path / "vacuous", runtimes=["tfjs-node/layers"],
                              inputs=tmp_path / "same.npy")  # fmt: skip
    assert result.exit_code == 1
    reasons = [r["reason"] for r in results.values()]
    assert len(reasons) == 2 and all(r.startswith("refused: the inputs cannot") for r in reasons)


def test_browser_names_and_several_shards_import(node_runtime, tmp_path):
    """tf.io.browserDownloads's names (./model.weights.bin), in 3 shards, given as model.json."""
    made = _create(tmp_path / "made", "--model", "gru", "--browser-names", "--shards", 3)
    assert sorted(p.name for p in (made / "gru").iterdir()) == [
        "model.json", "model.weights.1.bin", "model.weights.2.bin", "model.weights.3.bin"
    ]  # fmt: skip
    out = tmp_path / "out"
    result = _run("import", made / "gru" / "model.json", out)
    assert result.exit_code == 0, result.output
    result, _ = _verify([out], tmp_path / "report", runtimes=["tfjs-node/layers"])
    assert result.exit_code == 0, result.output


# -- mappings made wrong: verify must catch each ---------------------------------


def _edit_layer(cls, **changes):
    """A translate_topology that also changes every `cls` layer's config (a wrong mapping)."""
    right = translation.translate_topology

    def wrong(topology):
        translated, notes = right(topology)
        model = translated.get("model_config", translated)
        for layer in model["config"]["layers"]:
            for target in (layer, layer["config"].get("layer") or {}):
                if target.get("class_name") == cls:
                    target["config"].update(changes)
        return translated, notes

    return wrong


WRONG_MAPPINGS = {
    # (model, the wrong mapping, which Python models it breaks)
    "go_backwards_dropped": ("gru", ("GRU", {"go_backwards": False}), {"tf-keras", "keras3"}),
    "sigmoid_for_hard_sigmoid": ("gru", ("GRU", {"recurrent_activation": "sigmoid"}),
                                 {"tf-keras", "keras3"}),
    "merge_mode_sum_for_ave": ("bidirectional_gru_ave", ("Bidirectional", {"merge_mode": "sum"}),
                               {"tf-keras", "keras3"}),
    "mask_zero_dropped": ("masked_lstm", ("Embedding", {"mask_zero": False}),
                          {"tf-keras", "keras3"}),
    "add_for_average": ("functional_merge", None, {"tf-keras", "keras3"}),
    "keras3_hard_sigmoid_unfolded": ("hard_sigmoid_dense", None, {"keras3"}),
}  # fmt: skip


def test_each_wrong_mapping_fails_verify(made, tmp_path, monkeypatch):
    """Negative controls: each model imported with one mapping wrong fails
    verify on exactly the Python models that mapping feeds (all checked in one run)."""
    dirs = []
    for case, (model, edit, _) in WRONG_MAPPINGS.items():
        with monkeypatch.context() as patch:
            if edit is not None:
                patch.setattr(command, "translate_topology", _edit_layer(edit[0], **edit[1]))
            elif case == "add_for_average":
                right = translation.translate_topology

                def add_for_average(topology, right=right):
                    translated, notes = right(topology)
                    for layer in translated["config"]["layers"]:
                        if layer["class_name"] == "Average":
                            layer["class_name"] = "Add"
                    return translated, notes

                patch.setattr(command, "translate_topology", add_for_average)
            else:
                patch.setattr(keras3_writer, "HARD_SIGMOID_FOLD", 1.0)
            command.import_tfjs(made / model, tmp_path / case, name=case)
        dirs.append(tmp_path / case)
    result, results = _verify(dirs, tmp_path / "report", runtimes=["tfjs-node/layers"])
    assert result.exit_code != 0
    for case, (_, _, broken) in WRONG_MAPPINGS.items():
        for python in ("tf-keras", "keras3"):
            r = results[(case, f"{python} vs tfjs-node/layers")]
            assert r["status"] == ("mismatch" if python in broken else "pass"), (case, r)
            if python in broken:
                assert "outside tolerance" in r["reason"], r


def test_tfjs_defaults_are_said_explicitly(imported):
    """What tfjs leaves null or out means tfjs's default, not Keras's: GRU
    reset before, LSTM without unit forget bias (initialisation only: a
    model rebuilt from its config starts as tfjs's would), no mask."""
    import keras
    import tf_keras

    for loaded in (
        tf_keras.models.load_model(imported / "gru" / "keras.h5", compile=False),
        keras.saving.load_model(imported / "gru" / "model.keras", compile=False),
    ):
        gru = loaded.layers[-1]
        assert gru.reset_after is False and gru.go_backwards is True
        assert loaded.layers[0].mask_zero is False
    for loaded in (
        tf_keras.models.load_model(imported / "time_distributed_lstm" / "keras.h5", compile=False),
        keras.saving.load_model(imported / "time_distributed_lstm" / "model.keras", compile=False),
    ):
        lstm = loaded.layers[1]
        assert lstm.unit_forget_bias is False
        fresh = type(lstm).from_config(lstm.get_config())
        fresh.build((None, 10, 20))
        assert not np.asarray(fresh.cell.bias).any()  # Keras's default would put ones in f


def test_keras3_spellings():
    """tf-keras configs Keras 3 spells otherwise: the backward twin of a
    Bidirectional over a go_backwards layer (Keras 3 would make both go
    backwards), the 'normal' distribution, the unused separable kernel keys,
    and ThresholdedReLU, which Keras 3 removed (refused, with its reason)."""
    lstm = {
        "class_name": "LSTM",
        "config": {"name": "l", "go_backwards": True, "time_major": False},
    }
    bidi = {"class_name": "Bidirectional", "config": {"name": "b", "layer": lstm}}
    out = keras3_writer._keras3_config(bidi)
    assert out["config"]["backward_layer"]["config"]["go_backwards"] is False
    assert "time_major" not in out["config"]["layer"]["config"]
    init = {"class_name": "VarianceScaling", "config": {"distribution": "normal"}}
    assert keras3_writer._keras3_config(init)["config"]["distribution"] == "truncated_normal"
    sep = {"class_name": "SeparableConv2D", "config": {"name": "s", "kernel_initializer": {}}}
    assert "kernel_initializer" not in keras3_writer._keras3_config(sep)["config"]
    with pytest.raises(BridgeError, match="Keras 3 removed ThresholdedReLU"):
        keras3_writer._keras3_config({"class_name": "ThresholdedReLU", "config": {"name": "t"}})
    with pytest.raises(BridgeError, match="time_major=True"):
        keras3_writer._keras3_config(
            {"class_name": "GRU", "config": {"name": "g", "time_major": True}}
        )


def test_limits_agree_with_node():
    """The size bounds are the same in Python and in Node's model reader."""
    js = (NODE_DIR / "lib" / "io" / "modelfiles.js").read_text()
    assert "const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;" in js
    assert "const MAX_WEIGHT_BYTES = 2 * 1024 * 1024 * 1024;" in js
    assert reading.MAX_MODEL_JSON_BYTES == 64 * 1024 * 1024
    assert reading.MAX_WEIGHT_BYTES == 2 * 1024 * 1024 * 1024


# -- bad input: one line on stderr, a non-zero exit, nothing written -------------


def _model(d: Path, edit=None, shard: bytes | None = None) -> Path:
    """A copy of the e2e fixture in d/src, its model.json edited."""
    src = d / "src"
    shutil.copytree(FIXTURE, src)
    if edit is not None:
        model = json.loads((src / "model.json").read_text())
        edit(model)
        (src / "model.json").write_text(json.dumps(model))
    if shard is not None:
        (src / "weights.bin").write_bytes(shard)
    return src


def _layers(model):
    return model["modelTopology"]["config"]["layers"]


def _set_paths(paths):
    def edit(model):
        model["weightsManifest"][0]["paths"] = paths

    return edit


def _outside_link(d: Path) -> Path:
    src = _model(d)
    (d / "secret.bin").write_bytes((src / "weights.bin").read_bytes())
    (src / "weights.bin").unlink()
    os.symlink(d / "secret.bin", src / "weights.bin")
    return src


def _huge_json(d: Path) -> Path:
    (d / "big").mkdir()
    with open(d / "big" / "model.json", "wb") as f:
        f.truncate(reading.MAX_MODEL_JSON_BYTES + 1)  # sparse: costs no disk
    return d / "big"


BAD = [
    ("missing", lambda d: d / "nowhere", 2, "no such file or folder"),
    ("no-model-json", lambda d: (d / "empty").mkdir() or d / "empty", 2, "no model.json"),
    ("not-json", lambda d: _model(d) and (d / "src" / "model.json").write_text("{oops")
     and d / "src", 1, "not a readable model.json"),
    ("not-a-model", lambda d: _model(d, lambda m: m.pop("weightsManifest")), 1,
     "not a tfjs model.json"),
    ("graph-model", lambda d: _model(d, lambda m: m.update(format="graph-model")), 2,
     "a tfjs graph model"),
    ("path-escapes", lambda d: _model(d, _set_paths(["../weights.bin"])), 1,
     "points outside the model folder"),
    ("absolute-path", lambda d: _model(d, _set_paths(["/etc/passwd"])), 1,
     "points outside the model folder"),
    ("symlink-out", _outside_link, 1, "points outside the model folder"),
    ("truncated-shard", lambda d: _model(d, shard=b"\0" * 100), 1,
     "the weights declare 9200 bytes but the shards hold 100"),
    ("missing-shard", lambda d: _model(d, _set_paths(["gone.bin"])), 1, "weight shard missing"),
    ("memory-bomb", lambda d: _model(d, lambda m: m["weightsManifest"][0]["weights"][0].update(
        shape=[10**6, 10**6])), 1, "declares more than 2 GiB"),
    ("huge-json", _huge_json, 1, "more than a model.json may hold"),
    ("custom-layer", lambda d: _model(d, lambda m: _layers(m)[1].update(class_name="MyGRU")), 1,
     "layer gru_GRU1 (MyGRU) has no Keras equivalent"),
    ("tfjs-only-layer", lambda d: _model(d, lambda m: _layers(m)[1].update(
        class_name="RandomWidth")), 1, "(RandomWidth) has no Keras equivalent: a tfjs-only"),
    ("gelu-new", lambda d: _model(d, lambda m: _layers(m)[1]["config"].update(
        activation="gelu_new")), 1, "activation gelu_new: tfjs's tanh approximation"),
]  # fmt: skip


@pytest.mark.parametrize("make,code,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_model_gives_one_line_error_and_writes_nothing(tmp_path, make, code, message):
    source = make(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("tfjs-bridge")), "import", str(source), str(out)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_out_dir_that_would_replace_the_source_or_a_stranger_is_refused(tmp_path):
    source = _model(tmp_path)
    for out, message in [
        (source, "holds the model being imported"),
        (tmp_path, "holds the model being imported"),
    ]:
        result = _run("import", source, out)
        assert result.exit_code == 2 and message in result.output, result.output
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "todo.txt").write_text("mine")
    result = _run("import", source, stranger)
    assert result.exit_code == 2 and "is not a model folder" in result.output
    assert (stranger / "todo.txt").read_text() == "mine"


# -- round trips over the registry models ----------------------------------------


@pytest.fixture(scope="module")
def registry_imported(node_runtime, small_models, tmp_path_factory):
    """Each registry model's converted tfjs layers model (Keras -> tfjs), imported back."""
    root = tmp_path_factory.mktemp("registry_imported")
    for name in MODELS:
        command.import_tfjs(small_models / name / "tfjs_layers", root / name, name=name)
    return root


def _probe(model_dir: Path, samples: int = SAMPLES) -> list[np.ndarray]:
    from tfjs_bridge.parity.probes import probe_inputs
    from tfjs_bridge.parity.truth import subject_from_folder

    return probe_inputs(subject_from_folder(model_dir).signature, samples)


def _close(expected, got, names, what):
    from tfjs_bridge.parity.compare import compare

    figures = compare(expected, got, names, names, atol=TOLERANCE, rtol=TOLERANCE)
    assert figures["passed"], (what, figures.get("reason"), figures.get("max_abs"))
    return figures["max_abs"]


def test_round_trip_keras_to_tfjs_to_keras(small_models, registry_imported):
    """Keras -> tfjs (convert) -> Keras (import): tf-keras and Keras 3 give
    what the original keras.h5 gives, for every registry model."""
    import keras
    import tf_keras

    from tfjs_bridge.parity.truth import KerasTruth, subject_from_folder

    for name in MODELS:
        original = KerasTruth(subject_from_folder(small_models / name))
        xs = _probe(small_models / name)
        expected = original(xs)
        back = registry_imported / name
        for model in (
            tf_keras.models.load_model(back / "keras.h5", compile=False),
            keras.saving.load_model(back / "model.keras", compile=False),
        ):
            ys = model(xs[0] if len(xs) == 1 else xs, training=False)
            ys = [np.asarray(y) for y in (ys if isinstance(ys, list | tuple) else [ys])]
            _close(expected, ys, original.output_names, (name, type(model).__module__))


def test_round_trip_tfjs_to_keras_to_tfjs(small_models, registry_imported, tmp_path):
    """tfjs -> Keras (import) -> tfjs (the converter again): the tfjs model
    made from the imported keras.h5 gives, in Node, what the tfjs model
    imported gave, for every registry model."""
    from tfjs_bridge.conversion.convert import convert_in_place
    from tfjs_bridge.folder import artifacts
    from tfjs_bridge.parity.truth import subject_from_folder
    from tfjs_bridge.runtime.worker_process import NodeWorker

    with NodeWorker("tensorflow") as worker:
        for name in MODELS:
            again = tmp_path / name
            again.mkdir()
            shutil.copyfile(registry_imported / name / "keras.h5", again / "keras.h5")
            manifest = json.loads((registry_imported / name / "manifest.json").read_text())
            manifest = {"spec": manifest["spec"], "signature": manifest["signature"],
                        "files": {"keras.h5": artifacts.sha256(again / "keras.h5")}}  # fmt: skip
            artifacts.write_json_atomic(again / "manifest.json", manifest)
            convert_in_place(again, ("layers",))
            xs = _probe(small_models / name)
            names = subject_from_folder(small_models / name).signature.names
            outs = []
            for folder in (small_models / name, again):
                loaded = worker.load(folder, "layers")
                outs.append((worker.predict(loaded["handle"], xs, names)[0], loaded["outputs"]))
                worker.dispose(loaded["handle"])
            (first, first_names), (second, second_names) = outs
            assert first_names == second_names
            _close(first, second, first_names, name)
