"""One seeded weight fault in one path's files (LEMON's weight mutation,
CRADLE's question: does the comparison see it?).

After export and conversion, one element of one weight is scaled in a tfjs
format's weight shard, and its sha256 is re-recorded in the manifest as a
converter that wrote a wrong model itself would (tests/conftest.py's
`rerecord`): the files are consistent, only the numbers are wrong. verify
must then not pass that format's paths.

The fault must be one the inputs can see: a masked or unused weight, or one
behind a dead unit, changes nothing, and a path that does not see it is
right to pass. So the element is chosen in Python first: the output Dense's
kernel (else any Dense's, else the largest weight), its largest elements in
turn, each scaled and run on the inputs verify feeds, until one moves some
output by at least EFFECT times the tolerance (scaled by a few percent
first; by 10x only when nothing else does, as a float16 model may need). The shard bytes of that
weight are found by content (its float32 values, which occur once), so the
same code places a fault in the layers and in the graph format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conversion.keras_loader import load_keras
from ..core.quiet_tf import import_tensorflow
from ..folder import artifacts
from ..folder.formats import FORMATS
from ..parity import compare, probes
from ..parity.truth import (
    compute_precision,
    keras_call,
    output_names,
    subject_from_folder,
    truth_for,
)

RELATIVE = (0.05, 0.5)  # tried in turn: a few percent first, well above 1e-5
# Tried only when no weight moves an output enough at RELATIVE (so the faults
# other models get do not change): a float16 model's tolerance is ~400x wider.
LAST_RESORT = (9.0,)
EFFECT = 100.0  # the change it makes must be this many times the tolerance
ELEMENTS = 3  # largest elements tried per weight


@dataclass
class Fault:
    format: str
    layer: str
    weight: str
    index: list[int]
    relative: float
    before: float
    after: float
    effect: float  # max |change of an output| / (atol + rtol |output|), in Keras

    def to_json(self) -> dict:
        return dict(self.__dict__)


class NoFault(Exception):
    """No fault the inputs can see could be placed; the message says why."""


def _layers(layer):
    """A layer and every layer inside it (nested models, wrappers), in tf-keras and Keras 3."""
    yield layer
    inner = list(getattr(layer, "layers", None) or [])
    for attr in ("layer", "forward_layer", "backward_layer"):
        if getattr(layer, attr, None) is not None:
            inner.append(getattr(layer, attr))
    for sub in inner:
        yield from _layers(sub)


def _candidates(model, outputs: list[str]) -> list[tuple[str, object]]:
    """(layer name, variable): the output Dense kernels first (a Dense in a
    TimeDistributed named by its wrapper), then any Dense's, then every
    weight by size; each variable once."""
    dense = []
    for layer in _layers(model):
        inner = getattr(layer, "layer", layer)
        if type(inner).__name__ == "Dense":
            dense.append((layer.name, inner.kernel))
    first = [c for c in dense if c[0] in outputs]
    rest = [c for c in dense if c[0] not in outputs]
    by_size = sorted(model.weights, key=lambda w: -int(np.prod(w.shape)))
    seen, out = set(), []
    for name, var in first + rest + [(getattr(w, "path", w.name), w) for w in by_size]:
        if id(var) not in seen:
            seen.add(id(var))
            out.append((name, var))
    return out


def _effect(call, xs, before: list[np.ndarray], atol: float, rtol: float) -> float:
    after = call(xs)
    worst = 0.0
    for a, b in zip(after, before, strict=True):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        worst = max(worst, float(np.nanmax(np.abs(a - b) / (atol + rtol * np.abs(b)))))
    return worst


def choose(model_dir: Path, samples: int) -> tuple[str, object, tuple, float, float, float]:
    """(layer, variable, element index, relative change, new value, effect)
    of a fault the inputs verify feeds can see."""
    subject = subject_from_folder(model_dir)
    xs = probes.probe_inputs(subject.signature, samples)
    if subject.reference_kind == "saved_model":
        truth, call, candidates = _saved_model_truth(model_dir / subject.reference_file, subject)
        atol, rtol = subject.atol, subject.rtol  # served as is: float32, as its signature says
    else:
        # the truth verify runs (a Keras 3 source's own file), with the weights the shards hold
        if subject.stateful:  # its batch is fixed: called as verify calls it, reset per batch
            truth = truth_for(subject)
            model, call = truth.keras_model, truth
        else:
            model = load_keras(model_dir / subject.reference_file, subject.reference_kind)
            call = keras_call(model, subject.signature.names)  # a dict-input model takes a dict
        candidates = _candidates(model, output_names(model, subject.reference_kind))
        # measured against the tolerance verify will judge by (wider for a float16 model)
        atol, rtol = compare.precision_tolerance(
            *compute_precision(model), subject.atol, subject.rtol
        )
    before = [np.asarray(y) for y in call(xs)]
    for relatives in (RELATIVE, LAST_RESORT):
        tried = 0
        for layer, var in candidates:
            value = np.asarray(var.numpy())
            if value.dtype != np.float32 or value.size == 0:
                continue
            order = np.argsort(-np.abs(value), axis=None)[:ELEMENTS]
            for flat in order:
                index = np.unravel_index(flat, value.shape)
                for relative in relatives:
                    changed = value.copy()
                    changed[index] *= 1.0 + relative
                    var.assign(changed)
                    try:
                        effect = _effect(call, xs, before, atol, rtol)
                    finally:
                        var.assign(value)
                    tried += 1
                    if effect >= EFFECT:
                        return layer, var, index, relative, float(changed[index]), effect
            if tried >= 30:
                break
    raise NoFault(
        f"no weight of {tried} tried moves an output by {EFFECT:g}x the tolerance, "
        f"even scaled {1 + LAST_RESORT[-1]:g}x"
    )


def _saved_model_truth(path: Path, subject):
    """(the loaded SavedModel, its call, candidate (name, variable)) for a
    SavedModel served as is (no Keras layers to walk): Dense kernels first,
    the last built first (the output head, usually), then every variable by
    size. The loaded object is returned to keep its variables alive."""
    tf = import_tensorflow()
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    names, outputs = subject.signature.names, sorted(serve.structured_outputs)

    def call(xs):
        ys = serve(**{k: tf.constant(x) for k, x in zip(names, xs, strict=True)})
        return [ys[k] for k in outputs]

    variables = list(loaded.variables)
    dense = [v for v in reversed(variables) if "dense" in v.name and "kernel" in v.name]
    by_size = sorted(variables, key=lambda v: -int(np.prod(v.shape)))
    seen, candidates = set(), []
    for var in dense + by_size:
        if id(var) not in seen:
            seen.add(id(var))
            candidates.append((var.name.split("/")[0], var))
    return loaded, call, candidates


def _shards(model_dir: Path, fmt: str) -> list[Path]:
    folder = model_dir / FORMATS[fmt].folder
    model = json.loads((folder / FORMATS[fmt].entry).read_text())
    return [folder / p for group in model["weightsManifest"] for p in group["paths"]]


def inject(model_dir: Path, fmt: str, samples: int) -> Fault:
    """Places one fault in model_dir's `fmt` (layers or graph) weight shards,
    re-recording their sha256; raises NoFault when none can be placed."""
    layer, var, index, relative, new, effect = choose(model_dir, samples)
    value = np.asarray(var.numpy())
    needle = value.tobytes()
    hits = []
    for shard in _shards(model_dir, fmt):
        data = shard.read_bytes()
        at = data.find(needle)
        while at >= 0:
            hits.append((shard, at))
            at = data.find(needle, at + 1)
    if len(hits) != 1:
        where = "not found" if not hits else f"found {len(hits)} times"
        raise NoFault(f"{layer}/{var.name}: its float32 values are {where} in the {fmt} shards")
    shard, at = hits[0]
    flat = int(np.ravel_multi_index(index, value.shape))
    data = bytearray(shard.read_bytes())
    offset = at + 4 * flat
    data[offset : offset + 4] = np.float32(new).tobytes()
    shard.write_bytes(bytes(data))
    _rerecord(model_dir, shard)
    return Fault(
        fmt,
        layer,
        getattr(var, "path", var.name),
        [int(i) for i in index],
        relative,
        float(value[index]),
        new,
        effect,
    )


def _rerecord(model_dir: Path, file: Path) -> None:
    manifest_path = model_dir / artifacts.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    folder, name = file.relative_to(model_dir).as_posix().split("/", 1)
    for conversion in manifest.get("conversions", {}).values():
        if conversion.get("output") == folder:
            conversion["files"][name] = artifacts.sha256(file)
    manifest_path.write_text(json.dumps(manifest))
