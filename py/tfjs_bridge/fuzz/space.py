"""The fuzzer's space, and specs drawn from it: Keras recurrent models of the
kinds users ship, valid by construction (NNSmith's habit).

A spec is a small JSON-able dict: where the model is saved (`source`), its
dtype policy, its structure and a list of nodes in the order they are built:

  {"id": "fz7-012", "seed": 7, "index": 12, "source": "h5" | "saved_model" | "keras",
   "policy": "float32" | "mixed_float16", "structure": "sequential" | ...,
   "nodes": [{"id": "n0", "class": "Input", "name": "x0", "shape": [6], "dtype": "int32",
              "kind": "tokens", "vocab": 30},
             {"id": "n1", "class": "Embedding", "name": "embedding_1", "config": {...},
              "in": ["n0"]}, ...],
   "outputs": ["n9", ...]}

Every node but an Input names a Keras layer class and the keyword arguments
it is built with ("config"), a wrapper its inner layer ("inner"), and the
tensors it is called on ("in"; "n3.1" is the second output of a layer that
returns several). "Reuse" calls the layer of an earlier node again (a shared
layer); "Nested" holds a whole inner model (its own "nodes"/"outputs"),
built as a Sequential and called as a layer.

The drawing tracks each tensor's shape (the time axis may be free: None) and
whether it carries a mask, and only offers layers that accept that state, so
every spec builds: a spec that does not is a bug of this module (tested).
`draw_spec(seed, index)` depends on nothing else: model `index` of a seed is
the same whatever the count."""

from __future__ import annotations

import random
from dataclasses import dataclass

SOURCES = ("h5", "saved_model", "keras")  # tf-keras .h5, tf-keras SavedModel, Keras 3 .keras
STRUCTURES = ("sequential", "functional", "nested", "shared", "multi_io")
SUBCLASSED_SHARE = 0.4  # of SavedModel specs: wrapped in a subclassed keras.Model
POLICIES = ("float32", "mixed_float16")
RNN_CELLS = ("SimpleRNN", "GRU", "LSTM")
CONV_RNNS = ("ConvLSTM1D", "ConvLSTM2D")
MERGE_MODES = ("concat", "sum", "mul", "ave", None)
MERGES = ("Concatenate", "Add", "Subtract", "Multiply", "Average")
INPUT_KINDS = ("tokens", "float", "flat", "frames1d", "frames2d", "vector")

_RNN_OPTIONS = {
    "dropout": [0.0, 0.3],
    "recurrent_dropout": [0.0, 0.2],
    "go_backwards": [False, True],
    "return_sequences": [False, True],
    "return_state": [False, True],
    "unroll": [False, True],
    "stateful": [False, True],
}
_CONV_RNN_OPTIONS = {
    "padding": ["valid", "same"],
    "dropout": [0.0, 0.3],
    "recurrent_dropout": [0.0, 0.2],
    "go_backwards": [False, True],
    "return_sequences": [False, True],
}

# Every value the generator may give each option of each layer: the
# (layer, option) space that coverage counts. Drawing reads the same table.
OPTIONS: dict[str, dict[str, list]] = {
    "Input": {
        "kind": list(INPUT_KINDS),
        "time_axis": ["fixed", "free"],
        "dtype": ["float32", "int32"],
    },
    "SimpleRNN": {**_RNN_OPTIONS, "activation": ["tanh", "relu"]},
    "GRU": {
        **_RNN_OPTIONS,
        "reset_after": [True, False],
        "recurrent_activation": ["sigmoid", "hard_sigmoid"],
    },
    "LSTM": {
        **_RNN_OPTIONS,
        "recurrent_activation": ["sigmoid", "hard_sigmoid"],
        "unit_forget_bias": [True, False],
    },
    "ConvLSTM1D": dict(_CONV_RNN_OPTIONS),
    "ConvLSTM2D": dict(_CONV_RNN_OPTIONS),
    "Bidirectional": {"merge_mode": list(MERGE_MODES)},
    "Embedding": {"mask_zero": [False, True]},
    "Masking": {"mask_value": [0.0]},
    "Conv1D": {"padding": ["causal", "same", "valid"], "strides": [1, 2]},
    "MaxPooling1D": {"padding": ["valid", "same"]},
    "AveragePooling1D": {"padding": ["valid", "same"]},
    "Dense": {"activation": ["linear", "relu", "tanh", "sigmoid", "softmax"]},
    "Attention": {"use_scale": [False, True], "score_mode": ["dot", "concat"]},
    "MultiHeadAttention": {"num_heads": [1, 2]},
    "LayerNormalization": {"center": [True, False]},
    "BatchNormalization": {"scale": [True, False]},
    "Dropout": {"rate": [0.25]},
    "Reshape": {},
    "Flatten": {},
    "TimeDistributed": {},
    "GlobalAveragePooling1D": {},
    "GlobalMaxPooling1D": {},
    "GlobalAveragePooling2D": {},
    **{m: {} for m in MERGES},
}
# Options that are facts about the input a recurrent layer gets, not arguments:
# drawn by the context, counted by coverage like the others.
CONTEXT_OPTIONS = {"time_axis": ["fixed", "free"], "masked": [False, True]}
for _name in (*RNN_CELLS, *CONV_RNNS):
    OPTIONS[_name].update(CONTEXT_OPTIONS)
OPTIONS["ConvLSTM1D"]["masked"] = [False]
OPTIONS["ConvLSTM2D"]["masked"] = [False]

# Layers that consume a mask and pass one on (in tf-keras and Keras 3 alike);
# anything else is only offered when the tensor carries none.
MASK_PROPAGATING = {"Dense", "TimeDistributed", "LayerNormalization", "Dropout"}


@dataclass
class Tensor:
    """A tensor while drawing: where it comes from, its shape without the
    batch axis (the time axis may be None: free), and whether it carries a mask."""

    ref: str
    shape: tuple
    mask: bool

    @property
    def steps(self):
        return self.shape[0]

    @property
    def is_sequence(self) -> bool:
        return len(self.shape) == 2


class Drawer:
    """Draws the nodes of one model (or one nested model)."""

    def __init__(self, rng: random.Random, functional: bool, counter: list[int], keras3: bool):
        self.rng = rng
        self.keras3 = keras3
        self.functional = functional  # Sequential chains offer single-tensor layers only
        self.nodes: list[dict] = []
        self.counter = counter  # shared with nested drawers: names stay unique

    # -- bookkeeping ---------------------------------------------------------------
    def _id(self) -> str:
        self.counter[0] += 1
        return f"n{self.counter[0]}"

    def add(self, cls: str, config: dict, inputs: list[str], **extra) -> str:
        node_id = self._id()
        node = {
            "id": node_id,
            "class": cls,
            "name": f"{cls.lower()}_{node_id[1:]}",
            "config": config,
            "in": inputs,
            **extra,
        }
        self.nodes.append(node)
        return node_id

    def pick(self, cls: str, option: str):
        return self.rng.choice(OPTIONS[cls][option])

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    # -- inputs --------------------------------------------------------------------
    def input(self, name: str, kind: str, steps, features: int) -> tuple[str, dict]:
        node_id = self._id()
        node = {"id": node_id, "class": "Input", "name": name, "kind": kind}
        if kind == "tokens":
            node.update(
                shape=[steps],
                vocab=self.rng.choice([12, 20, 30]),
                dtype="float32" if self.chance(0.2) else "int32",
            )
        elif kind == "float":
            node.update(shape=[steps, features], dtype="float32")
        elif kind == "flat":
            node.update(shape=[steps * features], dtype="float32", steps=steps)
        elif kind == "frames1d":
            node.update(shape=[steps, self.rng.choice([4, 5]), 2], dtype="float32")
        elif kind == "frames2d":
            node.update(shape=[steps, 4, 4, 1], dtype="float32")
        else:  # vector
            node.update(shape=[features], dtype="float32")
        self.nodes.append(node)
        return node_id, node

    def entry(self, node: dict) -> Tensor:
        """The first layers for an input's kind: to a sequence (steps, features)
        or, for a vector input, a vector."""
        ref, kind, shape = node["id"], node["kind"], tuple(node["shape"])
        if kind == "tokens":
            mask = self.chance(0.45)
            dim = self.rng.choice([4, 6, 8])
            ref = self.add(
                "Embedding",
                {"input_dim": node["vocab"], "output_dim": dim, "mask_zero": mask},
                [ref],
            )
            return Tensor(ref, (shape[0], dim), mask)
        if kind == "float":
            if self.chance(0.3):
                ref = self.add("Masking", {"mask_value": 0.0}, [ref])
                return Tensor(ref, shape, True)
            return Tensor(ref, shape, False)
        if kind == "flat":
            steps = node["steps"]
            target = [steps, shape[0] // steps]
            ref = self.add("Reshape", {"target_shape": target}, [ref])
            return Tensor(ref, tuple(target), False)
        if kind in ("frames1d", "frames2d"):
            return self.conv_rnn(Tensor(ref, shape, False), kind)
        ref = self.add("Dense", {"units": self.rng.choice([4, 6]), "activation": "relu"}, [ref])
        return Tensor(ref, (self.nodes[-1]["config"]["units"],), False)

    # -- layers around the recurrent ones -----------------------------------------
    def conv_rnn(self, x: Tensor, kind: str) -> Tensor:
        cls = "ConvLSTM1D" if kind == "frames1d" else "ConvLSTM2D"
        config = {
            "filters": self.rng.choice([2, 3]),
            "kernel_size": 2,
            **{k: self.pick(cls, k) for k in _CONV_RNN_OPTIONS},
        }
        ref = self.add(cls, config, [x.ref], ctx={"time_axis": _axis(x), "masked": False})
        spatial = [d - 1 if config["padding"] == "valid" else d for d in x.shape[1:-1]]
        inner_size = config["filters"]
        for d in spatial:
            inner_size *= d
        if config["return_sequences"]:
            # frames -> (steps, features): the rest of the model sees a sequence
            ref = self.add("TimeDistributed", {}, [ref], inner={"class": "Flatten", "config": {}})
            return Tensor(ref, (x.steps, inner_size), False)
        if cls == "ConvLSTM2D" and self.chance(0.5):
            ref = self.add("GlobalAveragePooling2D", {}, [ref])
            return Tensor(ref, (config["filters"],), False)
        ref = self.add("Flatten", {}, [ref])
        return Tensor(ref, (inner_size,), False)

    def around(self, x: Tensor) -> Tensor:
        """One layer that keeps a sequence a sequence, chosen among those
        that accept its state (mask, fixed or free time axis, length)."""
        choices = ["TimeDistributed", "Dense", "LayerNormalization", "Dropout"]
        if not x.mask:
            choices += ["Conv1D", "Conv1D", "BatchNormalization"]
            if x.steps is None or x.steps >= 4:
                choices += ["MaxPooling1D", "AveragePooling1D"]
        if self.functional:
            choices += ["Attention", "MultiHeadAttention", "parallel"]
        cls = self.rng.choice(choices)
        steps, features = x.shape
        if cls == "TimeDistributed":
            units = self.rng.choice([4, 6])
            inner = {"class": "Dense", "config": {"units": units, "activation": "tanh"}}
            ref = self.add(cls, {}, [x.ref], inner=inner)
            return Tensor(ref, (steps, units), x.mask)
        if cls == "Dense":
            units = self.rng.choice([4, 6])
            ref = self.add(
                cls, {"units": units, "activation": self.rng.choice(["relu", "tanh"])}, [x.ref]
            )
            return Tensor(ref, (steps, units), x.mask)
        if cls == "LayerNormalization":
            return Tensor(
                self.add(cls, {"center": self.pick(cls, "center")}, [x.ref]), x.shape, x.mask
            )
        if cls == "BatchNormalization":
            return Tensor(
                self.add(cls, {"scale": self.pick(cls, "scale")}, [x.ref]), x.shape, False
            )
        if cls == "Dropout":
            return Tensor(self.add(cls, {"rate": 0.25}, [x.ref]), x.shape, x.mask)
        if cls == "Conv1D":
            padding, strides = self.pick(cls, "padding"), self.pick(cls, "strides")
            kernel = 2
            if steps is not None and padding == "valid" and steps < kernel + strides:
                padding = "same"  # too short to shrink: keep its length
            if padding == "causal":
                strides = 1  # tf-keras refuses causal with strides > 1 in some versions
            filters = self.rng.choice([4, 6])
            config = {
                "filters": filters,
                "kernel_size": kernel,
                "padding": padding,
                "strides": strides,
                "activation": "relu",
            }
            return Tensor(
                self.add(cls, config, [x.ref]),
                (_conv_steps(steps, kernel, padding, strides), filters),
                False,
            )
        if cls in ("MaxPooling1D", "AveragePooling1D"):
            padding = self.pick(cls, "padding")
            config = {"pool_size": 2, "padding": padding}
            return Tensor(
                self.add(cls, config, [x.ref]), (_conv_steps(steps, 2, padding, 2), features), False
            )
        if cls == "Attention":
            config = {
                "use_scale": self.pick(cls, "use_scale"),
                "score_mode": self.pick(cls, "score_mode"),
            }
            return Tensor(self.add(cls, config, [x.ref, x.ref]), x.shape, x.mask)
        if cls == "MultiHeadAttention":
            config = {"num_heads": self.pick(cls, "num_heads"), "key_dim": 4}
            return Tensor(self.add(cls, config, [x.ref, x.ref]), x.shape, x.mask)
        return self.parallel(x)

    def parallel(self, x: Tensor) -> Tensor:
        """Two branches from one sequence, the same shape out, merged:
        a recurrent branch beside a Dense (or a second recurrent) one."""
        merge = self.rng.choice(MERGES)
        units = self.rng.choice([4, 6])
        a = self.recurrent(x, sequences=True, units=units)
        if self.chance(0.5):
            b = self.recurrent(x, sequences=True, units=a.shape[1])
        else:
            b = Tensor(
                self.add("Dense", {"units": a.shape[1], "activation": "tanh"}, [x.ref]),
                a.shape,
                x.mask,
            )
        features = a.shape[1] * (2 if merge == "Concatenate" else 1)
        ref = self.add(merge, {}, [a.ref, b.ref])
        return Tensor(ref, (a.steps, features), a.mask or b.mask)

    # -- the recurrent layers ------------------------------------------------------
    def rnn_config(self, cls: str, x: Tensor, sequences: bool, units: int) -> dict:
        config = {"units": units}
        for option in OPTIONS[cls]:
            if option not in CONTEXT_OPTIONS:
                config[option] = self.pick(cls, option)
        config["return_sequences"] = sequences
        config["return_state"] = False  # the callers that want states say so
        config["stateful"] = False
        if x.steps is None:
            config["unroll"] = False  # Keras cannot unroll a free time axis
        return config

    def recurrent(self, x: Tensor, sequences: bool, units: int | None = None) -> Tensor:
        """SimpleRNN, GRU or LSTM, bare or in a Bidirectional wrapper."""
        cls = self.rng.choice(["SimpleRNN", "GRU", "GRU", "LSTM", "LSTM"])
        units = units or self.rng.choice([3, 4, 6, 8])
        ctx = {"time_axis": _axis(x), "masked": x.mask}
        if self.chance(0.3):
            merge = self.rng.choice(MERGE_MODES if self.functional else MERGE_MODES[:-1])
            if merge == "concat":
                units = max(2, units // 2)  # the same width out as asked for
            config = self.rnn_config(cls, x, sequences, units)
            if self.keras3:
                # Keras 3.15 refuses a Bidirectional whose layer goes backwards
                # ("Forward layer and backward layer should have different go_backwards")
                config["go_backwards"] = False
            inner = {"class": cls, "config": config, "ctx": ctx}
            ref = self.add("Bidirectional", {"merge_mode": merge}, [x.ref], inner=inner)
            width = units * (2 if merge == "concat" else 1)
            shape = (x.steps, width) if sequences else (width,)
            if merge is None:  # two tensors, forward and backward: joined here
                join = self.rng.choice(MERGES)
                ref = self.add(join, {}, [f"{ref}.0", f"{ref}.1"])
                width = units * (2 if join == "Concatenate" else 1)
                shape = (x.steps, width) if sequences else (width,)
            return Tensor(ref, shape, x.mask and sequences)
        ref = self.add(cls, self.rnn_config(cls, x, sequences, units), [x.ref], ctx=ctx)
        shape = (x.steps, units) if sequences else (units,)
        return Tensor(ref, shape, x.mask and sequences)

    def encoder_decoder(self, x: Tensor, sequences: bool) -> tuple[Tensor, list[str]]:
        """An RNN returning its states, which start a second RNN of the same
        kind over the same sequence (initial_state). Returns the second's
        output and the state tensors."""
        cls = self.rng.choice(RNN_CELLS)
        units = self.rng.choice([3, 4, 6])
        ctx = {"time_axis": _axis(x), "masked": x.mask}
        enc = self.rnn_config(cls, x, self.chance(0.3), units)
        enc["return_state"] = True
        enc_ref = self.add(cls, enc, [x.ref], ctx=ctx)
        states = [f"{enc_ref}.{i}" for i in range(1, 3 if cls == "LSTM" else 2)]
        dec = self.rnn_config(cls, x, sequences, units)
        dec_ref = self.add(cls, dec, [x.ref], ctx=ctx, initial_state=states)
        shape = (x.steps, units) if sequences else (units,)
        return Tensor(dec_ref, shape, x.mask and sequences), states

    # -- a whole body: sequence in, vector or sequence out --------------------------
    def body(self, x: Tensor, keep_sequence: bool) -> tuple[Tensor, list[str]]:
        """Layers around one or two recurrent layers; returns the last tensor
        and any extra output tensors (RNN states)."""
        extra: list[str] = []
        if not x.is_sequence:
            return x, extra
        for _ in range(self.rng.choice([0, 1, 1, 2])):
            x = self.around(x)
        depth = self.rng.choice([1, 1, 2])
        for i in range(depth):
            last = i == depth - 1
            sequences = not last or keep_sequence or self.chance(0.3)
            if self.functional and last and self.chance(0.2):
                x, states = self.encoder_decoder(x, sequences)
                if self.chance(0.5):
                    extra += states  # the states are outputs too
            elif self.functional and last and self.chance(0.15):
                x, states = self.with_states(x, sequences)
                extra += states
            else:
                x = self.recurrent(x, sequences)
            if not last and self.chance(0.4):
                x = self.around(x)
        if x.is_sequence and not keep_sequence:
            x = self.pool(x)
        return x, extra

    def with_states(self, x: Tensor, sequences: bool) -> tuple[Tensor, list[str]]:
        """An RNN with return_state: its states become outputs of the model."""
        cls = self.rng.choice(RNN_CELLS)
        config = self.rnn_config(cls, x, sequences, self.rng.choice([3, 4, 6]))
        config["return_state"] = True
        ref = self.add(cls, config, [x.ref], ctx={"time_axis": _axis(x), "masked": x.mask})
        states = [f"{ref}.{i}" for i in range(1, 3 if cls == "LSTM" else 2)]
        shape = (x.steps, config["units"]) if sequences else (config["units"],)
        return Tensor(f"{ref}.0", shape, x.mask and sequences), states

    def pool(self, x: Tensor) -> Tensor:
        """A sequence to a vector."""
        choices = ["GlobalAveragePooling1D"]
        if not x.mask:
            choices.append("GlobalMaxPooling1D")
            if x.steps is not None:
                choices.append("Flatten")
        cls = self.rng.choice(choices)
        ref = self.add(cls, {}, [x.ref])
        width = x.shape[1] * (x.steps if cls == "Flatten" else 1)
        return Tensor(ref, (width,), False)

    def head(self, x: Tensor, activation: str | None = None, policy: str = "float32") -> str:
        """Dense layers to one output (per step for a sequence)."""
        if self.chance(0.3):
            x = Tensor(
                self.add("Dense", {"units": 6, "activation": "relu"}, [x.ref]),
                (*x.shape[:-1], 6),
                x.mask,
            )
        activation = activation or self.rng.choice(["linear", "softmax", "sigmoid", "tanh"])
        units = {"softmax": self.rng.choice([3, 4]), "sigmoid": 1}.get(
            activation, self.rng.choice([1, 2])
        )
        config = {"units": units, "activation": activation}
        if policy != "float32":
            config["dtype"] = (
                "float32"  # the last layer in float32, as the mixed precision guide says
            )
        return self.add("Dense", config, [x.ref])


def _axis(x: Tensor) -> str:
    return "free" if x.steps is None else "fixed"


def _conv_steps(steps, kernel: int, padding: str, strides: int):
    if steps is None:
        return None
    if padding == "valid":
        return (steps - kernel) // strides + 1
    return -(-steps // strides)  # same, causal: ceil


def _steps(rng: random.Random, free: bool):
    return None if free else rng.choice([2, 3, 4, 6, 8])


def draw_spec(seed: int, index: int) -> dict:
    """Model `index` of `seed`: the same spec whatever else is drawn."""
    return draw(random.Random(f"tfjs-bridge-fuzz:{seed}:{index}"), seed, index)


def draw(rng: random.Random, seed: int, index: int) -> dict:
    """A spec from any source of choices with random.Random's choice,
    choices and random (a hypothesis `randoms()` too)."""
    # .h5 and .keras are what tf-keras and Keras 3 users save; a SavedModel
    # folder less often (and it is the costliest to save and load)
    source = rng.choices(SOURCES, weights=[2, 1, 2])[0]
    policy = "mixed_float16" if rng.random() < 0.08 else "float32"
    structure = rng.choices(STRUCTURES, weights=[3, 4, 1.5, 1.5, 1.5])[0]
    counter = [0]
    d = Drawer(rng, structure != "sequential", counter, keras3=source == "keras")
    spec = {
        "id": f"fz{seed}-{index:03d}",
        "seed": seed,
        "index": index,
        "source": source,
        "policy": policy,
        "structure": structure,
    }
    features = rng.choice([1, 2, 3, 4])
    free = rng.random() < 0.2
    outputs: list[str] = []
    if structure in ("sequential", "functional"):
        kind = rng.choices(INPUT_KINDS[:5], weights=[3, 4, 1, 1, 1])[0]
        steps = _steps(rng, free and kind != "flat")  # a Reshape needs its length
        _, node = d.input("x0", kind, steps, features)
        x = d.entry(node)
        keep = x.is_sequence and rng.random() < 0.25
        x, extra = d.body(x, keep)
        outputs = [d.head(x, policy=policy), *extra]
        if structure == "sequential" and rng.random() < 0.08 and steps is not None:
            _make_stateful(d, spec)
    elif structure == "nested":
        kind = rng.choices(["tokens", "float"], weights=[1, 1])[0]
        steps = _steps(rng, free)
        ref, node = d.input("x0", kind, steps, features)
        inner = Drawer(rng, functional=False, counter=counter, keras3=d.keras3)
        _, inner_node = inner.input("inner_x", kind, steps, features)
        _same_input(inner_node, node)
        y, _ = inner.body(inner.entry(inner_node), keep_sequence=False)
        nested = d.add("Nested", {}, [ref], model={"nodes": inner.nodes, "outputs": [y.ref]})
        outputs = [d.head(Tensor(nested, y.shape, False), policy=policy)]
    elif structure == "shared":
        kind = rng.choice(["tokens", "float"])
        steps = _steps(rng, free)
        a, node = d.input("left", kind, steps, features)
        b, node_b = d.input("right", kind, steps, features)
        _same_input(node_b, node)
        if rng.random() < 0.5:  # a shared nested encoder (a question-pair model)
            inner = Drawer(rng, functional=False, counter=counter, keras3=d.keras3)
            _, inner_node = inner.input("inner_x", kind, steps, features)
            _same_input(inner_node, node)
            y, _ = inner.body(inner.entry(inner_node), keep_sequence=False)
            left = d.add("Nested", {}, [a], model={"nodes": inner.nodes, "outputs": [y.ref]})
            right = d.add("Reuse", {}, [b], of=left)
        else:  # shared layers: the same Embedding/RNN objects on both inputs
            x = d.entry(node)
            start = len(d.nodes)
            y = d.recurrent(x, sequences=False)
            left = y.ref
            first_entry = d.nodes[start - 1]["id"] if x.ref != a else None
            shared = list(d.nodes[start:])
            ref = b
            if first_entry is not None:  # the shared entry layer (Embedding, Masking)
                ref = d.add("Reuse", {}, [b], of=first_entry)
            for node_ in shared:
                if node_["class"] in MERGES:
                    ref = d.add("Reuse", {}, [f"{ref}.0", f"{ref}.1"], of=node_["id"])
                else:
                    ref = d.add("Reuse", {}, [ref], of=node_["id"])
            right = ref
        merge = rng.choice(MERGES)
        joined = d.add(merge, {}, [left, right])
        width = y.shape[0] * (2 if merge == "Concatenate" else 1)
        outputs = [d.head(Tensor(joined, (width,), False), policy=policy)]
    else:  # multi_io: a sequence and a vector in, a class and a value out
        kind = rng.choice(["tokens", "float"])
        steps = _steps(rng, free)
        _, node = d.input("sequence", kind, steps, features)
        _, vec = d.input("numeric", "vector", None, rng.choice([2, 3]))
        x, extra = d.body(d.entry(node), keep_sequence=False)
        v = d.entry(vec)
        joined = d.add("Concatenate", {}, [x.ref, v.ref])
        j = Tensor(joined, (x.shape[0] + v.shape[0],), False)
        outputs = [d.head(j, "softmax", policy), d.head(j, "linear", policy), *extra]
        if source == "keras" and rng.random() < 0.5:
            spec["dict_io"] = True  # keras.Model({"sequence": ..., "numeric": ...}, {...})
    spec["nodes"] = d.nodes
    spec["outputs"] = outputs
    # A subclassed keras.Model calling the drawn graph; only a SavedModel
    # holds one. Drawn from a stream of its own: the rest of the spec stays
    # what the seed drew before this option existed.
    if (
        source == "saved_model"
        and not spec.get("stateful")
        and random.Random(f"{spec['id']}:subclassed").random() < SUBCLASSED_SHARE
    ):
        spec["subclassed"] = True
    return spec


def _same_input(node: dict, like: dict) -> None:
    """An input drawn as another's twin (a shared encoder's second input, a
    nested model's own input): the same shape, dtype and vocabulary."""
    node.update({k: like[k] for k in ("shape", "dtype", "vocab") if k in like})


def _make_stateful(d: Drawer, spec: dict) -> None:
    """A streaming model: every recurrent layer stateful, the batch fixed at 1."""
    for node in d.nodes:
        target = node.get("inner", node) if node["class"] == "Bidirectional" else node
        if target["class"] in RNN_CELLS:
            target["config"]["stateful"] = True
        if node["class"] == "Input":
            node["batch_size"] = 1
    spec["stateful"] = True


def draw_specs(seed: int, count: int) -> list[dict]:
    return [draw_spec(seed, i) for i in range(count)]


# -- what a spec holds: features for the table, pairs for coverage ---------------


def walk(nodes: list[dict]):
    """Every node, nested models' too, with its inner layer for wrappers."""
    for node in nodes:
        yield node
        if node["class"] == "Nested":
            yield from walk(node["model"]["nodes"])


def layers_of(spec: dict):
    """(label, class, config, ctx) of every layer, wrappers' inner layers too."""
    for node in walk(spec["nodes"]):
        cls = node["class"]
        if cls in ("Reuse", "Nested"):
            continue
        if cls == "Input":
            config = {
                "kind": node["kind"],
                "dtype": node["dtype"],
                "time_axis": "free" if None in node["shape"][:1] else "fixed",
            }
            yield "Input", cls, config, {}
            continue
        yield label(node), cls, node.get("config", {}), node.get("ctx", {})
        if "inner" in node:
            inner = node["inner"]
            yield inner["class"], inner["class"], inner["config"], inner.get("ctx", {})


def label(node: dict) -> str:
    if "inner" in node:
        return f"{node['class']}({node['inner']['class']})"
    if node["class"] == "Input":
        return f"Input[{node['kind']}]"
    return node["class"]


def option_pairs(spec: dict) -> set[tuple[str, str]]:
    """(layer, "option=value") for every option of OPTIONS a spec's layers set."""
    pairs = set()
    for _, cls, config, ctx in layers_of(spec):
        for option in OPTIONS.get(cls, {}):
            value = ctx.get(option, config.get(option))
            if value is not None or option == "merge_mode":
                pairs.add((cls, f"{option}={_show(value)}"))
    return pairs


def option_space() -> set[tuple[str, str]]:
    return {
        (cls, f"{o}={_show(v)}")
        for cls, opts in OPTIONS.items()
        for o, values in opts.items()
        for v in values
    }


def neighbour_pairs(spec: dict) -> set[tuple[str, str]]:
    """(producer, consumer) for every edge of the model's graph, a nested
    model's first and last layers joined to what surrounds it."""
    pairs = set()

    def visit(nodes, outer_labels):
        labels = dict(outer_labels)
        for node in nodes:
            if node["class"] == "Nested":
                inner = node["model"]["nodes"]
                first = next(n for n in inner if n["class"] != "Input")
                for ref in node["in"]:
                    pairs.add((labels[ref.split(".")[0]], label(first)))
                inner_labels = visit(inner, labels)
                labels[node["id"]] = inner_labels[node["model"]["outputs"][0].split(".")[0]]
                continue
            if node["class"] == "Reuse":
                labels[node["id"]] = labels[node["of"]]
                continue
            labels[node["id"]] = label(node)
            for ref in node.get("in", []) + node.get("initial_state", []):
                pairs.add((labels[ref.split(".")[0]], label(node)))
        return labels

    visit(spec["nodes"], {})
    return pairs


def features(spec: dict) -> list[str]:
    """What the verdict table is split by: recurrent layer kind, options,
    structure, source, dtype policy."""
    out = {f"structure={spec['structure']}", f"source={spec['source']}", f"policy={spec['policy']}"}
    for node in walk(spec["nodes"]):
        cls = node["class"]
        if cls == "Input":
            if node["shape"][:1] == [None]:
                out.add("option=free time axis")
            continue
        if cls == "Bidirectional":
            out.add(f"layer=Bidirectional(merge_mode={_show(node['config']['merge_mode'])})")
        target = node.get("inner", node)
        tcls, config = target["class"], target.get("config", {})
        if tcls in (*RNN_CELLS, *CONV_RNNS):
            if tcls == "GRU":
                out.add(f"layer=GRU(reset_after={config['reset_after']})")
            else:
                out.add(f"layer={tcls}")
            for option in (
                "go_backwards",
                "return_sequences",
                "return_state",
                "unroll",
                "stateful",
            ):
                if config.get(option):
                    out.add(f"option={option}")
            for option in ("dropout", "recurrent_dropout"):
                if config.get(option):
                    out.add(f"option={option}")
            if "initial_state" in node:
                out.add("option=initial_state")
        if cls == "Embedding" and config.get("mask_zero"):
            out.add("option=mask_zero")
        if cls == "Masking":
            out.add("option=Masking")
        if cls in (
            "Attention",
            "MultiHeadAttention",
            "Conv1D",
            "LayerNormalization",
            "BatchNormalization",
            "TimeDistributed",
        ):
            out.add(f"around={cls}")
    if spec.get("dict_io"):
        out.add("structure=dict I/O")
    if spec.get("subclassed"):
        out.add("structure=subclassed")
    return sorted(out)


def _show(value) -> str:
    return "None" if value is None else str(value)
