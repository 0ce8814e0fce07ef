"""`tfjs-bridge bench --serve`: the Node inference service under load, side
by side with a Python baseline serving the same model, both on this machine
in one run.

For each model folder, two servers on 127.0.0.1 (port 0):
  node    node/serve.js: the Node service (TF Serving's REST API)
  python  baseline_server.py: FastAPI + uvicorn, the model in a tf.function

Both get the same single-sample requests ({"instances": [sample]}, several
distinct real samples: the inputs verify feeds), and each request's expected
answer is what that server answers to it sent alone; node/scripts/load.js
(autocannon) then loads each server at every concurrency (the highest one
for `long_duration` seconds) and counts errors, non-2xx answers, timeouts
and wrong bodies. The two servers' answers alone must also agree within the
model's tolerance. Memory: VmRSS and VmHWM (peak) of each server's process
tree (main process and children) once ready, and just before and just
after the long run. Writes reports/serve/serve.json."""

from __future__ import annotations

import http.client
import importlib.metadata
import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError, NodeError, UsageError, first_line, last_line
from ..core.memory import process_tree, tree_memory
from ..core.paths import NODE_DIR, NODE_MODULES, PROJECT_ROOT
from ..core.progress import NO_PROGRESS, Progress
from ..core.versions import python_versions
from ..folder.artifacts import write_json_atomic
from ..parity.truth import Subject, subject_from_folder
from ..runtime.node_process import node_env, node_executable, run_node_json

CONCURRENCIES = (1, 16, 64)
SERVERS = ("node", "python")
SAMPLES = 8  # distinct single-sample request bodies per model
WARMUP_S = 2.0  # unrecorded load at the highest concurrency before the timed runs
START_TIMEOUT_S = 300.0  # a server's start: load, warm-up, listen
STOP_TIMEOUT_S = 30.0  # SIGTERM, then SIGKILL
REQUEST_TIMEOUT_S = 60.0
REPORT_DIR = PROJECT_ROOT / "reports" / "serve"
LOAD_SCRIPT = NODE_DIR / "scripts" / "load.js"
LISTENING = re.compile(r"listening on (https?://\S+)")


# --- processes ------------------------------------------------------------------


class Server:
    """A server process started from `cmd`: ready once it printed `listening
    on URL` on stdout; stopped with SIGTERM (SIGKILL to its whole tree after
    STOP_TIMEOUT_S). Its stderr goes to a file, for the error it dies with."""

    def __init__(self, kind: str, cmd: list[str], log_dir: Path):
        self.kind, self.cmd = kind, cmd
        self.url: str | None = None
        self.exit_code: int | None = None
        self.said: list[str] = []  # its stdout before `listening`: serve.js's path choice
        self._stderr_path = log_dir / f"{kind}.stderr"
        self._lines: queue.Queue = queue.Queue()
        with open(self._stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                cmd, cwd=PROJECT_ROOT, env=node_env(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=stderr, text=True,
            )  # fmt: skip
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:  # drained to the end, so the pipe never fills
            self._lines.put(line)
        self._lines.put(None)

    def stderr(self) -> str:
        try:
            return self._stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def _failure(self, what: str) -> BridgeError:
        stderr = self.stderr()
        reason = next(
            (ln.strip() for ln in reversed(stderr.splitlines()) if ln.strip().startswith("error:")),
            last_line(stderr),
        )
        return NodeError(f"{self.kind} server {what}: {reason}", stderr)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise self._failure(f"did not say it was listening within {timeout:g} s") from None
            if line is None:
                self.proc.wait()
                raise self._failure(f"exited ({self.proc.returncode}) before listening")
            found = LISTENING.search(line)
            if found:
                self.url = found.group(1).rstrip("/")
                return self.url
            self.said.append(line.rstrip("\n"))

    def memory(self) -> dict:
        return tree_memory(self.proc.pid)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        if self.proc.poll() is None:
            tree = process_tree(self.proc.pid)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                for pid in tree:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait()
        self.exit_code = self.proc.returncode
        return self.exit_code


def server_command(kind: str, model_dir: Path, workers: int | None = None) -> list[str]:
    if kind == "node":
        cmd = [node_executable(), str(NODE_DIR / "serve.js"), "--model", str(model_dir)]
        cmd += ["--workers", str(workers)] if workers is not None else []
    else:
        cmd = [sys.executable, "-m", "tfjs_bridge.bench.baseline_server", "--model", str(model_dir)]
    return [*cmd, "--host", "127.0.0.1", "--port", "0"]


# --- requests -------------------------------------------------------------------


def request_bodies(subject: Subject, samples: int = SAMPLES) -> list[str]:
    """Single-sample row-format bodies from the inputs verify feeds the model
    (the registry data set's real test samples where it has one)."""
    from ..parity.verify import inputs_for

    xs, _ = inputs_for(subject, samples, {}, None)
    names = subject.signature.names
    bodies = []
    for i in range(len(xs[0])):
        instance = (
            xs[0][i].tolist()
            if len(xs) == 1
            else {name: x[i].tolist() for name, x in zip(names, xs, strict=True)}
        )
        bodies.append(json.dumps({"instances": [instance]}, separators=(",", ":")))
    return bodies


def post(url: str, body: str, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, str]:
    """POST a JSON body; (status, response body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("POST", parts.path, body.encode(), {"content-type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        conn.close()


def expected_answers(url: str, bodies: list[str], patience: float = START_TIMEOUT_S) -> list[str]:
    """Each body's answer, sent alone: the exact body the load run expects.
    A 503 (models still loading) is retried until `patience` runs out."""
    answers = []
    deadline = time.monotonic() + patience
    for i, body in enumerate(bodies):
        while True:
            try:
                status, text = post(url, body)
            except OSError as err:
                raise BridgeError(f"{url}: sample {i}: {first_line(err)}") from None
            if status == 503 and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            break
        if status != 200:
            raise BridgeError(f"{url}: sample {i} alone got {status}: {_first(text)}")
        answers.append(text)
    return answers


def _first(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else "(empty body)"


def prediction_arrays(text: str) -> list[np.ndarray]:
    """A row-format answer's predictions as arrays, one per output (by name)."""
    rows = json.loads(text)["predictions"]
    if rows and isinstance(rows[0], dict):
        return [np.asarray([row[k] for row in rows], np.float64) for k in sorted(rows[0])]
    return [np.asarray(rows, np.float64)]


def agreement(a: list[str], b: list[str], atol: float, rtol: float) -> dict:
    """Do two servers' answers to the same bodies agree within the model's
    tolerance? verify's rule (parity.compare), with b's answers as the truth."""
    from ..parity.compare import compare

    worst, within = 0.0, True
    for text_a, text_b in zip(a, b, strict=True):
        ys_a, ys_b = prediction_arrays(text_a), prediction_arrays(text_b)
        names = [[str(i) for i in range(len(ys))] for ys in (ys_b, ys_a)]
        result = compare(ys_b, ys_a, *names, atol, rtol)
        if "outputs" not in result:  # names, counts or shapes differ
            return {"max_abs_diff": None, "within_tolerance": False, "reason": result["reason"]}
        worst = max(worst, result["max_abs"])
        within = within and result["passed"]
    return {"max_abs_diff": worst, "within_tolerance": within, "atol": atol, "rtol": rtol}


def run_load(
    url: str, bodies_file: Path, expected_file: Path, connections: int, duration: float
) -> dict:
    """One node/scripts/load.js run (autocannon): its JSON line."""
    return run_node_json(
        LOAD_SCRIPT, "--url", url, "--body-file", str(bodies_file), "--expected-file",
        str(expected_file), "--connections", str(connections), "--duration", f"{duration:g}",
        timeout=duration + REQUEST_TIMEOUT_S,
    )  # fmt: skip


def _figures(result: dict, samples_per_request: int = 1) -> dict:
    keep = ("requests", "requests_per_s", "p50_ms", "p90_ms", "p99_ms", "max_ms", "errors",
            "non_2xx", "timeouts", "checked", "wrong", "first_wrong", "duration_s")  # fmt: skip
    figures = {k: result.get(k) for k in keep}
    figures["samples_per_s"] = result["requests_per_s"] * samples_per_request
    return figures


def _failed(run: dict) -> int:
    return sum(run.get(k) or 0 for k in ("errors", "non_2xx", "timeouts", "wrong"))


# --- the bench ------------------------------------------------------------------


def _check_args(model_dirs, concurrencies, duration, long_duration, servers) -> None:
    if not model_dirs:
        raise UsageError("bench --serve: no model folders")
    if not concurrencies or any(not isinstance(c, int) or c < 1 for c in concurrencies):
        raise UsageError(f"concurrencies must be positive integers, got {list(concurrencies)}")
    if not (duration > 0 and long_duration > 0):
        raise UsageError(f"durations must be > 0 s, got {duration:g} and {long_duration:g}")
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown or not servers:
        raise UsageError(f"servers: choose from {', '.join(SERVERS)}, got {list(servers)}")


def run_serve_bench(
    model_dirs: list[Path],
    concurrencies: tuple[int, ...] = CONCURRENCIES,
    duration: float = 10.0,
    long_duration: float = 60.0,
    workers: int | None = None,
    servers: tuple[str, ...] = SERVERS,
    report_dir: Path | None = REPORT_DIR,
    progress: Progress = NO_PROGRESS,
    log=lambda message: None,
) -> dict:
    """Load each model's servers at every concurrency (the highest for
    `long_duration` s, the others for `duration` s); the report as a dict,
    also written to report_dir/serve.json (unless report_dir is None).
    `workers` goes to serve.js --workers; `servers` picks node and/or python."""
    concurrencies = tuple(sorted(set(concurrencies)))
    _check_args(model_dirs, concurrencies, duration, long_duration, servers)
    subjects = [subject_from_folder(Path(d)) for d in model_dirs]  # a bad folder fails here
    if "node" in servers:
        node_executable()
    report = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "concurrencies": list(concurrencies),
        "duration_s": duration,
        "long_duration_s": long_duration,
        "samples_per_request": 1,
        "distinct_bodies": SAMPLES,
        "warmup_s": WARMUP_S,
        "workers": workers,
        "cpus": os.cpu_count(),
        "versions": _versions(servers),
        "models": {},
    }
    steps = len(subjects) * len(servers) * (len(concurrencies) + 1)
    progress.start(steps, "bench --serve")
    try:
        for subject in subjects:
            report["models"][subject.name] = _bench_model(
                subject, concurrencies, duration, long_duration, workers, servers, progress, log
            )
    finally:
        progress.close()
    report["ok"] = all(m["ok"] for m in report["models"].values())
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(report_dir / "serve.json", report)
        report["path"] = str(report_dir / "serve.json")
    return report


def _bench_model(subject, concurrencies, duration, long_duration, workers, servers, progress,
                 log) -> dict:  # fmt: skip
    model_dir = subject.model_dir.resolve()
    name = model_dir.name  # both servers name a folder's model after the folder
    bodies = request_bodies(subject)
    result = {"name": name, "model_dir": str(model_dir), "servers": {}}
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "bodies.json").write_text(json.dumps(bodies))
        started: dict[str, Server] = {}
        try:
            # Started together (each loads its model meanwhile), then loaded one at a time.
            for kind in servers:
                cmd = server_command(kind, model_dir, workers)
                started[kind] = Server(kind, cmd, tmp)
                result["servers"][kind] = {"command": cmd, "runs": []}
            answers = {}
            for kind, server in started.items():
                entry = result["servers"][kind]
                try:
                    server.wait_ready()
                    url = f"{server.url}/v1/models/{name}:predict"
                    answers[kind] = expected_answers(url, bodies)
                except BridgeError as err:
                    entry["error"] = str(err)
                    log(f"{name} {kind}: {err}")
                    server.stop()
                    progress.advance(len(concurrencies) + 1)
                    continue
                entry["url"] = url
                entry["said"] = server.said
                for line in server.said:  # which path and batching, and why
                    if " runs on " in line:
                        log(f"{name} {kind}: {line}")
                entry["memory_ready"] = server.memory()
                (tmp / f"{kind}.expected.json").write_text(json.dumps(answers[kind]))
            live = [k for k in started if k in answers]
            top = concurrencies[-1]
            for kind in live:  # unrecorded warm-up at the highest concurrency
                progress.set_label(f"{name} {kind} warm-up")
                entry = result["servers"][kind]
                entry["warmup"] = _figures(_load(entry, tmp, kind, top, WARMUP_S))
                progress.advance()
            for c in concurrencies:
                seconds = long_duration if c == top else duration
                for kind in live:
                    progress.set_label(f"{name} {kind} c={c} ({seconds:g} s)")
                    entry = result["servers"][kind]
                    if c == top:  # memory around the long run: does it stay flat?
                        entry["memory_start"] = started[kind].memory()
                    run = {"concurrency": c, **_figures(_load(entry, tmp, kind, c, seconds))}
                    if c == top:
                        entry["memory_end"] = started[kind].memory()
                        entry["rss_growth_bytes"] = (
                            entry["memory_end"]["rss_bytes"] - entry["memory_start"]["rss_bytes"]
                        )
                    entry["runs"].append(run)
                    progress.advance()
                    log(
                        f"{name} {kind} c={c}: {run['requests_per_s']:,.0f} req/s, "
                        f"p50 {_ms(run['p50_ms'])}, p99 {_ms(run['p99_ms'])}, "
                        f"failed {_failed(run)}"
                    )
        finally:
            for kind, server in started.items():
                result["servers"][kind]["exit_code"] = server.stop()
    if "node" in answers and "python" in answers:
        result["agreement"] = agreement(
            answers["node"], answers["python"], subject.atol, subject.rtol
        )
    result["ratios"] = ratios(result, concurrencies)
    result["ok"] = _model_ok(result, servers)
    return result


def _load(entry: dict, tmp: Path, kind: str, connections: int, seconds: float) -> dict:
    return run_load(
        entry["url"], tmp / "bodies.json", tmp / f"{kind}.expected.json", connections, seconds
    )


def _ms(value) -> str:
    return f"{value:.2f} ms" if value is not None else "-"


def ratios(result: dict, concurrencies: tuple[int, ...]) -> dict:
    """requests/s at the highest concurrency ÷ at the lowest, per server, and
    node ÷ python at each concurrency."""
    lo, hi = concurrencies[0], concurrencies[-1]
    rps = {
        kind: {r["concurrency"]: r["requests_per_s"] for r in entry.get("runs", [])}
        for kind, entry in result["servers"].items()
    }
    out = {f"c{hi}/c{lo}": {}, "node/python": {}}
    for kind, by_c in rps.items():
        if by_c.get(lo) and hi in by_c:
            out[f"c{hi}/c{lo}"][kind] = by_c[hi] / by_c[lo]
    for c in concurrencies:
        node, python = rps.get("node", {}).get(c), rps.get("python", {}).get(c)
        if node is not None and python:
            out["node/python"][str(c)] = node / python
    return out


def _model_ok(result: dict, servers) -> bool:
    for kind in servers:
        entry = result["servers"].get(kind, {})
        if "error" in entry or not entry.get("runs"):
            return False
        if any(_failed(r) for r in [entry.get("warmup", {}), *entry["runs"]]):
            return False
        if not all(r.get("requests") for r in entry["runs"]):
            return False
    agreed = result.get("agreement")
    return agreed is None or agreed["within_tolerance"]


def _versions(servers) -> dict:
    out = {"python": python_versions()}
    for dist in ("fastapi", "uvicorn", "starlette"):
        try:
            out["python"][dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out["python"][dist] = "not installed"
    node = {"node": subprocess.run([node_executable(), "--version"], capture_output=True,
                                   text=True).stdout.strip()}  # fmt: skip
    for package in ("autocannon", "fastify", "@tensorflow/tfjs-node"):
        try:
            manifest = json.loads((NODE_MODULES / package / "package.json").read_text())
            node[package] = manifest["version"]
        except (OSError, ValueError, KeyError):
            node[package] = "not installed"
    out["node"] = node
    return out


# --- printing -------------------------------------------------------------------


def print_serve_bench(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    concurrencies = report["concurrencies"]
    table = Table(
        title="tfjs-bridge bench --serve: requests/s (single-sample requests), p50 / p99 latency"
    )
    for column in ["model", "server", *(f"c={c}" for c in concurrencies), "failed",
                   f"RSS before → after c={concurrencies[-1]} (peak)"]:  # fmt: skip
        table.add_column(column, justify="left" if column in {"model", "server"} else "right")
    for name, model in report["models"].items():
        for kind, entry in model["servers"].items():
            if "error" in entry:
                table.add_row(name, kind, *([""] * len(concurrencies)), "", entry["error"])
                continue
            runs = {r["concurrency"]: r for r in entry["runs"]}
            cells = [
                f"{runs[c]['requests_per_s']:,.0f}/s {_ms(runs[c]['p50_ms'])} / "
                f"{_ms(runs[c]['p99_ms'])}"
                if c in runs
                else ""
                for c in concurrencies
            ]
            failed = sum(_failed(r) for r in [entry.get("warmup", {}), *entry["runs"]])
            start, end = entry.get("memory_start"), entry.get("memory_end")
            memory = (
                f"{start['rss_bytes'] / 2**20:,.0f} → {end['rss_bytes'] / 2**20:,.0f} MiB "
                f"({start['peak_rss_bytes'] / 2**20:,.0f} → {end['peak_rss_bytes'] / 2**20:,.0f})"
                if start and end
                else ""
            )
            table.add_row(name, kind, *cells, str(failed), memory)
    console.print(table)
    for name, model in report["models"].items():
        parts = []
        scaling, versus = model["ratios"].values()
        parts += [f"{next(iter(model['ratios']))} {kind}: {v:.2f}×" for kind, v in scaling.items()]
        parts += [f"node/python at c={c}: {v:.2f}×" for c, v in versus.items()]
        agreed = model.get("agreement")
        if agreed:
            parts.append(
                f"node vs python max |diff| {agreed['max_abs_diff']:.2g}"
                + ("" if agreed["within_tolerance"] else " (outside the tolerance)")
            )
        if parts:
            console.print(f"{name}: {'; '.join(parts)}", highlight=False, soft_wrap=True)
