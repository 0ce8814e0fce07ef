"""The long-running Node programs the CLI becomes: the model service
(node/serve.js, `tfjs-bridge serve`) and the browser demo (node/demo.js,
`tfjs-bridge demo`). Their command lines are built here, every flag spelled
out; `become` replaces this process with one (signals go straight to Node)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

from ..core.paths import NODE_DIR
from .node_process import node_executable

# serve.js --batching: how a batch that is not full runs.
BATCHING = ("auto", "padded", "unpadded")
BATCHING_HELP = ("auto: batches at their own size where that changes no answer's bits "
                 "(checked at load), else padded to --max-batch.")  # fmt: skip


def serve_command(
    models: tuple[str, ...] | list[str],
    host: str = "127.0.0.1",
    port: int = 8501,
    workers: int | None = None,
    max_batch: int = 32,
    max_wait_ms: int = 0,
    batching: str = "auto",
    queue_limit: int = 1024,
    timeout_ms: int = 10000,
    fmt: str | None = None,
    max_sequences: int | None = None,
    stream_idle_ms: int | None = None,
    max_stream_batch: int | None = None,
    http_processes: int | None = None,
) -> list[str]:
    """node serve.js's argv for MODELS ([NAME=]MODEL_DIR each); workers None:
    serve.js's default; fmt None: each model's fastest verified path; the
    :stream options (docs/streaming.md) None: serve.js's defaults;
    http_processes None: one (serve.js checks the upper bound)."""
    args = [node_executable(), str(NODE_DIR / "serve.js"), "--host", host, "--port", str(port),
            "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
            "--batching", batching, "--queue-limit", str(queue_limit),
            "--timeout-ms", str(timeout_ms)]  # fmt: skip
    if workers:
        args += ["--workers", str(workers)]
    if fmt:
        args += ["--format", fmt]
    if http_processes:
        args += ["--http-processes", str(http_processes)]
    streaming = {"--max-sequences": max_sequences, "--stream-idle-ms": stream_idle_ms,
                 "--max-stream-batch": max_stream_batch}  # fmt: skip
    for flag, value in streaming.items():
        if value is not None:
            args += [flag, str(value)]
    for model in models:
        args += ["--model", model]
    return args


def demo_command(
    models_root: Path, host: str = "127.0.0.1", port: int = 8080, examples: Path | None = None
) -> list[str]:
    """node demo.js's argv: the page for the models under models_root (and
    the test examples with Keras's answers, training/demo_examples.py)."""
    argv = [node_executable(), str(NODE_DIR / "demo.js"), "--models", str(models_root),
            "--host", host, "--port", str(port)]  # fmt: skip
    return argv + (["--examples", str(examples)] if examples else [])


def become(argv: list[str]) -> NoReturn:
    """Replace this process with argv (what we printed is flushed first)."""
    sys.stdout.flush()
    os.execv(argv[0], argv)
