"""The Python side of a parity check: a model folder's truth, computed by the
framework that trained it, and the output names each format should carry.

A folder's manifest says what the truth is ("reference"):
  tf_keras     keras.h5 loaded in tf-keras (registry models, user .h5 files)
  keras3       source.keras loaded in Keras 3 (user .keras files)
  saved_model  saved_model/ served by TensorFlow (user SavedModels that are not Keras)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..conversion.keras_loader import KERAS3, TF_KERAS, load_keras
from ..core.errors import BridgeError
from ..core.quiet_tf import import_tensorflow
from ..folder import artifacts
from ..folder.formats import FORMATS
from ..folder.signature import Signature, legacy_signature

CHUNK = 1000  # samples per call, on both sides


@dataclass
class Subject:
    """One model folder to verify, as its manifest describes it."""

    name: str
    model_dir: Path
    input_shape: tuple[int | None, ...]
    data: str | None  # registry data set for real inputs, or None
    classifier: bool
    atol: float
    rtol: float
    reference_kind: str
    reference_file: str
    # the model's inputs (names, dtypes, domains) and output names; None: one float input
    signature: Signature | None = None
    # format -> its conversion's record, for the formats whose weights are
    # quantized (convert --quantize): verify judges those by a budget
    quantized: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.signature is None:
            self.signature = legacy_signature(self.input_shape, [])

    @property
    def formats(self) -> list[str]:
        """The formats its folder holds, in FORMATS order."""
        return [name for name, f in FORMATS.items() if f.present(self.model_dir)]


def subject_from_folder(model_dir: Path) -> Subject:
    manifest = artifacts.read_manifest(model_dir)
    spec = manifest.get("spec")
    if not isinstance(spec, dict) or "input_shape" not in spec:
        raise BridgeError(f"{model_dir / artifacts.MANIFEST}: has no model spec (input_shape)")
    reference = manifest.get("reference", {"kind": "tf_keras", "file": artifacts.KERAS_H5})
    recorded = manifest.get("signature")
    signature = (
        Signature.from_json(recorded) if recorded else legacy_signature(spec["input_shape"], [])
    )
    return Subject(
        name=spec.get("name", model_dir.name),
        model_dir=model_dir,
        input_shape=tuple(spec["input_shape"]),
        data=spec.get("data"),
        classifier=spec.get("task") in ("classification", "binary_classification"),
        atol=float(spec.get("atol", 1e-5)),
        rtol=float(spec.get("rtol", 1e-5)),
        reference_kind=reference["kind"],
        reference_file=reference["file"],
        signature=signature,
        quantized={
            fmt: c for fmt, c in manifest.get("conversions", {}).items() if c.get("quantize")
        },
    )


class Reference:
    """Runs the subject's original model in Python."""

    def __init__(self, subject: Subject):
        self.subject = subject
        tf = import_tensorflow()
        path = subject.model_dir / subject.reference_file
        kind = subject.reference_kind
        self.keras_model = None  # the Keras model itself, when the truth is one (bench times it)
        # The truth must be the file that was trained, not a tampered copy.
        if path.is_dir():
            artifacts.check_folder_integrity(subject.model_dir, subject.reference_file)
        else:
            artifacts.check_integrity(subject.model_dir, [subject.reference_file])
        if kind == "tf_keras":
            model = load_keras(path, TF_KERAS)
            self.keras_model = model
            self.output_names = list(model.output_names)
            self._call = lambda xs: _as_list(model(_one_or_list(xs), training=False))
        elif kind == "keras3":
            from ..conversion import keras3

            model = load_keras(path, KERAS3)
            self.keras_model = model
            self.output_names = keras3.output_names(model)
            self._call = lambda xs: _as_list(model(_one_or_list(xs), training=False))
        elif kind == "saved_model":
            serve = tf.saved_model.load(str(path)).signatures["serving_default"]
            keys = subject.signature.names
            self.output_names = sorted(serve.structured_outputs)

            def call(xs):
                ys = serve(**{k: tf.constant(x) for k, x in zip(keys, xs, strict=True)})
                return [ys[k] for k in self.output_names]

            self._call = call
        else:
            raise BridgeError(f"{subject.model_dir}: unknown reference kind '{kind}'")
        self.signature_names = self._signature_names(tf)

    def _signature_names(self, tf) -> list[str] | None:
        """Output keys of the SavedModel's serving signature, sorted (Node sorts them too)."""
        folder = self.subject.model_dir / FORMATS["saved_model"].folder
        if not folder.exists():
            return None
        serve = tf.saved_model.load(str(folder)).signatures["serving_default"]
        return sorted(serve.structured_outputs)

    def expected_names(self, fmt: str) -> list[str]:
        return self.output_names if fmt == "layers" else self.signature_names or self.output_names

    def __call__(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs in output_names order for the inputs (one array per input,
        in the signature's order), computed in chunks."""
        n = len(xs[0])
        parts = [
            [np.asarray(y) for y in self._call([x[i : i + CHUNK] for x in xs])]
            for i in range(0, n, CHUNK)
        ]
        return [np.concatenate(ys) for ys in zip(*parts, strict=True)]

    def for_format(self, fmt: str, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """Python's outputs ordered and named as the format names them."""
        names = self.expected_names(fmt)
        if names == self.output_names:
            return outputs
        if len(outputs) == 1:
            return outputs
        return [outputs[self.output_names.index(n)] for n in names]


def _one_or_list(xs: list):
    """What a Keras model takes: one tensor, or a list for several inputs."""
    return xs[0] if len(xs) == 1 else list(xs)


def _as_list(y) -> list:
    if isinstance(y, dict):
        return [y[k] for k in sorted(y)]
    return list(y) if isinstance(y, list | tuple) else [y]
