"""Stream affinity across replicas (#24 item 6): two real service replicas
(node/serve.js on 127.0.0.1) behind node/scripts/stream-proxy.js, which routes
each :stream step by its X-Sequence-Id header on a consistent-hash ring.
Many sequences, interleaved, every step on a new connection: each answer is
Keras's output on that sequence's own prefix, and both replicas held some.
The negative control: the same proxy in round-robin mode sends steps to a
replica that never saw their sequence start, and the same check fails."""

import json
import re
import subprocess
from contextlib import ExitStack, contextmanager

import numpy as np
import pytest

from service import ROOT, in_rounds, keras_prefixes_of, serving

PROXY = ROOT / "node" / "scripts" / "stream-proxy.js"
TARGET = 1e-5
SEQUENCES = 16
STEPS = 10  # of gru's 28: enough to carry a state across many requests
OPTIONS = ["--format", "layers", "--reload-interval-ms", 0]


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(8).uniform(0, 1, (SEQUENCES, 28, 28)).astype(np.float32)


@pytest.fixture(scope="module")
def keras_outputs(small_models, inputs):
    """Keras on prefixes 1..STEPS of each sequence, and on the whole of it."""
    import tf_keras

    prefixes = keras_prefixes_of(small_models / "gru", inputs, STEPS)
    model = tf_keras.models.load_model(small_models / "gru" / "keras.h5", compile=False)
    return prefixes, model(inputs).numpy()


@pytest.fixture(scope="module")
def replicas(small_models, node_runtime):
    with ExitStack() as stack:
        yield [stack.enter_context(serving(small_models / "gru", options=OPTIONS)) for _ in "ab"]


@contextmanager
def proxying(replicas, mode):
    args = ["node", str(PROXY), "--port", "0", "--mode", mode]
    for replica in replicas:
        args += ["--upstream", f"http://127.0.0.1:{replica.port}"]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")
        front = type(replicas[0])(proc)  # the tests' HTTP client, pointed at the proxy
        front.port = int(found.group(1))
        yield front
    finally:
        proc.terminate()
        proc.wait(10)


def _metric(service, name, **labels):
    _, raw = service.get("/metrics")
    total = 0.0
    for line in raw.decode().splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _interleave(front, inputs, tag):
    """A thread per sequence, stepping in rounds, each step on a new
    connection, its id in the header (and, for odd sequences, in the body too)."""
    answers = {i: [] for i in range(SEQUENCES)}

    def step(i, t):
        sid = f"{tag}-{i}"
        body = {"instances": [inputs[i, t].tolist()], "sequence_start": t == 0}
        body["sequence_end"] = t == STEPS - 1
        if i % 2:
            body["sequence_id"] = sid
        answers[i].append(_post(front, body, {"x-sequence-id": sid}))

    in_rounds(range(SEQUENCES), STEPS, step)
    return answers


def _post(front, body, headers):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=60)
    try:
        conn.request(
            "POST",
            "/v1/models/gru:stream",
            body=json.dumps(body).encode(),
            headers={"content-type": "application/json", **headers},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _wrong(answers, prefixes):
    """(steps refused, sequences off Keras's own prefixes by more than TARGET)."""
    refused = [
        (i, body) for i, replies in answers.items() for status, body in replies if status != 200
    ]
    off = []
    for i, replies in answers.items():
        got = [body["predictions"][0] if status == 200 else None for status, body in replies]
        if None in got or np.abs(np.array(got) - prefixes[i]).max() > TARGET:
            off.append(i)
    return refused, off


def test_a_hashing_proxy_keeps_every_sequence_on_its_replica(replicas, inputs, keras_outputs):
    prefixes, whole = keras_outputs
    ended = [_metric(r, "tfjs_bridge_sequences_closed_total", why="ended") for r in replicas]
    with proxying(replicas, "hash") as front:
        answers = _interleave(front, inputs, "hash")
        refused, off = _wrong(answers, prefixes)
        assert not refused and not off, (refused[:3], off)
        for i, replies in answers.items():
            assert [body["sequence_step"] for _, body in replies] == list(range(1, STEPS + 1))
            assert replies[0][1]["sequence_id"] == f"hash-{i}"
        # everything else goes to any replica: :predict against Keras
        for i in range(4):
            status, answer = front.predict("gru", {"instances": [inputs[i].tolist()]})
            assert status == 200, answer
            assert np.abs(np.array(answer["predictions"][0]) - whole[i]).max() <= TARGET
        # a :stream step without the header cannot be routed: one line
        status, answer = _post(front, {"sequence_id": "x", "sequence_start": True}, {})
        assert status == 400 and "X-Sequence-Id" in answer["error"], answer
    held = [
        _metric(r, "tfjs_bridge_sequences_closed_total", why="ended") - e
        for r, e in zip(replicas, ended, strict=True)
    ]
    assert sum(held) == SEQUENCES and min(held) > 0, held  # both replicas held sequences


def test_round_robin_is_caught(replicas, inputs, keras_outputs):
    """The negative control: steps dealt in turn, whatever their sequence."""
    prefixes, _ = keras_outputs
    with proxying(replicas, "round-robin") as front:
        answers = _interleave(front, inputs, "rr")
    refused, off = _wrong(answers, prefixes)
    assert off, "every sequence answered right: the control did not bite"
    assert any("has not started" in body["error"] for _, body in refused), refused[:3]


def test_the_header_and_the_body_must_agree(replicas, inputs):
    step = [inputs[0, 0].tolist()]
    body = {"sequence_id": "a", "sequence_start": True, "instances": step}
    status, answer = _post(replicas[0], body, {"x-sequence-id": "b"})
    assert status == 400 and "differ" in answer["error"] and "\n" not in answer["error"], answer
    body = {"sequence_start": True, "sequence_end": True, "instances": step}
    status, answer = _post(replicas[0], body, {"x-sequence-id": "7"})
    assert status == 200 and answer["sequence_id"] == "7", answer
