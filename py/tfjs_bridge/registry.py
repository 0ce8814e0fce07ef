"""The one registry of models. Training, conversion, the Node scripts (through
the generated ``node/registry.json``) and the parity tests all iterate it;
adding a model is adding one entry to ``MODELS``.

Architectures are declared as data (Keras layer class names and configs) so
that one generic builder per runtime can construct them: ``build_keras`` here,
and ``buildModel`` in ``node/lib/registry.js`` for Node-side training."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import UsageError
from .paths import NODE_DIR

REGISTRY_JSON = NODE_DIR / "registry.json"


@dataclass(frozen=True)
class Layer:
    kind: str  # a tf-keras layer class: GRU, LSTM, Dense
    config: dict


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    seed: str | None  # the tutorial in ../shared/seeds it reproduces, if any
    input_shape: tuple[int, ...]  # one sample, without the batch axis
    layers: tuple[Layer, ...]
    data: str  # a loader in data.py: mnist, seed_lstm, sine
    task: str  # classification | regression
    loss: str
    metrics: tuple[str, ...]
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    epochs: int = 10
    batch_size: int = 32
    # Parity tolerance for every Node path against Python, |a-b| <= atol + rtol*|b|.
    atol: float = 1e-5
    rtol: float = 1e-5
    node_trainable: bool = True  # tfjs-layers can build and train it
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        spec = asdict(self)
        spec["input_shape"] = list(self.input_shape)
        spec["metrics"] = list(self.metrics)
        return spec


# tf.layers.gru / tf.layers.lstm defaults, which differ from Keras's:
# recurrentActivation 'hardSigmoid' (Keras: sigmoid), the GRU's reset gate
# applied before the recurrent matmul (Keras: reset_after=True), and no unit
# forget bias at initialisation (Keras: unit_forget_bias=True). In tf-keras
# 2.x, hard_sigmoid is clip(0.2x + 0.5, 0, 1), the same formula as tfjs's.
TFJS_GRU = {"recurrent_activation": "hard_sigmoid", "reset_after": False}
TFJS_LSTM = {"recurrent_activation": "hard_sigmoid", "unit_forget_bias": False}

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="gru",
            description="Seed 011: GRU(64) reads the 28 rows of an MNIST digit, Dense(10) softmax",
            seed="011-gru-tfjs-node.md",
            input_shape=(28, 28),
            layers=(
                Layer("GRU", {"units": 64, **TFJS_GRU}),
                Layer("Dense", {"units": 10, "activation": "softmax"}),
            ),
            data="mnist",
            task="classification",
            loss="categorical_crossentropy",
            metrics=("accuracy",),
            epochs=10,
            batch_size=32,
        ),
        ModelSpec(
            name="lstm",
            description="Seed 095: LSTM(16) on one timestep, Dense(1), fit [1,2] -> [1,2]",
            seed="095-lstm-tfjs-node.md",
            input_shape=(1, 1),
            layers=(
                Layer("LSTM", {"units": 16, **TFJS_LSTM}),
                Layer("Dense", {"units": 1}),
            ),
            data="seed_lstm",
            task="regression",
            loss="mean_squared_error",
            metrics=(),
            epochs=10,
            batch_size=32,
            extra={"predict_value": 3.0},
        ),
        ModelSpec(
            name="lstm_sine",
            description=(
                "LSTM(32) forecasting the next value of a noisy sine from the 24 before it "
                "(the seed LSTM has one timestep, so its recurrence never acts)"
            ),
            seed=None,
            input_shape=(24, 1),
            layers=(
                Layer("LSTM", {"units": 32, **TFJS_LSTM}),
                Layer("Dense", {"units": 1}),
            ),
            data="sine",
            task="regression",
            loss="mean_squared_error",
            metrics=(),
            epochs=20,
            batch_size=32,
            learning_rate=3e-3,
        ),
    ]
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(MODELS)
        raise UsageError(f"unknown model '{name}' (known: {known})") from None


def resolve(names: tuple[str, ...] | list[str]) -> list[ModelSpec]:
    """The specs named, in order, or every registry model when none are."""
    return [get_spec(n) for n in names] if names else list(MODELS.values())


RNN_KINDS = {"GRU", "LSTM", "SimpleRNN"}


def build_keras(spec: ModelSpec, unroll: bool = False):
    """A tf-keras Sequential model from the spec (tf-keras, not Keras 3: the
    converter's `keras` input and tfjs-layers read tf-keras models).

    unroll=True builds the same function without a While loop, for exports
    whose runtime handles loops badly (the tfjs graph executor)."""
    import tf_keras

    model = tf_keras.Sequential(name=spec.name)
    model.add(tf_keras.Input(shape=spec.input_shape, name="input"))
    for layer in spec.layers:
        config = dict(layer.config)
        if unroll and layer.kind in RNN_KINDS:
            config["unroll"] = True
        model.add(getattr(tf_keras.layers, layer.kind)(**config))
    return model


def registry_json() -> str:
    return json.dumps({n: s.to_json() for n, s in MODELS.items()}, indent=2) + "\n"


def write_registry_json(path: Path = REGISTRY_JSON) -> Path:
    path.write_text(registry_json())
    return path
