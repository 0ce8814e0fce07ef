"""What a Node path is checked against: the truth of a model folder.

A folder's manifest says what the truth is ("reference"):
  tf_keras     keras.h5 loaded in tf-keras (registry models, user .h5 files)
  keras3       source.keras loaded in Keras 3 (user .keras files)
  saved_model  saved_model/ served by TensorFlow (user SavedModels that are not Keras)
  tfjs         the tfjs layers model `tfjs-bridge import` read: the truth is
               that model run in Node, and what is checked is each Keras
               model import wrote (reverse verify)

Both directions sit behind one interface (Truth): verify asks `truth_for`
once per model, then runs every path through one routine that compares the
pairs the truth names (Comparison)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..conversion.convert import serving_signature_def
from ..conversion.keras_loader import KERAS3, TF_KERAS, load_keras
from ..core.errors import BridgeError, first_line
from ..core.quiet_tf import import_tensorflow
from ..folder import artifacts
from ..folder.formats import FORMATS
from ..folder.signature import Signature, legacy_signature
from ..importing.command import PYTHON_MODELS, REFERENCE_KIND
from ..runtime.runtimes import STREAM_RUNTIMES
from ..runtime.streams import VERIFY_FEED

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
    # format -> why the folder cannot hold it (the manifest's "unsupported":
    # the converter's one line, or a Lambda layer in the layers format): its
    # paths are `unsupported`, not run
    unsupported: dict = field(default_factory=dict)
    # load a Keras truth holding Lambda layers (their code comes from the file)
    trust_lambda: bool = False
    # the manifest's "stateful" (batch, state shapes): the truth is a stateful model
    stateful: dict | None = None

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
        unsupported=dict(manifest.get("unsupported", {})),
        stateful=manifest.get("stateful"),
    )


@dataclass
class Comparison:
    """One check of a path: `expected` is the truth, `got` the side under test,
    each with its output names; `*_singles` are the same at a batch of one
    (first samples only). `relabel` names the two sides in the figures."""

    name: str  # the result's runtime column, e.g. "tfjs-node/layers"
    expected: list[np.ndarray]
    expected_names: list[str]
    got: list[np.ndarray]
    got_names: list[str]
    expected_singles: list[np.ndarray]
    got_singles: list[np.ndarray]
    relabel: Callable[[dict], dict] = lambda figures: figures


class Computed(list):
    """The truth's outputs, holding the inputs they came from: a stream
    path's truth is computed from them again (every prefix, the chunks a
    stateful model is fed), for nudged inputs too."""

    def __init__(self, outputs, xs):
        super().__init__(outputs)
        self.xs = xs


def run_chunked(call: Callable[[list], list], xs: list[np.ndarray]) -> list[np.ndarray]:
    """call(inputs) on CHUNK samples at a time, outputs concatenated."""
    parts = [
        [np.asarray(y) for y in call([x[i : i + CHUNK] for x in xs])]
        for i in range(0, len(xs[0]), CHUNK)
    ]
    return [np.concatenate(ys) for ys in zip(*parts, strict=True)]


def keras_call(model, names: list[str] | None = None) -> Callable[[list], list]:
    """A Keras model as a function of a list of inputs (in the order of
    `names`, the signature's) to a list of outputs. A Keras 3 model built on
    a dict of inputs takes a dict: each input goes under its key, found by
    its Input layer's name."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict) and names:
        where = {key: names.index(getattr(t, "name", key)) for key, t in struct.items()}
        return lambda xs: as_list(model({key: xs[i] for key, i in where.items()}, training=False))
    return lambda xs: as_list(model(xs[0] if len(xs) == 1 else list(xs), training=False))


def as_list(y) -> list:
    """A model's outputs as a list (a dict's in sorted key order)."""
    if isinstance(y, dict):
        return [y[k] for k in sorted(y)]
    return list(y) if isinstance(y, list | tuple) else [y]


class Truth:
    """The interface verify runs every path through."""

    # The dtype the truth computes in and how many layers compute in it
    # (compare.precision_tolerance); float32 unless the truth says otherwise.
    precision: tuple[str, int] = ("float32", 0)
    # Whether python_side on nudged inputs measures the truth's own
    # conditioning (it does when Python computes the truth).
    measures_conditioning: bool = False

    def node_format(self, fmt: str) -> str:
        """The format Node runs for a path of this format."""
        return fmt

    def skips(self, fmt: str) -> str | None:
        """Why a path of this format is not run for this truth, or None."""
        return None

    def result_names(self, runtime: str) -> list[str]:
        return [runtime]

    def python_side(self, xs: list[np.ndarray]):
        """What Python computes once, on every input, before any path runs."""
        raise NotImplementedError

    def stream_feed(self, xs: list[np.ndarray]) -> dict | None:
        """How a stream path feeds xs (runtime/streams.py); None: VERIFY_FEED."""
        return None

    def comparisons(self, runtime: str, fmt: str, run, python_side) -> list[Comparison]:
        raise NotImplementedError


class KerasTruth(Truth):
    """The folder's original model, run in Python: the truth every Node path must match."""

    measures_conditioning = True

    def __init__(self, subject: Subject):
        self.subject = subject
        tf = import_tensorflow()
        path = subject.model_dir / subject.reference_file
        kind = subject.reference_kind
        self._prefixes: dict[int, tuple] = {}  # id(python_side) -> (it, every prefix, how)
        self.keras_model = None  # the Keras model itself, when the truth is one (bench times it)
        # The truth must be the file that was trained, not a tampered copy.
        if path.is_dir():
            artifacts.check_folder_integrity(subject.model_dir, subject.reference_file)
        else:
            artifacts.check_integrity(subject.model_dir, [subject.reference_file])
        if kind in (TF_KERAS, KERAS3):
            model = load_keras(path, kind, trust_lambda=subject.trust_lambda)
            self.keras_model = model
            self.precision = compute_precision(model)
            self.output_names = output_names(model, kind)
            self._call = keras_call(model, subject.signature.names)
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
        self.signature_names = self._signature_names()

    def _signature_names(self) -> list[str] | None:
        """Output keys of the SavedModel's serving signature, sorted (Node sorts
        them too), read from saved_model.pb: loading the SavedModel for them
        took 42 s of spam's check (200 unrolled steps)."""
        folder = self.subject.model_dir / FORMATS["saved_model"].folder
        if not folder.exists():
            return None
        return sorted(serving_signature_def(folder).outputs)

    def expected_names(self, fmt: str) -> list[str]:
        return self.output_names if fmt == "layers" else self.signature_names or self.output_names

    def __call__(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """Outputs in output_names order for the inputs (one array per input,
        in the signature's order), computed in chunks. A float16 (bfloat16)
        output is widened to float32: no Node path returns those dtypes, and
        widening is exact."""
        return [
            y.astype(np.float32) if y.dtype.kind in "fV" and y.dtype.itemsize < 4 else y
            for y in run_chunked(self._call, xs)
        ]

    def python_side(self, xs):
        return Computed(self(xs), xs)

    def stream_feed(self, xs):
        """Every step's output, when Keras can be run on prefixes (every_prefix.py)."""
        return {**VERIFY_FEED, "per_step": True} if self.keras_model is not None else None

    def for_format(self, fmt: str, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """Python's outputs ordered and named as the format names them."""
        names = self.expected_names(fmt)
        if names == self.output_names:
            return outputs
        if len(outputs) == 1:
            return outputs
        return [outputs[self.output_names.index(n)] for n in names]

    def comparisons(self, runtime, fmt, run, python_side):
        expected = self.for_format(fmt, python_side)
        said, got, got_singles = None, run.outputs, run.singles
        if runtime in STREAM_RUNTIMES:
            expected, said, last_step = self._stream_truth(expected, got, python_side)
            if last_step:  # every step came back, but Keras ran no prefix: judge the last one
                got, got_singles = ([y[:, -1] for y in ys] for ys in (got, got_singles))
        c = Comparison(
            runtime,
            expected,
            self.expected_names(fmt),
            got,
            run.output_names,
            [e[: len(got_singles[0])] for e in expected],
            got_singles,
        )
        if said:
            c.relabel = lambda figures: {**figures, "truth": said}
        return [c]

    def _stream_truth(self, whole, got, python_side) -> tuple[list[np.ndarray], str, bool]:
        """(expected, what it is, whether to judge the stream's last step
        alone) for a stream path: Keras's output on every prefix when the
        stream gave every step's output of a last-output model ([N, T, ...]
        for Keras's [N, ...]), else the whole sequence's outputs as they are
        (a return_sequences model: every step already)."""
        xs = getattr(python_side, "xs", None)
        steps = xs[0].shape[1] if xs is not None and xs[0].ndim >= 2 else None
        per_step = (
            steps is not None
            and len(got) == len(whole)
            and all(
                g.shape == (e.shape[0], steps, *e.shape[1:])
                for e, g in zip(whole, got, strict=True)
            )
        )
        if not per_step:
            if any(e.ndim >= 3 and e.shape[1] == steps for e in whole):
                return whole, "Keras on the whole sequence, every step's output", False
            return whole, LAST_ONLY, False
        key = id(python_side)
        if key not in self._prefixes:
            from .every_prefix import outputs_on_every_prefix  # it builds on prefixes.py

            try:
                found, how = outputs_on_every_prefix(self.keras_model, xs,
                                                     self.subject.signature.names)  # fmt: skip
            except Exception as exc:  # any Keras refusal: the last output, said why
                found, how = None, f"Keras cannot run the model on a prefix: {first_line(exc)}"
            self._prefixes[key] = (python_side, found, how)  # python_side kept: its id stays
        _, found, how = self._prefixes[key]
        if found is None:
            return whole, f"{LAST_ONLY} ({how})", True
        said = f"Keras on every prefix x[:, :t], t = 1..{steps} ({how})"
        if self.subject.signature.inputs[0].mask_value is not None:
            said += "; a prefix ending at a masked step: Keras's output before it, carried"
        return found, said, False


# A stream path of a last-output model judged on its last output alone.
LAST_ONLY = "Keras on the whole sequence, its last output only"


class TfjsTruth(Truth):
    """An imported folder (reverse verify): the tfjs layers model run in Node
    is the truth, and each Keras model import wrote (keras.h5 in tf-keras,
    model.keras in Keras 3) is checked against it. A result's runtime reads
    "tf-keras vs tfjs-node/layers"."""

    FORMAT = "layers"  # the imported tfjs model: the only format such a folder holds

    def __init__(self, subject: Subject):
        import_tensorflow()
        self.subject = subject
        self.calls, self.output_names = {}, {}
        for python, rel in PYTHON_MODELS.items():
            # What is checked must be what import wrote, not a tampered copy.
            artifacts.check_integrity(subject.model_dir, [rel])
            kind = TF_KERAS if python == "tf-keras" else KERAS3
            model = load_keras(subject.model_dir / rel, kind)
            self.calls[python] = keras_call(model)
            self.output_names[python] = output_names(model, kind)

    def node_format(self, fmt: str) -> str:
        return self.FORMAT

    def skips(self, fmt: str) -> str | None:
        return None if fmt == self.FORMAT else "imported from tfjs"

    def result_names(self, runtime: str) -> list[str]:
        return [f"{python} vs {runtime}" for python in PYTHON_MODELS]

    def python_side(self, xs):
        """Each Keras model's outputs, in its output_names order."""
        return {python: run_chunked(call, xs) for python, call in self.calls.items()}

    def comparisons(self, runtime, fmt, run, python_side):
        return [
            Comparison(
                f"{python} vs {runtime}",
                run.outputs,
                run.output_names,
                outputs,
                self.output_names[python],
                run.singles,
                [y[: len(run.singles[0])] for y in outputs],
                _relabelled,
            )
            for python, outputs in python_side.items()
        ]


def _relabelled(figures: dict) -> dict:
    """compare calls the truth "python" and the checked side "node": here
    the truth is tfjs (Node) and the checked side Keras (Python)."""
    for output in figures.get("outputs", []):
        output["first_outside"] = [
            {"index": f["index"], "tfjs": f["python"], "keras": f["node"]}
            for f in output.get("first_outside", [])
        ]
    return figures


def truth_for(subject: Subject) -> Truth:
    """Which truth a folder's paths are checked against: asked once."""
    if subject.reference_kind == REFERENCE_KIND:
        return TfjsTruth(subject)
    if subject.stateful and subject.reference_kind in (TF_KERAS, KERAS3):
        from .stateful import StatefulTruth  # it builds on KerasTruth

        return StatefulTruth(subject)
    return KerasTruth(subject)


def output_names(model, kind: str) -> list[str]:
    if kind == KERAS3:
        from ..conversion.keras3 import output_names as keras3_output_names

        return keras3_output_names(model)
    return list(model.output_names)


REDUCED = ("float16", "bfloat16")  # in compare.EPSILON's order of coarseness: bfloat16 last


def _sublayers(layer):
    """A layer and every layer inside it (nested models, wrappers), in tf-keras and Keras 3."""
    yield layer
    inner = list(getattr(layer, "layers", None) or [])
    for attr in ("layer", "forward_layer", "backward_layer", "cell"):
        if getattr(layer, attr, None) is not None:
            inner.append(getattr(layer, attr))
    for sub in inner:
        yield from _sublayers(sub)


def compute_precision(model) -> tuple[str, int]:
    """(dtype, depth): the coarsest dtype a layer computes in under the
    model's dtype policies (mixed_float16 computes in float16 on float32
    weights), and how many layers with weights compute in it, each counted
    once (a wrapper or an RNN with the cell that does its arithmetic)."""
    leaves = {}
    for layer in _sublayers(model):
        children = [c for c in _sublayers(layer) if c is not layer]
        if layer.weights and not any(c.weights for c in children):
            leaves[id(layer)] = str(getattr(layer, "compute_dtype", None) or "float32")
    for dtype in reversed(REDUCED):
        depth = sum(d == dtype for d in leaves.values())
        if depth:
            return dtype, depth
    return "float32", 0
