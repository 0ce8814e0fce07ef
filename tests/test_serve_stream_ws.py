"""serve's :stream over a WebSocket (`GET /v1/models/NAME:stream` upgraded,
#24): a real node/serve.js on 127.0.0.1, sequences interleaved over two
WebSocket connections (several steps in flight on each) and over POST steps
at the same time, all fed to the one sequence table, every answer Keras's
output on that sequence's own prefix within 1e-5, answered in the order sent;
the negative control, a worker that mixes up the sequences' rows, fails the
same check; errors are one JSON message each and the connection stays."""

import os
import re
import signal
import time

import numpy as np
import pytest

import test_serve_stream as base
from service import in_rounds, serving
from test_serve_stream import SCHEDULE, TARGET, _errors, _gru_step, _options, _step
from ws_client import WebSocket

# the POST form's fixtures: the inputs and Keras's outputs on every prefix
inputs = base.inputs
keras_prefixes = base.keras_prefixes

# sequence -> transport: two WebSocket connections and plain POSTs, side by side
TRANSPORT = ["a", "b", "a", "post", "a", "b", "post", "a"]


@pytest.fixture(scope="module")
def service(small_models, node_runtime):
    with serving(small_models / "gru", options=[*_options(), "--body-limit-mb", 1]) as svc:
        yield svc


def _body(inputs, i, t):
    first, steps = SCHEDULE[i]
    body = {"sequence_id": f"seq-{i}", "instances": [inputs[i, t].tolist()]}
    if t == 0:
        body["sequence_start"] = True
    if t == steps - 1:
        body["sequence_end"] = True
    return body


def _interleave(service, inputs):
    """Runs SCHEDULE in rounds (a barrier after each): each connection sends
    all of its sequences' steps of the round before reading any answer, each
    POST sequence steps in its own thread. Returns {sequence: [(status, answer)]}."""
    rounds = max(first + steps for first, steps in SCHEDULE)
    posts = [i for i, how in enumerate(TRANSPORT) if how == "post"]
    answers = {i: [] for i in range(len(SCHEDULE))}
    sockets = {name: WebSocket(service.port, "/v1/models/gru:stream") for name in ("a", "b")}
    for ws in sockets.values():
        assert ws.status == 101, ws.status

    def due(i, r):
        first, steps = SCHEDULE[i]
        return 0 <= r - first < steps

    def step(party, r):
        if party in sockets:
            ws = sockets[party]
            sent = [i for i, how in enumerate(TRANSPORT) if how == party and due(i, r)]
            for i in sent:
                ws.send(_body(inputs, i, r - SCHEDULE[i][0]))
            for i in sent:
                answer = ws.recv()
                # in the order sent; an error would carry its status
                assert answer.get("sequence_id", f"seq-{i}") == f"seq-{i}", (i, answer)
                answers[i].append((answer.get("status", 200), answer))
        elif due(party, r):
            answers[party].append(
                _step(service, "gru", _body(inputs, party, r - SCHEDULE[party][0]))
            )

    try:
        in_rounds(["a", "b", *posts], rounds, step)
    finally:
        for ws in sockets.values():
            ws.close()
    return answers


def test_sequences_over_websockets_and_posts_each_get_keras(service, inputs, keras_prefixes):
    answers = _interleave(service, inputs)
    worst = _errors(answers, keras_prefixes)
    assert max(worst.values()) <= TARGET, worst


def test_a_batcher_that_mixes_up_rows_is_caught_over_websockets(
    small_models, inputs, keras_prefixes, monkeypatch
):
    """The negative control: the worker writes each sequence's new state to the
    next one's row (TFJS_BRIDGE_TEST_MIX_SEQUENCES=1); the same check fails."""
    monkeypatch.setenv("TFJS_BRIDGE_TEST_MIX_SEQUENCES", "1")
    with serving(small_models / "gru", options=_options()) as mixed:
        answers = _interleave(mixed, inputs)
    worst = _errors(answers, keras_prefixes)
    assert max(worst.values()) > 1e-3, worst


def test_errors_are_one_json_message_and_the_connection_stays(service, inputs):
    ws = WebSocket(service.port, "/v1/models/gru:stream")
    start = {"sequence_id": "w", "sequence_start": True, "instances": _gru_step(inputs)}
    cases = [
        ({"sequence_id": "never-started", "instances": _gru_step(inputs)}, 400, "not started"),
        ({**start, "instances": [[[0.5] * 27]]}, 400, "instances"),
        ("{not json", 400, "not JSON"),
        ({**start, "sequence_id": ""}, 400, "sequence_id"),
        ({**start, "sequence_start": "yes"}, 400, "true or false"),
    ]
    for message, status, words in cases:
        ws.send(message)
        answer = ws.recv()
        assert set(answer) == {"error", "status"}, answer
        assert answer["status"] == status and words in answer["error"], answer
        assert "\n" not in answer["error"]
    ws.send(b"\x00\x01")
    assert ws.recv()["status"] == 415
    # the same connection goes on: a sequence starts and steps
    ws.send(start)
    assert ws.recv()["sequence_step"] == 1
    ws.send({"sequence_id": "w", "sequence_end": True, "instances": _gru_step(inputs, t=1)})
    assert ws.recv()["sequence_step"] == 2
    # a message larger than --body-limit-mb (1 here) closes the connection with 1009
    ws.send("x" * (2 * 2**20))
    assert ws.recv() is None and ws.close_code == 1009
    ws.close()


def test_an_unknown_model_or_verb_answers_and_closes(service):
    for path, status in (("/v1/models/nope:stream", 404), ("/v1/models/gru:predict", 404)):
        ws = WebSocket(service.port, path)
        answer = ws.recv()
        assert answer["status"] == status and "\n" not in answer["error"], answer
        assert ws.recv() is None and ws.close_code == 4000 + status
        ws.close()
    # a plain GET of the model still answers its status
    status, _ = service.get("/v1/models/gru")
    assert status == 200


def test_a_sequences_steps_sent_at_once_run_one_after_another(service, inputs, keras_prefixes):
    """Over POST, a step sent while its sequence's previous one runs is a 409;
    on one connection the service runs them in order, each from the state
    its previous step left, and answers them in order."""
    ws = WebSocket(service.port, "/v1/models/gru:stream")
    steps = 12
    for t in range(steps):
        body = {"sequence_id": 0, "instances": [inputs[0, t].tolist()]}
        if t == 0:
            body["sequence_start"] = True
        ws.send(body)
        if t == 5:  # a step of another sequence in between
            ws.send({"sequence_id": "never-started", "instances": _gru_step(inputs)})
    answers = [ws.recv() for _ in range(steps + 1)]
    assert answers[6]["status"] == 400, answers[6]
    del answers[6]
    assert [a.get("sequence_step") for a in answers] == list(range(1, steps + 1)), answers
    got = np.array([a["predictions"][0] for a in answers])
    assert np.abs(got - keras_prefixes[0, :steps]).max() <= TARGET
    ws.close()


def test_two_http_processes_take_websockets_too(small_models, inputs, keras_prefixes):
    """With --http-processes 2 each HTTP process takes its own connections and
    hands their steps to the one sequence table in the primary."""
    with serving(small_models / "gru", options=[*_options(), "--http-processes", 2]) as two:
        answers = _interleave(two, inputs)
    worst = _errors(answers, keras_prefixes)
    assert max(worst.values()) <= TARGET, worst


def test_a_killed_worker_answers_410_on_the_same_connection(service, inputs):
    ws = WebSocket(service.port, "/v1/models/gru:stream")
    ws.send({"sequence_id": "k", "sequence_start": True, "instances": _gru_step(inputs)})
    assert ws.recv()["sequence_step"] == 1
    (pid,) = re.search(r"pids (\d+);", "\n".join(service.lines)).groups()
    os.kill(int(pid), signal.SIGKILL)
    ws.send({"sequence_id": "k", "instances": _gru_step(inputs, t=1)})
    answer = ws.recv()
    assert answer["status"] == 410 and "lost" in answer["error"], answer
    deadline = time.time() + 120
    while not any("starting it again" in line for line in service.lines):
        assert time.time() < deadline
        time.sleep(0.2)
    # the connection goes on: a sequence started again runs on the new worker
    ws.send({"sequence_id": "k", "sequence_start": True, "instances": _gru_step(inputs)})
    answer = ws.recv()
    assert answer.get("sequence_step") == 1, answer
    ws.close()


def test_a_client_that_never_reads_is_closed_with_1008(service, inputs):
    """Beyond 4096 unanswered messages on one connection (one sequence's steps
    run one after another, so they pile up), the connection is closed."""
    ws = WebSocket(service.port, "/v1/models/gru:stream")
    step = {"sequence_id": "flood", "instances": _gru_step(inputs)}
    ws.send({**step, "sequence_start": True})
    for _ in range(6000):
        ws.send(step)
    while ws.recv() is not None:
        pass
    assert ws.close_code == 1008
    ws.close()
