"""Train a registry model in tf-keras and save it as a model folder:
keras.h5 (for the converter's `keras` input), a SavedModel (for the graph
converter and tf.node.loadSavedModel), and manifest.json."""

from __future__ import annotations

import math
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np

from . import artifacts, data
from .registry import ModelSpec, build_keras
from .tfimport import import_tensorflow
from .versions import python_versions


def _progress_callback(tf_keras, total_steps: int, name: str):
    class ClickProgress(tf_keras.callbacks.Callback):
        """One click progress bar over every batch of every epoch."""

        def on_train_begin(self, logs=None):
            self.bar = click.progressbar(
                length=total_steps, label=f"train {name}", file=click.get_text_stream("stderr")
            )
            self.bar.__enter__()

        def on_train_batch_end(self, batch, logs=None):
            self.bar.update(1)

        def on_epoch_end(self, epoch, logs=None):
            shown = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items())
            self.bar.label = f"train {name} (epoch {epoch + 1}: {shown})"

        def on_train_end(self, logs=None):
            self.bar.__exit__(None, None, None)

    return ClickProgress()


def _epoch_timer(tf_keras):
    class EpochTimer(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def save_model(model, spec: ModelSpec, folder: Path) -> None:
    tf = import_tensorflow()
    with warnings.catch_warnings():
        # HDF5 is "legacy" to tf-keras, but it is what the converter's keras input reads.
        warnings.filterwarnings("ignore", message="You are saving your model as an HDF5")
        model.save(folder / artifacts.KERAS_H5, include_optimizer=False, save_format="h5")

    # The SavedModel (and the graph model converted from it) serves an unrolled
    # twin with the same weights: a Keras RNN otherwise exports a While loop,
    # which the tfjs graph executor can only run through executeAsync, slowly
    # (and, for tf-keras 2.19 exports, not at all: it cannot reach the output).
    # The named input and output let Node find them without guessing.
    twin = build_keras(spec, unroll=True)
    twin.set_weights(model.get_weights())

    @tf.function(
        input_signature=[tf.TensorSpec([None, *spec.input_shape], tf.float32, name="input")]
    )
    def serve(x):
        return {"output": twin(x, training=False)}

    tf.saved_model.save(
        twin, str(folder / artifacts.SAVED_MODEL), signatures={"serving_default": serve}
    )


def train(
    spec: ModelSpec,
    out_root: Path,
    epochs: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train spec and write out_root/<name>/ atomically; returns the manifest."""
    tf = import_tensorflow()
    import tf_keras

    dataset = data.load(spec.data, limit)  # fails fast, before any training
    epochs = spec.epochs if epochs is None else epochs
    tf_keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()

    model = build_keras(spec)
    optimizer = tf_keras.optimizers.get(
        {"class_name": spec.optimizer, "config": {"learning_rate": spec.learning_rate}}
    )
    model.compile(optimizer=optimizer, loss=spec.loss, metrics=list(spec.metrics))
    timer = _epoch_timer(tf_keras)
    callbacks = [timer]
    if progress:
        steps = math.ceil(len(dataset.x_train) / spec.batch_size) * epochs
        callbacks.append(_progress_callback(tf_keras, steps, spec.name))
    started = time.perf_counter()
    history = model.fit(
        dataset.x_train,
        dataset.y_train,
        epochs=epochs,
        batch_size=spec.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks,
    )
    train_seconds = time.perf_counter() - started
    scores = model.evaluate(dataset.x_test, dataset.y_test, batch_size=256, verbose=0)
    names = ["loss", *spec.metrics]
    test = dict(zip(names, map(float, np.atleast_1d(scores)), strict=True))
    if "baseline_last_value_mse" in dataset.info:
        test["baseline_last_value_mse"] = dataset.info["baseline_last_value_mse"]
    if "predict_value" in spec.extra:
        probe = np.float32(spec.extra["predict_value"]).reshape(1, *spec.input_shape)
        test["prediction"] = float(model(probe, training=False).numpy().ravel()[0])

    manifest = {
        "model": spec.name,
        "spec": spec.to_json(),
        "seed": seed,
        "epochs": epochs,
        "limit": limit,
        "data": dataset.info,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "epoch_seconds": timer.seconds,
        "train_seconds": train_seconds,
        "test": test,
        "versions": python_versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    target = out_root / spec.name
    with artifacts.staged_dir(target) as staging:
        save_model(model, spec, staging)
        manifest["files"] = artifacts.file_hashes(staging)
        artifacts.write_json_atomic(staging / artifacts.MANIFEST, manifest)
    return manifest
