"""What Node knows of Python comes from generated files (node/registry.json,
node/vocabulary.json): they are current, a drift is caught, and the tables
they come from hold together. Also parity.json, as its one writer writes it.
Fast: no Node, no TensorFlow."""

import json
import shutil
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tfjs_bridge import contract
from tfjs_bridge.bench.routes import record_speed
from tfjs_bridge.cli import main
from tfjs_bridge.core.errors import BridgeError
from tfjs_bridge.core.paths import NODE_DIR
from tfjs_bridge.folder.formats import FORMATS
from tfjs_bridge.folder.parity_record import (
    COLD_START_KEY,
    PARITY_FILE,
    SCHEMA_VERSION,
    read_parity,
)
from tfjs_bridge.parity.verify import record_parity
from tfjs_bridge.runtime.runtimes import BACKENDS, RUNTIMES


@pytest.fixture
def node_copy(tmp_path):
    """The generated files, fresh, in a folder of their own."""
    contract.write_contract(tmp_path)
    return tmp_path


def test_node_files_in_the_repository_are_current():
    contract.check_contract()  # what `make test` runs as `tfjs-bridge registry --check`


def test_fresh_files_pass_the_check(node_copy):
    contract.check_contract(node_copy)


@pytest.mark.parametrize("name", ["vocabulary.json", "registry.json"])
def test_an_edited_file_fails_the_check_naming_it(node_copy, name):
    path = node_copy / name
    data = json.loads(path.read_text())
    if name == "vocabulary.json":
        data["formats"]["layers"]["folder"] = "tfjs_layers_v2"  # edited by hand in Node's copy
    else:
        data["gru"]["epochs"] += 1
    path.write_text(json.dumps(data, indent=2) + "\n")
    with pytest.raises(BridgeError) as err:
        contract.check_contract(node_copy)
    message = str(err.value)
    assert message == f"{path} is out of date: run `tfjs-bridge registry`"
    assert "\n" not in message


def test_a_missing_file_fails_the_check(node_copy):
    (node_copy / "vocabulary.json").unlink()
    with pytest.raises(BridgeError, match=r"vocabulary.json is out of date: run `tfjs-bridge"):
        contract.check_contract(node_copy)


def test_registry_check_command_fails_with_one_line(monkeypatch, node_copy):
    monkeypatch.setattr(contract, "NODE_DIR", node_copy)
    (node_copy / "vocabulary.json").write_text("{}\n")
    result = CliRunner().invoke(main, ["registry", "--check"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"error: {node_copy / 'vocabulary.json'} is out of date: run `tfjs-bridge registry`"
    )


def test_vocabulary_shape():
    text = contract.vocabulary_json()
    assert text.endswith("}\n") and text.startswith('{\n  "generated_by": ')
    vocabulary = json.loads(text)
    assert list(vocabulary) == ["generated_by", "formats", "backends", "engine_backends",
                                "engine_runtimes", "runtimes", "browsers", "browser_backends",
                                "browser_runtimes", "xvfb", "tflite_builtin_ops",
                                "parity"]  # fmt: skip
    # TFLite's op names by code, from the pinned TensorFlow's schema (Node names
    # the node LiteRT.js's WebGPU delegate fails on with them).
    ops = vocabulary["tflite_builtin_ops"]
    assert ops[0] == "ADD" and ops[9] == "FULLY_CONNECTED" and ops[102] == "SPLIT_V"
    # LiteRT.js in Node: a worker backend of its own, its path named only (not in "runtimes").
    assert vocabulary["engine_runtimes"]["litert-node-wasm/tflite"]["backend"] == "litert"
    assert vocabulary["engine_backends"]["litert"]["package"] == "@litertjs/core"
    assert "litert-node-wasm/tflite" not in vocabulary["runtimes"]
    assert vocabulary["formats"]["layers"] == {
        "folder": "tfjs_layers",
        "entry": "model.json",
        "marker": "model.json",
        "made_by": "tfjs-bridge convert --format layers",
    }
    assert vocabulary["formats"]["saved_model"]["entry"] is None
    assert vocabulary["backends"]["onnxruntime"] == {
        "package": "onnxruntime-node",
        "optional": True,
        "install": "make onnx",
    }
    assert vocabulary["runtimes"]["tfjs-node/layers"]["default_rank"] == 4
    # A browser page's paths, for its own choice (lib/runtime/choose.js): not Node's.
    assert vocabulary["browser_runtimes"]["chromium-litert-wasm/tflite"] == {
        "backend": "chromium-litert-wasm",
        "format": "tflite",
        "description": "chromium page, LiteRT.js (@litertjs/core) wasm",
    }
    assert "chromium-wasm/layers" in vocabulary["browser_runtimes"]
    assert not set(vocabulary["browser_runtimes"]) & set(vocabulary["runtimes"])
    assert vocabulary["parity"] == {
        "file": "parity.json",
        "version": 1,
        "statuses": ["pass", "mismatch", "unsupported", "refused", "ill-conditioned", "skip"],
        "cold_start_key": "cold_start_s",
    }
    assert (NODE_DIR / "vocabulary.json").read_text() == text


def test_runtimes_name_known_backends_and_formats():
    for rt in RUNTIMES.values():
        assert rt.backend in BACKENDS and rt.format in FORMATS, rt.name
    assert set(BACKENDS) == {rt.backend for rt in RUNTIMES.values()}


def test_default_ranks_are_nodes_old_order():
    """Node's choice without speed figures: what choose.js hard-coded as
    RANKED (saved_model, saved_model_xla, onnx, graph, layers), over tfjs-node
    and onnxruntime-node only."""
    ranked = sorted((rt for rt in RUNTIMES.values() if rt.default_rank is not None),
                    key=lambda rt: rt.default_rank)  # fmt: skip
    assert [rt.default_rank for rt in ranked] == list(range(len(ranked)))
    assert [rt.name for rt in ranked] == [
        "tfjs-node/saved_model",
        "tfjs-node/saved_model_xla",
        "onnxruntime-node/onnx",
        "tfjs-node/graph",
        "tfjs-node/layers",
    ]


# -- parity.json ---------------------------------------------------------------


def _subject(model_dir, name="m"):
    return SimpleNamespace(name=name, model_dir=model_dir)


def _verify_report(*results):
    return SimpleNamespace(
        results=[
            SimpleNamespace(
                model="m",
                runtime=rt,
                status=status,
                reason=reason,
                figures={"samples": 10, "max_abs": 1e-7},
            )
            for rt, status, reason in results
        ]  # fmt: skip
    )


def test_parity_records_carry_the_version_and_keep_each_others_parts(tmp_path):
    subject = _subject(tmp_path)
    record_parity(_verify_report(("tfjs-node/layers", "pass", "")), [subject])
    record = read_parity(tmp_path)
    assert list(record) == ["version", "updated", "results"]
    assert record["version"] == SCHEMA_VERSION
    assert record["results"]["tfjs-node/layers"] == {
        "status": "pass", "reason": "", "samples": 10, "max_abs": 1e-7,
    }  # fmt: skip

    timing = SimpleNamespace(model="m", route="tfjs-node/layers", batch=32, throughput=1000.0)
    python = SimpleNamespace(model="m", route="python/xla", batch=32, throughput=9.0)
    bench = SimpleNamespace(
        timings=[timing, python],
        cold_start_by_path={("m", "tfjs-node/layers"): {"median_s": 1.5}},
    )
    record_speed(bench, [subject])
    record_parity(_verify_report(("tfjs-wasm/graph", "mismatch", "3 values")), [subject])
    record = read_parity(tmp_path)
    assert record["version"] == SCHEMA_VERSION
    assert record["speed"] == {"tfjs-node/layers": {"32": 1000.0, COLD_START_KEY: 1.5}}
    assert set(record["results"]) == {"tfjs-node/layers", "tfjs-wasm/graph"}


def test_speed_is_recorded_only_beside_parity_results(tmp_path):
    bench = SimpleNamespace(timings=[], cold_start_by_path={})
    record_speed(bench, [_subject(tmp_path)])
    assert read_parity(tmp_path) is None


@pytest.mark.parametrize(
    "text, message",
    [("{", "not valid JSON"), ('{"version": 2}', "version 2, newer than")],
    ids=["not-json", "newer"],
)
def test_unreadable_parity_json_is_one_line(tmp_path, text, message):
    (tmp_path / PARITY_FILE).write_text(text)
    with pytest.raises(BridgeError, match=message):
        read_parity(tmp_path)


def test_subject_formats_follow_the_markers(tmp_path):
    from tfjs_bridge.parity.truth import Subject

    for name in ("graph", "saved_model"):
        marker = tmp_path / FORMATS[name].folder / FORMATS[name].marker
        marker.parent.mkdir()
        marker.write_text("")
    (tmp_path / "onnx").mkdir()  # a folder without its marker is no format
    subject = Subject("m", tmp_path, (1,), None, False, 1e-5, 1e-5, "tf_keras", "keras.h5")
    assert subject.formats == ["graph", "saved_model"]
    shutil.rmtree(tmp_path / "saved_model")
    assert subject.formats == ["graph"]
