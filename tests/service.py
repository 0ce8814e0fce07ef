"""A real `node node/serve.js` on 127.0.0.1 for the tests, and a small HTTP client."""

import http.client
import json
import re
import signal
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVE = ROOT / "node" / "serve.js"


class Service:
    """A started serve.js: its output lines (stdout, stderr) are collected as it runs."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.url = None
        self.port = None
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.listening = threading.Event()
        for stream, into in ((proc.stdout, self.lines), (proc.stderr, self.errors)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    def _read(self, stream, into):
        for line in stream:
            into.append(line.rstrip("\n"))
            found = re.search(r"listening on (http://\S+?):(\d+)", line)
            if found and not self.listening.is_set():
                self.url, self.port = f"{found.group(1)}:{found.group(2)}", int(found.group(2))
                self.listening.set()
        self.listening.set()  # it exited: stop waiting

    def request(self, method, path, body=None, content_type="application/json", timeout=60):
        """(status, headers, body bytes); `body` may be bytes or anything JSON."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if body is not None and not isinstance(body, bytes):
                body = json.dumps(body).encode()
            headers = {"content-type": content_type} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def predict(self, model, body, content_type="application/json", **kw):
        """(status, parsed JSON or raw bytes) of POST /v1/models/MODEL:predict."""
        status, headers, raw = self.request(
            "POST", f"/v1/models/{model}:predict", body, content_type, **kw
        )
        if headers.get("content-type", "").startswith("application/json"):
            return status, json.loads(raw)
        return status, raw

    def get(self, path):
        status, _, raw = self.request("GET", path)
        return status, raw

    def stop(self, timeout=30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


@contextmanager
def serving(*models, options=(), startup_timeout=120):
    """Starts the service on a free port with `--model` per entry ("DIR" or
    "NAME=DIR"), waits for its "listening on" line, and stops it after."""
    args = ["node", str(SERVE), "--port", "0", *map(str, options)]
    for model in models:
        args += ["--model", str(model)]
    proc = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    service = Service(proc)
    service.listening.wait(startup_timeout)
    if service.port is None:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"serve.js did not start: {service.lines + service.errors}")
    try:
        yield service
    finally:
        service.stop()


def keras_prefixes_of(model_dir: Path, inputs, steps: int):
    """Keras on prefixes 1..steps of each input sequence, [sequence, step, outputs]:
    the folder's keras.h5 layers on a free time axis, so that a prefix can be
    fed. The prefixes must differ, or a check against them would be vacuous."""
    import numpy as np

    from tfjs_bridge.core.quiet_tf import import_tensorflow

    import_tensorflow()
    import tf_keras

    model = tf_keras.models.load_model(model_dir / "keras.h5", compile=False)
    x_in = tf_keras.Input((None, inputs.shape[-1]))
    y = x_in
    for layer in model.layers:
        y = layer(y)
    free = tf_keras.Model(x_in, y)
    want = np.stack([free(inputs[:, : t + 1]).numpy() for t in range(steps)], axis=1)
    assert np.abs(want[:, 0] - want[:, -1]).max() > 1e-3  # the prefixes differ: not vacuous
    return want


def in_rounds(parties, rounds: int, act) -> None:
    """act(party, round) for every round, on a thread per party, with a barrier
    after each round so that a round's requests arrive together (and batch).
    A failure in any thread stops the others and is raised here."""
    barrier = threading.Barrier(len(parties))
    failures = []

    def run(party):
        try:
            for r in range(rounds):
                act(party, r)
                barrier.wait(timeout=120)
        except Exception as err:  # raised by the caller's thread
            failures.append(err)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(party,)) for party in parties]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    real = [f for f in failures if not isinstance(f, threading.BrokenBarrierError)]
    if failures:
        raise (real or failures)[0]
