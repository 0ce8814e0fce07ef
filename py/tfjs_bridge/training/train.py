"""Train a registry model in tf-keras and save it as a model folder:
keras.h5 (for the converter's `keras` input), a SavedModel (for the graph
converter and tf.node.loadSavedModel), and manifest.json."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..conversion.export import save_h5, save_serving
from ..core.errors import UsageError
from ..core.progress import NO_PROGRESS, Progress
from ..core.quiet_tf import import_tensorflow, native_stderr_hidden
from ..core.versions import python_versions
from ..folder import artifacts
from ..folder.signature import read_signature
from ..folder.tokenizer import TOKENIZER_FILE
from . import data, pipeline
from .averaging import averaged_weights, averaging_optimizer
from .comparison import accuracy_comparison
from .distribute import Distribution, barrier, collective_failure
from .registry import ModelSpec, build_keras
from .text_baseline import bag_of_words_predictions

STEPS_PER_EXECUTION = 50


def _epoch_log(tf_keras, log_path: Path, x_test, y_test, classifier: bool, write: bool):
    class EpochLog(tf_keras.callbacks.Callback):
        """Per epoch: seconds (training only), the logs, and test accuracy for
        classifiers (the time to a target accuracy). Kept in log_path beside
        the resume checkpoint, so a resumed run reports every epoch (written
        by the chief only; every worker evaluates: it is a collective)."""

        def on_train_begin(self, logs=None):
            self.record = {"epoch_seconds": [], "history": {}, "test_accuracy": []}
            if log_path.exists():
                self.record = json.loads(log_path.read_text())
            self.resumed_from = None

        def on_epoch_begin(self, epoch, logs=None):
            if self.resumed_from is None:
                self.resumed_from = epoch
                # Epochs logged after the last checkpoint are run again: forget them.
                self.record["epoch_seconds"] = self.record["epoch_seconds"][:epoch]
                self.record["test_accuracy"] = self.record["test_accuracy"][:epoch]
                self.record["history"] = {k: v[:epoch] for k, v in self.record["history"].items()}
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.record["epoch_seconds"].append(time.perf_counter() - self.start)
            for key, value in (logs or {}).items():
                self.record["history"].setdefault(key, []).append(float(value))
            if classifier:
                with averaged_weights(self.model):  # what training will save
                    scores = self.model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
                self.record["test_accuracy"].append(float(scores[1]))
            if write:
                artifacts.write_json_atomic(log_path, self.record)

    return EpochLog()


def _progress_callback(tf_keras, total_steps: int, name: str, progress: Progress):
    class StepProgress(tf_keras.callbacks.Callback):
        """One progress task over every batch of every epoch."""

        def on_train_begin(self, logs=None):
            progress.start(total_steps, f"train {name}")

        def on_epoch_begin(self, epoch, logs=None):
            self.steps_done = 0

        def on_train_batch_end(self, batch, logs=None):
            # With steps_per_execution, Keras reports only every Nth batch.
            progress.advance(batch + 1 - self.steps_done)
            self.steps_done = batch + 1

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            progress.set_label(f"train {name} (epoch {epoch + 1}: {shown})")

        def on_train_end(self, logs=None):
            progress.close()

    return StepProgress()


def _against_bag_of_words(model, dataset: data.Dataset) -> dict:
    """A binary text classifier against the bag-of-words baseline fitted on
    the same training ids and scored on the same test mails: both
    accuracies, the difference and its paired bootstrap 95 % interval."""
    probabilities = model.predict(dataset.x_test, batch_size=256, verbose=0)
    predicted = (probabilities.ravel() > 0.5).astype(np.int64)  # Keras's accuracy threshold
    baseline = bag_of_words_predictions(
        dataset.x_train, dataset.y_train, dataset.x_test, dataset.tokenizer.vocab_size
    )
    return accuracy_comparison(predicted, baseline, dataset.y_test)


def save_model(model, folder: Path) -> None:
    """keras.h5 and serving SavedModels (an unrolled twin, same weights), plain and XLA."""
    save_h5(model, folder / artifacts.KERAS_H5)
    save_serving(model, folder)


def resume_dir(out_root: Path, name: str) -> Path:
    """Where an interrupted training run leaves what `train --resume` needs."""
    return out_root / f".{name}.resume"


def train(
    spec: ModelSpec,
    out_root: Path,
    epochs: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: Progress = NO_PROGRESS,
    resume: bool = False,
    log=None,
    distribution: Distribution | None = None,
) -> dict:
    """Train spec and write out_root/<name>/ atomically; returns the manifest.

    Every epoch leaves a checkpoint (tf-keras BackupAndRestore: weights,
    optimizer, epoch) in out_root/.<name>.resume/; resume=True continues from
    the last one, and the run still ends after `epochs` epochs in all.
    Under a distribution strategy (distribute.py) every worker runs this; only
    the chief writes the model folder, the checkpoint and the epoch log."""
    dist = distribution or Distribution()
    target = out_root / spec.name
    if not dist.chief:  # writes only to a temporary folder: no lock to take
        return _train_locked(
            spec, out_root, target, epochs, limit, seed, progress, resume, log, dist
        )
    with artifacts.model_lock(target, log):
        return _train_locked(
            spec, out_root, target, epochs, limit, seed, progress, resume, log, dist
        )


def _train_locked(spec, out_root, target, epochs, limit, seed, progress, resume, log, dist) -> dict:
    tf = import_tensorflow()
    import tf_keras

    dataset = data.load(spec.data, limit)  # fails fast, before any training
    with native_stderr_hidden():  # the multi-worker gRPC server logs through absl
        strategy = dist.strategy(tf)  # before anything else: it may set up devices
    epochs = spec.epochs if epochs is None else epochs
    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    backup = resume_dir(out_root, spec.name)
    if dist.chief:
        if resume and not backup.exists() and log:
            log(f"nothing to resume for {spec.name} in {backup}: starting at epoch 1")
        if not resume:
            shutil.rmtree(backup, ignore_errors=True)
        backup.mkdir(parents=True, exist_ok=True)
    with native_stderr_hidden():
        barrier(tf, strategy)

    # steps_per_execution runs 50 steps per call from Python (about 2x faster
    # for these small models); XLA where the spec says it helps, and where
    # the strategy allows it (distribute.py: not under one on CPUs).
    jit_compile = spec.jit_compile and not dist.distributed
    with strategy.scope():
        model = build_keras(spec)
        optimizer = averaging_optimizer(
            tf, tf_keras, spec.optimizer, spec.learning_rate, spec.ema_momentum
        )
        model.compile(
            optimizer=optimizer,
            loss=spec.loss,
            metrics=list(spec.metrics),
            jit_compile=jit_compile,
            steps_per_execution=STEPS_PER_EXECUTION,
        )
    # The global batch is the registry's unless asked otherwise: the same
    # steps as one process, split between the replicas.
    global_batch = dist.global_batch or spec.batch_size
    if global_batch % strategy.num_replicas_in_sync:
        raise UsageError(
            f"a global batch of {global_batch} does not split between "
            f"{strategy.num_replicas_in_sync} replicas: use --global-batch N×replicas"
        )
    batches = pipeline.training_batches(
        tf, dataset.x_train, dataset.y_train, global_batch, seed, dist.distributed
    )
    epoch_log = _epoch_log(
        tf_keras, backup / "epochs.json", dataset.x_test, dataset.y_test,
        spec.task == "classification", write=dist.chief,
    )  # fmt: skip
    # The log first, the checkpoint second: a kill between them re-runs the epoch.
    callbacks = [
        epoch_log,
        tf_keras.callbacks.BackupAndRestore(str(backup / "checkpoint"), delete_checkpoint=False),
    ]
    if progress is not NO_PROGRESS:  # a callback on every step costs a little: only when shown
        steps = (
            pipeline.steps_per_epoch(len(dataset.x_train), global_batch, dist.distributed) * epochs
        )
        callbacks.append(_progress_callback(tf_keras, steps, spec.name, progress))
    started = time.perf_counter()
    failure = None
    with native_stderr_hidden():  # XLA logs each compilation through absl
        try:
            model.fit(batches, epochs=epochs, verbose=0, callbacks=callbacks)
        except tf.errors.OpError as err:
            failure = collective_failure(tf, err)  # a worker gone: one line, not its log
            if failure is None:
                raise
    if failure is not None:
        raise failure
    train_seconds = time.perf_counter() - started
    record = epoch_log.record
    scores = model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0)
    names = ["loss", *spec.metrics]
    test = dict(zip(names, map(float, np.atleast_1d(scores)), strict=True))
    if "baseline_last_value_mse" in dataset.info:
        test["baseline_last_value_mse"] = dataset.info["baseline_last_value_mse"]
    if spec.extra.get("baseline") == "bag_of_words":
        test.update(_against_bag_of_words(model, dataset))
    if "predict_value" in spec.extra:
        probe = np.float32(spec.extra["predict_value"]).reshape(1, *spec.input_shape)
        test["prediction"] = float(model(probe, training=False).numpy().ravel()[0])

    manifest = {
        "model": spec.name,
        "spec": spec.to_json(),
        "signature": read_signature(model).to_json(),
        "seed": seed,
        "epochs": len(record["epoch_seconds"]),
        "resumed_from_epoch": epoch_log.resumed_from or None,
        "limit": limit,
        "data": dataset.info,
        "history": record["history"],
        "epoch_seconds": record["epoch_seconds"],
        "test_accuracy_per_epoch": record["test_accuracy"] or None,
        "training": {
            "jit_compile": jit_compile,
            "steps_per_execution": STEPS_PER_EXECUTION,
            "ema_momentum": spec.ema_momentum,
            **dist.manifest(strategy, global_batch, spec.learning_rate),
        },
        "train_seconds": train_seconds,
        "test": test,
        "versions": python_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if dataset.tokenizer is not None:  # text: the ids' tokenizer goes with the model
        manifest["tokenizer"] = {"file": TOKENIZER_FILE, **dataset.tokenizer.settings()}
    if not dist.chief:
        # Saving may read distributed variables: every worker saves, as
        # TensorFlow's multi-worker guide says, the others into a folder removed here.
        with tempfile.TemporaryDirectory(prefix=f".{spec.name}.worker-", dir=out_root) as tmp:
            save_model(model, Path(tmp))
        return manifest
    with artifacts.staged_dir(target) as staging:
        save_model(model, staging)
        if dataset.tokenizer is not None:
            dataset.tokenizer.save(staging / TOKENIZER_FILE)
        manifest["files"] = artifacts.file_hashes(staging)
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    shutil.rmtree(backup, ignore_errors=True)  # the model is in place: nothing to resume
    return manifest
