"""One long-lived tensorflowjs_converter process for many conversions
(`convert` of several models or formats, a fuzz run, the tests' models).

Every conversion starts `tensorflowjs_converter` afresh, and the start
(importing TensorFlow, TF Decision Forests and JAX) costs about 7 s of CPU,
against well under one for converting a small model. Like the
long-lived Node worker per backend, `shared_converter()` keeps one Python
process that imports the converter once and runs each conversion on the
same argument list (`tensorflowjs.converters.converter.convert(args)`, what
the command's entry point calls); convert.py's `run_converter` sends its
conversions there while one is active, and a failure reads as the command's would:
`tensorflowjs_converter failed: <last line>`. A process that dies is started
again for the next conversion.

Run as `python -m tfjs_bridge.conversion.converter_process`, it is that process: one JSON
argument list per line on stdin, one JSON reply per line on stdout."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ..core.errors import BridgeError, last_line


def converter_env() -> dict[str, str]:
    """The environment every tensorflowjs_converter run gets, in or out of the
    shared process. TF_ENABLE_ONEDNN_OPTS=0: with oneDNN on (TensorFlow's
    default on CPUs with AVX-512 VNNI, or a user's TF_ENABLE_ONEDNN_OPTS=1),
    Grappler's remapper fuses MatMul + BiasAdd + Tanh into one _FusedMatMul,
    an activation no tfjs backend applies ("Activation: tanh has not been
    implemented for the Node.js backend"): a SimpleRNN's graph model then
    loads nowhere. Off, the graph is the same whatever CPU converted it."""
    return {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
        "TF_ENABLE_ONEDNN_OPTS": "0",
    }


class ConverterError(BridgeError):
    """tensorflowjs_converter refused a conversion: its reason, in one line."""


class ConverterProcess:
    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.conversions = 0

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=converter_env(),
        )

    def run(self, args: list[str]) -> str:
        """convert.run_converter's contract: stdout, or a ConverterError
        (export catches that one: the format is unsupported, the others still run)."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        self.conversions += 1
        try:
            self.proc.stdin.write(json.dumps(args) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.stderr.seek(0)
            tail = last_line(self.stderr.read()[-4000:])
            raise ConverterError(f"tensorflowjs_converter failed: the process died ({tail})")
        reply = json.loads(line)
        if not reply["ok"]:
            raise ConverterError(f"tensorflowjs_converter failed: {reply['error']}")
        return reply.get("stdout", "")

    def cpu_seconds(self) -> float:
        """CPU time the running converter process has used (Linux /proc), 0 if none."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self.stderr.close()


_active: list[ConverterProcess] = []  # where run_converter sends conversions, if anywhere


def active_process() -> ConverterProcess | None:
    return _active[-1] if _active else None


@contextlib.contextmanager
def shared_converter():
    """run_converter goes to one long-lived converter process until the block
    ends (an enclosing one's, if there is one: a process is started once)."""
    if _active:
        yield _active[-1]
        return
    process = ConverterProcess()
    _active.append(process)
    try:
        yield process
    finally:
        _active.remove(process)
        process.close()


INSTALLED: list[ConverterProcess] = []  # the process install_for_process started


def install_for_process() -> None:
    """shared_converter for the rest of this process (e.g. a fuzz job's process):
    the converter process is closed, and so waited for, at exit."""
    process = ConverterProcess()
    _active.append(process)
    INSTALLED.append(process)
    atexit.register(process.close)


def _serve() -> None:
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the converter prints must not reach the replies
    from tensorflowjs.converters import converter

    for line in sys.stdin:
        args = json.loads(line)
        try:
            converter.convert(args)
            reply = {"ok": True}
        except BaseException as exc:  # noqa: BLE001 - the reply carries it, as stderr would
            # as convert.converter_reason reads the command's stderr: the
            # exception's lines after its name ("Unsupported Ops …: the ops")
            lines = [text.strip() for text in str(exc).strip().splitlines() if text.strip()]
            error = ": ".join([type(exc).__name__, *lines])[:500]
            reply = {"ok": False, "error": error}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


if __name__ == "__main__":
    _serve()
