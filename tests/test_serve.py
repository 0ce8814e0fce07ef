"""The Node inference service (node/serve.js) against real servers on
127.0.0.1: TF Serving's REST formats, batching that changes no bit, every
bad request refused before it reaches a model, overload, deadlines, graceful
shutdown, hot reload, metrics. The signal storm is tests/test_serve_signals.py."""

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from service import serving
from tfjs_bridge.cli import main
from tfjs_bridge.core.quiet_tf import import_tensorflow


def _keras_predict(model_dir, *xs):
    import_tensorflow()
    import tf_keras

    model = tf_keras.models.load_model(model_dir / "keras.h5", compile=False)
    ys = model.predict(list(xs) if len(xs) > 1 else xs[0], verbose=0)
    return ys if isinstance(ys, list) else [ys]


@pytest.fixture(scope="module")
def two_inputs(tmp_path_factory, node_runtime):
    """A functional model with a token input (Embedding, mask_zero), a float
    input and two named outputs, exported as a user would."""
    import_tensorflow()
    import tf_keras

    tf_keras.utils.set_random_seed(11)
    ids = tf_keras.Input((6,), dtype="int32", name="ids")
    extra = tf_keras.Input((3,), name="extra")
    h = tf_keras.layers.Embedding(50, 8, mask_zero=True)(ids)
    h = tf_keras.layers.GRU(8)(h)
    h = tf_keras.layers.Concatenate()([h, extra])
    score = tf_keras.layers.Dense(1, activation="sigmoid", name="score")(h)
    probs = tf_keras.layers.Dense(3, activation="softmax", name="probs")(h)
    root = tmp_path_factory.mktemp("two_inputs")
    tf_keras.Model([ids, extra], [score, probs]).save(root / "two.h5")
    result = CliRunner().invoke(main, ["export", str(root / "two.h5"), str(root / "two")])
    assert result.exit_code == 0, result.output
    return root / "two"


@pytest.fixture(scope="module")
def service(small_models, two_inputs):
    with serving(small_models / "gru", small_models / "spam", two_inputs) as svc:
        yield svc


def _gru_samples(n, seed=0):
    return np.random.RandomState(seed).rand(n, 28, 28).astype(np.float32)


def _metric(service, name, **labels):
    """The value of one sample line of /metrics (0 when absent)."""
    _, text = service.get("/metrics")
    for line in text.decode().splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
        if not labels and line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_startup_says_the_path_each_model_runs_on(service):
    said = "\n".join(service.lines)
    assert re.search(r"model gru: .* runs on tfjs-node/\w+ \(", said)
    assert re.search(r"model two: .* runs on tfjs-node/\w+ \(", said)
    assert service.get("/healthz")[0] == 200
    status, body = service.get("/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"


def test_row_and_columnar_formats_give_keras_answers(service, small_models):
    x = _gru_samples(3)
    status, row = service.predict("gru", {"instances": x.tolist()})
    assert status == 200, row
    status, columnar = service.predict("gru", {"inputs": x.tolist()})
    assert status == 200, columnar
    assert np.array(row["predictions"]).shape == (3, 10)
    # the same batch, so the same bits; and what Keras computes
    assert row["predictions"] == columnar["outputs"]
    # `curl -d` sends a form content type: read as JSON, as TF Serving does
    status, curl = service.predict(
        "gru", {"instances": x.tolist()}, "application/x-www-form-urlencoded"
    )
    assert status == 200 and curl == row
    (expected,) = _keras_predict(small_models / "gru", x)
    np.testing.assert_allclose(row["predictions"], expected, atol=1e-5)


def test_several_inputs_by_name_in_every_format(service, two_inputs):
    rng = np.random.RandomState(1)
    ids = rng.randint(0, 50, size=(4, 6)).astype(np.int32)
    ids[1, 3:] = 0  # padding, masked
    extra = rng.rand(4, 3).astype(np.float32)
    score, probs = _keras_predict(two_inputs, ids, extra)

    instances = [{"ids": i.tolist(), "extra": e.tolist()} for i, e in zip(ids, extra, strict=True)]
    status, row = service.predict("two", {"instances": instances})
    assert status == 200, row
    assert set(row["predictions"][0]) == {"score", "probs"}
    np.testing.assert_allclose([p["score"] for p in row["predictions"]], score, atol=1e-5)
    np.testing.assert_allclose([p["probs"] for p in row["predictions"]], probs, atol=1e-5)

    status, col = service.predict("two", {"inputs": {"ids": ids.tolist(), "extra": extra.tolist()}})
    assert status == 200, col
    np.testing.assert_allclose(col["outputs"]["probs"], probs, atol=1e-5)

    buf = io.BytesIO()
    np.savez(buf, ids=ids, extra=extra)
    status, raw = service.predict("two", buf.getvalue(), "application/x-npz")
    assert status == 200, raw
    answer = np.load(io.BytesIO(raw))
    np.testing.assert_array_equal(answer["probs"], np.array(col["outputs"]["probs"], np.float32))


def test_npy_body_gets_an_npy_answer_equal_to_json(service):
    x = _gru_samples(2, seed=3)
    buf = io.BytesIO()
    np.save(buf, x)
    status, raw = service.predict("gru", buf.getvalue(), "application/x-npy")
    assert status == 200, raw
    _, row = service.predict("gru", {"instances": x.tolist()})
    np.testing.assert_array_equal(np.load(io.BytesIO(raw)), np.float32(row["predictions"]))


def test_status_and_metadata_as_tf_serving_answers(service):
    status, body = service.get("/v1/models/gru")
    assert status == 200
    assert json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
    status, body = service.get("/v1/models/two/metadata")
    assert status == 200
    sig = json.loads(body)["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["ids"]["dtype"] == "DT_INT32"
    assert [d["size"] for d in sig["inputs"]["ids"]["tensor_shape"]["dim"]] == ["-1", "6"]
    assert sig["inputs"]["extra"]["dtype"] == "DT_FLOAT"
    assert set(sig["outputs"]) == {"score", "probs"}
    assert service.get("/v1/models/nope")[0] == 404


def _alone_and_together(service, x):
    """Each sample predicted alone, and all of them in one request."""
    alone = [service.predict("gru", {"instances": x[i : i + 1].tolist()})[1] for i in range(len(x))]
    _, together = service.predict("gru", {"instances": x.tolist()})
    return [a["predictions"][0] for a in alone], together["predictions"]


@pytest.mark.parametrize("fmt", ["layers", "saved_model", "saved_model_xla"])
def test_batched_answers_are_bit_identical_to_alone(small_models, fmt):
    """Whatever the service chose for this path at load (padded batches, or
    batches at their own size where it measured that every row comes out the
    same, or, for XLA, one row a batch where no size checked keeps them), an
    answer never depends on what else arrived with it."""
    x = _gru_samples(5, seed=4)
    # XLA compiles each size its batching is checked at, at load: on a busy machine, minutes
    with serving(small_models / "gru", options=["--format", fmt], startup_timeout=300) as svc:
        chose = next(line for line in svc.lines if line.startswith("model gru:"))
        # padded to the smallest of the sizes found to give every row the same
        # bits at every position (node/lib/serve/catalog.js), or unpadded
        padded = r"batches padded to the smallest of [\d, ]+ that holds the batch"
        if fmt == "layers":
            # the path the control below shows batch-variant: the check at load must see it
            assert re.search(padded, chose), chose
        one_row = "batches one row a batch: XLA compiles a program per batch shape"
        assert re.search(rf"({padded}|batches unpadded: every row|{one_row})", chose), chose
        alone, together = _alone_and_together(svc, x)
        assert together == alone  # in one request of 5
        with ThreadPoolExecutor(16) as pool:
            answers = list(
                pool.map(
                    lambda i: svc.predict("gru", {"instances": [x[i % 5].tolist()]}), range(160)
                )
            )
        batches = _metric(svc, "tfjs_bridge_batch_size_count", model="gru")
        rows = _metric(svc, "tfjs_bridge_batch_size_sum", model="gru")
    assert all(status == 200 for status, _ in answers)
    assert all(a["predictions"][0] == alone[i % 5] for i, (_, a) in enumerate(answers))
    # Requests were really joined: fewer batches than requests (the 10 before included).
    assert rows == 170 and (batches < 160 or one_row in chose), (rows, batches)


def test_unpadded_batches_would_change_bits(small_models):
    """Negative control: on the layers path, unpadded, a sample's answer
    depends on the size of the batch it ran in, so the check above can fail."""
    x = _gru_samples(32, seed=4)
    options = ["--format", "layers", "--batching", "unpadded"]
    with serving(small_models / "gru", options=options) as svc:
        assert any("batches unpadded (asked for" in line for line in svc.lines)
        alone, together = _alone_and_together(svc, x)
    assert together != alone
    np.testing.assert_allclose(together, alone, atol=1e-6)


def _npy(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


JSON = "application/json"
BAD_REQUESTS = {
    "malformed JSON": ("gru", b'{"instances": [1,', "application/json", 400),
    "wrong shape": ("gru", {"instances": [[1.0, 2.0]]}, "application/json", 400),
    "ragged": (
        "gru",
        {"instances": [[[0.0] * 28] * 28, [[0.0] * 28] * 27]},
        "application/json",
        400,
    ),
    "not a number": ("gru", {"instances": [[["a"] * 28] * 28]}, "application/json", 400),
    "both formats": ("gru", {"instances": [], "inputs": []}, "application/json", 400),
    "wrong dtype": ("gru", _npy(np.zeros((1, 28, 28))), "application/x-npy", 400),
    "NaN": ("gru", _npy(np.full((1, 28, 28), np.nan, np.float32)), "application/x-npy", 400),
    "not npy": ("gru", b"\x93NUMPY garbage", "application/x-npy", 400),
    "token out of range": ("spam", {"instances": [[10000] * 200]}, "application/json", 400),
    "negative token": ("spam", {"instances": [[-1] * 200]}, "application/json", 400),
    "fractional token": ("spam", {"instances": [[1.5] * 200]}, "application/json", 400),
    "missing input": ("two", {"instances": [{"ids": [1] * 6}]}, "application/json", 400),
    "unknown input": (
        "two",
        {"inputs": {"ids": [[1] * 6], "extra": [[0.0] * 3], "x": [[0]]}},
        "application/json",
        400,
    ),
    "unnamed instances": ("two", {"instances": [[1] * 6]}, "application/json", 400),
    "unknown model": ("nope", {"instances": [[0.0]]}, "application/json", 404),
    "unsupported content type": ("gru", b"hello", "text/plain", 415),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_request_is_refused_before_any_model_runs(service, case):
    model, body, content_type, code = BAD_REQUESTS[case]
    ran = _metric(service, "tfjs_bridge_samples_total", model=model)
    status, answer = service.predict(model, body, content_type)
    assert status == code, answer
    assert list(answer) == ["error"] and "\n" not in answer["error"], answer
    assert _metric(service, "tfjs_bridge_samples_total", model=model) == ran


def test_unknown_verb_and_oversized_body(service):
    status, _, raw = service.request("POST", "/v1/models/gru:classify", {"instances": []})
    assert status == 404 and "classify" in json.loads(raw)["error"]
    # 17 MiB announced (the limit is 16): refused from the headers, body unsent.
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/models/gru:predict HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 17825792\r\n\r\n"
        )
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413"), head
    assert '{"error":' in head


def test_metrics_are_exposed(service):
    service.predict("gru", {"instances": _gru_samples(1).tolist()})
    _, text = service.get("/metrics")
    text = text.decode()
    for name in (
        "tfjs_bridge_requests_total",
        "tfjs_bridge_request_errors_total",
        "tfjs_bridge_batch_size_bucket",
        "tfjs_bridge_queue_depth",
        "tfjs_bridge_request_duration_seconds_bucket",
        "tfjs_bridge_batch_duration_seconds_bucket",
        "tfjs_bridge_process_resident_memory_bytes",
    ):
        assert name in text, name
    assert re.search(
        r'tfjs_bridge_request_duration_seconds_count\{model="gru",path="tfjs-node/', text
    )


def test_a_full_queue_answers_429(small_models):
    x = _gru_samples(1).tolist()
    options = ["--max-batch", "1", "--queue-limit", "2"]
    with serving(small_models / "gru", options=options) as svc:
        with ThreadPoolExecutor(32) as pool:
            answers = list(pool.map(lambda _: svc.predict("gru", {"instances": x}), range(96)))
        assert svc.get("/healthz")[0] == 200
    codes = [status for status, _ in answers]
    assert set(codes) == {200, 429}, codes
    assert all("queue full" in a["error"] for s, a in answers if s == 429)
    good = [a["predictions"] for s, a in answers if s == 200]
    assert all(p == good[0] for p in good)


def test_a_request_past_its_deadline_answers_504(small_models):
    with serving(small_models / "gru", options=["--timeout-ms", "5"]) as svc:
        status, answer = svc.predict("gru", {"instances": _gru_samples(512).tolist()})
        assert status == 504 and "deadline" in answer["error"], answer
        assert svc.get("/readyz")[0] == 200


def _wait_for_samples(service, total, slack, timeout=60.0):
    """Until `total` samples arrived: waiting, run, or (at most `slack`) running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        arrived = _metric(service, "tfjs_bridge_queue_depth", model="gru") + _metric(
            service, "tfjs_bridge_samples_total", model="gru"
        )
        if arrived >= total - slack:
            return
        time.sleep(0.05)
    raise AssertionError(f"only {arrived} of {total} samples arrived in {timeout} s")


def test_sigterm_finishes_requests_in_flight_and_refuses_new_ones(small_models):
    # batches of 1: each request of 256 samples runs for a while (~0.5 s)
    x = _gru_samples(256, seed=2).tolist()
    # a long deadline: 2,048 batches of one may take more than the default
    # 10 s on a loaded 2-core machine, and deadlines are not what this tests
    options = ["--max-batch", "1", "--queue-limit", "4096", "--timeout-ms", "300000"]
    with serving(small_models / "gru", options=options) as svc:
        finished = []

        def send(_):
            answer = svc.predict("gru", {"instances": x})
            finished.append(time.monotonic())
            return answer

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, i) for i in range(8)]
            # SIGTERM once the service holds all 8 requests (each body is ~1.6 MB
            # of JSON: on a loaded machine some were still uploading after 0.5 s,
            # and a connection closed mid-upload is a broken pipe, not a refusal)
            _wait_for_samples(svc, 8 * len(x), slack=4)
            signalled = time.monotonic()
            svc.proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert svc.proc.wait(60) == 0
        assert any("SIGTERM" in line for line in svc.lines)
    assert [s for s, _ in answers] == [200] * 8
    assert all(len(a["predictions"]) == 256 for _, a in answers)
    # Not vacuous: some requests were still running when SIGTERM came.
    assert max(finished) > signalled
    with pytest.raises(OSError):
        svc.predict("gru", {"instances": x[:1]}, timeout=5)


@pytest.fixture(scope="module")
def gru_variant(small_models, tmp_path_factory, node_runtime):
    """gru with other weights, exported as a user would: the same signature,
    other answers."""
    import_tensorflow()
    import tf_keras

    model = tf_keras.models.load_model(small_models / "gru" / "keras.h5", compile=False)
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel[:, ::-1], bias[::-1]])  # the classes' order reversed
    root = tmp_path_factory.mktemp("gru_variant")
    model.save(root / "variant.h5")
    result = CliRunner().invoke(main, ["export", str(root / "variant.h5"), str(root / "variant")])
    assert result.exit_code == 0, result.output
    return root / "variant"


def test_a_swapped_folder_is_reloaded_without_dropping_a_request(
    small_models, gru_variant, tmp_path
):
    from tfjs_bridge.folder.artifacts import exchange

    served = tmp_path / "m"
    shutil.copytree(small_models / "gru", served)
    new = tmp_path / "new"
    shutil.copytree(gru_variant, new)
    x = _gru_samples(1, seed=9).tolist()
    options = ["--reload-interval-ms", "200"]
    with serving(served, options=options) as svc:
        _, before = svc.predict("m", {"instances": x})
        answers, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                answers.append(svc.predict("m", {"instances": x}))

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        exchange(served, new)  # what train/convert do to a folder in place
        deadline = time.monotonic() + 60
        while json.loads(svc.get("/v1/models/m")[1])["model_version_status"][0]["version"] != "2":
            assert time.monotonic() < deadline, svc.lines
            time.sleep(0.1)
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        _, after = svc.predict("m", {"instances": x})

        # A tampered folder swapped in is refused; version 2 keeps serving.
        tampered = tmp_path / "tampered"
        shutil.copytree(served, tampered)
        shard = next((tampered / "tfjs_layers").glob("*.bin"))
        data = bytearray(shard.read_bytes())
        data[100] ^= 0xFF
        shard.write_bytes(bytes(data))
        exchange(served, tampered)
        deadline = time.monotonic() + 30
        while not _metric(svc, "tfjs_bridge_model_reloads_total", model="m", result="refused"):
            assert time.monotonic() < deadline, svc.lines
            time.sleep(0.1)
        status, still = svc.predict("m", {"instances": x})
        version = json.loads(svc.get("/v1/models/m")[1])["model_version_status"][0]["version"]
    assert [s for s, _ in answers].count(200) == len(answers) > 10
    assert after != before
    np.testing.assert_allclose(after["predictions"][0], before["predictions"][0][::-1], atol=1e-5)
    assert {json.dumps(a) for _, a in answers} <= {json.dumps(before), json.dumps(after)}
    assert status == 200 and still == after and version == "2"
    assert any("refused" in line and "sha256" in line for line in svc.lines), svc.lines


def test_bad_command_lines_are_one_line_errors(tmp_path):
    for args, message in (
        ([], "--model is required"),
        (["--model", str(tmp_path)], "manifest"),
        (["--model", "x", "--workers", "0"], "--workers must be an integer >= 1"),
    ):
        proc = subprocess.run(
            ["node", "node/serve.js", *args],
            cwd=os.path.dirname(os.path.dirname(__file__)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], proc.stderr


def test_tfjs_bridge_serve_becomes_the_node_service(small_models):
    """The Python command execs serve.js: one process, so SIGTERM reaches the service itself."""
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "tfjs-bridge"),
            "serve",
            str(small_models / "lstm"),
            "--port",
            "0",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stdout:
            found = re.search(r"listening on http://127.0.0.1:(\d+)", line)
            if found:
                break
        assert found, proc.stderr.read()
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().split(b"\0")
        assert cmdline[1].endswith(b"node/serve.js"), cmdline
        with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=30) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
