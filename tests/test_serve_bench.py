"""bench --serve's own parts, against a real Python baseline server on
127.0.0.1 (FastAPI + uvicorn, the small gru): TF Serving's row format as
Keras computes it, bad requests answered 400 in one line, node/scripts/load.js
counting every wrong answer (and a control that it can count one), and the
report run_serve_bench writes. The Node service's own tests are elsewhere."""

import json
import re
import subprocess

import numpy as np
import pytest

from tfjs_bridge.bench.baseline_server import BadRequest, parse_instances, predictions
from tfjs_bridge.bench.service_load import (
    LOAD_SCRIPT,
    Server,
    expected_answers,
    post,
    request_bodies,
    run_load,
    run_serve_bench,
    server_command,
)
from tfjs_bridge.core.paths import PROJECT_ROOT
from tfjs_bridge.folder.signature import InputSpec, Signature, float_input
from tfjs_bridge.parity.truth import KerasTruth, subject_from_folder
from tfjs_bridge.runtime.node_process import node_executable


@pytest.fixture(scope="module")
def gru(small_models):
    return subject_from_folder(small_models / "gru")


@pytest.fixture(scope="module")
def baseline(gru, tmp_path_factory):
    """The Python baseline serving the small gru: its predict URL."""
    server = Server("python", server_command("python", gru.model_dir), tmp_path_factory.mktemp("b"))
    try:
        server.wait_ready(timeout=120)
        yield f"{server.url}/v1/models/gru:predict"
    finally:
        assert server.stop() in (0, -15)  # uvicorn re-raises the SIGTERM it shut down on


def test_row_format_answers_what_keras_computes(gru, baseline):
    # 3 real MNIST test images, as bench --serve sends them
    x = np.concatenate([np.float32(json.loads(b)["instances"]) for b in request_bodies(gru, 3)])
    status, text = post(baseline, json.dumps({"instances": x.tolist()}))
    assert status == 200
    got = np.asarray(json.loads(text)["predictions"], np.float32)
    (want,) = KerasTruth(gru)([x])
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=1e-6)
    # One sample per request answers the same as the three together.
    for i in range(3):
        status, text = post(baseline, json.dumps({"instances": [x[i].tolist()]}))
        one = np.asarray(json.loads(text)["predictions"], np.float32)
        np.testing.assert_allclose(one[0], want[i], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "body, status, says",
    [
        ('{"instances": [[1, 2', 400, "malformed JSON"),
        ('{"instances": [[1, 2]]}', 400, "does not fit the model's input [N, 28, 28]"),
        ('{"instances": []}', 400, "non-empty list"),
        ('{"inputs": [[1]]}', 400, '{"instances": [...]}'),
        ("[1, 2]", 400, '{"instances": [...]}'),
        ('{"instances": [[["a"]]]}', 400, "nested lists of numbers"),
        ('{"instances": [[[1], [1, 2]]]}', 400, "nested lists of numbers"),
        (json.dumps({"instances": [[[float("nan")] * 28] * 28]}), 400, "NaN/Inf"),
    ],
)
def test_a_bad_request_gets_400_and_one_line_of_json(baseline, body, status, says):
    got, text = post(baseline, body)
    answer = json.loads(text)
    assert got == status and list(answer) == ["error"], text
    assert says in answer["error"] and "\n" not in answer["error"]


def test_an_unknown_model_is_404(baseline):
    status, text = post(baseline.replace("/gru:", "/nope:"), '{"instances": [[1]]}')
    assert status == 404 and "no model named 'nope'" in json.loads(text)["error"]


def test_several_inputs_and_outputs_in_row_format():
    signature = Signature(
        (InputSpec("ids", "int32", (3,), "tokens", 0, 10), float_input("side", (2,))), ("a", "b")
    )
    ids, side = parse_instances(
        {"instances": [{"ids": [1, 2, 3], "side": [0.5, 1]}, {"ids": [4, 5, 9], "side": [0, 0]}]},
        signature,
    )
    assert ids.dtype == np.int32 and ids.tolist() == [[1, 2, 3], [4, 5, 9]]
    assert side.dtype == np.float32 and side.shape == (2, 2)
    rows = predictions([np.float32([[1], [2]]), np.float32([3, 4])], ["a", "b"])
    assert rows == [{"a": [1.0], "b": 3.0}, {"a": [2.0], "b": 4.0}]
    for bad, says in [
        ({"instances": [[1, 2, 3]]}, "each instance must be an object by input name"),
        ({"instances": [{"ids": [1, 2, 3]}]}, "the model's inputs are ids, side"),
        ({"instances": [{"ids": [1, 2, 10], "side": [0, 0]}]}, "token ids outside [0, 10)"),
        ({"instances": [{"ids": [1, 2, 2.5], "side": [0, 0]}]}, "token ids must be integers"),
    ]:
        with pytest.raises(BadRequest, match=re.escape(says)):
            parse_instances(bad, signature)


def test_load_counts_no_wrong_answer_and_a_wrong_expectation(node_runtime, gru, baseline, tmp_path):
    bodies = request_bodies(gru, 4)
    answers = expected_answers(baseline, bodies)
    assert len(set(answers)) == 4  # four different samples, four different answers
    (tmp_path / "bodies.json").write_text(json.dumps(bodies))
    (tmp_path / "right.json").write_text(json.dumps(answers))
    result = run_load(baseline, tmp_path / "bodies.json", tmp_path / "right.json", 4, 2)
    assert result["requests"] > 0 and result["wrong"] == 0 and result["checked"] > 0
    assert result["errors"] == result["non_2xx"] == result["timeouts"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    # The control: expecting each body's neighbour's answer, every answer is wrong.
    (tmp_path / "wrong.json").write_text(json.dumps(answers[1:] + answers[:1]))
    result = run_load(baseline, tmp_path / "bodies.json", tmp_path / "wrong.json", 2, 1)
    assert result["wrong"] == result["checked"] > 0
    assert result["first_wrong"]["got"] in answers


def test_load_script_usage(node_runtime, tmp_path):
    def load(*args):
        return subprocess.run(
            [node_executable(), str(LOAD_SCRIPT), *args], cwd=PROJECT_ROOT, capture_output=True,
            text=True,
        )  # fmt: skip

    shown = load("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: load.js --url URL")
    (tmp_path / "b.json").write_text('["{}"]')
    for args, says in [
        (["--url", "http://127.0.0.1:9/", "--body-file", str(tmp_path / "b.json")], "--duration"),
        (["--url", "nope", "--body-file", "x", "--connections", "1", "--duration", "1"], "--url"),
        (
            [
                "--url",
                "http://a/",
                "--body-file",
                str(tmp_path / "none.json"),
                "--connections",
                "1",
                "--duration",
                "1",
            ],
            "no such file",
        ),  # fmt: skip
    ]:
        failed = load(*args)
        assert failed.returncode == 2 and failed.stdout == ""
        assert failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
        assert says in failed.stderr


def test_run_serve_bench_reports_each_run(node_runtime, gru, tmp_path, monkeypatch):
    monkeypatch.setattr("tfjs_bridge.bench.service_load.WARMUP_S", 0.5)
    report = run_serve_bench(
        [gru.model_dir], concurrencies=(4, 1), duration=1, long_duration=1.5,
        servers=("python",), report_dir=tmp_path,
    )  # fmt: skip
    assert json.loads((tmp_path / "serve.json").read_text())["ok"] is report["ok"] is True
    model = report["models"]["gru"]
    python = model["servers"]["python"]
    assert [r["concurrency"] for r in python["runs"]] == [1, 4]
    assert python["runs"][1]["duration_s"] >= 1.4  # the highest concurrency runs longest
    for run in python["runs"]:
        assert run["requests"] > 0 and run["wrong"] == run["errors"] == run["non_2xx"] == 0
        assert run["samples_per_s"] == run["requests_per_s"]
    assert python["memory_ready"]["rss_bytes"] > 0 and python["memory_end"]["processes"] == 1
    assert python["memory_end"]["peak_rss_bytes"] >= python["memory_start"]["peak_rss_bytes"]
    assert model["ratios"]["c4/c1"]["python"] > 0 and model["ratios"]["node/python"] == {}


def test_agreement_uses_the_tolerance_and_fails_beyond_it():
    from tfjs_bridge.bench.service_load import agreement

    python = ['{"predictions":[[0.25,0.75]]}', '{"predictions":[{"a":[1.0],"b":[2.0]}]}']
    close = ['{"predictions":[[0.250001,0.75]]}', '{"predictions":[{"a":[1.0],"b":[2.0]}]}']
    far = ['{"predictions":[[0.26,0.75]]}', '{"predictions":[{"a":[1.0],"b":[2.0]}]}']
    assert agreement(close, python, atol=1e-5, rtol=1e-5)["within_tolerance"]
    verdict = agreement(far, python, atol=1e-5, rtol=1e-5)
    assert not verdict["within_tolerance"] and abs(verdict["max_abs_diff"] - 0.01) < 1e-9
    shapes = agreement(['{"predictions":[[0.25]]}'], python[:1], atol=1e-5, rtol=1e-5)
    assert not shapes["within_tolerance"] and shapes["max_abs_diff"] is None
