"""MNIST-style preprocessing of drawn digits (node/lib/io/digit_image.js), the
code the demo page and `node predict.js --image` share: real MNIST test
digits redrawn as pen strokes (bench/drawn_digits.py: thin, thick, small,
off-centre, dark on paper) come out in MNIST's box, centred by mass; a real
MNIST digit comes back as itself; the array Node makes gets the same answer
from Keras as from tfjs-node. The accuracy figure (full-size gru, hundreds of
digits) is printed by `python -m tfjs_bridge.bench.drawn_digits`: the small
gru here is too weak for it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from tfjs_bridge.bench.drawn_digits import VARIANTS, write_strokes
from tfjs_bridge.core.paths import NODE_DIR
from tfjs_bridge.training.data import mnist_split

DIGITS = 4  # MNIST test digits 0..3, each in every variant
ATOL = 1e-5


def _node(script, *args):
    return subprocess.run(["node", str(NODE_DIR / script), *map(str, args)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _preprocessed(pngs, out):
    args = [a for png in pngs for a in ("--image", png)]
    run = _node("scripts/digit-image.js", *args, "--output", out)
    assert run.returncode == 0, run.stderr
    return np.load(out)


def _box_and_centre(image):
    rows, cols = np.nonzero(image > 0.1)
    mass = image.sum()
    grid = np.arange(28) + 0.5
    centre = ((image.sum(1) * grid).sum() / mass, (image.sum(0) * grid).sum() / mass)
    return max(np.ptp(rows), np.ptp(cols)) + 1, np.array(centre)


@pytest.fixture(scope="module")
def strokes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("strokes")
    images = mnist_split("test", DIGITS)[0]
    records = write_strokes(images, tmp / "png")
    seen = _preprocessed([r["png"] for r in records], tmp / "seen.npy")
    return records, seen


def test_strokes_are_made_mnist_like(strokes):
    records, seen = strokes
    assert seen.shape == (DIGITS * len(VARIANTS), 28, 28) and seen.dtype == np.float32
    for record, image in zip(records, seen, strict=True):
        box, centre = _box_and_centre(image)
        assert 19 <= box <= 22, (record["variant"].name, box)
        assert np.abs(centre - 14.5).max() <= 0.5, (record["variant"].name, centre)
    # The control: scaled as drawn, the small and off-centre ones are neither.
    naive = [
        _box_and_centre(r["naive"]) for r in records if r["variant"].name == "small, in a corner"
    ]
    assert all(box < 15 and np.abs(centre - 14.5).max() > 3 for box, centre in naive)


def test_grey_paper_is_background(strokes, tmp_path):
    # A photo's paper is not white: ink 40 on paper 225 must give what ink 0 on 255 gives.
    records, seen = strokes
    on_paper = [i for i, r in enumerate(records) if r["variant"].paper]
    pngs = []
    for i in on_paper:
        page = np.asarray(Image.open(records[i]["png"]), dtype=np.float64)
        Image.fromarray(np.rint(40 + page * (185 / 255)).astype(np.uint8)).save(
            tmp_path / f"{i}.png"
        )
        pngs.append(tmp_path / f"{i}.png")
    grey = _preprocessed(pngs, tmp_path / "grey.npy")
    error = np.abs(grey - seen[on_paper]).mean(axis=(1, 2))
    assert error.max() < 0.02, error
    # The control: another digit on the same paper is far from it.
    assert np.abs(grey - np.roll(seen[on_paper], 1, axis=0)).mean(axis=(1, 2)).min() > 0.05


def test_a_real_mnist_digit_comes_back_as_itself(tmp_path):
    images = mnist_split("test", 20)[0]
    pngs = []
    for i, image in enumerate(np.rint(images * 255).astype(np.uint8)):
        Image.fromarray(image).save(tmp_path / f"d{i}.png")  # 28 x 28, as MNIST has it
        # and 10x larger, dark on white: a scan of it
        big = Image.fromarray(255 - image).resize((280, 280), Image.Resampling.NEAREST)
        big.save(tmp_path / f"big{i}.png")
        pngs += [tmp_path / f"d{i}.png", tmp_path / f"big{i}.png"]
    seen = _preprocessed(pngs, tmp_path / "seen.npy")
    same, scanned = seen[0::2], seen[1::2]
    error = np.abs(same - images).mean(axis=(1, 2))
    # Most come back exactly or within a few grey levels; those with strokes
    # outside MNIST's common widths (its thinnest and thickest 10 %) are
    # made a little wider or narrower.
    assert (error == 0).mean() >= 0.5 and np.median(error) < 1e-3 and error.max() < 0.05, error
    scan_error = np.abs(scanned - images).mean(axis=(1, 2))  # widths measured finer: more changed
    assert np.median(scan_error) < 1e-2 and scan_error.max() < 0.1, scan_error
    # The control: against another digit the difference is far larger.
    others = np.abs(same - np.roll(images, 1, axis=0)).mean(axis=(1, 2))
    assert np.median(others) > 0.1 and others.min() > 0.05, others


def test_node_and_keras_answer_alike_for_the_preprocessed_array(strokes, small_models, tmp_path):
    import tf_keras

    from tfjs_bridge.core.quiet_tf import import_tensorflow

    records, seen = strokes
    args = ["--model", small_models / "gru", "--format", "layers", "--json"]
    run = _node("predict.js", *args, *[a for r in records for a in ("--image", r["png"])])
    assert run.returncode == 0, run.stderr
    node = np.array([image["probabilities"] for image in json.loads(run.stdout)["images"]])
    import_tensorflow()
    keras = tf_keras.models.load_model(small_models / "gru" / "keras.h5", compile=False)
    np.testing.assert_allclose(node, keras.predict(seen, verbose=0), atol=ATOL, rtol=0)
    # The control: Node skipping the preprocessing (the canvas scaled as
    # drawn) would not pass this check.
    naive = keras.predict(np.stack([r["naive"] for r in records]), verbose=0)
    assert np.abs(node - naive).max(axis=1).min() > 100 * ATOL


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "x.png").write_text("not a png") and d / "x.png", "not a PNG file"),
        (lambda d: d / "nowhere.png", "no such file"),
        (lambda d: (d / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30) and d / "x.png",
         "pixels: want 1 to 50 million"),
    ],
    ids=["not-png", "missing", "zero-size"],
)  # fmt: skip
def test_a_bad_image_is_one_line(tmp_path, small_models, make, message):
    run = _node("predict.js", "--model", small_models / "gru", "--image", make(tmp_path))
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr


def test_image_wants_an_mnist_model(tmp_path, small_models):
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    run = _node("predict.js", "--model", small_models / "lstm_sine", "--image", tmp_path / "x.png")
    assert run.returncode == 2 and "--image needs an MNIST model" in run.stderr
    assert _node("scripts/digit-image.js", "--help").returncode == 0
