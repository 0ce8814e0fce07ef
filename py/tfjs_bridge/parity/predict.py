"""`tfjs-bridge predict`: one model folder run on a Node path, .npy in, .npy
out, in a NodeWorker session.

It lives in parity/, not runtime/, because the inputs are checked against
the folder's signature as verify reads it (truth.subject_from_folder: the
manifest's spec and signature, or the legacy one-input signature), and
runtime/ sits below parity/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import UsageError
from ..folder.checked_inputs import load_inputs
from ..folder.npy import save_array
from ..runtime.runtimes import RUNTIMES
from ..runtime.worker_process import NodeWorker
from .truth import subject_from_folder


@dataclass(frozen=True)
class Prediction:
    written: list[tuple[Path, np.ndarray]]  # each output file and what it holds
    format: str  # the format Node ran
    backend: str
    why: str  # why that format (the fastest verified path, or the one asked for)


def output_paths(output_path: Path, names: list[str]) -> list[Path]:
    """Where a model with several outputs writes them: OUTPUT with _NAME
    after its stem, for each output name (one output: OUTPUT itself)."""
    return [output_path.with_name(f"{output_path.stem}_{n}{output_path.suffix}") for n in names]


def predict(
    model_dir: Path,
    input_path: Path,
    output_path: Path,
    runtime: str | None = None,
    allow_nonfinite: bool = False,
    timeout: float | None = None,
) -> Prediction:
    """Run MODEL_DIR on `runtime` (a Node path; None: the fastest verified one)
    on the inputs in INPUT_PATH (.npy, or .npz by input name), checked
    against the folder's signature, and save each output as .npy."""
    if runtime is not None and runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime '{runtime}' (known: {', '.join(RUNTIMES)})")
    subject = subject_from_folder(model_dir)  # a missing folder or manifest fails here
    xs = load_inputs(input_path, subject.signature, allow_nonfinite)
    rt = RUNTIMES.get(runtime)
    with NodeWorker(rt.backend if rt else "tensorflow", timeout=timeout) as worker:
        loaded = worker.load(model_dir, rt.format if rt else None)
        ys, _ = worker.predict(loaded["handle"], xs, subject.signature.names)
    targets = [output_path] if len(ys) == 1 else output_paths(output_path, loaded["outputs"])
    written = list(zip(targets, ys, strict=True))
    for target, y in written:
        save_array(target, y)
    return Prediction(written, loaded["format"], worker.backend, loaded["why"])
