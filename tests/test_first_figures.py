"""`tfjs-bridge convert` checks what it wrote (bench/first_figures.py): right
after a convert, without verify or bench, parity.json holds the default Node
paths verified and timed, and every entry point runs a verified path chosen by
those figures. A wrong model makes convert fail and parity.json say which
path; --no-verify checks nothing, and a new conversion forgets what was
recorded of the files it replaced."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from service import ROOT, serving
from tfjs_bridge.bench import first_figures
from tfjs_bridge.cli import main
from tfjs_bridge.conversion import convert as convert_module
from tfjs_bridge.core.errors import BridgeError
from tfjs_bridge.folder.artifacts import MANIFEST, read_manifest, write_json_atomic
from tfjs_bridge.folder.parity_record import read_parity

TFJS_NODE = ["tfjs-node/layers", "tfjs-node/graph", "tfjs-node/saved_model",
             "tfjs-node/saved_model_xla"]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_models, node_runtime):
    """conftest's small gru as `train` left it: its conversions taken away."""
    root = tmp_path_factory.mktemp("trained")
    folder = shutil.copytree(small_models / "gru", root / "gru")
    manifest = read_manifest(folder)
    for conversion in manifest.pop("conversions").values():
        shutil.rmtree(folder / conversion["output"])
    write_json_atomic(folder / MANIFEST, manifest)
    return folder


def _copy(folder, tmp_path, name="models"):
    root = tmp_path / name
    root.mkdir()
    shutil.copytree(folder, root / "gru")
    return root


def _convert(root, *options):
    return CliRunner().invoke(main, ["convert", "gru", "--out", str(root), *options])


@pytest.fixture(scope="module")
def converted(trained, tmp_path_factory):
    """gru converted by `tfjs-bridge convert` as `make train convert` runs it."""
    root = _copy(trained, tmp_path_factory.mktemp("converted"))
    result = _convert(root, "--format", "all")
    assert result.exit_code == 0, result.output
    return root / "gru", result.output


def test_convert_records_verified_and_timed_paths(converted):
    folder, output = converted
    record = read_parity(folder)
    for path in TFJS_NODE:  # every format the folder has, on tfjs-node
        result = record["results"][path]
        assert result["status"] == "pass", (path, result)
        assert result["samples"] == first_figures.SAMPLES
        speed = record["speed"][path]
        assert speed["1"] > 0 and speed["32"] > 0, (path, speed)
        assert speed["cold_start_s"] > 0, (path, speed)
    assert f"gru: checked on {first_figures.SAMPLES} samples: 4 of 4 paths pass" in output
    # the default path and its B=1 figure, as Node chooses it
    found = re.search(r"default path: (\S+) \(([\d,]+) samples/s at B=1", output)
    assert found and found.group(1) in TFJS_NODE, output
    assert float(found.group(2).replace(",", "")) == pytest.approx(
        record["speed"][found.group(1)]["1"], rel=0.01
    )


def test_predict_runs_a_verified_path(converted):
    folder, _ = converted
    proc = subprocess.run(
        ["node", "node/predict.js", "--model", str(folder), "--mnist-test", "0:10"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "unverified" not in proc.stdout
    assert re.search(r"path: fastest verified path from a cold start .*s measured", proc.stdout)
    # tfjs-bridge predict: a long-lived worker, by throughput
    x = np.random.RandomState(0).rand(3, 28, 28).astype(np.float32)
    np.save(folder.parent / "x.npy", x)
    result = CliRunner().invoke(
        main, ["predict", str(folder), "--input", str(folder.parent / "x.npy"),
               "--output", str(folder.parent / "y.npy")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"fastest verified path at batch 32 \(\d+ samples/s measured\)", result.output)


def test_service_starts_on_a_verified_path_with_its_figures(converted):
    folder, _ = converted
    record = read_parity(folder)
    with serving(folder) as service:
        line = next(x for x in service.lines if x.startswith("model gru:"))
    found = re.search(r"runs on (\S+) \(best verified path for serving by the recorded figures",
                      line)  # fmt: skip
    assert found, line
    assert record["results"][found.group(1)]["status"] == "pass"
    # the figures behind the choice: each path, how it batches, and what it serves
    how = r"(unpadded|padded to [\d/]+|one row a batch)"
    assert re.search(re.escape(found.group(1)) + rf" {how} [\d,]+ \| [\d,]+ \(chosen\)", line)
    assert re.search(r"; batches (unpadded|padded|one row a batch)", line), line


def test_a_wrong_conversion_fails_convert(trained, tmp_path, monkeypatch):
    """Negative control: a converter that writes a wrong layers model (its
    kernel scaled; the sha256 recorded after, so integrity checks pass)."""
    original = convert_module.name_custom_activations

    def wrong(model_json):
        original(model_json)
        shard = next(model_json.parent.glob("*.bin"))
        weights = np.fromfile(shard, dtype=np.float32)
        weights[: len(weights) // 2] *= 1.5
        weights.tofile(shard)

    monkeypatch.setattr(convert_module, "name_custom_activations", wrong)
    root = _copy(trained, tmp_path)
    result = _convert(root, "--format", "layers")  # with the SavedModels: 3 paths
    assert result.exit_code == 1, result.output
    assert re.search(r"✗ tfjs-node/layers mismatch: .+", result.output), result.output
    assert "error: the check after convert failed on 1 of 3 paths (gru tfjs-node/layers)" in (
        result.output
    )
    record = read_parity(root / "gru")
    assert record["results"]["tfjs-node/layers"]["status"] == "mismatch"
    assert "tfjs-node/layers" not in record["speed"]  # a failed path is not timed
    assert all(record["results"][p]["status"] == "pass" for p in TFJS_NODE[2:])
    # the files it wrote stay: they are complete
    assert (root / "gru" / "tfjs_layers" / "model.json").exists()


def test_a_weight_corrupted_after_convert_fails_the_check(converted, tmp_path, rerecord):
    """The check itself, on a converted folder whose graph weights were then
    changed (sha256 re-recorded): only that path fails."""
    folder, _ = converted
    root = tmp_path / "models"
    shutil.copytree(folder, root / "gru")
    shard = next((root / "gru" / "tfjs_graph").glob("*.bin"))
    weights = np.fromfile(shard, dtype=np.float32)
    weights[:64] += 0.5
    weights.tofile(shard)
    rerecord(root / "gru", f"tfjs_graph/{shard.name}")
    with pytest.raises(BridgeError, match=r"failed on 1 of 4 paths \(gru tfjs-node/graph\)"):
        first_figures.check_converted(["gru"], root, say=lambda line: None)
    assert read_parity(root / "gru")["results"]["tfjs-node/graph"]["status"] == "mismatch"


def test_no_verify_records_nothing(trained, converted, tmp_path):
    root = _copy(trained, tmp_path, "fresh")
    result = _convert(root, "--format", "layers", "--no-verify")
    assert result.exit_code == 0, result.output
    assert "checked" not in result.output
    assert read_parity(root / "gru") is None
    # A checked folder converted again: what was recorded of the replaced
    # files is forgotten (it was verified on them); the SavedModels' stays.
    again = _copy(converted[0], tmp_path, "again")
    result = _convert(again, "--format", "graph", "--no-verify")
    assert result.exit_code == 0, result.output
    record = json.loads((again / "gru" / "parity.json").read_text())
    assert "tfjs-node/graph" not in record["results"]
    assert "tfjs-node/graph" not in record["speed"]
    assert record["results"]["tfjs-node/layers"]["status"] == "pass"
    assert record["results"]["tfjs-node/saved_model"]["status"] == "pass"
