"""`tfjs-bridge train` as library calls: train registry models in this
process (train_models), or start N local multi-worker processes of the same
command and report each one's exit (run_workers, `train --workers N`).

The launching process runs no TensorFlow: it checks what it can (strategy,
TF_CONFIG, model names) before any worker starts, rebuilds the command's
options for the workers (worker_args), and leaves the distribution to
distribute.run_local_workers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import BridgeError, UsageError
from ..core.paths import models_root
from ..core.progress import NO_PROGRESS, Progress
from . import distribute
from .registry import ModelSpec, resolve
from .train import train as train_model


@dataclass(frozen=True)
class TrainOptions:
    """What every model of one `train` run shares (the command's options
    other than the model names and the distribution)."""

    epochs: int | None = None  # None: the spec's
    limit: int | None = None  # at most N train and N test samples
    seed: int = 0
    resume: bool = False
    global_batch: int | None = None  # None: the registry's
    record_cluster: bool = True
    out: Path | None = None  # None: shared_models/

    @property
    def root(self) -> Path:
        return models_root(self.out)


@dataclass(frozen=True)
class Trained:
    """One model trained (what the chief reports)."""

    spec: ModelSpec
    manifest: dict
    folder: Path

    def lines(self) -> list[str]:
        """What `train` prints for it."""
        m, name = self.manifest, self.spec.name
        resumed = [f"{name}: resumed after epoch {m['resumed_from_epoch']}"]
        test = m["test"]
        shown = ", ".join(f"{k} {v:.4g}" for k, v in test.items() if isinstance(v, float))
        done = f"{name}: {m['epochs']} epochs in {m['train_seconds']:.1f} s; test {shown}"
        done += f" -> {self.folder}"
        lines = (resumed if m.get("resumed_from_epoch") else []) + [done]
        if "difference_ci95" in test:
            low, high = (100 * v for v in test["difference_ci95"])
            lines.append(
                f"{name}: test accuracy {100 * test['accuracy']:.2f} % against "
                f"{100 * test['baseline_accuracy']:.2f} % for the bag-of-words baseline: "
                f"{100 * test['difference']:+.2f} points, paired bootstrap 95 % interval "
                f"[{low:+.2f}, {high:+.2f}] ({test['only_model_right']} mails only the model "
                f"gets right, {test['only_baseline_right']} only the baseline)"
            )
        return lines


def train_models(
    models: tuple[str, ...] | list[str],
    options: TrainOptions = TrainOptions(),  # noqa: B008 (frozen)
    strategy: str | None = None,
    replicas: int = 2,
    log: Callable[[str], None] | None = None,
    progress: Callable[[], AbstractContextManager[Progress]] = lambda: nullcontext(NO_PROGRESS),
) -> Iterator[Trained]:
    """Train registry MODELS (none: all) one after the other in this
    process, yielding each as it is done; a non-chief task of a cluster
    yields nothing (the chief reports). `progress` makes each model's
    progress (the CLI: a terminal bar)."""
    dist = distribute.plan(strategy or "default", replicas, options.record_cluster,
                           options.global_batch)  # fmt: skip
    root = options.root
    for spec in resolve(models):
        with progress() as bar:
            manifest = train_model(
                spec, root, epochs=options.epochs, limit=options.limit, seed=options.seed,
                resume=options.resume, log=log, progress=bar, distribution=dist,
            )  # fmt: skip
        if dist.chief:
            yield Trained(spec, manifest, root / spec.name)


def worker_args(models: tuple[str, ...] | list[str], options: TrainOptions) -> list[str]:
    """The `train` arguments each local worker gets (run_local_workers adds
    --strategy multi-worker, and TF_CONFIG sets the cluster)."""
    args = [*models, "--seed", str(options.seed)]
    args += ["--epochs", str(options.epochs)] if options.epochs is not None else []
    args += ["--limit", str(options.limit)] if options.limit is not None else []
    args += ["--resume"] if options.resume else []
    args += ["--global-batch", str(options.global_batch)] if options.global_batch else []
    args += [] if options.record_cluster else ["--no-record-cluster"]
    args += ["--out", str(options.out)] if options.out is not None else []
    return args


def check_launch(
    models: tuple[str, ...] | list[str], strategy: str | None, environ=os.environ
) -> None:
    """What `train --workers` refuses before starting any worker."""
    if strategy not in (None, "multi-worker"):
        raise UsageError(
            f"--workers starts multi-worker processes; it cannot be --strategy {strategy}"
        )
    if environ.get("TF_CONFIG"):
        raise UsageError("--workers sets each local worker's TF_CONFIG: unset TF_CONFIG first")
    resolve(models)  # an unknown model fails here, not in N workers


def exit_line(status: distribute.WorkerExit) -> str:
    """One worker's exit as `train --workers` prints it."""
    return status.describe() + (f": {status.last_line}" if status.code and status.last_line else "")


def run_workers(
    models: tuple[str, ...] | list[str],
    workers: int,
    strategy: str | None = None,
    options: TrainOptions = TrainOptions(),  # noqa: B008 (frozen)
    say: Callable[[str], None] = lambda line: None,
) -> list[distribute.WorkerExit]:
    """`train --workers N`: N multi-worker processes of the same command on
    127.0.0.1; `say` gets each one's exit_line. Any worker failing is a
    BridgeError (after every exit is said)."""
    check_launch(models, strategy)
    exits = distribute.run_local_workers(worker_args(models, options), workers)
    for status in exits:
        say(exit_line(status))
    failed = [s for s in exits if s.code != 0]
    if failed:
        raise BridgeError(
            f"{len(failed)} of {workers} workers failed ({failed[0].describe()}): "
            "rerun with --resume to continue from the last completed epoch"
        )
    return exits
