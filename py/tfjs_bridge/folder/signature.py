"""A model's I/O contract, read from the model itself and recorded in its
folder's manifest ("signature"): each input's name, dtype, shape and valid
domain, and each output's name as Keras names it. verify generates inputs
within each domain, the bad-input checks apply per input, and the worker and
the Node scripts feed inputs by these names.

Domains: an input that feeds an Embedding takes token ids, int32 in
[0, input_dim); with mask_zero, 0 is padding. An input that feeds a Masking
layer is float with that mask value marking padded steps. Any other input is
float, uniform in [-1, 1] unless the user says otherwise (--input-range)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..core.errors import BridgeError, UsageError

FLOAT_RANGE = (-1.0, 1.0)
FREE_AXIS = 16  # the length a free axis (None) gets in generated inputs


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str  # float32 | int32
    shape: tuple[int | None, ...]  # one sample, no batch axis; None: free
    kind: str  # tokens | float
    low: float  # tokens: ids in [low, high); floats: values in [low, high]
    high: float
    mask_value: float | None = None  # the padding value a mask treats as absent

    def to_json(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]

    def to_json(self) -> dict:
        return {"inputs": [i.to_json() for i in self.inputs], "outputs": list(self.outputs)}

    @classmethod
    def from_json(cls, data: dict) -> Signature:
        inputs = tuple(
            InputSpec(**{**spec, "shape": tuple(spec["shape"])}) for spec in data["inputs"]
        )
        return cls(inputs=inputs, outputs=tuple(data["outputs"]))

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def with_ranges(self, ranges: dict[str, tuple[float, float]]) -> Signature:
        """The signature with user-given domains (--input-range name=LO:HI)."""
        unknown = sorted(set(ranges) - set(self.names))
        if unknown:
            raise UsageError(
                f"--input-range: no input named {', '.join(unknown)} "
                f"(the model's inputs: {', '.join(self.names)})"
            )
        inputs = tuple(
            replace(i, low=ranges[i.name][0], high=ranges[i.name][1]) if i.name in ranges else i
            for i in self.inputs
        )
        return replace(self, inputs=inputs)


def float_input(name: str, shape, mask_value: float | None = None) -> InputSpec:
    return InputSpec(name, "float32", tuple(shape), "float", *FLOAT_RANGE, mask_value)


def legacy_signature(input_shape, outputs) -> Signature:
    """What a manifest without a signature means: one float input."""
    return Signature((float_input("input", input_shape),), tuple(outputs))


def _consumers(model, tensor) -> list:
    """The layers of `model` that read `tensor`, looking through nested
    models: a nested model called on it counts as the layers its own
    matching input reaches (a shared encoder's Embedding is what makes a
    question pair's inputs token ids)."""
    import tensorflow as tf

    found = []
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        for node in layer._inbound_nodes:
            given = tf.nest.flatten(node.input_tensors)
            where = [i for i, t in enumerate(given) if t is tensor]
            if not where:
                continue
            inner = getattr(layer, "inputs", None)
            if getattr(layer, "layers", None) and inner and len(inner) == len(given):
                for i in where:
                    found += [c for c in _consumers(layer, inner[i]) if c not in found]
            elif layer not in found:
                found.append(layer)
    return found


def read_signature(model) -> Signature:
    """The I/O contract of a tf-keras model."""
    inputs = []
    for name, tensor in zip(model.input_names, model.inputs, strict=True):
        shape = tuple(tensor.shape[1:])
        layers = _consumers(model, tensor)
        kinds = {type(layer).__name__ for layer in layers}
        embeddings = [layer for layer in layers if type(layer).__name__ == "Embedding"]
        if embeddings:
            if len(kinds) > 1:
                raise BridgeError(
                    f"input {name} feeds an Embedding and {sorted(kinds)}: "
                    "cannot tell whether it takes token ids or values"
                )
            dims = {layer.input_dim for layer in embeddings}
            masked = any(layer.mask_zero for layer in embeddings)
            spec = InputSpec(name, "int32", shape, "tokens", 0, min(dims), 0 if masked else None)
        else:
            masking = [layer for layer in layers if type(layer).__name__ == "Masking"]
            mask_value = float(masking[0].mask_value) if masking else None
            spec = float_input(name, shape, mask_value)
        inputs.append(spec)
    return Signature(tuple(inputs), tuple(model.output_names))


def parse_ranges(texts: tuple[str, ...] | list[str]) -> dict[str, tuple[float, float]]:
    """--input-range name=LO:HI, repeatable."""
    ranges = {}
    for text in texts:
        name, _, bounds = text.partition("=")
        low, _, high = bounds.partition(":")
        try:
            lo, hi = float(low), float(high)
        except ValueError:
            lo = hi = float("nan")
        if not name or not lo < hi:
            raise UsageError(f"--input-range wants NAME=LO:HI with LO < HI, got '{text}'")
        ranges[name] = (lo, hi)
    return ranges
