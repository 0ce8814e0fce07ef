"""`serve --http-processes 2` (#24 item 6): two HTTP processes (Node's cluster)
on one port, the model worker, batchers and :stream's sequence table in the
primary. Every request on a new connection, so that consecutive steps of a
sequence land on both HTTP processes: every :stream answer is Keras's output
on that sequence's own prefix, every :predict answer Keras's; /metrics is one
page counting both processes' requests; SIGTERM ends all of it with exit 0.
The negative control: a sequence table per HTTP process (the design this one
avoids; TFJS_BRIDGE_TEST_TABLE_PER_PROCESS=1) fails the same check."""

import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from service import in_rounds, keras_prefixes_of, serving

TARGET = 1e-5
SEQUENCES = 6
STEPS = 28
OPTIONS = ["--http-processes", 2, "--format", "layers", "--reload-interval-ms", 0]


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(6).uniform(0, 1, (SEQUENCES, STEPS, 28)).astype(np.float32)


@pytest.fixture(scope="module")
def keras_prefixes(small_models, inputs):
    """Keras on every prefix of every sequence: [sequence, step, 10]."""
    want = keras_prefixes_of(small_models / "gru", inputs, STEPS)
    return want


def _cpu(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _interleave(service, inputs):
    """A thread per sequence, all stepping in rounds, each step on a new
    connection: {sequence: [(status, body)]}."""
    answers = {i: [] for i in range(SEQUENCES)}

    def step(i, t):
        body = {"sequence_id": f"seq-{i}", "instances": [inputs[i, t].tolist()]}
        body["sequence_start"] = t == 0
        body["sequence_end"] = t == STEPS - 1
        status, _, raw = service.request("POST", "/v1/models/gru:stream", body)
        answers[i].append((status, json.loads(raw)))

    in_rounds(range(SEQUENCES), STEPS, step)
    return answers


def _metric(text, name, **labels):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_http_processes_answer_every_sequence_from_its_own_state(
    small_models, node_runtime, inputs, keras_prefixes
):
    with serving(small_models / "gru", options=OPTIONS) as service:
        said = "\n".join(service.lines)
        found = re.search(r"2 HTTP processes: (\d+) (\d+)\)", said)
        assert found, said
        fronts = [int(p) for p in found.groups()]
        for pid in fronts:  # children of the primary, which holds the model worker
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            assert ppid == service.proc.pid
        before = [_cpu(pid) for pid in fronts]

        answers = _interleave(service, inputs)
        for i, replies in answers.items():
            for t, (status, body) in enumerate(replies):
                assert status == 200, (i, t, body)
                assert body["sequence_step"] == t + 1, body
            got = np.array([body["predictions"][0] for _, body in replies])
            assert np.abs(got - keras_prefixes[i]).max() <= TARGET, i

        # :predict through both processes, against Keras's whole sequence
        for i in range(SEQUENCES):
            status, answer = service.predict("gru", {"instances": [inputs[i].tolist()]})
            assert status == 200, answer
            assert (
                np.abs(np.array(answer["predictions"][0]) - keras_prefixes[i, -1]).max() <= TARGET
            )
        # a bad request is refused in its HTTP process, in one line
        status, answer = service.predict("gru", {"instances": [[1.0]]})
        assert status == 400 and "\n" not in answer["error"], answer

        # both HTTP processes did work (connections are dealt round-robin)
        used = [_cpu(pid) - b for pid, b in zip(fronts, before, strict=True)]
        assert min(used) > 0, used
        status, raw = service.get("/metrics")
        text = raw.decode()
        assert status == 200
        # one page: both processes' requests summed, the primary's sequences in it
        answered = _metric(text, "tfjs_bridge_requests_total", model="gru", code="200")
        assert answered == SEQUENCES * STEPS + SEQUENCES, answered
        assert _metric(text, "tfjs_bridge_sequences_closed_total", why="ended") == SEQUENCES
        assert _metric(text, "tfjs_bridge_sequence_batch_steps_count") < SEQUENCES * STEPS
        assert _metric(text, "tfjs_bridge_live_sequences", model="gru") == 0
        assert service.get("/readyz")[0] == 200
        assert service.stop() == 0
    for pid in fronts:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    assert not service.errors, service.errors


def test_a_table_per_http_process_is_caught(small_models, node_runtime, inputs, keras_prefixes):
    """The negative control: each HTTP process with a sequence table of its
    own, so a step that lands on the other one finds no sequence."""
    os.environ["TFJS_BRIDGE_TEST_TABLE_PER_PROCESS"] = "1"
    try:
        with serving(small_models / "gru", options=OPTIONS) as service:
            answers = _interleave(service, inputs)
    finally:
        del os.environ["TFJS_BRIDGE_TEST_TABLE_PER_PROCESS"]
    refused = [body for replies in answers.values() for status, body in replies if status != 200]
    assert refused, "every step answered: the control did not bite"
    assert any("has not started" in body["error"] for body in refused), refused[:3]


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x", "9999"])
def test_bad_http_process_counts_are_one_line(value):
    import subprocess

    from service import SERVE

    proc = subprocess.run(
        ["node", str(SERVE), "--model", "x", f"--http-processes={value}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --http-processes"), proc.stderr


def test_a_reload_reaches_every_http_process_without_a_failed_request(
    small_models, node_runtime, inputs, keras_prefixes, tmp_path
):
    """A folder swapped in place: both HTTP processes move to version 2 while
    requests run (the old version held until each has heard), no request
    fails, and a sequence started on version 1 goes on from its own state."""
    import shutil
    import time

    from tfjs_bridge.folder.artifacts import exchange

    served = tmp_path / "gru"
    shutil.copytree(small_models / "gru", served)
    new = tmp_path / "new"
    shutil.copytree(small_models / "gru", new)
    options = ["--http-processes", 2, "--format", "layers", "--reload-interval-ms", 200]
    with serving(served, options=options) as service:
        step = {"sequence_id": "kept", "sequence_start": True, "instances": [inputs[0, 0].tolist()]}
        assert service.request("POST", "/v1/models/gru:stream", step)[0] == 200
        answers, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                answers.append(service.predict("gru", {"instances": [inputs[1].tolist()]})[0])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        exchange(served, new)
        deadline = time.monotonic() + 60
        versions = set()
        while versions != {"2"}:
            assert time.monotonic() < deadline, service.lines
            time.sleep(0.1)
            # six connections: both HTTP processes asked
            versions = {
                json.loads(service.get("/v1/models/gru")[1])["model_version_status"][0]["version"]
                for _ in range(6)
            }
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        got = []
        for t in range(1, 4):
            body = {"sequence_id": "kept", "instances": [inputs[0, t].tolist()]}
            status, _, raw = service.request("POST", "/v1/models/gru:stream", body)
            assert status == 200, raw
            got.append(json.loads(raw)["predictions"][0])
        assert json.loads(raw)["sequence_step"] == 4
    assert answers.count(200) == len(answers) > 10, set(answers)
    assert np.abs(np.array(got) - keras_prefixes[0, 1:4]).max() <= TARGET
    assert any("version 2 loaded" in line for line in service.lines), service.lines
