"""What the demo page (node/demo.js) cannot know by itself, computed by
`tfjs-bridge demo` at start-up: real test examples for its "try an example"
buttons (MNIST test digits, lstm_sine test windows, test mails) with Keras's
answer for each, and lstm_sine's training domain for its sliders. A few
examples per model, so starting the page costs a few seconds of Keras."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from . import data, spam_corpus

EXAMPLES = 8  # per model
MNIST_FIRST = 0  # test digits MNIST_FIRST .. + EXAMPLES


def _keras(folder: Path):
    import tf_keras

    from ..core.quiet_tf import import_tensorflow

    import_tensorflow()
    return tf_keras.models.load_model(folder / "keras.h5", compile=False)


def gru_examples(folder: Path, count: int = EXAMPLES) -> dict:
    images, labels = data.mnist_split("test", MNIST_FIRST + count)
    images, labels = images[MNIST_FIRST:], labels[MNIST_FIRST:]
    keras = _keras(folder).predict(images, verbose=0)
    return {
        "source": f"MNIST test images {MNIST_FIRST}..{MNIST_FIRST + count - 1}",
        "examples": [
            {
                "pixels": np.rint(image * 255).astype(int).ravel().tolist(),
                "label": int(label),
                "keras": probs.tolist(),
            }  # fmt: skip
            for image, label, probs in zip(images, labels, keras, strict=True)
        ],
    }


def sine_examples(folder: Path, count: int = EXAMPLES) -> dict:
    test = data.load_sine()
    pick = data.spread(len(test.x_test), count)
    keras = _keras(folder).predict(test.x_test[pick], verbose=0)
    return {
        "source": f"lstm_sine's test windows {pick.tolist()} (of {len(test.x_test)})",
        "domain": {
            "period": list(data.SINE_PERIOD),
            "amplitude": list(data.SINE_AMPLITUDE),
            "phase": list(data.SINE_PHASE),
            "noise": data.SINE_NOISE,
            "window": data.SINE_WINDOW,
        },
        "examples": [
            {"window": x[:, 0].tolist(), "next": float(y[0]), "keras": float(k[0])}
            for x, y, k in zip(test.x_test[pick], test.y_test[pick], keras, strict=True)
        ],
    }


def spam_examples(folder: Path, count: int = EXAMPLES) -> dict:
    from ..folder.tokenizer import Tokenizer

    split = spam_corpus.load_spam()
    # half spam, half ham, spread over the test split
    spam = np.flatnonzero(split.test_labels == 1)
    ham = np.flatnonzero(split.test_labels == 0)
    pick = np.concatenate([s[data.spread(len(s), count // 2)] for s in (spam, ham)])
    texts = [split.test_texts[i] for i in pick]
    ids = Tokenizer.load(folder / "tokenizer.json").encode(texts)
    keras = _keras(folder).predict(ids, verbose=0)
    return {
        "source": f"{len(pick)} of the {len(split.test_texts)} test mails",
        "examples": [
            {"text": text, "label": int(split.test_labels[i]), "keras": float(k[0])}
            for text, i, k in zip(texts, pick, keras, strict=True)
        ],
    }


MAKERS = {"gru": gru_examples, "lstm_sine": sine_examples, "spam": spam_examples}


def demo_examples(models_root: Path, count: int = EXAMPLES) -> dict:
    """{model name: its examples} for the demo models whose Keras file is there."""
    return {
        name: make(models_root / name, count)
        for name, make in MAKERS.items()
        if (models_root / name / "keras.h5").exists()
    }


def write_demo_examples(models_root: Path, path: Path, count: int = EXAMPLES) -> Path:
    path.write_text(json.dumps(demo_examples(models_root, count)), encoding="utf-8")
    return path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfjs-bridge"


def cached_demo_examples(models_root: Path, count: int = EXAMPLES) -> Path:
    """The examples file for these models, computed once: it is named by the
    models' weights (keras.h5's sha256 in each manifest), this file's code
    and `count`, so a retrained model or changed code computes them afresh.
    One file is kept; a read-only models folder works, since it lives in the
    user's cache (XDG_CACHE_HOME or ~/.cache)."""
    key = hashlib.sha256(Path(__file__).read_bytes() + str(count).encode())
    for name in MAKERS:
        manifest = models_root / name / "manifest.json"
        if manifest.exists():
            files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
            key.update(f"{name}:{files.get('keras.h5')}:{files.get('tokenizer.json')}".encode())
    folder = cache_dir()
    path = folder / f"demo-examples-{key.hexdigest()[:16]}.json"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(f".{os.getpid()}.tmp")
    write_demo_examples(models_root, staging, count)
    os.replace(staging, path)
    for old in folder.glob("demo-examples-*.json"):
        if old != path:
            old.unlink(missing_ok=True)
    return path
