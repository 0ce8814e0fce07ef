"""Helpers for the signal-storm tests of a Node inference service (issue #15,
item 4): start a server, load it with concurrent predict requests, and storm
its process with handled signals. oneDNN's JIT sgemm (issue #4845, in the
TensorFlow that tfjs-node links) points the stack pointer into the heap while
it runs; a handled signal landing then corrupts the heap
(../shared/PITFALLS.md, "Signals and oneDNN's sgemm"). A service is immune
only if no thread that runs TensorFlow ever takes a signal with a handler.

Not a test module: tests/test_serve_signals.py imports it (pytest puts tests/
on sys.path), and so may the service's own tests.

    server = start_server(["node", str(NAIVE_SERVER), "--model", d], tmp_path / "err")
    url = f"{server.url}/v1/models/NAME:predict"
    stop = threading.Event()
    threading.Thread(target=storm, args=(server.proc.pid, 10), kwargs={"stop": stop}).start()
    result = load(url, bodies, clients=8, seconds=10, stop=stop)
    # or all in one, stopping as soon as the server dies:
    run = storm_under_load(server.proc, url, bodies, 8, 15, stderr=server.stderr)
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NAIVE_SERVER = ROOT / "tests" / "fixtures" / "naive_server.js"

# Handled by every real service, and by the naive server: the storm's default.
STORM_SIGNALS = (signal.SIGUSR2, signal.SIGHUP)

# What glibc prints when it finds the heap corrupted (then it aborts).
HEAP_CORRUPTION = re.compile(
    r"corrupted size|free\(\): invalid|malloc\(\)|double free|malloc_consolidate"
    r"|corrupted double-linked list|corrupted top size|unaligned tcache chunk"
)
CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE}

LISTENING = re.compile(r"listening on (http://\S+)")


# --- the test model ---------------------------------------------------------

# Input(10, 8) -> GRU(256) -> Dense(10, softmax). The fast loop's per-step
# product is [B, 256] x [256, 768] (TensorFlow's MatMul, oneDNN's gemm_api),
# and the Dense's [B, 256] x [256, 10]: an inner dimension of 256, past the
# sgemm kernels' thresholds (K > 252 on AVX2, about K > 84 on AVX-512).
K256_TIMESTEPS, K256_FEATURES, K256_UNITS, K256_CLASSES = 10, 8, 256, 10

_BUILD_K256 = f"""
import os, sys
from pathlib import Path
import tf_keras as keras
from tfjs_bridge.conversion.export import export_model
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=({K256_TIMESTEPS}, {K256_FEATURES})),
    keras.layers.GRU({K256_UNITS}),
    keras.layers.Dense({K256_CLASSES}, activation="softmax"),
])
h5 = Path(sys.argv[1]) / "k256.h5"
model.save(h5)
export_model(h5, Path(sys.argv[1]) / "k256")
"""


def build_k256_model(where: Path, python: str) -> Path:
    """A model folder (what `tfjs-bridge export` writes) for a random-weight
    GRU(256), built in one child Python (TensorFlow stays out of the caller).
    Returns where/"k256"; ~20 s on 2 cores."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [python, "-c", _BUILD_K256, str(where)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"building the K=256 model failed:\n{done.stderr[-3000:]}")
    return where / "k256"


def k256_bodies(batches: Sequence[int], seed: int = 0) -> list[bytes]:
    """One {"instances": ...} JSON body per batch size, values in [0, 1)."""
    rng = np.random.default_rng(seed)
    return [
        json.dumps(
            {"instances": rng.random((b, K256_TIMESTEPS, K256_FEATURES), np.float32).tolist()}
        ).encode()
        for b in batches
    ]


# --- a server under test ----------------------------------------------------


def crash_reason(returncode: int, stderr: str = "") -> str | None:
    """A process's exit as a crash: a fatal signal (SIGSEGV, SIGABRT...) or
    glibc's heap-corruption message on its stderr; None for any other exit."""
    found = HEAP_CORRUPTION.search(stderr)
    if returncode < 0 and -returncode in CRASH_SIGNALS:
        name = signal.Signals(-returncode).name
        return name + (f" ({found.group(0)})" if found else "")
    if returncode > 0 and (found or returncode in (128 + signal.SIGABRT, 128 + signal.SIGSEGV)):
        return f"exit code {returncode}" + (f" ({found.group(0)})" if found else "")
    return None


@dataclass
class Server:
    """A started server: its process, its base URL, and its stderr file."""

    proc: subprocess.Popen
    url: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def crash(self) -> str | None:
        """Why it died, if it died of a crash (crash_reason); None while it
        runs or after a clean exit."""
        code = self.proc.poll()
        return None if code is None else crash_reason(code, self.stderr())

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def start_server(
    cmd: Sequence[str], stderr_path: Path, timeout: float = 60, env: dict | None = None
) -> Server:
    """Starts `cmd` and waits for its "listening on http://HOST:PORT" line on
    stdout (the rest of stdout is drained). stderr goes to `stderr_path`."""
    err = open(stderr_path, "wb")  # the child keeps its own copy
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.PIPE, stderr=err, env=env, text=True, bufsize=1
    )
    err.close()
    found: dict[str, str] = {}
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            if not ready.is_set():
                m = LISTENING.search(line)
                if m:
                    found["url"] = m.group(1)
                    ready.set()
        ready.set()  # stdout closed: the process is gone

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout) or "url" not in found:
        proc.kill()
        proc.wait()
        raise RuntimeError(
            f"{cmd[:3]} did not say 'listening on' within {timeout} s "
            f"(exit {proc.returncode}):\n{stderr_path.read_text(errors='replace')[-2000:]}"
        )
    return Server(proc, found["url"], stderr_path)


# --- the storm and the load -------------------------------------------------


def storm(
    pid: int,
    seconds: float,
    signals: Sequence[int] = STORM_SIGNALS,
    interval_s: float = 0.001,
    stop: threading.Event | None = None,
) -> int:
    """Sends `signals` in turn to `pid`, one every `interval_s`, for `seconds`
    (or until `stop` is set, or the process is gone). Returns how many were
    sent. The signals are process-directed: the kernel gives each to a thread
    of the process that does not block it, the one running on a CPU first."""
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (stop and stop.is_set()):
        try:
            os.kill(pid, signals[sent % len(signals)])
        except ProcessLookupError:
            break
        sent += 1
        time.sleep(interval_s)
    return sent


@dataclass
class LoadResult:
    ok: int = 0  # 200 with the expected answer
    failed: int = 0  # no answer, or a status other than 200
    wrong: int = 0  # 200 with an answer that differs from the one given alone
    errors: list[str] = field(default_factory=list)  # the first few failures, as text
    first_failure_s: float | None = None  # seconds from the start to the first failure

    def __add__(self, other: LoadResult) -> LoadResult:
        firsts = [t for t in (self.first_failure_s, other.first_failure_s) if t is not None]
        return LoadResult(
            self.ok + other.ok,
            self.failed + other.failed,
            self.wrong + other.wrong,
            (self.errors + other.errors)[:10],
            min(firsts) if firsts else None,
        )


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=30), parts.path


def post(url: str, body: bytes, conn: http.client.HTTPConnection | None = None):
    """POSTs a JSON body; returns (status, parsed JSON or raw text)."""
    own = conn is None
    if own:
        conn, _ = _connection(url)
    try:
        conn.request(
            "POST",
            urllib.parse.urlsplit(url).path,
            body,
            {"Content-Type": "application/json"},
        )
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")
    finally:
        if own:
            conn.close()


def expected_answers(url: str, bodies: Sequence[bytes]) -> list:
    """Each body's answer, asked alone and in turn (each must be a 200)."""
    expected = []
    for body in bodies:
        status, answer = post(url, body)
        if status != 200:
            raise RuntimeError(f"{url}: the lone request got {status}: {answer}")
        expected.append(answer)
    return expected


def load(
    url: str,
    bodies: Sequence[bytes],
    clients: int,
    seconds: float,
    stop: threading.Event | None = None,
    expected: Sequence | None = None,
) -> LoadResult:
    """`clients` threads, each on its own keep-alive connection, POST the
    bodies in turn to `url` for `seconds` (or until `stop` is set). The
    expected answer to each body is fetched alone first (expected_answers),
    unless given. After a failed request a client reconnects, after 10 ms."""
    if expected is None:
        expected = expected_answers(url, bodies)
    started = time.monotonic()
    end = started + seconds

    def client(offset: int) -> LoadResult:
        result = LoadResult()
        conn, _ = _connection(url)
        i = offset
        while time.monotonic() < end and not (stop and stop.is_set()):
            k = i % len(bodies)
            i += 1
            try:
                status, answer = post(url, bodies[k], conn)
            except (OSError, http.client.HTTPException) as exc:
                status, answer = None, f"{type(exc).__name__}: {exc}"
            if status == 200 and answer == expected[k]:
                result.ok += 1
            elif status == 200:
                result.wrong += 1
            else:
                result.failed += 1
                if result.first_failure_s is None:
                    result.first_failure_s = time.monotonic() - started
                if len(result.errors) < 3:
                    result.errors.append(f"{status}: {str(answer)[:200]}")
                conn.close()
                conn, _ = _connection(url)
                time.sleep(0.01)
        conn.close()
        return result

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    total = LoadResult()
    for r in results:
        total = total + r
    return total


@dataclass
class StormRun:
    load: LoadResult
    signals_sent: int
    crash: str | None  # crash_reason() of the process's exit, None if it runs or exited cleanly
    died_after_s: float | None  # seconds from the storm's start to the process's exit
    returncode: int | None  # None: still running at the end


def storm_under_load(
    proc: subprocess.Popen,
    url: str,
    bodies: Sequence[bytes],
    clients: int,
    seconds: float,
    signals: Sequence[int] | None = STORM_SIGNALS,
    interval_s: float = 0.001,
    stderr: Callable[[], str] | None = None,
) -> StormRun:
    """Loads `url` and storms `proc` (the server's process) together for
    `seconds`; both stop as soon as the process exits. signals=None: the load
    alone. `stderr` returns the server's stderr so far (for crash_reason)."""
    expected = expected_answers(url, bodies)
    stop = threading.Event()
    died: dict[str, float] = {}
    started = time.monotonic()

    def watch():
        while not stop.is_set():
            if proc.poll() is not None:
                died["s"] = time.monotonic() - started
                stop.set()
            time.sleep(0.005)

    sent: dict[str, int] = {"n": 0}

    def signal_storm():
        sent["n"] = storm(proc.pid, seconds, signals, interval_s, stop)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stormer = threading.Thread(target=signal_storm, daemon=True) if signals else None
    if stormer:
        stormer.start()
    result = load(url, bodies, clients, seconds, stop, expected)
    stop.set()
    if stormer:
        stormer.join()
    watcher.join()
    if proc.poll() is None:
        time.sleep(0.2)  # a crash in the last moment: let it land
        if proc.poll() is not None:
            died["s"] = time.monotonic() - started
    code = proc.poll()
    crash = None if code is None else crash_reason(code, stderr() if stderr else "")
    return StormRun(result, sent["n"], crash, died.get("s"), code)
